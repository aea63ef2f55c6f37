"""The PyTorch side of `mimir bench --compare-torch`: the same two training steps on the workbench's
PyTorch engine (python/mimir_torch, what `--engine torch` runs), timed on the CPU.

  pretrain: one MIMIR pre-training step of a ViT masked autoencoder (MAE, pre-norm blocks, GELU,
            LayerNorm eps 1e-6, fixed 2-D sin-cos position embeddings, norm_pix_loss): a uniform start
            in the eps-ball on the visible patches, `attack_steps` signed-gradient ascent steps of size
            alpha on the reconstruction loss, then the training pass recon + lambda * HSIC(x + delta, z)
            (Gaussian kernels, k = exp(-||a - b||^2 / (2 sigma^2 d))), backward, AdamW.
  pgdat:    one PGD-AT fine-tuning step of the classifier (same encoder over all patches, mean of the
            patch tokens, fc_norm, linear head): PGD-k on the cross-entropy from a uniform random start,
            l_inf eps / alpha, then the cross-entropy training pass, backward, AdamW.

Usage: python3 bench_torch.py '<json settings>'  (see DEFAULTS): warm-up and repeated steps of each
  kind; progress on stderr, then one JSON line with the timings, the torch version, threads and BLAS.
       python3 bench_torch.py --serve '<json settings>': builds the models, prints one JSON line
  (ready, versions, BLAS), then runs one step per step name read from stdin and prints its timing as
  one JSON line; `mimir bench --compare-torch` uses this to interleave PyTorch's steps with its own.
"""
import ctypes
import json
import math
import os
import resource
import sys
import time

import torch

DEFAULTS = {
    "steps": ["pretrain", "pgdat"],
    "imageSize": 32,
    "patchSize": 2,
    "channels": 3,
    "width": 192,
    "depth": 2,
    "heads": 3,
    "mlpRatio": 4,
    "decoderWidth": 128,
    "decoderDepth": 2,
    "decoderHeads": 16,
    "batch": 32,
    "classes": 10,
    "maskRatio": 0.75,
    "pretrainEps": 8,
    "pretrainAlpha": 10,
    "attackSteps": 1,
    "miEstimator": "hsic",
    "miLambda": 1e-5,
    "miSigma": 5.0,
    "pgdEps": 8,
    "pgdAlpha": 2,
    "pgdSteps": 10,
    "threads": 2,
    "warmup": 1,
    "repeats": 3,
    "seed": 0,
}


# ---------------------------------------------------------------- the steps: the PyTorch engine's own
# python/mimir_torch, the engine `mimir pretrain|finetune --engine torch` runs.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from mimir_torch import model as M  # noqa: E402
from mimir_torch.config import FinetuneSettings, ModelConfig, PretrainSettings  # noqa: E402
from mimir_torch.finetune_step import finetune_step, start_noise  # noqa: E402
from mimir_torch.masking import rng_masking  # noqa: E402
from mimir_torch.optim import AdamW  # noqa: E402
from mimir_torch.pretrain_step import pretrain_step  # noqa: E402
from mimir_torch.rng import Rng  # noqa: E402


def model_config(s):
    return ModelConfig.parse(
        {
            "imageSize": s["imageSize"],
            "patchSize": s["patchSize"],
            "channels": s["channels"],
            "width": s["width"],
            "depth": s["depth"],
            "heads": s["heads"],
            "mlpRatio": s["mlpRatio"],
            "decoderWidth": s["decoderWidth"],
            "decoderDepth": s["decoderDepth"],
            "decoderHeads": s["decoderHeads"],
        }
    )


def pretrain_settings(s):
    """A MIMIR step: visible-patch attack, HSIC penalty with the fixed bandwidth."""
    return PretrainSettings.parse(
        {
            "mode": "mimir",
            "maskRatio": s["maskRatio"],
            "normPixLoss": True,
            "attack": {"steps": s["attackSteps"], "eps": s["pretrainEps"], "alpha": s["pretrainAlpha"], "perturb": "visible", "attackMask": "shared"},
            "mi": {"estimator": s["miEstimator"], "sigma": s["miSigma"], "bandwidth": "fixed", "alpha": 1.01, "epsR": 1e-5, "lambda": s["miLambda"]},
        }
    )


def pgdat_settings(s):
    # The Node side resolved every default of the PGD-AT config (torch-side.ts pgdAtRecord).
    return FinetuneSettings.parse(s["finetune"])


def make_pretrain(s, generator):
    c, run = model_config(s), pretrain_settings(s)
    rng = Rng(s["seed"])
    params = M.init_params_rng(M.mae_param_specs(c), rng.fork())
    opt = AdamW(params, betas=(0.9, 0.95), weight_decay=0.05)
    lr = 1.5e-4 * s["batch"] / 256
    imgs = torch.rand(s["batch"], c.image_size, c.image_size, c.channels, generator=generator)

    def step():
        mask = rng_masking(rng, s["batch"], c.num_patches, run.mask_ratio)
        eps = run.attack.eps / 255
        start = (torch.rand(s["batch"], mask.num_visible, c.patch_dim, generator=torch.Generator().manual_seed(rng.seed())) * 2 - 1) * eps
        result = pretrain_step(params, c, run, imgs, mask, start, lambda: rng_masking(rng, s["batch"], c.num_patches, run.mask_ratio))
        opt.step(result.grads, lr)
        return result.loss.item()

    return step


def make_pgdat(s, generator):
    c, run = model_config(s), pgdat_settings(s)
    rng = Rng(s["seed"])
    params = M.init_params_rng(M.classifier_param_specs(c, s["classes"]), rng.fork(), 2e-5)
    opt = AdamW(params, betas=(0.9, 0.999), weight_decay=0.05)
    lr = 5e-3 * s["batch"] / 256
    imgs = torch.rand(s["batch"], c.image_size, c.image_size, c.channels, generator=generator)
    labels = torch.randint(0, s["classes"], (s["batch"],), generator=generator)
    targets = torch.nn.functional.one_hot(labels, s["classes"]).float()
    ids = list(range(s["batch"]))

    def step():
        noise = start_noise(run, rng.next_uint32(), ids, tuple(imgs.shape))
        result = finetune_step(params, c, run, imgs, targets, labels, noise, rng)
        opt.step(result.grads, lr)
        return result.loss.item()

    return step


# ---------------------------------------------------------------- timing
def blas_report():
    """Which BLAS library this process loaded, and OpenBLAS's own view of its threads and kernel."""
    libs = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if "blas" in os.path.basename(path).lower():
                libs.add(os.path.realpath(path))
    report = {"libraries": sorted(libs), "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")}
    for lib in sorted(libs):
        try:
            handle = ctypes.CDLL(lib)
            handle.openblas_get_num_threads.restype = ctypes.c_int
            handle.openblas_get_corename.restype = ctypes.c_char_p
            handle.openblas_get_config.restype = ctypes.c_char_p
            report["openblas"] = {
                "threads": handle.openblas_get_num_threads(),
                "core": handle.openblas_get_corename().decode(),
                "config": handle.openblas_get_config().decode(),
            }
        except (OSError, AttributeError):
            continue
    if "openblas" not in report:
        report["note"] = "not OpenBLAS (the reference BLAS is single-threaded and slow)"
    return report


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_step(name, s, generator):
    """A closure that runs one training step of kind `name` on a fixed batch and returns its loss."""
    if name == "pretrain":
        return make_pretrain(s, generator)
    if name == "pgdat":
        return make_pgdat(s, generator)
    raise ValueError(f"unknown step {name}")


def timed(name, run):
    cpu = time.process_time()
    start = time.perf_counter()
    loss = run()
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    if not math.isfinite(loss):
        raise RuntimeError(f"{name}: loss is {loss}")
    return {"step": name, "wallMs": wall * 1000, "cpuMs": cpu * 1000, "loss": loss, "peakRssMiB": peak_rss_mib()}


def describe(s):
    return {
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "threads": torch.get_num_threads(),
        "interopThreads": torch.get_num_interop_threads(),
        "blas": blas_report(),
        "settings": s,
    }


def setup(argv):
    s = dict(DEFAULTS)
    if argv:
        s.update(json.loads(argv[0]))
    torch.set_num_threads(s["threads"])
    torch.manual_seed(s["seed"])
    return s, torch.Generator().manual_seed(s["seed"])


def serve(argv):
    """Step on demand: one step name per stdin line, one JSON result per stdout line (the caller interleaves)."""
    s, generator = setup(argv)
    steps = {name: make_step(name, s, generator) for name in s["steps"]}
    print(json.dumps({"ok": True, "ready": True, **describe(s)}), flush=True)
    for line in sys.stdin:
        name = line.strip()
        if name == "quit" or not name:
            break
        if name not in steps:
            print(json.dumps({"ok": False, "error": f"unknown step {name}"}), flush=True)
            continue
        print(json.dumps({"ok": True, **timed(name, steps[name])}), flush=True)


def main(argv):
    s, generator = setup(argv)
    results = {}
    for name in s["steps"]:
        run = make_step(name, s, generator)
        times = []
        for i in range(s["warmup"] + s["repeats"]):
            t = timed(name, run)
            times.append(t)
            print(f"torch {name} step {i + 1}: {t['wallMs']:.0f} ms (cpu {t['cpuMs']:.0f} ms), loss {t['loss']:.4f}", file=sys.stderr, flush=True)
        results[name] = {"first": times[0], "steady": times[s["warmup"] :]}
    print(json.dumps({"ok": True, **describe(s), "results": results}))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2:])
    else:
        main(sys.argv[1:])
