#!/usr/bin/env bash
# Benchmarks (not tests), each side by side with its reference in one run:
#  - the control pipe: membroker `ping` and `status` round trips beside Redis PING and a plain
#    blocking echo server, all over Unix sockets on this machine;
#  - the client library (tests/bench-client.c): attach + detach, player connect on a fresh page
#    and on a reused one, beside a shared page commit alone and a private first touch;
#  - object pools (tests/bench-pool.c): alloc+free of 64- and 256-byte objects, one thread and
#    two, pairs and batches of 1M, through glibc malloc, mimalloc, jemalloc (preloaded), the
#    seed's mutex-protected pool, an unlocked free list, mb_lpool, the shared pool and the
#    shared pool with thread caches;
#  - reclaim (tests/bench-pool.c, `reclaim`): the broker's sweep that gives back the 100,000
#    pool blocks of a SIGKILLed client (aim < 50 ms);
#  - game data maps (tests/bench-map.c): the broker's load of a 256 MiB GMAP file (aim <= 1.3x)
#    and a game server's mb_map_open beside a plain open + read() of the file into malloc'd
#    memory, page faults per load, random tile reads through mb_map_tile beside direct
#    indexing in that buffer, and the save and restore of a 64 MiB saved state;
#  - death detection (tests/bench-death.c): time from SIGKILL of an attached game server to
#    the broker showing it dead, p50/p99 over 100 kills (issue 11 aims at p99 < 100 ms);
#  - large pages (tests/bench-pages.c): a 64 MiB shared section's commit + first touch and a
#    random walk through it, 4 KiB pages beside huge pages. As root the script mounts a private
#    hugetlbfs and reserves the huge pages (vm.nr_hugepages), and restores both at exit;
#    otherwise the huge-page row says why it is missing;
#  - cost as work grows (tests/bench-growth.c): `status` and attach with 1, 8, 64 game servers
#    attached, player connect with 1k, 8k, 32k players held, reclaim of a dead client holding
#    1k, 10k, 100k blocks; each step's ratio to the previous one and to the first, beside the
#    ratio of the work.
# One load generator (tests/bench-ctl.c) drives every pipe target, so only the server
# differs. Rounds are interleaved and the table shows medians over rounds; the
# ratios are medians of per-round ratios (PERF.md: only ratios taken in one run mean anything).
#
#   scripts/bench.sh
#   MB_BENCH_ROUNDS=7 MB_BENCH_SECONDS=3 scripts/bench.sh
#   MB_BENCH_ONLY=pools scripts/bench.sh     just the pool table
#   MB_BENCH_ONLY=maps scripts/bench.sh      just the game data map table (~45 s)
#   MB_BENCH_ONLY=death scripts/bench.sh     just death detection (~5 s)
#   MB_BENCH_KILLS=1000 ...                  kills for death detection (default 100)
#   MB_BENCH_ONLY=reclaim scripts/bench.sh   just the reclaim of a dead client's pool blocks
#   MB_BENCH_ONLY=pages scripts/bench.sh     just large pages against 4 KiB ones (~10 s)
#   MB_BENCH_ONLY=pipe scripts/bench.sh      just the control pipe table (~2 min at the defaults)
#   MB_BENCH_ONLY=client scripts/bench.sh    just the client library (attach, player connect)
#   MB_BENCH_ONLY=growth scripts/bench.sh    just the growth tables (~10 s)
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
hp_old=""
hp_mnt=""
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  # bench_pages: the huge pages it reserved and its hugetlbfs mount.
  [ -n "$hp_old" ] && echo "$hp_old" >/proc/sys/vm/nr_hugepages
  [ -n "$hp_mnt" ] && umount "$hp_mnt" && rmdir "$hp_mnt"
  hp_old="" hp_mnt=""
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
cmake --build "$build" --target bench-ctl bench-client bench-pool bench-map bench-death bench-pages bench-growth >>"$build/build.log" 2>&1 ||
  { tail -n 40 "$build/build.log"; fail "build of the benchmarks failed"; }
broker="$build/membroker"
gen="$build/bench-ctl"

# ---- helpers ------------------------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
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

# ---- object pools -------------------------------------------------------------------------
# One process per allocator and round (a preloaded malloc must own its whole process),
# allocators interleaved within a round; medians over rounds, ns per alloc+free of a thread.
bench_pools() {
  local r impl name pre out mi je
  mi=$(ldconfig -p | awk '/libmimalloc\.so\.2 / { print $NF; exit }')
  je=$(ldconfig -p | awk '/libjemalloc\.so\.2 / { print $NF; exit }')
  [ -n "$mi" ] && [ -f "$mi" ] && [ -n "$je" ] && [ -f "$je" ] || fail "mimalloc or jemalloc missing (scripts/deps.sh installs libmimalloc-dev libjemalloc-dev)"
  local pres="$tmp/pools"
  : >"$pres"
  echo "=== object pools: $rounds rounds x 10 allocators"
  for r in $(seq "$rounds"); do
    for impl in glibc mimalloc jemalloc freelist freelist-call mutexpool lpool shared shared-tc shared-inl; do
      pre=""
      case $impl in mimalloc) pre=$mi ;; jemalloc) pre=$je ;; esac
      case $impl in glibc | mimalloc | jemalloc) name=malloc ;; *) name=$impl ;; esac
      out=$(LD_PRELOAD=$pre "$build/bench-pool" "$name" 1) || fail "bench-pool $impl failed"
      case $impl in
        glibc | mimalloc | jemalloc)
          grep -q "^malloc=$impl\$" <<<"$out" || fail "bench-pool: asked for $impl, got $(head -n 1 <<<"$out")" ;;
      esac
      grep '^impl=' <<<"$out" | sed "s/^impl=[^ ]*/impl=$impl/" >>"$pres"
    done
    printf '  round %d done\n' "$r"
  done
  # pool_ns IMPL SIZE THREADS MODE: the median over rounds ("" if the case was not run).
  pool_ns() {
    awk -v i="impl=$1" -v s="size=$2" -v t="threads=$3" -v m="mode=$4" \
      '$1 == i && $2 == s && $3 == t && $4 == m { sub("ns=", "", $5); print $5 }' "$pres" | median
  }
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }
  local impls=(glibc mimalloc jemalloc mutexpool freelist freelist-call lpool shared shared-tc shared-inl)
  echo
  echo "ns per alloc+free of one thread (median of $rounds rounds; two threads run at once)"
  printf '%-18s' case
  printf ' %9s' "${impls[@]}"
  printf ' %9s %9s %9s\n' glibc/tc mutex/shr mutex/tc
  local size threads mode v
  for size in 64 256; do
    for threads in 1 2; do
      for mode in pairs batch; do
        printf '%-18s' "${size}B ${threads}t $mode"
        for impl in "${impls[@]}"; do
          v=$(pool_ns "$impl" "$size" "$threads" "$mode")
          if [ "$v" = nan ]; then printf ' %9s' -; else printf ' %9.1f' "$v"; fi
        done
        printf ' %9.2f %9.2f %9.2f\n' \
          "$(ratio "$(pool_ns glibc "$size" "$threads" "$mode")" "$(pool_ns shared-tc "$size" "$threads" "$mode")")" \
          "$(ratio "$(pool_ns mutexpool "$size" "$threads" "$mode")" "$(pool_ns shared "$size" "$threads" "$mode")")" \
          "$(ratio "$(pool_ns mutexpool "$size" "$threads" "$mode")" "$(pool_ns shared-tc "$size" "$threads" "$mode")")"
      done
    done
  done
  # The aims of issue 6, on the worst case each covers.
  local tc_fl=0 glibc_tc=1e9 mutex_shr=1e9 x
  for size in 64 256; do
    for mode in pairs batch; do
      x=$(ratio "$(pool_ns shared-tc $size 1 $mode)" "$(pool_ns freelist-call $size 1 $mode)")
      tc_fl=$(awk -v a="$tc_fl" -v b="$x" 'BEGIN { print (b > a) ? b : a }')
      for threads in 1 2; do
        x=$(ratio "$(pool_ns glibc $size $threads $mode)" "$(pool_ns shared-tc $size $threads $mode)")
        glibc_tc=$(awk -v a="$glibc_tc" -v b="$x" 'BEGIN { print (b < a) ? b : a }')
      done
      x=$(ratio "$(pool_ns mutexpool $size 2 $mode)" "$(pool_ns shared $size 2 $mode)")
      mutex_shr=$(awk -v a="$mutex_shr" -v b="$x" 'BEGIN { print (b < a) ? b : a }')
    done
  done
  echo
  echo "aims (issue 6; the worst case of each):"
  aim issue "shared-tc / free list behind a call, 1 thread (max)" "$tc_fl" "<=" 1.5
  aim issue "glibc malloc / shared-tc, every case (min)" "$glibc_tc" ">=" 3
  aim issue "mutex pool / shared (no cache), 2 threads (min)" "$mutex_shr" ">=" 5
  local mutex_tc=1e9
  for size in 64 256; do
    for mode in pairs batch; do
      x=$(ratio "$(pool_ns mutexpool $size 2 $mode)" "$(pool_ns shared-tc $size 2 $mode)")
      mutex_tc=$(awk -v a="$mutex_tc" -v b="$x" 'BEGIN { print (b < a) ? b : a }')
    done
  done
  aim info "mutex pool / shared-tc, 2 threads (min)" "$mutex_tc" ">=" 5
  # How the pair cost grows: 1 thread, 2 threads of one client, 2 client processes (the
  # shared pools only; "2p"), each step as a ratio to the one before.
  echo
  echo "pool pair cost as work grows (ns per alloc+free of one thread/process; x: growth per step)"
  printf '%-12s %5s %9s %9s %7s %9s %7s\n' impl size 1t 2t x 2p x
  local a b c
  for impl in shared shared-tc shared-inl; do
    for size in 64 256; do
      a=$(pool_ns $impl $size 1 pairs)
      b=$(pool_ns $impl $size 2 pairs)
      c=$(pool_ns $impl $size 2p pairs)
      printf '%-12s %5s %9.1f %9.1f %7.2f %9.1f %7.2f\n' "$impl" "$size" "$a" "$b" \
        "$(ratio "$b" "$a")" "$c" "$(ratio "$c" "$b")"
    done
  done
  # The pool rows of issue 15 (ratios within this run), worst case of each.
  local fl15=0 g15=1e9 inl15=1e9 mi15=0 shr15=1e9 grow15=0
  for size in 64 256; do
    x=$(ratio "$(pool_ns shared-tc $size 1 pairs)" "$(pool_ns freelist-call $size 1 pairs)")
    fl15=$(awk -v a="$fl15" -v b="$x" 'BEGIN { print (b > a) ? b : a }')
    for threads in 1 2; do
      x=$(ratio "$(pool_ns glibc $size $threads pairs)" "$(pool_ns shared-tc $size $threads pairs)")
      g15=$(awk -v a="$g15" -v b="$x" 'BEGIN { print (b < a) ? b : a }')
      x=$(ratio "$(pool_ns glibc $size $threads pairs)" "$(pool_ns shared-inl $size $threads pairs)")
      inl15=$(awk -v a="$inl15" -v b="$x" 'BEGIN { print (b < a) ? b : a }')
    done
    x=$(ratio "$(pool_ns mutexpool $size 2 pairs)" "$(pool_ns shared $size 2 pairs)")
    shr15=$(awk -v a="$shr15" -v b="$x" 'BEGIN { print (b < a) ? b : a }')
    for threads in 2 2p; do
      x=$(ratio "$(pool_ns shared-tc $size $threads pairs)" "$(pool_ns shared-tc $size 1 pairs)")
      grow15=$(awk -v a="$grow15" -v b="$x" 'BEGIN { print (b > a) ? b : a }')
    done
  done
  mi15=$(ratio "$(pool_ns shared-tc 64 2 batch)" "$(pool_ns mimalloc 64 2 batch)")
  echo
  echo "aims (issue 15, pools; the worst case of each):"
  aim issue "shared-tc / free list behind a call, pairs 1t (max)" "$fl15" "<=" 1.6
  aim issue "glibc / shared-tc, pairs 1 and 2 threads (min)" "$g15" ">=" 2
  aim issue "glibc / shared-inl (inline fast path), pairs (min)" "$inl15" ">=" 3
  aim issue "shared-tc / mimalloc, 64 B batch 1M, 2 threads" "$mi15" "<=" 1.0
  aim issue "mutex pool / shared (no cache), pairs 2 threads (min)" "$shr15" ">=" 1
  aim issue "  the real aim: the same ratio (min)" "$shr15" ">=" 5
  aim issue "shared-tc 2 threads or 2 processes / 1 thread (max)" "$grow15" "<=" 1.1
}

# ---- game data maps ------------------------------------------------------------------------
# One process; its rounds interleave the broker's load (and the same load through a view,
# populated or faulted in), mb_map_open, the plain read and the random reads, then the save
# and restore of a 64 MiB saved state (tests/bench-map.c). The 256 MiB map file and the saved
# state go to the temporary directory. The aim (issue 15): the load, checked and checksummed,
# at most 1.3x the plain read in the same run.
bench_maps() {
  local out ratio
  echo "=== game data maps: $rounds rounds"
  out=$("$build/bench-map" "$rounds" "$tmp") || { printf '%s\n' "$out"; fail "bench-map failed"; }
  printf '%s\n' "$out"
  ratio=$(printf '%s\n' "$out" | awk '/^broker: map-load/ { for (i = 1; i < NF; i++) if ($(i + 1) == "(load") { print $i; exit } }')
  aim issue "map-load 256 MiB / plain open + read()" "${ratio:-nan}" "<=" 1.3
}

# ---- death detection -----------------------------------------------------------------------
# A broker on its own thread (the production loop: tick + process watches), game servers as
# child processes, each SIGKILLed once attached; its own table with PASS/MISS.
bench_death() {
  echo "=== death detection: ${MB_BENCH_KILLS:-100} kills"
  "$build/bench-death" "${MB_BENCH_KILLS:-100}" || fail "bench-death failed"
}

if [ "${MB_BENCH_ONLY:-all}" = death ]; then
  bench_death
  exit 0
fi

# ---- the client library: attach, player connect, beside a page commit alone --------------
# One process (tests/bench-client.c), rounds interleaved; it prints its own PASS/MISS for the
# player connect aim of issue 15 (connect + first touch <= 1.0x a raw shared commit + touch).
bench_client() {
  echo "=== client library: $rounds rounds"
  "$build/bench-client" "$rounds" || fail "bench-client failed"
}

# ---- cost as work grows -------------------------------------------------------------------
# tests/bench-growth.c: real game servers (child processes) attached to a real broker loop;
# players held by one client; a killed client's pool blocks. Its own tables and PASS/MISS.
bench_growth() {
  echo "=== cost as work grows: $rounds rounds"
  "$build/bench-growth" all "$rounds" || fail "bench-growth failed"
}

if [ "${MB_BENCH_ONLY:-all}" = client ]; then
  bench_client
  exit 0
fi
if [ "${MB_BENCH_ONLY:-all}" = growth ]; then
  bench_growth
  exit 0
fi


# ---- reclaim: a SIGKILLed client holding 100,000 pool blocks --------------------------------
# The broker's sweep that reaps it (intent records completed, every block given back), timed
# in one process (tests/bench-pool.c, `reclaim`); median of the rounds. Aim of issue 11: < 50 ms.
bench_reclaim() {
  local out ms
  echo "=== reclaim of one dead client's pool blocks: $rounds rounds"
  out=$("$build/bench-pool" reclaim "$rounds") || fail "bench-pool reclaim failed"
  echo "$out"
  ms=$(sed -n 's/^reclaim blocks=[0-9]* ms=\([0-9.]*\).*/\1/p' <<<"$out")
  aim issue "reclaim of 100,000 blocks of a dead client (ms)" "$ms" "<" 50
}

# ---- large pages: 64 MiB, commit + first touch and a random walk, 4 KiB vs huge pages ------
# Huge pages need a hugetlbfs mount and pages reserved in vm.nr_hugepages: as root, a private
# mount and 34 pages on top of what is reserved (64 MiB = 32 pages of 2 MiB, and two spare),
# both undone by cleanup; otherwise bench-pages prints why the huge-page row is missing.
bench_pages() {
  echo "=== large pages: a 64 MiB section, 4 KiB vs huge pages, $rounds rounds"
  if [ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/nr_hugepages ]; then
    hp_mnt=$(mktemp -d /tmp/mb-bench-hugetlbfs.XXXXXX)
    if mount -t hugetlbfs none "$hp_mnt" 2>/dev/null; then
      hp_old=$(cat /proc/sys/vm/nr_hugepages)
      echo $((hp_old + 34)) >/proc/sys/vm/nr_hugepages
      echo "(reserved huge pages: vm.nr_hugepages $hp_old -> $(cat /proc/sys/vm/nr_hugepages), restored after)"
      MEMBROKER_HUGETLBFS=$hp_mnt "$build/bench-pages" "$rounds" || echo "bench-pages failed"
      echo "$hp_old" >/proc/sys/vm/nr_hugepages
      hp_old=""
      umount "$hp_mnt"
    else
      echo "(cannot mount hugetlbfs here: the huge-page row uses what /proc/mounts offers)"
      "$build/bench-pages" "$rounds" || echo "bench-pages failed"
    fi
    rmdir "$hp_mnt"
    hp_mnt=""
  else
    echo "(not root: huge pages are neither mounted nor reserved by this script)"
    "$build/bench-pages" "$rounds" || echo "bench-pages failed"
  fi
}
if [ "${MB_BENCH_ONLY:-all}" = pages ]; then
  bench_pages
  exit 0
fi


if ! command -v redis-server >/dev/null 2>&1; then
  echo "=== redis-server missing: installing it (scripts/deps.sh lists it)"
  if [ "$EUID" -eq 0 ]; then sudo=(); else sudo=(sudo -n); fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    redis-server redis-tools >/dev/null 2>&1 || fail "could not install redis-server"
fi

tmp=$(mktemp -d /tmp/mbbench.XXXXXX) || fail "mktemp failed"
only=${MB_BENCH_ONLY:-all}
case $only in all | pools | maps | death | reclaim | pages | pipe | client | growth) ;; *) fail "MB_BENCH_ONLY: all, pools, maps, death, reclaim, pages, pipe, client or growth, not '$only'" ;; esac
if [ "$only" = reclaim ]; then
  bench_reclaim
  exit 0
fi
if [ "$only" = pools ]; then
  bench_pools
  exit 0
fi
if [ "$only" = maps ]; then
  bench_maps
  exit 0
fi

# ---- start the three servers ------------------------------------------------------------
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
# Each client count runs the three servers back to back within a round, so a ratio compares
# runs seconds apart: on a machine others share, absolute req/s drift from round to round and
# only the per-round ratios (their medians below) mean anything.
# name|clients|socket|generator options
cases=(
  "membroker ping|1|$mb_sock|"
  "redis PING|1|$redis_sock|--resp"
  "blocking echo|1|$echo_sock|-e ''"
  "membroker ping|16|$mb_sock|"
  "redis PING|16|$redis_sock|--resp"
  "blocking echo|16|$echo_sock|-e ''"
  "membroker ping|50|$mb_sock|"
  "redis PING|50|$redis_sock|--resp"
  "blocking echo|50|$echo_sock|-e ''"
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
# cpu_ticks PID: the CPU time (user + system, clock ticks) the process has used, all its
# threads, exited ones included. Around each case it gives the server's CPU per round trip
# (cpu_us below): work done, not waiting, so it holds on a busy machine where req/s drift.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
hz=$(getconf CLK_TCK)
results="$tmp/results"
: >"$results"
echo "=== $rounds rounds x ${#cases[@]} cases x ${secs} s (+${warm_ms} ms warm-up), $(nproc) CPUs"
for r in $(seq "$rounds"); do
  for c in "${cases[@]}"; do
    IFS='|' read -r name n sock opts <<<"$c"
    run=""
    case $name in pinned*) pin on; run="taskset -c 0" ;; esac
    case $sock in "$mb_sock") spid=${pids[0]} ;; "$redis_sock") spid=${pids[1]} ;; *) spid=${pids[2]} ;; esac
    t0=$(cpu_ticks "$spid")
    if ! line=$(eval "$run \"$gen\" $opts -c $n -d $secs -w $warm_ms -l x \"$sock\""); then
      pin off
      fail "round $r, $name x$n: bench-ctl failed"
    fi
    t1=$(cpu_ticks "$spid")
    pin off
    cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v l="$line" 'BEGIN {
      n = 0; if (match(l, /all=[0-9]+/)) n = substr(l, RSTART + 4, RLENGTH - 4) + 0
      printf "%.3f", (n > 0) ? (b - a) * 1e6 / hz / n : 0 }')
    echo "$r|$name|$n|$line cpu_us=$cpu" >>"$results"
  done
  printf '  round %d done\n' "$r"
done

# ---- medians ----------------------------------------------------------------------------
# field NAME CLIENTS KEY: the KEY values of every round, one a line, in round order.
field() {
  awk -F'|' -v n="$1" -v c="$2" -v k="$3" '$2 == n && $3 == c {
    m = split($4, kv, " "); for (i = 1; i <= m; i++) { split(kv[i], p, "="); if (p[1] == k) print p[2] } }' "$results"
}
# ratio_median A_NAME A_CLIENTS A_KEY B_NAME B_CLIENTS B_KEY: median over rounds of A/B.
ratio_median() {
  paste -d' ' <(field "$1" "$2" "$3") <(field "$4" "$5" "$6") |
    awk '$2 > 0 { print $1 / $2 }' | median
}

echo
printf '%-22s %7s %9s %9s %10s %14s\n' target clients "p50 µs" "p99 µs" "req/s" "server CPU µs"
for c in "${cases[@]}"; do
  IFS='|' read -r name n _ _ <<<"$c"
  printf '%-22s %7s %9.1f %9.1f %10.0f %14.2f\n' "$name" "$n" \
    "$(field "$name" "$n" p50_us | median)" "$(field "$name" "$n" p99_us | median)" \
    "$(field "$name" "$n" rps | median)" "$(field "$name" "$n" cpu_us | median)"
done
echo "(server CPU µs: user + system time of the server process per round trip, from /proc)"

tput1=$(ratio_median "membroker ping" 1 rps "redis PING" 1 rps)
tput16=$(ratio_median "membroker ping" 16 rps "redis PING" 16 rps)
tput50=$(ratio_median "membroker ping" 50 rps "redis PING" 50 rps)
p50echo=$(ratio_median "membroker ping" 1 p50_us "blocking echo" 1 p50_us)
p99=$(field "membroker ping" 1 p99_us | median)
p99pin=$(field "pinned membroker ping" 1 p99_us | median)
p99echo=$(field "blocking echo" 1 p99_us | median)
tputpin=$(ratio_median "pinned membroker ping" 1 rps "pinned redis PING" 1 rps)
p50pin=$(ratio_median "pinned membroker ping" 1 p50_us "pinned blocking echo" 1 p50_us)
echo
printf 'membroker/redis req/s, 1 client:   %.2f\n' "$tput1"
printf 'membroker/redis req/s, 16 clients: %.2f\n' "$tput16"
printf 'membroker/redis req/s, 50 clients: %.2f\n' "$tput50"
for n in 1 16 50; do
  printf 'membroker/redis server CPU per round trip, %2d clients: %.2f\n' "$n" \
    "$(ratio_median "membroker ping" "$n" cpu_us "redis PING" "$n" cpu_us)"
done
printf 'membroker p50 / echo p50, 1 client: %.2f\n' "$p50echo"
printf 'pinned: membroker/redis req/s %.2f, membroker p50 / echo p50 %.2f\n' "$tputpin" "$p50pin"

# ---- aims ----
echo
echo "aims (issue 4 decides; PERF.md is for information):"
aim issue "ping p99, 1 client, pinned (µs)" "$p99pin" "<" 100
aim info "ping p99, 1 client, unpinned (µs; echo: $p99echo)" "$p99" "<" 100
aim issue "ping req/s vs Redis PING, 16 clients" "$tput16" ">=" 0.5
aim PERF "ping req/s vs Redis PING, 1 client" "$tput1" ">=" 0.9
aim PERF "ping req/s vs Redis PING, 16 clients" "$tput16" ">=" 1.0
aim PERF "ping req/s vs Redis PING, 50 clients" "$tput50" ">=" 1.0
aim PERF "ping p50 vs blocking echo p50, 1 client" "$p50echo" "<=" 1.3
aim PERF "ping p50 vs blocking echo p50, 1 client, pinned" "$p50pin" "<=" 1.3
aim PERF "ping req/s vs Redis PING, 1 client, pinned" "$tputpin" ">=" 0.9
if [ "$only" = pipe ]; then
  exit 0
fi

# ---- the client library: attach, player connect, beside a page commit alone --------------
echo
bench_client

echo
bench_pools

echo
bench_maps

echo
bench_death
echo
bench_reclaim
echo
bench_growth

echo
bench_pages

# Cross-check of the generator: Redis's own tool on the same socket (one run, 16 clients).
if command -v redis-benchmark >/dev/null 2>&1; then
  echo
  rb=$(redis-benchmark -s "$redis_sock" -t ping_inline -c 16 -n 100000 -q 2>/dev/null | tr '\r' '\n' |
    grep -E 'requests per second' | tail -n 1)
  echo "redis-benchmark PING_INLINE, 16 clients (its own client, for reference): ${rb#*: }"
fi
exit 0
