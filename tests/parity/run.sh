#!/usr/bin/env bash
# Parity of edgevlm's text decoder against llama.cpp (node-llama-cpp 3.21.1) and a numpy F32
# reference; see tests/parity/README.md. Usage: tests/parity/run.sh BUILD_DIR [--only NAME,...]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${1:-build}"
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
EXE="$BUILD/edgevlm"
PYTHON="${PYTHON:-/usr/bin/python3}"
VOCAB="${EDGEVLM_SHARED_DIR:-$ROOT/../shared}/testdata/tokenizer/ggml-vocab-gpt-2.gguf"
VOCAB_PHI3="${EDGEVLM_SHARED_DIR:-$ROOT/../shared}/testdata/tokenizer/ggml-vocab-phi-3.gguf"

die() { echo "parity: $*" >&2; exit 1; }
[ -x "$EXE" ] || die "no edgevlm executable at $EXE (build first: make build)"
for v in "$VOCAB" "$VOCAB_PHI3"; do
  [ -f "$v" ] || die "missing tokenizer vocab $v (the random models copy its tokenizer)"
done
command -v node >/dev/null || die "node is not installed (scripts/install-deps.sh installs nodejs)"

# llama.cpp: node-llama-cpp's prebuilt CPU binaries, installed once by bench/peer/install.sh.
"$ROOT/bench/peer/install.sh" || die "could not install the llama.cpp peer"

WORK="$BUILD/parity"
mkdir -p "$WORK"
exec "$PYTHON" "$ROOT/tests/parity/parity.py" --edgevlm "$EXE" --workdir "$WORK" --vocab "$VOCAB" \
    --vocab-phi3 "$VOCAB_PHI3" --threads 2 "${@:2}"
