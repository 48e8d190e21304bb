#!/usr/bin/env bash
# Text decoder benchmark, edgevlm vs llama.cpp (node-llama-cpp 3.21.1), written to docs/BENCHMARKS.md.
# Usage: bench/run_text_bench.sh [BUILD_DIR] [extra flags for bench/run_text_bench.py, e.g. --rounds 3]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-build}"; shift || true
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
[ -x "$BUILD/edgevlm" ] || { echo "run_text_bench: no $BUILD/edgevlm (make build first)" >&2; exit 1; }
"$ROOT/bench/peer/install.sh"
exec "${PYTHON:-/usr/bin/python3}" "$ROOT/bench/run_text_bench.py" --edgevlm "$BUILD/edgevlm" "$@"
