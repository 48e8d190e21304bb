#!/usr/bin/env bash
# Builds the native llama.cpp peer: llama.cpp's C/C++ sources as the npm package llama.rn 0.12.9 ships
# them (cpp/, symbols prefixed lm_), compiled on this machine with g++ -O3 -march=native, OpenMP and
# ggml's repacked layouts: upstream llama.cpp's default CPU build for this CPU, AMX included where the
# CPU has it (its AMX code needs -fno-tree-dse with GCC 12). Nothing is committed as a binary.
#   bench/peer-native/build.sh [BUILD_DIR]      (default build/peer-native)
#   PEER_AMX=OFF bench/peer-native/build.sh build/peer-native-noamx   (the same without its AMX path: on a
#   CPU with AMX, the benchmarks run both and keep the faster per figure)
# Produces BUILD_DIR/peer_bench and BUILD_DIR/peer_mtmd_bench. About 10 minutes on 2 cores.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BUILD="${1:-$ROOT/build/peer-native}"
SRC="$HERE/node_modules/llama.rn/cpp"
if [ ! -f "$SRC/llama.h" ]; then
  command -v npm >/dev/null || { echo "peer-native: npm is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }
  echo "peer-native: installing llama.rn 0.12.9's sources into bench/peer-native/node_modules (npm ci)" >&2
  # --legacy-peer-deps: its peers (react, react-native) are for the phone app, not for these sources.
  (cd "$HERE" && npm ci --ignore-scripts --legacy-peer-deps --prefer-offline --no-audit --no-fund >/dev/null) ||
    { echo "peer-native: npm ci failed (is the npm registry reachable?)" >&2; exit 1; }
fi
VERSION="$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$HERE/node_modules/llama.rn/package.json" | head -1)"
cmake -S "$HERE" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLLAMA_RN_CPP="$SRC" -DLLAMA_RN_VERSION="$VERSION" \
  -DPEER_AMX="${PEER_AMX:-ON}" >/dev/null
cmake --build "$BUILD" -j"${JOBS:-$(nproc)}" --target peer_bench peer_mtmd_bench
echo "peer-native: $BUILD/peer_bench and $BUILD/peer_mtmd_bench"
