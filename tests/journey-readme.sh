#!/usr/bin/env bash
# journey-readme.sh SOURCE_DIR BUILD_DIR - README's first day, as a newcomer types it, against
# the tree under test (CTest: readme.journey, native build).
#
# The commands and the code are taken from README.md's code blocks, so README cannot drift from
# what works: scripts/run.sh with MB_CONFIG, its own build included (configure and build every
# target, release, MB_TESTS=OFF) into BUILD_DIR/readme-release (MB_RUN_BUILD_DIR: the same
# commands as into build/release, kept between test runs so a rerun builds only what changed),
# `mbctl status`, gameserver_sim attached, `cmake --install` of that tree into a scratch prefix
# (every file README lists is there), the C example ("A game server in C") built with README's
# two pkg-config lines (shared with its rpath, static without libmembroker.so) and with a
# find_package project made of README's CMake lines (membroker::static and ::shared), each run
# against the broker; then README's block of operators' verbs (instances, player, evict, save,
# shutdown --wait), each command as written, its output compared line by line with README's
# (numbers, pids and hex bytes aside), against game servers set up as the block shows them; and
# Ctrl-C of a second run.sh. Differences from README, all of them substitutions: a private
# instance name (the config's "instance" and the example's mb_attach), a persist.dir added to the
# config (README's save), build/release -> BUILD_DIR/readme-release, /opt/membroker -> a
# temporary prefix, game_server.c -> the example extracted.
#
# The broker and gameserver_sim it starts it stops by pid (SIGINT, as Ctrl-C); everything it
# writes is in one temporary directory, removed at exit. Exit 0 ok, 1 a step failed (saying
# which, with the output), 77 skipped (a sanitizer build: its installed library needs
# -fsanitize in every consumer, which README's plain commands do not pass).
set -uo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)/readme-release
sanitize=${3:-OFF}
readme="$src/README.md"

if [ "$sanitize" = ON ]; then
  echo "SKIPPED: readme.journey: a sanitizer build's library needs -fsanitize in the consumers"
  exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mb-readme.XXXXXX")
# The broker's socket and lock record in the temporary directory (mbctl looks there too).
export MEMBROKER_RUNTIME_DIR="$tmp/run"
inst="rj$$"
prefix="$tmp/prefix"
broker_pid=
sim_pid=
sims=

# After a failed step: SIGTERM (a background job of a script ignores SIGINT until the program
# sets its own handler), SIGKILL after 5 s, and what a killed broker leaves goes too.
cleanup() {
  local pid killed=0
  for pid in $sim_pid $sims $broker_pid; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null && killed=1
    fi
  done
  [ $killed -eq 1 ] && rm -f /dev/shm/membroker."$inst".*
  rm -rf "$tmp"
}
trap cleanup EXIT

step() { echo "== $*"; }
fail() {
  echo "FAILED: readme.journey: $*" >&2
  exit 1
}

# The first fenced block of language $1 after the first line of README matching the ERE $2
# (its lines, without the fences).
block() {
  awk -v lang="$1" -v pat="$2" '
    !found && $0 ~ pat { found = 1; next }
    found && !inside && $0 == "```" lang { inside = 1; next }
    inside && $0 == "```" { exit }
    inside { print }' "$readme"
}

# Wait (up to 20 s, polling) until `mbctl status` prints a line matching ERE $1.
wait_status() {
  local deadline=$((SECONDS + 20))
  while :; do
    out=$(MEMBROKER_INSTANCE=$inst "$build/mbctl" status 2>&1) && grep -Eq "$1" <<<"$out" && return 0
    [ $SECONDS -ge $deadline ] && fail "mbctl status never showed /$1/:
$out
broker log:
$(cat "$tmp/broker.log")"
    if [ -n "$broker_pid" ] && ! kill -0 "$broker_pid" 2>/dev/null; then
      fail "the broker exited: $(cat "$tmp/broker.log")"
    fi
    sleep 0.1
  done
}

# ---- 1. scripts/run.sh (README "The two commands") -------------------------------------------
step "scripts/run.sh"
block sh '^## The two commands' | grep -q '^scripts/run.sh ' ||
  fail "README's first block no longer runs scripts/run.sh"
grep -q 'MB_CONFIG=other.json scripts/run.sh' "$readme" || fail "README no longer names MB_CONFIG"
# README's next steps install everything from build/release: run.sh builds every target.
grep -Eq -- '^cmake --build "\$dir" >' "$src/scripts/run.sh" ||
  fail "scripts/run.sh no longer builds every target (cmake --build \"\$dir\")"
# The config: a private instance, and a persist.dir for README's save.
sed -e "s/\"instance\": \"default\"/\"instance\": \"$inst\",\n  \"persist\": { \"dir\": \"$(sed 's/[\/&]/\\&/g' <<<"$tmp/state")\", \"regions\": [\"players\"] }/" \
  "$src/config/membroker.json" >"$tmp/membroker.json"
grep -q "\"instance\": \"$inst\"" "$tmp/membroker.json" || fail "config/membroker.json has no \"instance\" line"
# run.sh's own build (no substitute): it builds, then execs the broker.
MB_RUN_BUILD_DIR=$build MB_CONFIG=$tmp/membroker.json "$src/scripts/run.sh" >"$tmp/broker.log" 2>&1 &
broker_pid=$! # run.sh execs the broker: this is its pid
deadline=$((SECONDS + 80))
until grep -q '^run.sh: in another terminal' "$tmp/broker.log"; do
  kill -0 "$broker_pid" 2>/dev/null || fail "scripts/run.sh failed: $(cat "$tmp/broker.log")"
  [ $SECONDS -ge $deadline ] && fail "scripts/run.sh built nothing in 80 s: $(cat "$tmp/broker.log")"
  sleep 0.2
done

# ---- 2. mbctl status, gameserver_sim attached (README "In a second terminal") ----------------
second=$(block sh 'In a second terminal, while it runs:' | sed 's/ *#.*$//')
want='build/release/mbctl status
build/release/gameserver_sim --players 5 --steady --seconds 60 &
build/release/mbctl status'
[ "$second" = "$want" ] || fail "README's second-terminal block changed (update this test):
$second"
# Each line as typed, in the tree under test and for the private instance.
mapfile -t lines <<<"${second//build\/release/$build}"
step "${lines[0]}"
wait_status "instance '$inst', running"
grep -q "run.sh: in another terminal: $build/mbctl status" "$tmp/broker.log" ||
  fail "run.sh did not print where mbctl is: $(cat "$tmp/broker.log")"
step "${lines[1]}"
sim=${lines[1]% &}
sim=${sim/gameserver_sim /gameserver_sim --instance $inst }
$sim >"$tmp/sim.log" 2>&1 &
sim_pid=$!
step "${lines[2]}"
wait_status '^clients +1 attached'
wait_status '^game +5 players'
grep -q "attached to instance '$inst'" "$tmp/sim.log" || fail "gameserver_sim: $(cat "$tmp/sim.log")"
kill -INT "$sim_pid"
wait "$sim_pid"
rc=$?
sim_pid=
[ $rc -eq 0 ] || fail "gameserver_sim exited $rc after Ctrl-C: $(cat "$tmp/sim.log")"

# ---- 4. cmake --install into a prefix (README "Building against it") -------------------------
step "cmake --install"
install=$(block sh '^### Building against it')
line=$(grep -m1 '^cmake --install build/release --prefix /opt/membroker$' <<<"$install") ||
  fail "README's install line changed: $install"
line=${line//build\/release/$build}
line=${line//\/opt\/membroker/$prefix}
eval "$line" >"$tmp/install.log" 2>&1 || fail "$line: $(cat "$tmp/install.log")"
# Every file README lists after it ("# bin/membroker  lib/libmembroker.so*  share/.../{a,b}").
for f in $(grep '^# ' <<<"$install" | sed 's/^# //'); do
  case $f in
  *'{'*) # a/{b,c}
    base=${f%%\{*}
    inner=${f#*\{}
    inner=${inner%\}*}
    IFS=, read -ra names <<<"$inner"
    for n in "${names[@]}"; do [ -e "$prefix/$base$n" ] || fail "install has no $base$n (README lists it)"; done
    ;;
  *'*') compgen -G "$prefix/$f" >/dev/null || fail "install has no $f (README lists it)" ;;
  *) [ -e "$prefix/$f" ] || fail "install has no $f (README lists it)" ;;
  esac
done
for f in "$prefix"/bin/*; do
  grep -q "bin/$(basename "$f")" <<<"$install" || fail "install has bin/$(basename "$f"), README does not list it"
done

# ---- 5. the C example, built with README's pkg-config lines ---------------------------------
step "the C example with pkg-config"
block c '^### A game server in C' >"$tmp/example.c"
grep -q 'mb_attach("default", "zone-1"' "$tmp/example.c" || fail "README's C example changed its attach"
sed -i "s/mb_attach(\"default\"/mb_attach(\"$inst\"/" "$tmp/example.c"
pc=$(block sh '^pkg-config:$')
grep -q '^export PKG_CONFIG_PATH=/opt/membroker/lib/pkgconfig$' <<<"$pc" || fail "README's pkg-config block changed: $pc"
# Each command on one line (joined at the trailing backslashes), prefix substituted.
mapfile -t ccs < <(sed -e ':a' -e '/\\$/N; s/\\\n *//; ta' <<<"$pc" | grep '^cc ')
[ ${#ccs[@]} -eq 2 ] || fail "README's pkg-config block should have two cc commands: $pc"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
for k in 0 1; do
  d="$tmp/pc$k"
  mkdir -p "$d"
  cp "$tmp/example.c" "$d/game_server.c"
  line=${ccs[$k]//\/opt\/membroker/$prefix}
  (cd "$d" && eval "$line") >"$d/build.log" 2>&1 || fail "$line: $(cat "$d/build.log")"
  # As README says: the first runs through its rpath, the second needs no libmembroker.so.
  if [ $k -eq 1 ] && ldd "$d/a.out" | grep -q libmembroker; then
    fail "the static_libs build links libmembroker.so: $(ldd "$d/a.out")"
  fi
  (cd "$d" && env -u LD_LIBRARY_PATH ./a.out) >"$d/run.log" 2>&1 || fail "$line: a.out failed: $(cat "$d/run.log")"
done
unset PKG_CONFIG_PATH

# ---- 6. a find_package project from README's CMake lines ------------------------------------
step "the C example with find_package"
cm=$(block cmake '^With CMake')
grep -q '^find_package(membroker 0.1 REQUIRED)$' <<<"$cm" || fail "README's CMake block changed: $cm"
for lib in static shared; do
  d="$tmp/fp-$lib"
  mkdir -p "$d"
  cp "$tmp/example.c" "$d/game_server.c"
  {
    echo 'cmake_minimum_required(VERSION 3.16)'
    echo 'project(game C)'
    echo 'add_executable(game_server game_server.c)'
    sed "s/membroker::static/membroker::$lib/" <<<"$cm"
  } >"$d/CMakeLists.txt"
  (cmake -S "$d" -B "$d/b" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" && cmake --build "$d/b") \
    >"$d/build.log" 2>&1 || fail "find_package with membroker::$lib: $(cat "$d/build.log")"
  env -u LD_LIBRARY_PATH "$d/b/game_server" >"$d/run.log" 2>&1 ||
    fail "find_package with membroker::$lib: game_server failed: $(cat "$d/run.log")"
done

# ---- 7. README's operators' verbs ("mbctl runs one command of its own") ----------------------
step "README's verbs block"
verbs=$(awk '/^`mbctl` runs one command of its own/ { f = 1 } f && /^```$/ { if (in_) exit; in_ = 1; next } in_ { print }' "$readme")
grep -q '^\$ mbctl instances$' <<<"$verbs" || fail "README's verbs block changed: $verbs"
mb() { MEMBROKER_INSTANCE=$inst "$build/mbctl" "$@"; }
# The game servers the block shows: zone-1 alive with player 3, zone-2 (index 1) and zone-3
# (index 2) ended with --keep (closed, their slots kept for the grace period).
"$build/gameserver_sim" --instance "$inst" --name zone-1 --players 3 --steady --seconds 60 >"$tmp/z1.log" 2>&1 &
sims="$sims $!"
deadline=$((SECONDS + 30))
until mb player 3 >/dev/null 2>&1; do
  [ $SECONDS -ge $deadline ] && fail "zone-1 never connected player 3: $(cat "$tmp/z1.log")"
  sleep 0.2
done
for z in zone-2 zone-3; do
  "$build/gameserver_sim" --instance "$inst" --name $z --players 3 --steady --seconds 60 --keep >"$tmp/$z.log" 2>&1 &
  zpid=$!
  deadline=$((SECONDS + 30))
  until grep -q "attached to instance '$inst'" "$tmp/$z.log" && mb --json clients | grep -q "\"$z\""; do
    [ $SECONDS -ge $deadline ] && fail "$z never attached: $(cat "$tmp/$z.log")"
    sleep 0.2
  done
  sleep 0.3 # a player or more: any count does, README's are examples
  kill -INT $zpid
  wait $zpid || fail "$z exited $? after Ctrl-C: $(cat "$tmp/$z.log")"
done
# One line of output as README shows it: this run's instance, paths and runtime dir as README's,
# numbers as N (pids, sizes, times), hex dump lines as HEX, runs of spaces as one, "N slot(s)".
norm() {
  sed -E -e "s#$tmp/state#/var/lib/membroker#g" -e "s#$MEMBROKER_RUNTIME_DIR#/run/membroker#g" \
    -e "s/$inst/default/g" -e 's/^[0-9a-f]{8}  .*/HEX/' -e 's/[0-9]+(\.[0-9]+)?/N/g' \
    -e 's/ +/ /g' -e 's/N (slot|object)s?/N \1(s)/g'
}
cmds=$(grep '^\$ ' <<<"$verbs")
while IFS= read -r c; do
  words=${c#\$ mbctl }
  want=$(awk -v c="$c" '$0 == c { f = 1; next } f && /^\$ / { exit } f { print }' <<<"$verbs" | norm)
  step "mbctl $words"
  # shellcheck disable=SC2086
  got=$(mb $words 2>&1)
  rc=$?
  if [ "$words" = instances ]; then # other brokers of this host aside: the header and ours
    want=$(sed -n '1p;/^default /p' <<<"$want")
    got=$(awk -v i="$inst" 'NR == 1 || $1 == i' <<<"$got")
  fi
  got=$(norm <<<"$got")
  case $words in "evict zone-1") [ $rc -eq 1 ] ;; *) [ $rc -eq 0 ] ;; esac ||
    fail "mbctl $words exited $rc: $got"
  [ "$got" = "$want" ] || fail "mbctl $words does not print what README shows:
--- README (normalized)
$want
--- mbctl (normalized)
$got"
done <<<"$cmds"
wait "$broker_pid"
rc=$?
broker_pid=
[ $rc -eq 0 ] || fail "the broker exited $rc after shutdown --wait: $(cat "$tmp/broker.log")"
for pid in $sims; do # zone-1 would wait for a broker to come back: Ctrl-C ends it
  kill -INT "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
done
sims=

# ---- 8. Ctrl-C stops the broker cleanly (a second run.sh: its build is done) ----------------
step "Ctrl-C"
MB_RUN_BUILD_DIR=$build MB_CONFIG=$tmp/membroker.json "$src/scripts/run.sh" >"$tmp/broker2.log" 2>&1 &
broker_pid=$!
wait_status "instance '$inst', running"
kill -INT "$broker_pid"
wait "$broker_pid"
rc=$?
broker_pid=
[ $rc -eq 0 ] || fail "the broker exited $rc after SIGINT: $(cat "$tmp/broker2.log")"
echo "readme.journey: ok"
