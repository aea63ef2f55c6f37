"""The PyTorch side of `mimir bench --compare-torch`: the same two training steps as the workbench's
engine, written plainly as a PyTorch user would, timed on the CPU.

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
import torch.nn as nn
import torch.nn.functional as F

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


# ---------------------------------------------------------------- model
def sincos_pos_embed(dim, grid, cls_token):
    """MAE's get_2d_sincos_pos_embed: [grid*grid (+1), dim], a zero row for the cls token."""

    def one_axis(d, pos):
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2.0))
        out = pos.reshape(-1, 1).double() * omega.reshape(1, -1)
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)

    gh, gw = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    emb = torch.cat([one_axis(dim // 2, gw), one_axis(dim // 2, gh)], dim=1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=torch.float64), emb], dim=0)
    return emb.float()


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def patchify(imgs, p):
    """[N, C, H, W] -> [N, L, p*p*C] (MAE's patchify)."""
    n, c, h, w = imgs.shape
    g = h // p
    x = imgs.reshape(n, c, g, p, g, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(n, g * g, p * p * c)


def unpatchify(x, p, c):
    n, l, _ = x.shape
    g = int(round(math.sqrt(l)))
    x = x.reshape(n, g, g, p, p, c)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(n, c, g * p, g * p)


class Encoder(nn.Module):
    """Patch embedding (a linear map of the pixel patches, as timm's stride-p conv), cls token, blocks, final norm."""

    def __init__(self, s):
        super().__init__()
        self.grid = s["imageSize"] // s["patchSize"]
        self.patch_embed = nn.Linear(s["patchSize"] ** 2 * s["channels"], s["width"])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, s["width"]))
        self.register_buffer("pos_embed", sincos_pos_embed(s["width"], self.grid, True).unsqueeze(0))
        self.blocks = nn.ModuleList([Block(s["width"], s["heads"], s["mlpRatio"]) for _ in range(s["depth"])])
        self.norm = nn.LayerNorm(s["width"], eps=1e-6)
        nn.init.normal_(self.cls_token, std=0.02)

    def forward(self, patches, ids_keep=None):
        x = self.patch_embed(patches)
        pos = self.pos_embed[:, 1:, :].expand(x.shape[0], -1, -1)
        if ids_keep is not None:
            pos = torch.gather(pos, 1, ids_keep.unsqueeze(-1).expand(-1, -1, pos.shape[2]))
        x = x + pos
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class MaskedAutoencoder(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s
        self.encoder = Encoder(s)
        dd = s["decoderWidth"]
        self.decoder_embed = nn.Linear(s["width"], dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.register_buffer("decoder_pos_embed", sincos_pos_embed(dd, self.encoder.grid, True).unsqueeze(0))
        self.decoder_blocks = nn.ModuleList(
            [Block(dd, s["decoderHeads"], s["mlpRatio"]) for _ in range(s["decoderDepth"])]
        )
        self.decoder_norm = nn.LayerNorm(dd, eps=1e-6)
        self.decoder_pred = nn.Linear(dd, s["patchSize"] ** 2 * s["channels"])
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(init_weights)

    def decode(self, latent, ids_restore):
        x = self.decoder_embed(latent)
        n, t, d = x.shape
        mask_tokens = self.mask_token.repeat(n, ids_restore.shape[1] + 1 - t, 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, d))
        x = torch.cat([x[:, :1, :], x_], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:, :]


class Classifier(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s
        self.encoder = Encoder(s)
        self.fc_norm = nn.LayerNorm(s["width"], eps=1e-6)
        self.head = nn.Linear(s["width"], s["classes"])
        self.apply(init_weights)

    def forward(self, imgs):
        x = self.encoder(patchify(imgs, self.s["patchSize"]))
        return self.head(self.fc_norm(x[:, 1:, :].mean(dim=1)))


def init_weights(m):
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def adamw(model, lr, betas):
    """MAE's parameter groups: no weight decay on biases, norms and tokens."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") or "token" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


# ---------------------------------------------------------------- the MIMIR step
def random_masking(n, l, ratio, generator):
    keep = int(l * (1 - ratio))
    noise = torch.rand(n, l, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_keep = torch.sort(ids_shuffle[:, :keep], dim=1).values  # visible patches in spatial order
    ids_restore = torch.argsort(torch.cat([ids_keep, ids_shuffle[:, keep:]], dim=1), dim=1)
    mask = torch.ones(n, l)
    mask.scatter_(1, ids_keep, 0.0)
    return ids_keep, ids_restore, mask


def recon_loss(pred, target_patches, mask):
    mean = target_patches.mean(dim=-1, keepdim=True)
    var = target_patches.var(dim=-1, keepdim=True)
    target = (target_patches - mean) / (var + 1e-6) ** 0.5
    loss = ((pred - target) ** 2).mean(dim=-1)
    return (loss * mask).sum() / mask.sum()


def hsic(a, b, sigma):
    """Biased HSIC tr(K_a H K_b H) / N^2 with Gaussian kernels exp(-||x - y||^2 / (2 sigma^2 d))."""
    n = a.shape[0]

    def kernel(x):
        x = x.reshape(n, -1)
        d2 = torch.cdist(x, x) ** 2
        return torch.exp(-d2 / (2 * sigma**2 * x.shape[1]))

    h = torch.eye(n) - 1.0 / n
    return torch.trace(kernel(a) @ h @ kernel(b) @ h) / n**2


def pretrain_step(model, opt, imgs, s, generator):
    p = s["patchSize"]
    eps, alpha = s["pretrainEps"] / 255, s["pretrainAlpha"] / 255
    patches = patchify(imgs, p)
    n, l, k = patches.shape
    ids_keep, ids_restore, mask = random_masking(n, l, s["maskRatio"], generator)
    vis = torch.gather(patches, 1, ids_keep.unsqueeze(-1).expand(-1, -1, k))

    # Attack on the visible patches: uniform start, signed-gradient ascent on the reconstruction loss.
    delta = (torch.rand(vis.shape, generator=generator) * 2 - 1) * eps
    delta = torch.clamp(vis + delta, 0, 1) - vis
    for _ in range(s["attackSteps"]):
        delta.requires_grad_(True)
        loss = recon_loss(model.decode(model.encoder(vis + delta, ids_keep), ids_restore), patches, mask)
        (grad,) = torch.autograd.grad(loss, [delta])
        with torch.no_grad():
            delta = delta + alpha * grad.sign()
            delta = torch.clamp(vis + torch.clamp(delta, -eps, eps), 0, 1) - vis

    # Training pass on the adversarial visible patches, with the MI penalty.
    adv_vis = vis + delta.detach()
    latent = model.encoder(adv_vis, ids_keep)
    recon = recon_loss(model.decode(latent, ids_restore), patches, mask)
    adv_patches = patches.scatter(1, ids_keep.unsqueeze(-1).expand(-1, -1, k), adv_vis)
    mi = hsic(adv_patches, latent, s["miSigma"])
    loss = recon + s["miLambda"] * mi
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


# ---------------------------------------------------------------- the PGD-AT step
def pgd_at_step(model, opt, imgs, labels, s, generator):
    eps, alpha = s["pgdEps"] / 255, s["pgdAlpha"] / 255
    model.eval()
    delta = (torch.rand(imgs.shape, generator=generator) * 2 - 1) * eps
    x_adv = torch.clamp(imgs + delta, 0, 1)
    for _ in range(s["pgdSteps"]):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), labels)
        (grad,) = torch.autograd.grad(loss, [x_adv])
        with torch.no_grad():
            x_adv = x_adv + alpha * grad.sign()
            x_adv = torch.clamp(torch.min(torch.max(x_adv, imgs - eps), imgs + eps), 0, 1)
    model.train()
    loss = F.cross_entropy(model(x_adv.detach()), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


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
    n, c, size = s["batch"], s["channels"], s["imageSize"]
    imgs = torch.rand(n, c, size, size, generator=generator)
    if name == "pretrain":
        model = MaskedAutoencoder(s)
        opt = adamw(model, 1.5e-4 * n / 256, (0.9, 0.95))
        return lambda: pretrain_step(model, opt, imgs, s, generator)
    if name == "pgdat":
        labels = torch.randint(0, s["classes"], (n,), generator=generator)
        model = Classifier(s)
        opt = adamw(model, 5e-3 * n / 256, (0.9, 0.999))
        return lambda: pgd_at_step(model, opt, imgs, labels, s, generator)
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
