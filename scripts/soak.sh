#!/usr/bin/env bash
# Soak: the kill storm of tests/test-killstorm.c, long. A broker runs inside the test process;
# game servers (two threads each allocating and freeing a shared pool through thread caches)
# are SIGKILLed at random instants, each reaped by the broker or taken over by a restart of
# the same name. Afterwards every block must be free, the whole capacity taken again, and
# allocated - freed equal to what is held. Prints the figures; exits non-zero on a failure.
#
#   scripts/soak.sh                          10,000 kills, native build
#   MB_SOAK_KILLS=100000 scripts/soak.sh     more
#   MB_SOAK_BUILD=asan scripts/soak.sh       under AddressSanitizer + UBSan (-DMB_SANITIZE=ON)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kills=${MB_SOAK_KILLS:-10000}
kind=${MB_SOAK_BUILD:-native}
build="$root/build/soak-$kind"
fail() { echo "soak.sh: $*" >&2; exit 1; }
case $kills in '' | *[!0-9]*) fail "MB_SOAK_KILLS: a number of kills, not '$kills'" ;; esac

flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
case $kind in
  native) ;;
  asan) flags+=(-DMB_SANITIZE=ON) ;;
  *) fail "MB_SOAK_BUILD: native or asan, not '$kind'" ;;
esac

echo "=== build ($kind) in $build"
mkdir -p "$build"
cmake -S "$root" -B "$build" -G Ninja "${flags[@]}" >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; fail "configure failed"; }
cmake --build "$build" --target test-killstorm >"$build/build.log" 2>&1 ||
  { tail -n 40 "$build/build.log"; fail "build failed"; }

echo "=== kill storm: $kills kills"
start=$(date +%s)
out=$(MB_KILLSTORM_KILLS=$kills "$build/test-killstorm" kill_storm_pool 2>&1)
rc=$?
echo "$out" | grep -E '^#|^(not )?ok'
echo "=== $(($(date +%s) - start)) s, exit $rc"
[ "$rc" -eq 0 ] || { echo "$out" | tail -n 20; fail "the kill storm failed"; }
exit 0
