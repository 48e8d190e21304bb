#!/usr/bin/env bash
# Issue 6's runtime measurements (docs/RUNTIME.md): ViT tile-batch sweep with and without the
# pipeline, chunked-prefill sweep and the paper's table (Markdown + PNG, also --low-memory), for the
# nano model and the bluelm-v-3b shape. Run on a quiet machine; everything goes to OUT_DIR.
# Usage: bench/run_runtime_bench.sh [BUILD_DIR] [OUT_DIR]    env: THREADS (2), ROUNDS (3),
#        BLUELM_DIR (/tmp/edgevlm-bluelm, generated when missing), SKIP_BLUELM=1 for nano only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-build}"; [[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
OUT="${2:-/tmp/edgevlm-runtime-bench}"
EV="$BUILD/edgevlm"
[ -x "$EV" ] || { echo "run_runtime_bench: no $EV (build first)" >&2; exit 1; }
T="${THREADS:-2}"; R="${ROUNDS:-3}"; B="${BLUELM_DIR:-/tmp/edgevlm-bluelm}"
mkdir -p "$OUT"
NANO="$ROOT/models/edgevlm-nano.gguf"; NANO_MM="$ROOT/models/edgevlm-nano-mmproj.gguf"
PAIRS=(--pair "nano=$NANO,$NANO_MM")
run() { echo "+ $*" >&2; "$@"; }

run "$EV" bench --vit-sweep --mmproj "$NANO_MM" -t "$T" -r 5 | tee "$OUT/vit_sweep_nano.md"
run "$EV" bench --prefill-sweep -m "$NANO" -t "$T" -r 5 | tee "$OUT/prefill_sweep_nano.md"
if [ "${SKIP_BLUELM:-0}" != 1 ]; then
  [ -f "$B/bluelm-v-3b-q4_0.gguf" ] && [ -f "$B/bluelm-v-3b-mmproj-q8_0.gguf" ] || run "$EV" gen-bluelm --out-dir "$B"
  PAIRS+=(--pair "bluelm-v-3b=$B/bluelm-v-3b-q4_0.gguf,$B/bluelm-v-3b-mmproj-q8_0.gguf")
  run "$EV" bench --prefill-sweep -m "$B/bluelm-v-3b-q4_0.gguf" -t "$T" -r 1 | tee "$OUT/prefill_sweep_bluelm.md"
  run "$EV" bench --vit-sweep --mmproj "$B/bluelm-v-3b-mmproj-q8_0.gguf" -t "$T" -r 1 | tee "$OUT/vit_sweep_bluelm.md"
fi
run "$EV" bench --paper-table -t "$T" -n 32 --rounds "$R" "${PAIRS[@]}" --md "$OUT/paper_table.md" \
  --png "$OUT/paper_table.png"
run "$EV" bench --paper-table -t "$T" -n 32 --rounds "$R" "${PAIRS[@]}" --low-memory \
  --md "$OUT/paper_table_low_memory.md" --png "$OUT/paper_table_low_memory.png"
echo "run_runtime_bench: results in $OUT" >&2
