#!/usr/bin/env bash
# The phone path on every change: cross-compiles the library, the command line and the kernel tests for aarch64
# (Debian's g++-aarch64-linux-gnu, cmake/aarch64-linux-gnu.cmake) and runs the tests under
# qemu-user twice, so both NEON variants run against the scalar reference. The kernel tests are one
# list in CMakeLists.txt (EDGEVLM_KERNEL_TEST_SOURCES: src/ops/*_test.cc — matmul, attention,
# CPU features, norms/RoPE — and formats/quant_test.cc).
#   -cpu max        has the Armv8.2 dot product (SDOT) and the Armv8.6 int8 matrix multiply (SMMLA):
#                   plain NEON, SDOT and SMMLA kernels are tested;
#   -cpu cortex-a53 has neither: the plain NEON kernels are what the dispatcher picks.
# EDGEVLM_EXPECT_* make the tests fail if feature detection disagrees with the emulated CPU.
# Usage: scripts/test_arm.sh [BUILD_DIR]   (default build-arm; JOBS=2)
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD="${1:-build-arm}"
JOBS="${JOBS:-2}"
SYSROOT=/usr/aarch64-linux-gnu

for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
  command -v "$tool" >/dev/null || { echo "test_arm: $tool missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

t0=$(date +%s)
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD" -j"$JOBS" --target edgevlm_kernel_tests edgevlm edgevlm_shared
t1=$(date +%s)
echo "test_arm: cross build $((t1 - t0)) s"

# Both emulated CPUs at once (qemu-user is one process each; the machine has 2 cores).
LOGS="$BUILD/test_arm_logs"
mkdir -p "$LOGS"
run() {  # cpu expect_dotprod_and_i8mm
  EDGEVLM_EXPECT_NEON=1 EDGEVLM_EXPECT_DOTPROD="$2" EDGEVLM_EXPECT_I8MM="$2" \
    qemu-aarch64 -L "$SYSROOT" -cpu "$1" "$BUILD/edgevlm_kernel_tests" --gtest_brief=1 >"$LOGS/$1.log" 2>&1
}
run max 1 & pid_max=$!
run cortex-a53 0 & pid_a53=$!
status=0
for cpu in max cortex-a53; do
  pid=$pid_max; [ "$cpu" = max ] || pid=$pid_a53
  if wait "$pid"; then
    echo "test_arm: -cpu $cpu: $(grep -E '^\[  PASSED  \]' "$LOGS/$cpu.log"), $(grep -E '^\[  SKIPPED \]' "$LOGS/$cpu.log" | head -1 || true)"
  else
    status=1
    echo "test_arm: -cpu $cpu FAILED:"
    cat "$LOGS/$cpu.log"
  fi
done
# The aarch64 command line end to end on the shipped model (emulated, so only a short answer).
answer=$(qemu-aarch64 -L "$SYSROOT" -cpu max "$BUILD/edgevlm" run -m models/edgevlm-nano.gguf \
  --mmproj models/edgevlm-nano-mmproj.gguf --image examples/banner.png -p "What does the banner say?" \
  -n 8 --temp 0 -t 2 -q 2>"$LOGS/cli.log") || { status=1; cat "$LOGS/cli.log"; }
if [ "$answer" = "CAFE 74" ]; then
  echo "test_arm: edgevlm run under qemu: $answer"
else
  status=1
  echo "test_arm: edgevlm run under qemu answered '$answer', expected CAFE 74"
fi
[ "$status" -eq 0 ] || exit 1
echo "test_arm: all passed, $(($(date +%s) - t0)) s in all (tests $(($(date +%s) - t1)) s)"
