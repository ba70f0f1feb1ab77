#!/usr/bin/env bash
# Build everything (native, release, in build/release): membroker, mbctl and gameserver_sim,
# which README uses next, and gmaptool and the libraries, which README's `cmake --install
# build/release` installs after them; say where they are, and run the broker in the foreground
# with the default config (config/membroker.json). Ctrl-C stops it cleanly. Extra arguments go to
# the broker after the config, e.g. scripts/run.sh   or   MB_CONFIG=my.json scripts/run.sh
# MB_RUN_BUILD_DIR=DIR does the same build into DIR instead of build/release
# (tests/journey-readme.sh: README's first day, its build kept between test runs).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir="${MB_RUN_BUILD_DIR:-$root/build/release}"
if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null || ! pkg-config --exists libuv 2>/dev/null; then
  bash "$root/scripts/deps.sh" --native-only
fi
cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMB_TESTS=OFF >/dev/null
# Every target (what `cmake --install` installs included), not only the three run here.
cmake --build "$dir" >/dev/null
echo "run.sh: built $dir/membroker, $dir/mbctl, $dir/gameserver_sim, $dir/gmaptool and the libraries" >&2
echo "run.sh: in another terminal: $dir/mbctl status   (Ctrl-C here stops the broker)" >&2
exec "$dir/membroker" run -c "${MB_CONFIG:-$root/config/membroker.json}" "$@"
