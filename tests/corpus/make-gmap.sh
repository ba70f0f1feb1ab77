#!/usr/bin/env bash
# Writes the seed inputs of fuzz-gmap (tests/corpus/gmap/) from scratch: valid maps made by
# gmaptool (so their checksums are right), and copies of them with one thing broken each.
# Run it after a change of the GMAP format, and commit what it writes:
#
#   tests/corpus/make-gmap.sh build/native/gmaptool
#
# Offsets (little-endian words): 0 signature, 4 version, 8 width, 12 height, 16 tile_count,
# 20 object_count, 24 checksum (8 bytes), 32 reserved[8]; tiles from 64.
set -euo pipefail

tool=${1:?usage: tests/corpus/make-gmap.sh PATH/TO/gmaptool}
out="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/gmap"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# make NAME W H OBJECTS: a valid map from gmaptool, seed 1.
make() { "$tool" create "$work/$1" --width "$2" --height "$3" --objects "$4" --seed 1 >/dev/null; }
# patch FILE OFFSET HEX: overwrite bytes at OFFSET with HEX ("01000000").
patch() { printf '%b' "$(echo "$3" | sed 's/../\\x&/g')" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
# variant NAME FROM: a copy of valid map FROM to break.
variant() { cp "$work/$2" "$out/$1"; }

rm -rf "$out"
mkdir -p "$out"
make 1x1 1 1 0
make 20x1 20 1 0
make 3x2 3 2 5
make 16x16 16 16 4
cp "$work/1x1" "$out/valid-1x1"
cp "$work/20x1" "$out/valid-20x1"
cp "$work/3x2" "$out/valid-3x2-5-objects"
cp "$work/16x16" "$out/valid-16x16-4-objects"

variant bad-signature 1x1 && patch "$out/bad-signature" 0 78563412
variant byte-swapped-signature 1x1 && patch "$out/byte-swapped-signature" 0 50414d47
variant version-1-no-checksum 1x1 && patch "$out/version-1-no-checksum" 4 01000000 &&
  patch "$out/version-1-no-checksum" 24 0000000000000000
variant version-3 1x1 && patch "$out/version-3" 4 03000000
variant width-0 1x1 && patch "$out/width-0" 8 00000000 && patch "$out/width-0" 16 00000000
variant object-count-huge 1x1 && patch "$out/object-count-huge" 20 ffffffff
head -c 64 "$work/1x1" >"$out/width-x-height-past-32-bits"
patch "$out/width-x-height-past-32-bits" 8 0000010000000100 # 65536 x 65536
patch "$out/width-x-height-past-32-bits" 16 00000000
head -c 17 "$work/1x1" >"$out/truncated-header"
variant tile-count-not-width-x-height 3x2 && patch "$out/tile-count-not-width-x-height" 16 05000000
head -c 84 "$work/3x2" >"$out/tiles-past-end"
head -c 247 "$work/3x2" >"$out/objects-past-end"
variant trailing-bytes 3x2 && printf 'xyz' >>"$out/trailing-bytes"
variant reserved-nonzero 3x2 && patch "$out/reserved-nonzero" 32 01000000
variant checksum-mismatch 3x2 && patch "$out/checksum-mismatch" 70 ff # a tile's byte
variant checksum-zero 3x2 && patch "$out/checksum-zero" 24 0000000000000000

ls "$out" | wc -l | sed 's/$/ files in tests\/corpus\/gmap/'
