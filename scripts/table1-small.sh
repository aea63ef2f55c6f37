#!/usr/bin/env bash
# Table I of the paper, in small: MIMIR pre-training + PGD-AT against natural fine-tuning and against
# PGD-AT from scratch, on the built-in dataset with the micro model, evaluated by `mimir eval`.
# Usage: bash scripts/table1-small.sh [OUT_DIR]   (a few minutes on a 2-core CPU)
set -euo pipefail
out=${1:-/tmp/mimir-table1-small}
rm -rf "$out" && mkdir -p "$out"
data=(--dataset builtin --image-size 16 --dataset-size 1000 --batch 32)
mimir() { npx --no-install mimir "$@"; }
# Short runs: one warm-up epoch instead of the paper's 40 / 10, and learning rates for batch 32.
echo '{"checkpointEvery": 4, "optimizer": {"warmupEpochs": 1, "baseLr": 0.002}}' > "$out/pretrain.json"
echo '{"checkpointEvery": 4, "optimizer": {"warmupEpochs": 1, "baseLr": 0.02, "layerDecay": 0.75}}' > "$out/finetune.json"

mimir pretrain "${data[@]}" --model micro --mode mimir --epochs 8 --config "$out/pretrain.json" --out "$out/pretrain-mimir" --json > "$out/pretrain.log"
mimir finetune "${data[@]}" --from "$out/pretrain-mimir" --method natural --epochs 8 --config "$out/finetune.json" --out "$out/mimir-natural" --json > "$out/ft-natural.log"
mimir finetune "${data[@]}" --from "$out/pretrain-mimir" --method pgd-at --epochs 8 --config "$out/finetune.json" --out "$out/mimir-pgd-at" --json > "$out/ft-pgd-at.log"
mimir finetune "${data[@]}" --scratch --model micro --method pgd-at --epochs 8 --config "$out/finetune.json" --out "$out/scratch-pgd-at" --json > "$out/ft-scratch.log"

for run in mimir-natural mimir-pgd-at scratch-pgd-at; do
  echo "== $run"
  mimir eval --model "$out/$run" --attacks natural,pgd20 --n 256 --eps 8 --out "$out/eval-$run"
done
