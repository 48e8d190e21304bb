#!/usr/bin/env bash
# `make demo`: answer a question about an example image with the shipped nano model.
# Until a trained model is committed under models/, it falls back to text generation on a small
# random-weight model generated into the build folder (the output is then meaningless text).
set -euo pipefail
BUILD=${1:-build}
BIN="$BUILD/edgevlm"
MODEL=models/edgevlm-nano.gguf
MMPROJ=models/edgevlm-nano-mmproj.gguf

if [ -f "$MODEL" ] && [ -f "$MMPROJ" ] && "$BIN" --help 2>&1 | grep -q "^ *run"; then
  # image | question | the answer the test split holds (examples/README.md)
  # the model scores 90.3% on the test split (models/README.md), so an answer may be wrong
  for case in "examples/banner.png|What does the banner say?|CAFE 74" \
              "examples/receipt.png|What is the total?|2.00" \
              "examples/chart.png|Which bar is the tallest?|green" \
              "examples/shapes.png|How many shapes are there?|3"; do
    IFS='|' read -r img q want <<<"$case"
    [ -f "$img" ] || continue
    echo "image:    $img"
    echo "question: $q"
    printf "answer:   "
    "$BIN" run -m "$MODEL" --mmproj "$MMPROJ" --image "$img" -p "$q" -n 32
    echo "expected: $want"
    echo
  done
  exit 0
fi

echo "(no trained model under models/ yet: running text generation on a random-weight model)"
RANDOM_MODEL="$BUILD/demo-random-llama.gguf"
if [ ! -f "$RANDOM_MODEL" ]; then
  "$BIN" gen-model --out "$RANDOM_MODEL" --arch llama --embd 256 --layers 4 --heads 4 --kv-heads 2 \
    --ff 768 --ctx 512 --type q8_0 --seed 1 \
    --vocab-from ../shared/testdata/tokenizer/ggml-vocab-gpt-2.gguf
fi
"$BIN" generate -m "$RANDOM_MODEL" -p "Once upon a time" -n 24 --raw --temp 0.8 --seed 42
