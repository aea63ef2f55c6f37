#!/usr/bin/env bash
# Rebuilds src/engine/kernels/kernels-wasm.ts from src/engine/kernels/kernels.c: one build for
# tfjs-wasm's plain memory, one for the shared memory of its multi-threaded build.
# Needs clang and lld with the wasm32 target (Debian: apt-get install clang lld). The generated file
# is committed, so installing and running the app never needs a C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
src=src/engine/kernels/kernels.c
out=src/engine/kernels/kernels-wasm.ts
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
exports=()
for fn in kernel_constants kernel_constants_count gemm gemm_packed pack_b_all packed_b_floats gemm_scratch_floats attention_backward_head gelu_forward gelu_forward_slope \
  layer_norm_forward layer_norm_backward layer_norm_param_grads column_sums attention_probabilities_head; do
  exports+=("-Wl,--export=$fn")
done
common=(--target=wasm32 -O3 -msimd128 -mrelaxed-simd -nostdlib -ffreestanding -Wall -Werror
  -Wl,--no-entry -Wl,--import-memory -Wl,--strip-all "${exports[@]}")
clang "${common[@]}" -o "$tmp/plain.wasm" "$src"
# Shared memory of any size up to 4 GiB, so it accepts whatever maximum tfjs-wasm's memory declares.
clang "${common[@]}" -matomics -mbulk-memory -Wl,--shared-memory -Wl,--max-memory=4294967296 \
  -o "$tmp/shared.wasm" "$src"
objdump=$(command -v llvm-objdump || ls /usr/bin/llvm-objdump-* | head -1)
for build in plain shared; do
  if "$objdump" -d "$tmp/$build.wasm" | grep -q 'global\.'; then
    echo "kernels.c uses the linear-memory stack (global.get/set of the stack pointer): it must not" >&2
    exit 1
  fi
done
# f32x4.fma (clang 14's relaxed-SIMD opcode 0xfd 0xaf 0x01) is rewritten to the standard
# f32x4.relaxed_madd (0xfd 0x85 0x02); the check script verifies it rewrote exactly as many as
# the disassembler counts.
fmas_plain=$("$objdump" -d "$tmp/plain.wasm" | grep -c 'f32x4.fma' || true)
fmas_shared=$("$objdump" -d "$tmp/shared.wasm" | grep -c 'f32x4.fma' || true)
node scripts/wasm-kernels-check.mjs "$src" "$tmp/plain.wasm" "$fmas_plain" "$tmp/shared.wasm" "$fmas_shared" > "$out"
npx --no-install prettier --write "$out" > /dev/null
echo "wrote $out ($(stat -c %s "$tmp/plain.wasm") + $(stat -c %s "$tmp/shared.wasm") bytes of wasm)"
