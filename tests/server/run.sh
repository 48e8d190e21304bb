#!/usr/bin/env bash
# edgevlm serve's end-to-end tests: the official openai npm client, the chat page in headless
# Chromium (puppeteer-core), and two instances behind nginx. Installs the npm packages of
# tests/server/package-lock.json once. Usage: tests/server/run.sh BUILD_DIR
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${1:-build}"
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
[ -x "$BUILD/edgevlm" ] || { echo "test-server: no $BUILD/edgevlm (make build first)" >&2; exit 1; }
for tool in node npm chromium nginx; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
    echo "test-server: $tool missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
cd "$ROOT/tests/server"
if [ ! -f node_modules/openai/package.json ] || [ ! -f node_modules/puppeteer-core/package.json ]; then
  echo "test-server: installing openai and puppeteer-core (npm ci)" >&2
  PUPPETEER_SKIP_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund >/dev/null
fi
export EDGEVLM="$BUILD/edgevlm" ARTIFACTS="$BUILD/server-test"
exec node --test --test-concurrency=1 --test-reporter=spec ./*.test.mjs
