#!/usr/bin/env bash
# Installs the peer, llama.cpp as node-llama-cpp 3.21.1's prebuilt linux-x64 CPU binaries (~80 MB,
# npm registry), into bench/peer/node_modules unless it is there. Nothing is compiled or downloaded
# at run time. Used by the parity test and every benchmark that runs llama.cpp.
set -euo pipefail
PEER="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -f "$PEER/node_modules/@node-llama-cpp/linux-x64/package.json" ] && \
   [ -f "$PEER/node_modules/node-llama-cpp/package.json" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "bench/peer/install.sh: npm is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }
echo "installing node-llama-cpp 3.21.1 into bench/peer/node_modules (npm ci)" >&2
(cd "$PEER" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --omit=optional --ignore-scripts --prefer-offline \
    --no-audit --no-fund >/dev/null) || { echo "bench/peer/install.sh: npm ci failed (is the npm registry reachable?)" >&2; exit 1; }
