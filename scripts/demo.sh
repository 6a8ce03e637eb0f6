#!/usr/bin/env bash
# The README demo, offline: tokenize the embedded Shakespeare corpus, pretrain a small
# character-level GPT on it, show the run with the inspection commands, and sample from it.
set -euo pipefail
OUT=${OUT:-out}
VENV=${VENV:-.venv}
STEPS=${STEPS:-300}
T="$VENV/bin/theseus"
mkdir -p "$OUT"

echo "== 1. tokenize the embedded Shakespeare texts (byte tokenizer)"
"$T" configure data/tokenize_variable_dataset "$OUT/tokenize.yaml" data.dataset=shakespeare
"$T" run tokenize-shakespeare "$OUT/tokenize.yaml" "$OUT"

echo "== 2. pretrain a small GPT on it (its vocabulary follows the data: 259 byte ids -> 320)"
"$T" configure gpt/train/pretrain "$OUT/gpt.yaml" \
  architecture.n_layers=4 architecture.n_embd=128 architecture.n_head=4 architecture.block_size=128 \
  training.batch_size=32 "training.steps=$STEPS" training.log_every=25 training.val_every=50 \
  optimization.lr=2e-3 optimization.warmup_steps=20 checkpoint.every_steps=100
"$T" run shakespeare-gpt "$OUT/gpt.yaml" "$OUT"

echo "== 3. inspect"
"$T" ls "$OUT"
"$T" checkpoints shakespeare-gpt "$OUT"

echo "== 4. sample from it"
"$T" generate shakespeare-gpt "$OUT" --prompt "ROMEO:" --max-new-tokens 100
