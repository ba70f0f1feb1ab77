#!/usr/bin/env bash
# Soak: the kill storms of tests/test-killstorm.c, long. A broker runs inside the test process.
#
# kill_storm_everything (issue 11): game servers with two clients on two threads, each doing at
# random pool allocs and frees through thread caches (random batches, flushes), player connects
# and disconnects with slot writes and their players counter adds, three at a time, SIGKILLed
# at random instants; each kill is followed by the broker's reap (and sometimes a compact) or by
# a restart of the same name that takes the dead entries over. Afterwards every block and slot
# must be free, no page locked, slots_used and the page words true, the whole pool and every
# slot taken again, and the players counter equal to what the reaped clients had added.
#
# kill_storm_pool: one game server at a time, pool only (two threads), checked after each reap.
#
# Prints the figures of each; exits non-zero on a failure.
#
#   scripts/soak.sh                          10,000 kills each, native build
#   MB_SOAK_KILLS=100000 scripts/soak.sh     more
#   MB_SOAK_ONLY=everything scripts/soak.sh  one storm (everything or pool)
#   MB_SOAK_BUILD=asan scripts/soak.sh       under AddressSanitizer + UBSan (-DMB_SANITIZE=ON)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kills=${MB_SOAK_KILLS:-10000}
kind=${MB_SOAK_BUILD:-native}
build="$root/build/soak-$kind"
fail() { echo "soak.sh: $*" >&2; exit 1; }
case $kills in '' | *[!0-9]*) fail "MB_SOAK_KILLS: a number of kills, not '$kills'" ;; esac
case ${MB_SOAK_ONLY:-} in
  '') storms=(kill_storm_everything kill_storm_pool) ;;
  everything | pool) storms=("kill_storm_$MB_SOAK_ONLY") ;;
  *) fail "MB_SOAK_ONLY: everything or pool, not '$MB_SOAK_ONLY'" ;;
esac

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

failed=0
for storm in "${storms[@]}"; do
  echo "=== $storm: $kills kills"
  start=$(date +%s)
  out=$(MB_KILLSTORM_KILLS=$kills "$build/test-killstorm" "$storm" 2>&1)
  rc=$?
  echo "$out" | grep -E '^#|^(not )?ok'
  echo "=== $storm: $(($(date +%s) - start)) s, exit $rc"
  if [ "$rc" -ne 0 ]; then
    echo "$out" | tail -n 20
    failed=1
  fi
done
[ "$failed" -eq 0 ] || fail "a kill storm failed"
exit 0
