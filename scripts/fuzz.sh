#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan, coverage) in BUILD_DIR and runs
# each for SECONDS on a copy of its seed corpus (fuzz/corpus/NAME) plus its named regression inputs
# (fuzz/regressions/NAME). Prints a table: target, executions, seconds, result. A crash, a leak, a
# timeout or a memory-limit breach fails the run and leaves the input in BUILD_DIR/findings/.
#   scripts/fuzz.sh [SECONDS] [BUILD_DIR] [libfuzzer|replay]
# FUZZ_TARGETS="gguf llm:600 tokenizer:300:4096" limits the run to those targets; NAME:SECS overrides
# SECONDS for one, NAME:SECS:BYTES also libFuzzer's -max_len (default: 65536, or the largest seed).
# make fuzz: libFuzzer, 300 s each. make test: `replay` in the gcc ASan build (build-asan), where
# fuzz/replay_main.cc runs the corpus and random mutations of it for a few seconds per target.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-300}"
BUILD="${2:-build-fuzz}"
MODE="${3:-libfuzzer}"
JOBS="${JOBS:-2}"
if [ "$MODE" = libfuzzer ]; then
  command -v clang++ >/dev/null || { echo "fuzz: clang++ missing (scripts/install-deps.sh installs clang)" >&2; exit 1; }
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      -DEDGEVLM_FUZZ=ON >/dev/null
  fi
elif [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DEDGEVLM_SANITIZE=ON >/dev/null
fi
TARGETS=()
declare -A SECS_OF=() MAXLEN_OF=()
if [ -n "${FUZZ_TARGETS:-}" ]; then
  for spec in $FUZZ_TARGETS; do
    name=${spec%%:*}
    [ -f "fuzz/fuzz_$name.cc" ] || { echo "fuzz: no target fuzz/fuzz_$name.cc" >&2; exit 1; }
    TARGETS+=("fuzz_$name")
    rest=${spec#"$name"}
    rest=${rest#:}
    [ -n "$rest" ] && SECS_OF[$name]=${rest%%:*}
    [[ "$rest" == *:* ]] && MAXLEN_OF[$name]=${rest#*:}
  done
else
  for f in fuzz/fuzz_*.cc; do TARGETS+=("$(basename "$f" .cc)"); done
fi
cmake --build "$BUILD" -j"$JOBS" --target "${TARGETS[@]}"

mkdir -p "$BUILD/findings"
status=0
TABLE="${FUZZ_TABLE:-$BUILD/fuzz-table.md}"
printf "| target | executions | seconds | result |\n|---|---|---|---|\n" >"$TABLE"
for t in "${TARGETS[@]}"; do
  name=${t#fuzz_}
  secs=${SECS_OF[$name]:-$SECONDS_EACH}
  # Inputs may grow to the largest seed (the mmproj seed is above 64 KiB) unless set per target.
  largest=$(find fuzz/corpus/"$name" -type f -printf '%s\n' 2>/dev/null | sort -n | tail -1)
  maxlen=${MAXLEN_OF[$name]:-$(( ${largest:-0} > 65536 ? ${largest:-0} : 65536 ))}
  corpus="$BUILD/corpus/$name"
  mkdir -p "$corpus"
  cp -n fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null || true
  # Named regression inputs first: each must run clean.
  if compgen -G "fuzz/regressions/$name/*" >/dev/null; then
    if ! "$BUILD/$t" $([ "$MODE" = libfuzzer ] && echo "-rss_limit_mb=2048 -timeout=30") fuzz/regressions/"$name"/* \
         >"$BUILD/findings/$t-regressions.log" 2>&1; then
      echo "fuzz: $t fails a regression input:" >&2
      tail -30 "$BUILD/findings/$t-regressions.log" >&2
      status=1
      continue
    fi
  fi
  dict=()
  [ -f "fuzz/$name.dict" ] && dict=(-dict="fuzz/$name.dict")
  log="$BUILD/findings/$t.log"
  if [ "$MODE" = libfuzzer ]; then
    cmd=("$BUILD/$t" "$corpus" "${dict[@]}" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=30
         -max_len="$maxlen" -print_final_stats=1 -artifact_prefix="$BUILD/findings/$t-")
  else
    cmd=("$BUILD/$t" "$corpus" --seconds="$secs" --seed=1)
  fi
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 timeout $((secs * 4 + 120)) "${cmd[@]}" >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
    tail -40 "$log" >&2
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  printf "| %s | %s | %s | %s |\n" "$t" "$runs" "$secs" "$result" | tee -a "$TABLE"
done
[ "$status" -eq 0 ] && echo "fuzz: all targets clean" || echo "fuzz: FAILED (inputs in $BUILD/findings/)"
exit "$status"
