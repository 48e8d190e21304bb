#!/usr/bin/env bash
# Installs every Debian package the build, the tests, the demo and the training recipe need.
# Idempotent: does nothing when everything is present. Run as root (or with sudo available).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  libstb-dev nlohmann-json3-dev libcli11-dev libedit-dev libcpp-httplib-dev
  clang libclang-rt-14-dev
  nodejs chromium nginx
  python3 python3-numpy python3-pil python3-pytest python3-torch python3-matplotlib python3-regex
  libopenblas0-pthread
  fonts-dejavu-core fonts-noto-cjk fonts-liberation2 fonts-freefont-ttf fonts-urw-base35
  g++-aarch64-linux-gnu qemu-user
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from Debian (then npm is a separate package) or from NodeSource (npm bundled).
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
