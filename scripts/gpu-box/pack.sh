#!/usr/bin/env bash
# Packs what scripts/gpu-box/run.sh needs on an NVIDIA machine with no internet and no Node (see
# ../shared/reference/gpu-notes.md): the Node 24 binary (xz), the built bundle (out/), bin/, python/,
# only the node_modules the CLI loads for doctor and bench (dawn.node among them), and the Vulkan
# loader (libvulkan.so.1 from this machine's libvulkan1). Run from the repository root after
# `npx electron-vite build`; writes gpu-payload.tar.xz (tens of MiB; ignored by git by name below).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-gpu-payload.tar.xz}
[ -f out/main/cli.js ] || { echo "out/main/cli.js is missing: run npx electron-vite build first" >&2; exit 1; }
node_bin=$(readlink -f node_modules/node/bin/node 2>/dev/null || true)
[ -x "$node_bin" ] || { echo "node_modules/node/bin/node is missing: the project's Node 24 devDependency (npm install)" >&2; exit 1; }
vulkan=$(/sbin/ldconfig -p | awk '/libvulkan\.so\.1 / {p = $NF} END {print p}')
[ -n "$vulkan" ] || { echo "libvulkan.so.1 not found: apt-get install libvulkan1" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
app="$stage/mimir"
mkdir -p "$app/node_modules" "$stage/lib"
cp -r package.json bin out python "$app/"
mkdir -p "$app/scripts" && cp scripts/check-node.mjs scripts/bench_torch.py "$app/scripts/"
xz -T0 -6 -c "$node_bin" > "$stage/node.xz"
cp -L "$vulkan" "$stage/lib/libvulkan.so.1"

# The packages the bundle imports (its externals) and their dependency closure, each copied whole
# except the large ones, of which only what runs is kept.
"$node_bin" - "$app/node_modules" <<'NODE'
const fs = require('node:fs');
const path = require('node:path');
const dest = process.argv[2];
// sharp writes the runs' preview PNGs; its libvips comes as optional per-platform packages.
const roots = ['zod', 'commander', 'webgpu', 'better-sqlite3', 'ws', 'sharp', '@tensorflow/tfjs-backend-wasm']
  .concat(['@img/sharp-linux-x64', '@img/sharp-libvips-linux-x64'].filter((p) => fs.existsSync(path.join('node_modules', p))));
const trim = {
  // dawn.node for linux-x64 only.
  webgpu: (dir) => { for (const d of fs.readdirSync(path.join(dir, 'dist'))) if (d !== 'linux-x64') fs.rmSync(path.join(dir, 'dist', d), { recursive: true }); },
  // The compiled addon, not the SQLite sources.
  'better-sqlite3': (dir) => { fs.rmSync(path.join(dir, 'deps'), { recursive: true, force: true }); fs.rmSync(path.join(dir, 'src'), { recursive: true, force: true }); },
  // tfjs-wasm's JavaScript is bundled; its .wasm binaries (and the threaded build's worker) are loaded from here.
  '@tensorflow/tfjs-backend-wasm': (dir) => { for (const f of fs.readdirSync(path.join(dir, 'dist'))) if (!/\.wasm$|worker/.test(f)) fs.rmSync(path.join(dir, 'dist', f), { recursive: true }); },
};
const seen = new Set();
const queue = [...roots];
while (queue.length) {
  const name = queue.shift();
  if (seen.has(name)) continue;
  seen.add(name);
  const src = path.join('node_modules', name);
  const pkg = JSON.parse(fs.readFileSync(path.join(src, 'package.json'), 'utf8'));
  fs.cpSync(src, path.join(dest, name), { recursive: true, dereference: true });
  trim[name]?.(path.join(dest, name));
  // Runtime dependencies only (tfjs-wasm's own tfjs deps are bundled into out/).
  if (!name.startsWith('@tensorflow/')) queue.push(...Object.keys(pkg.dependencies ?? {}).filter((d) => d !== '@webgpu/types'));
}
console.log(`node_modules: ${[...seen].join(', ')}`);
NODE
tar -C "$stage" -cJf "$out" mimir node.xz lib
echo "wrote $out ($(du -h "$out" | cut -f1)); on the GPU machine: tar -xJf $(basename "$out") && mimir/../run.sh, see scripts/gpu-box/run.sh"
