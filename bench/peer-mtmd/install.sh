#!/usr/bin/env bash
# Installs the mtmd peer, llama.cpp's multimodal library as @fugood/llama.node 1.7.15's prebuilt
# linux-x64 CPU binary (~22 MB, npm registry), into bench/peer-mtmd/node_modules unless it is there.
# Nothing is compiled or downloaded at run time. Used by tests/vlm_family_parity.
set -euo pipefail
PEER="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -f "$PEER/node_modules/@fugood/node-llama-linux-x64/index.node" ] && \
   [ -f "$PEER/node_modules/@fugood/llama.node/package.json" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "bench/peer-mtmd/install.sh: npm is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }
echo "installing @fugood/llama.node 1.7.15 into bench/peer-mtmd/node_modules (npm ci)" >&2
(cd "$PEER" && npm ci --omit=optional --ignore-scripts --prefer-offline --no-audit --no-fund >/dev/null) || \
  { echo "bench/peer-mtmd/install.sh: npm ci failed (is the npm registry reachable?)" >&2; exit 1; }
