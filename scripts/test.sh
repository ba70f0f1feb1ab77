#!/usr/bin/env bash
# Check the layering first (scripts/check-layers.sh: OS calls only in the platform layer and the
# service glue, includes only down the layers); a violation fails the run before any build.
# After the dependencies, check that .clang-format is applied to every C/C++ file of the
# project (clang-format --dry-run -Werror; Debian 12's clang-format 14 is the reference): a
# file that is not fails the run before any build, naming it (fix: clang-format -i FILE).
# Then install what is needed, build and test membroker three times: native, native with
# AddressSanitizer + UndefinedBehaviorSanitizer, and the Windows build (mingw-w64) run under
# Wine; and fuzz the control protocol and the GMAP validator (clang + libFuzzer) for a bounded
# time. Prints one summary; exits non-zero if any build, test or fuzz run failed.
#
#   scripts/test.sh                 everything
#   MB_CONFIGS="native asan" scripts/test.sh   a subset (native, asan, fuzz, mingw)
#   MB_SKIP_DEPS=1 scripts/test.sh  do not run scripts/deps.sh first
#   MB_FUZZ_SECONDS=600 MB_CONFIGS=fuzz scripts/test.sh   fuzz fuzz-ctl longer (default 60 s;
#                                   MB_FUZZ_GMAP_SECONDS: fuzz-gmap, default 30 s)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build"
configs=${MB_CONFIGS:-native asan fuzz mingw}
jobs=$(nproc 2>/dev/null || echo 2)
start=$(date +%s)

echo "=== layering: scripts/check-layers.sh"
if ! bash "$root/scripts/check-layers.sh" "$root"; then
  echo "test.sh: the layering check failed (README, \"Layering\"): fix the lines above first" >&2
  exit 1
fi

if [ -z "${MB_SKIP_DEPS:-}" ]; then
  deps_args=()
  case " $configs " in *" mingw "*) ;; *) deps_args=(--native-only) ;; esac
  bash "$root/scripts/deps.sh" "${deps_args[@]}" || { echo "test.sh: scripts/deps.sh failed" >&2; exit 1; }
fi

# The formatting check: every .c, .h and .cpp under common/, service/, client/ and tests/.
echo "=== format: clang-format --dry-run -Werror"
if ! command -v clang-format >/dev/null 2>&1; then
  echo "test.sh: clang-format is not installed (scripts/deps.sh installs Debian's clang-format)" >&2
  exit 1
fi
mapfile -t format_files < <(cd "$root" && find common service client tests -type f \
  \( -name '*.c' -o -name '*.h' -o -name '*.cpp' \) | LC_ALL=C sort)
if ! (cd "$root" && clang-format --dry-run -Werror "${format_files[@]}" 2>&1 | head -n 40); then
  unformatted=$(cd "$root" && for f in "${format_files[@]}"; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || printf ' %s' "$f"
  done)
  echo "test.sh: not formatted as .clang-format says ($(clang-format --version | head -n 1)):" \
    "run clang-format -i on${unformatted}" >&2
  exit 1
fi
echo "format: ${#format_files[@]} files ok"

declare -A passed failed skipped status secs
total_pass=0
total_fail=0
total_skip=0
rc=0

# build_config NAME CMAKE_ARGS...: configure and build in build/NAME; a failure is recorded
# and returns 1.
build_config() {
  local name=$1 dir="$build/$1"
  shift
  mkdir -p "$dir"
  echo "=== $name: configure + build"
  if ! cmake -S "$root" -B "$dir" -G Ninja -DMB_WERROR=ON "$@" >"$dir/configure.log" 2>&1; then
    cat "$dir/configure.log"
    status[$name]="configure failed"; passed[$name]=0; failed[$name]=1; rc=1
    return 1
  fi
  if ! cmake --build "$dir" -j "$jobs" >"$dir/build.log" 2>&1; then
    tail -n 60 "$dir/build.log"
    status[$name]="build failed"; passed[$name]=0; failed[$name]=1; rc=1
    return 1
  fi
}

# run_config NAME CMAKE_ARGS...: configure, build, ctest; record the counts.
run_config() {
  local name=$1 dir="$build/$1" t0 log out p f s
  t0=$(date +%s)
  log="$dir/test.log"
  build_config "$@" || return
  echo "=== $name: ctest"
  (cd "$dir" && ctest -j "$jobs" --output-on-failure --timeout 300) >"$log" 2>&1
  local crc=$?
  grep -E '^ *[0-9]+/[0-9]+ Test' "$log" | grep -v ' Passed ' || true
  out=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
  if [ -z "$out" ]; then
    tail -n 40 "$log"
    status[$name]="ctest did not finish"; passed[$name]=0; failed[$name]=1; rc=1
    return
  fi
  f=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$out")
  # CTest counts a skipped test (exit code 77, SKIP_RETURN_CODE) among those that did not fail.
  s=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*\*\*\*Skipped' "$log")
  p=$(( $(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$out") - f - s ))
  passed[$name]=$p; failed[$name]=$f; skipped[$name]=$s
  if [ "$crc" -ne 0 ] || [ "$f" -ne 0 ]; then
    sed -n '/The following tests FAILED/,$p' "$log"
    grep -B2 -A30 -E '^not ok' "$log" | head -n 200
    status[$name]="FAILED"; rc=1
  else
    status[$name]="ok"
  fi
  secs[$name]=$(( $(date +%s) - t0 ))
}

# fuzz_target DIR TARGET SECONDS LIBFUZZER_ARGS...: run the libFuzzer target DIR/fuzz-TARGET
# for SECONDS on a copy of tests/corpus/TARGET in DIR (tests/ is never written); its output goes
# to DIR/fuzz-TARGET.log (fuzz-ctl: DIR/fuzz.log), a failing input to DIR/artifacts-TARGET/
# (fuzz-ctl: DIR/artifacts/). A crash, leak, timeout or broken promise of the target fails it:
# returns 1 after showing the report.
fuzz_target() {
  local dir=$1 target=$2 seconds=$3 log corpus artifacts frc
  shift 3
  if [ "$target" = ctl ]; then
    log="$dir/fuzz.log" corpus="$dir/corpus" artifacts="$dir/artifacts"
  else
    log="$dir/fuzz-$target.log" corpus="$dir/corpus-$target" artifacts="$dir/artifacts-$target"
  fi
  echo "=== $(basename "$dir"): fuzz-$target for $seconds s"
  rm -rf "$corpus" "$artifacts"
  mkdir -p "$corpus" "$artifacts"
  cp "$root"/tests/corpus/"$target"/* "$corpus/"
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$dir/fuzz-$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$artifacts/" -print_final_stats=1 "$@" "$corpus" >"$log" 2>&1
  frc=$?
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE) |^stat::(average_exec_per_sec|peak_rss_mb)' "$log" || true
  if [ "$frc" -ne 0 ]; then
    # The report (a sanitizer's, libFuzzer's or the target's own), then the failing input.
    grep -m1 -A40 -E "ERROR: |runtime error: |^fuzz-$target: broken promise" "$log" && echo ...
    tail -n 12 "$log"
    echo "fuzz-$target exited with $frc; the failing input is in $artifacts/ (replay it with"
    echo "ASAN_OPTIONS=fast_unwind_on_malloc=0 $dir/fuzz-$target FILE for full allocation stacks)"
    return 1
  fi
}

# run_fuzz NAME CMAKE_ARGS...: configure, build, then run the libFuzzer targets one after the
# other: fuzz-ctl (the control protocol) for MB_FUZZ_SECONDS (default 60), then fuzz-gmap (the
# GMAP validator) for MB_FUZZ_GMAP_SECONDS (default 30). Each target counts as one test.
run_fuzz() {
  local name=$1 dir="$build/$1" t0 p=0 f=0
  t0=$(date +%s)
  build_config "$@" || return
  rm -rf "$dir/runtime"
  mkdir -p "$dir/runtime"
  # fuzz-ctl starts a broker: its lock file goes to the build folder.
  if MEMBROKER_RUNTIME_DIR="$dir/runtime" fuzz_target "$dir" ctl "${MB_FUZZ_SECONDS:-60}" \
       -dict="$root/tests/corpus/ctl.dict"; then
    p=$((p + 1))
  else
    f=$((f + 1))
  fi
  # A crash skips the target's atexit: remove the shared memory its broker left behind.
  sed -n "s/^fuzz-ctl: broker instance '\([A-Za-z0-9_-]*\)' started$/\1/p" "$dir/fuzz.log" |
    while read -r inst; do rm -f /dev/shm/membroker."$inst".*; done
  if fuzz_target "$dir" gmap "${MB_FUZZ_GMAP_SECONDS:-30}"; then
    p=$((p + 1))
  else
    f=$((f + 1))
  fi
  passed[$name]=$p; failed[$name]=$f
  if [ "$f" -ne 0 ]; then
    status[$name]="FAILED"; rc=1
  else
    status[$name]="ok"
  fi
  secs[$name]=$(( $(date +%s) - t0 ))
}

for c in $configs; do
  case $c in
    native) run_config native -DCMAKE_BUILD_TYPE=RelWithDebInfo ;;
    asan)
      ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
      UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        run_config asan -DCMAKE_BUILD_TYPE=Debug -DMB_SANITIZE=ON ;;
    fuzz) run_fuzz fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMB_FUZZ=ON \
            -DMB_TESTS=OFF ;;
    mingw)
      run_config mingw -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_TOOLCHAIN_FILE="$root/scripts/toolchain-mingw64.cmake"
      # Whatever a failed test left running in the suite's Wine prefix ends here.
      "$root/scripts/wine-run.sh" --kill "$build/mingw/wineprefix" || true ;;
    *) echo "test.sh: unknown configuration '$c' (native, asan, fuzz, mingw)" >&2; exit 2 ;;
  esac
done

echo
echo "configuration   passed  failed  skipped  seconds  result"
for c in $configs; do
  printf '%-15s %6s  %6s  %7s  %7s  %s\n' "$c" "${passed[$c]:-0}" "${failed[$c]:-0}" \
    "${skipped[$c]:-0}" "${secs[$c]:--}" "${status[$c]:-?}"
  total_pass=$(( total_pass + ${passed[$c]:-0} ))
  total_fail=$(( total_fail + ${failed[$c]:-0} ))
  total_skip=$(( total_skip + ${skipped[$c]:-0} ))
done
echo "total time: $(( $(date +%s) - start )) s"
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
exit $rc
