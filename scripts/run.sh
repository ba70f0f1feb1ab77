#!/usr/bin/env bash
# Build membroker, mbctl and gameserver_sim (native, release, in build/release: README uses all
# three next), say where they are, and run the broker in the foreground with the default config
# (config/membroker.json). Ctrl-C stops it cleanly. Extra arguments go to the broker
# after the config, e.g. scripts/run.sh   or   MB_CONFIG=my.json scripts/run.sh
# MB_RUN_BUILT=DIR runs the programs already built in DIR instead of building build/release
# (tests/journey-readme.sh: README's first day against the tree under test).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir="${MB_RUN_BUILT:-$root/build/release}"
if [ -z "${MB_RUN_BUILT:-}" ]; then
  if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null || ! pkg-config --exists libuv 2>/dev/null; then
    bash "$root/scripts/deps.sh" --native-only
  fi
  cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMB_TESTS=OFF >/dev/null
  cmake --build "$dir" --target membroker mbctl gameserver_sim >/dev/null
fi
echo "run.sh: built $dir/membroker, $dir/mbctl and $dir/gameserver_sim" >&2
echo "run.sh: in another terminal: $dir/mbctl status   (Ctrl-C here stops the broker)" >&2
exec "$dir/membroker" run -c "${MB_CONFIG:-$root/config/membroker.json}" "$@"
