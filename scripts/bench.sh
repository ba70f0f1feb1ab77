#!/usr/bin/env bash
# Benchmarks (not tests), each side by side with its reference in one run:
#  - the control pipe: membroker `ping` and `status` round trips beside Redis PING and a plain
#    blocking echo server, all over Unix sockets on this machine;
#  - the client library (tests/bench-client.c): attach + detach, player connect on a fresh page
#    and on a reused one, beside a shared page commit alone and a private first touch.
# One load generator (tests/bench-ctl.c) drives every pipe target, so only the server
# differs. Rounds are interleaved and the table shows medians over rounds; the
# ratios are medians of per-round ratios (PERF.md: only ratios taken in one run mean anything).
#
#   scripts/bench.sh
#   MB_BENCH_ROUNDS=7 MB_BENCH_SECONDS=3 scripts/bench.sh
#
# Checks the aims of issue 4 (PASS/MISS) and PERF.md's stricter ones (info). Exits 0 unless
# something failed to build, start or run. Stops everything it started (by pid).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build/bench"
rounds=${MB_BENCH_ROUNDS:-5}
secs=${MB_BENCH_SECONDS:-2}
warm_ms=${MB_BENCH_WARMUP_MS:-200}

pids=()
tmp=""
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  [ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "bench.sh: $*" >&2; exit 1; }

# ---- build: Release, no tests; bench-ctl via CMake if the tree has the target, else cc ----
echo "=== build (Release) in $build"
mkdir -p "$build"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMB_TESTS=OFF -DMB_BENCH=ON \
  >"$build/configure.log" 2>&1 || { cat "$build/configure.log"; fail "configure failed"; }
cmake --build "$build" --target membroker >"$build/build.log" 2>&1 ||
  { tail -n 40 "$build/build.log"; fail "build failed"; }
cmake --build "$build" --target bench-ctl bench-client >>"$build/build.log" 2>&1 ||
  { tail -n 40 "$build/build.log"; fail "build of the benchmarks failed"; }
broker="$build/membroker"
gen="$build/bench-ctl"

if ! command -v redis-server >/dev/null 2>&1; then
  echo "=== redis-server missing: installing it (scripts/deps.sh lists it)"
  if [ "$EUID" -eq 0 ]; then sudo=(); else sudo=(sudo -n); fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    redis-server redis-tools >/dev/null 2>&1 || fail "could not install redis-server"
fi

# ---- start the three servers ------------------------------------------------------------
tmp=$(mktemp -d /tmp/mbbench.XXXXXX) || fail "mktemp failed"
inst="bench$$"
cat >"$tmp/bench.json" <<EOF
{
  "comment": "scripts/bench.sh",
  "instance": "$inst",
  "log": { "level": "warn" },
  "pipe": { "mode": "0600" },
  "regions": [
    { "name": "world", "size": "4MiB" },
    { "name": "players", "size": "4MiB", "commit": "lazy", "slot_size": "1KiB" },
    { "name": "npc", "size": "1MiB" }
  ]
}
EOF
mb_sock="$tmp/membroker-$inst.sock"
redis_sock="$tmp/redis.sock"
echo_sock="$tmp/echo.sock"

MEMBROKER_RUNTIME_DIR="$tmp" "$broker" run -c "$tmp/bench.json" >"$tmp/membroker.log" 2>&1 &
pids+=($!)
redis-server --port 0 --unixsocket "$redis_sock" --unixsocketperm 700 --save '' \
  --appendonly no --daemonize no --logfile "$tmp/redis.log" >/dev/null 2>&1 &
pids+=($!)
"$gen" --echo-server "$echo_sock" >"$tmp/echo.log" 2>&1 &
pids+=($!)

for i in $(seq 100); do
  [ -S "$mb_sock" ] && [ -S "$redis_sock" ] && [ -S "$echo_sock" ] && break
  sleep 0.05
done
[ -S "$mb_sock" ] || { cat "$tmp/membroker.log"; fail "membroker did not open $mb_sock"; }
[ -S "$redis_sock" ] || { cat "$tmp/redis.log"; fail "redis-server did not open $redis_sock"; }
[ -S "$echo_sock" ] || { cat "$tmp/echo.log"; fail "echo server did not open $echo_sock"; }

# ---- interleaved rounds -----------------------------------------------------------------
# name|clients|socket|generator options
cases=(
  "membroker ping|1|$mb_sock|"
  "redis PING|1|$redis_sock|--resp"
  "blocking echo|1|$echo_sock|-e ''"
  "membroker ping|16|$mb_sock|"
  "redis PING|16|$redis_sock|--resp"
  "membroker status|1|$mb_sock|-r '{\"id\":1,\"cmd\":\"status\"}'"
  # Pinned: the client and every server on CPU 0, so no round trip waits for the VM to wake
  # an idle vCPU (PERF.md: ~35 µs, and its tail is what unpinned p99 measures).
  "pinned membroker ping|1|$mb_sock|"
  "pinned redis PING|1|$redis_sock|--resp"
  "pinned blocking echo|1|$echo_sock|-e ''"
)
# pin on|off: move the three servers (all their threads) to CPU 0, or back to every CPU.
all_cpus="0-$(( $(nproc) - 1 ))"
pin() {
  local p cpus=$all_cpus
  [ "$1" = on ] && cpus=0
  for p in "${pids[@]}"; do taskset -a -p -c "$cpus" "$p" >/dev/null 2>&1; done
}
results="$tmp/results"
: >"$results"
echo "=== $rounds rounds x ${#cases[@]} cases x ${secs} s (+${warm_ms} ms warm-up), $(nproc) CPUs"
for r in $(seq "$rounds"); do
  for c in "${cases[@]}"; do
    IFS='|' read -r name n sock opts <<<"$c"
    run=""
    case $name in pinned*) pin on; run="taskset -c 0" ;; esac
    if ! line=$(eval "$run \"$gen\" $opts -c $n -d $secs -w $warm_ms -l x \"$sock\""); then
      pin off
      fail "round $r, $name x$n: bench-ctl failed"
    fi
    pin off
    echo "$r|$name|$n|$line" >>"$results"
  done
  printf '  round %d done\n' "$r"
done

# ---- medians ----------------------------------------------------------------------------
# field NAME CLIENTS KEY: the KEY values of every round, one a line, in round order.
field() {
  awk -F'|' -v n="$1" -v c="$2" -v k="$3" '$2 == n && $3 == c {
    m = split($4, kv, " "); for (i = 1; i <= m; i++) { split(kv[i], p, "="); if (p[1] == k) print p[2] } }' "$results"
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# ratio_median A_NAME A_CLIENTS A_KEY B_NAME B_CLIENTS B_KEY: median over rounds of A/B.
ratio_median() {
  paste -d' ' <(field "$1" "$2" "$3") <(field "$4" "$5" "$6") |
    awk '$2 > 0 { print $1 / $2 }' | median
}

echo
printf '%-22s %7s %9s %9s %10s\n' target clients "p50 µs" "p99 µs" "req/s"
for c in "${cases[@]}"; do
  IFS='|' read -r name n _ _ <<<"$c"
  printf '%-22s %7s %9.1f %9.1f %10.0f\n' "$name" "$n" \
    "$(field "$name" "$n" p50_us | median)" "$(field "$name" "$n" p99_us | median)" \
    "$(field "$name" "$n" rps | median)"
done

tput1=$(ratio_median "membroker ping" 1 rps "redis PING" 1 rps)
tput16=$(ratio_median "membroker ping" 16 rps "redis PING" 16 rps)
p50echo=$(ratio_median "membroker ping" 1 p50_us "blocking echo" 1 p50_us)
p99=$(field "membroker ping" 1 p99_us | median)
p99pin=$(field "pinned membroker ping" 1 p99_us | median)
p99echo=$(field "blocking echo" 1 p99_us | median)
tputpin=$(ratio_median "pinned membroker ping" 1 rps "pinned redis PING" 1 rps)
p50pin=$(ratio_median "pinned membroker ping" 1 p50_us "pinned blocking echo" 1 p50_us)
echo
printf 'membroker/redis req/s, 1 client:   %.2f\n' "$tput1"
printf 'membroker/redis req/s, 16 clients: %.2f\n' "$tput16"
printf 'membroker p50 / echo p50, 1 client: %.2f\n' "$p50echo"
printf 'pinned: membroker/redis req/s %.2f, membroker p50 / echo p50 %.2f\n' "$tputpin" "$p50pin"

# ---- aims -------------------------------------------------------------------------------
# aim KIND TEXT VALUE OP LIMIT
aim() {
  local verdict
  if awk -v v="$3" -v l="$5" -v op="$4" 'BEGIN { exit !((op == "<" && v < l) || (op == "<=" && v <= l) || (op == ">=" && v >= l)) }'; then
    verdict=PASS
  else
    verdict=MISS
  fi
  printf '%-4s %-6s %-52s %8.2f %s %s\n' "$verdict" "$1" "$2" "$3" "$4" "$5"
}
echo
echo "aims (issue 4 decides; PERF.md is for information):"
aim issue "ping p99, 1 client, pinned (µs)" "$p99pin" "<" 100
aim info "ping p99, 1 client, unpinned (µs; echo: $p99echo)" "$p99" "<" 100
aim issue "ping req/s vs Redis PING, 16 clients" "$tput16" ">=" 0.5
aim PERF "ping req/s vs Redis PING, 1 client" "$tput1" ">=" 0.9
aim PERF "ping req/s vs Redis PING, 16 clients" "$tput16" ">=" 1.0
aim PERF "ping p50 vs blocking echo p50, 1 client" "$p50echo" "<=" 1.3

# ---- the client library: attach, player connect, beside a page commit alone --------------
echo
"$build/bench-client" "$rounds" || fail "bench-client failed"

# Cross-check of the generator: Redis's own tool on the same socket (one run, 16 clients).
if command -v redis-benchmark >/dev/null 2>&1; then
  echo
  rb=$(redis-benchmark -s "$redis_sock" -t ping_inline -c 16 -n 100000 -q 2>/dev/null | tr '\r' '\n' |
    grep -E 'requests per second' | tail -n 1)
  echo "redis-benchmark PING_INLINE, 16 clients (its own client, for reference): ${rb#*: }"
fi
exit 0
