#!/usr/bin/env bash
# Parity of edgevlm's vision families against llama.cpp's mtmd (@fugood/llama.node 1.7.15's prebuilt
# CPU binary); see tests/vlm_family_parity/README.md. Usage: tests/vlm_family_parity/run.sh BUILD_DIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${1:-build}"
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
EXE="$BUILD/edgevlm"
PYTHON="${PYTHON:-/usr/bin/python3}"
VOCAB="${EDGEVLM_SHARED_DIR:-$ROOT/../shared}/testdata/tokenizer/ggml-vocab-gpt-2.gguf"

die() { echo "vlm_family_parity: $*" >&2; exit 1; }
[ -x "$EXE" ] || die "no edgevlm executable at $EXE (build first: make build)"
[ -f "$VOCAB" ] || die "missing tokenizer vocab $VOCAB (the random decoders copy its tokenizer)"
command -v node >/dev/null || die "node is not installed (scripts/install-deps.sh installs nodejs)"
"$ROOT/bench/peer-mtmd/install.sh" || die "could not install the mtmd peer"

WORK="$BUILD/vlm_family_parity"
mkdir -p "$WORK"
exec "$PYTHON" "$ROOT/tests/vlm_family_parity/parity.py" --edgevlm "$EXE" --workdir "$WORK" --vocab "$VOCAB" \
    --threads 2 "${@:2}"
