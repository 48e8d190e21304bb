#!/usr/bin/env bash
# The library as an app developer gets it: `cmake --install` into a prefix under the build folder,
# then the C example (examples/c) built outside the tree against the installed package — with CMake
# (find_package(edgevlm), shared and static) and with pkg-config (shared and static) — and run on the
# shipped nano model, which must read the banner. Also checks that the shared library exports the C
# API only, and that the project configures as a subdirectory of another CMake project with its
# tests and tools off. Usage: scripts/test_install.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$(cd "${1:-build}" && pwd)
PREFIX="$BUILD/install"
WORK="$BUILD/consumers"
rm -rf "$PREFIX" "$WORK"
mkdir -p "$WORK"

cmake --install "$BUILD" --prefix "$PREFIX" >/dev/null
for f in include/edgevlm.h lib/libedgevlm.a lib/cmake/edgevlm/edgevlmConfig.cmake lib/pkgconfig/edgevlm.pc bin/edgevlm; do
  [ -e "$PREFIX/$f" ] || { echo "test_install: $f was not installed" >&2; exit 1; }
done
ls "$PREFIX"/lib/libedgevlm.so.* >/dev/null

exported=$(nm -D --defined-only "$PREFIX/lib/libedgevlm.so" | awk '{print $3}' | grep -v '^edgevlm_' || true)
if [ -n "$exported" ]; then
  echo "test_install: the shared library exports more than the C API:" >&2
  echo "$exported" | head >&2
  exit 1
fi

MODEL=models/edgevlm-nano.gguf
MMPROJ=models/edgevlm-nano-mmproj.gguf
check() {  # name binary
  local out
  out=$("$2" "$ROOT/$MODEL" "$ROOT/$MMPROJ" "$ROOT/examples/banner.png" "What does the banner say?" 2>"$WORK/$1.err")
  if [[ "$out" != *"CAFE 74"* ]]; then
    echo "test_install: $1 answered '$out', expected CAFE 74" >&2
    cat "$WORK/$1.err" >&2
    exit 1
  fi
  echo "test_install: $1: $out"
}

for kind in shared static; do
  static=OFF; [ $kind = static ] && static=ON
  cmake -S examples/c -B "$WORK/cmake-$kind" -DCMAKE_PREFIX_PATH="$PREFIX" -DEDGEVLM_EXAMPLE_STATIC=$static \
    -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$WORK/cmake-$kind" >/dev/null
  check "cmake-$kind" "$WORK/cmake-$kind/ask"
done
if ldd "$WORK/cmake-static/ask" | grep -q libedgevlm; then
  echo "test_install: the static build links libedgevlm.so" >&2; exit 1
fi

export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
# shellcheck disable=SC2046
cc -O2 -o "$WORK/pc-shared" examples/c/ask.c $(pkg-config --cflags --libs edgevlm) -Wl,-rpath,"$PREFIX/lib"
check pkgconfig-shared "$WORK/pc-shared"
# shellcheck disable=SC2046
cc -O2 -o "$WORK/pc-static" examples/c/ask.c $(pkg-config --cflags edgevlm) -Wl,-Bstatic -ledgevlm -Wl,-Bdynamic \
  $(pkg-config --static --libs-only-L edgevlm) $(pkg-config --static --libs edgevlm | sed 's/-ledgevlm//')
check pkgconfig-static "$WORK/pc-static"

# As a subdirectory: configures without GoogleTest or the tools, and offers edgevlm::edgevlm.
mkdir -p "$WORK/parent"
cat >"$WORK/parent/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.25)
project(parent C CXX)
add_subdirectory("$ROOT" edgevlm)
add_executable(ask "$ROOT/examples/c/ask.c")
target_link_libraries(ask PRIVATE edgevlm::edgevlm)
foreach(t edgevlm_tests edgevlm)
  if(TARGET \${t})
    message(FATAL_ERROR "\${t} is built as a subdirectory")
  endif()
endforeach()
CMAKE
cmake -S "$WORK/parent" -B "$WORK/parent/build" >/dev/null
echo "test_install: all passed (prefix $PREFIX)"
