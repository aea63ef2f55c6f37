#!/usr/bin/env bash
# Rebuilds src/engine/kernels/kernels-wasm.ts from src/engine/kernels/kernels.c.
# Needs clang and lld with the wasm32 target (Debian: apt-get install clang lld). The generated file
# is committed, so installing and running the app never needs a C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
src=src/engine/kernels/kernels.c
out=src/engine/kernels/kernels-wasm.ts
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
clang --target=wasm32 -O3 -msimd128 -nostdlib -ffreestanding -Wall -Werror \
  -Wl,--no-entry -Wl,--import-memory -Wl,--strip-all \
  -Wl,--export=gemm -Wl,--export=gemm_scratch_floats -Wl,--export=softmax_backward -Wl,--export=gelu_forward -Wl,--export=gelu_backward -Wl,--export=layer_norm_forward -Wl,--export=layer_norm_backward -Wl,--export=layer_norm_param_grads \
  -o "$tmp/kernels.wasm" "$src"
objdump=$(command -v llvm-objdump || ls /usr/bin/llvm-objdump-* | head -1)
if "$objdump" -d "$tmp/kernels.wasm" | grep -q 'global\.'; then
  echo "kernels.c uses the linear-memory stack (global.get/set of the stack pointer): it must not" >&2
  exit 1
fi
node scripts/wasm-kernels-check.mjs "$tmp/kernels.wasm" "$src" > "$out"
npx --no-install prettier --write "$out" > /dev/null
echo "wrote $out ($(stat -c %s "$tmp/kernels.wasm") bytes of wasm)"
