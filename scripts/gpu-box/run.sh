#!/usr/bin/env bash
# On an NVIDIA machine with no internet and no Node: unpack gpu-payload.tar.xz (scripts/gpu-box/pack.sh)
# next to this script, then run `mimir doctor` and the benchmarks of issue 16:
#   - ViT-S/2 (32 px, patch 2, width 384, depth 12, 6 heads, decoder 128 x 2 x 16), batch 256: the MIMIR
#     pre-training step and the PGD-AT step (PGD-10) in images/s on webgpu (mimir bench, the engine's
#     WGSL kernels) and on PyTorch on the GPU (the PyTorch engine, fp32, its images_per_s metrics);
#   - GEMM TFLOP/s: the engine's WGSL GEMM (fp32, and f16 tiles where the adapter has shader-f16) against
#     torch.matmul (cuBLAS, fp32 with TF32 off and on).
# Usage: run.sh [payload.tar.xz] [--micro]   (--micro: tiny sizes, a smoke test of the payload)
# Env: VK_DRIVER_FILES (default: NVIDIA's ICD where found), MIMIR_BACKEND (default webgpu), PYTHON (python3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
payload=${1:-$here/gpu-payload.tar.xz}
micro=0
for arg in "$@"; do [ "$arg" = --micro ] && micro=1; done
work=${WORK:-$here/gpu-box-work}
mkdir -p "$work"
if [ ! -x "$work/node" ]; then
  tar -C "$work" -xJf "$payload"
  xz -d -c "$work/node.xz" > "$work/node" && chmod +x "$work/node"
fi
export LD_LIBRARY_PATH="$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    [ -f "$icd" ] && export VK_DRIVER_FILES="$icd" && break
  done
fi
echo "== Vulkan driver: ${VK_DRIVER_FILES:-${VK_ICD_FILENAMES:-none found}}"
export MIMIR_BACKEND=${MIMIR_BACKEND:-webgpu}
export MIMIR_HOME="$work/home"
PYTHON=${PYTHON:-python3}
mimir() { "$work/node" "$work/mimir/bin/mimir.mjs" "$@"; }
results="$work/results"
mkdir -p "$results"

if [ "$micro" = 1 ]; then
  model=(--image-size 8 --patch-size 2 --width 16 --depth 1 --heads 2 --decoder-width 8 --decoder-depth 1 --decoder-heads 2)
  batch=4; pgd=2; gemms=64x64x64; preset=micro; image=16; repeats=2
else
  model=(--image-size 32 --patch-size 2 --width 384 --depth 12 --heads 6 --decoder-width 128 --decoder-depth 2 --decoder-heads 16)
  batch=256; pgd=10; gemms=4096x4096x4096,65792x384x1152,65792x1536x384; preset=vit-s; image=32; repeats=5
fi

echo "== mimir doctor"
mimir doctor | tee "$results/doctor.txt"
mimir doctor --json > "$results/doctor.json"

echo "== webgpu: MIMIR and PGD-AT steps, batch $batch"
mimir bench "${model[@]}" --batch "$batch" --pgd-steps "$pgd" --repeats "$repeats" --json > "$results/bench-webgpu.json"
echo "== webgpu: GEMM"
mimir bench --gemm "$gemms" --repeats 20 --json > "$results/gemm-webgpu.json"
if grep -q '"shader-f16"' "$results/doctor.json"; then
  echo "== webgpu: GEMM with f16 tiles (--precision fp16: f32 accumulation, fp32 results)"
  mimir bench --gemm "$gemms" --repeats 20 --precision fp16 --json > "$results/gemm-webgpu-f16.json"
fi

torch_ok=1
"$PYTHON" -c 'import torch, numpy' 2>/dev/null || { torch_ok=0; echo "== no PyTorch with numpy in $PYTHON: the PyTorch side is skipped"; }
if [ "$torch_ok" = 1 ]; then
  device=$("$PYTHON" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
  echo "== PyTorch on $device: GEMM (torch.matmul)"
  "$PYTHON" - "$gemms" > "$results/gemm-torch.json" <<'PY'
import json, sys, time, torch
dev = "cuda" if torch.cuda.is_available() else "cpu"
out = []
for size in sys.argv[1].split(","):
    m, n, k = map(int, size.split("x"))
    a = torch.rand(m, k, device=dev) * 2 - 1
    b = torch.rand(k, n, device=dev) * 2 - 1
    for tf32 in ([False, True] if dev == "cuda" else [False]):
        if dev == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.matmul(a, b)
        if dev == "cuda": torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(20): torch.matmul(a, b)
        if dev == "cuda": torch.cuda.synchronize()
        ms = (time.perf_counter() - start) * 1000 / 20
        out.append({"m": m, "n": n, "k": k, "device": dev, "tf32": tf32, "msPerProduct": ms, "tflops": 2 * m * n * k / (ms * 1e9)})
print(json.dumps({"gemm": out}))
PY
  dataset=$((batch * 8))
  echo "{\"mi\": {\"estimator\": \"hsic\", \"lambda\": 1e-5, \"sigma\": 5}, \"attack\": {\"steps\": 1}}" > "$work/pretrain.json"
  echo "== PyTorch engine on $device: MIMIR pre-training, batch $batch"
  rm -rf "$work/runs"
  mimir pretrain --engine torch --device "$device" --precision fp32 --model "$preset" --image-size "$image" \
    --batch "$batch" --dataset-size "$dataset" --epochs 1 --config "$work/pretrain.json" --out "$work/runs/pretrain" --json \
    > "$results/torch-pretrain.jsonl"
  echo "== PyTorch engine on $device: PGD-AT, batch $batch"
  mimir finetune --engine torch --device "$device" --precision fp32 --scratch --model "$preset" --image-size "$image" \
    --batch "$batch" --dataset-size "$dataset" --epochs 1 --out "$work/runs/pgdat" --json > "$results/torch-pgdat.jsonl"
fi

echo "== summary (raw results in $results)"
"$work/node" - "$results" <<'NODE'
const fs = require('node:fs');
const path = require('node:path');
const dir = process.argv[2];
const read = (f) => (fs.existsSync(path.join(dir, f)) ? fs.readFileSync(path.join(dir, f), 'utf8') : null);
const doctor = JSON.parse(read('doctor.json'));
console.log(`backend ${doctor.chosen}; WebGPU: ${doctor.webgpu.detail}`);
const bench = JSON.parse(read('bench-webgpu.json'));
for (const s of bench.steps) console.log(`webgpu  ${s.name.padEnd(8)} ${s.tfjs.imagesPerSecond.toFixed(1).padStart(9)} images/s (steady median)`);
// The PyTorch engine's images_per_s per step; the first two steps (warm-up, cuDNN autotune) left out.
for (const [name, file] of [['pretrain', 'torch-pretrain.jsonl'], ['pgdat', 'torch-pgdat.jsonl']]) {
  const text = read(file);
  if (!text) continue;
  const ips = text.trim().split('\n').map((l) => JSON.parse(l))
    .filter((e) => e.type === 'metrics' && e.values.images_per_s !== undefined && e.values.loss !== undefined && e.step > 2)
    .map((e) => e.values.images_per_s).sort((a, b) => a - b);
  const median = ips.length ? ips[Math.floor(ips.length / 2)] : NaN;
  console.log(`torch   ${name.padEnd(8)} ${median.toFixed(1).padStart(9)} images/s (median of ${ips.length} steps after the 2nd)`);
}
for (const file of ['gemm-webgpu.json', 'gemm-webgpu-f16.json']) {
  const text = read(file);
  if (text) for (const t of JSON.parse(text).gemm) console.log(`webgpu  GEMM ${t.m}x${t.n}x${t.k} (${t.variant?.shader}: ${t.variant?.description}): ${t.tflops.toFixed(2)} TFLOP/s`);
}
const torchGemm = read('gemm-torch.json');
if (torchGemm) for (const t of JSON.parse(torchGemm).gemm) console.log(`torch   GEMM ${t.m}x${t.n}x${t.k} (${t.device}${t.tf32 ? ', TF32' : ''}): ${t.tflops.toFixed(2)} TFLOP/s`);
NODE
