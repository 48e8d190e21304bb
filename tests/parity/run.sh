#!/usr/bin/env bash
# Parity of edgevlm's text decoder against llama.cpp (node-llama-cpp 3.21.1) and a numpy F32
# reference; see tests/parity/README.md. Usage: tests/parity/run.sh BUILD_DIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${1:-build}"
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
EXE="$BUILD/edgevlm"
PYTHON="${PYTHON:-/usr/bin/python3}"
VOCAB="${EDGEVLM_SHARED_DIR:-$ROOT/../shared}/testdata/tokenizer/ggml-vocab-gpt-2.gguf"

die() { echo "parity: $*" >&2; exit 1; }
[ -x "$EXE" ] || die "no edgevlm executable at $EXE (build first: make build)"
[ -f "$VOCAB" ] || die "missing tokenizer vocab $VOCAB (the random models copy its tokenizer)"
command -v node >/dev/null || die "node is not installed (scripts/install-deps.sh installs nodejs)"

# llama.cpp comes as node-llama-cpp's prebuilt linux-x64 binaries from the npm registry (only the
# CPU package, ~80 MB); nothing is compiled or downloaded at run time.
PEER="$ROOT/bench/peer"
if [ ! -f "$PEER/node_modules/@node-llama-cpp/linux-x64/package.json" ] || \
   [ ! -f "$PEER/node_modules/node-llama-cpp/package.json" ]; then
  echo "parity: installing node-llama-cpp 3.21.1 into bench/peer/node_modules (npm ci)"
  (cd "$PEER" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --omit=optional --ignore-scripts --prefer-offline \
      --no-audit --no-fund >/dev/null) || die "npm ci in bench/peer failed (is the npm registry reachable?)"
fi

WORK="$BUILD/parity"
mkdir -p "$WORK"
exec "$PYTHON" "$ROOT/tests/parity/parity.py" --edgevlm "$EXE" --workdir "$WORK" --vocab "$VOCAB" --threads 2
