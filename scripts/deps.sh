#!/usr/bin/env bash
# Installs everything membroker needs to build and test on Debian 12.
#
#   scripts/deps.sh [--native-only]
#
# 1. Debian packages (skipped entirely when dpkg-query says all are installed).
# 2. Unless --native-only: a deb-src entry for the machine's Debian mirror, the
#    Debian source packages of libuv1, cjson and xxhash, and static mingw-w64 x86_64
#    builds of them, installed into <deps>/mingw64 for scripts/toolchain-mingw64.cmake.
#
# <deps> is $MB_DEPS_DIR, default <repo>/build/deps. Everything third-party lives
# there (build/ is gitignored). Stamp files make a rerun take about a second.
# Non-interactive (CI=true, no terminal); needs root or sudo only to install.
set -Eeuo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLCHAIN_FILE="$REPO_DIR/scripts/toolchain-mingw64.cmake"

DEB_PACKAGES=(
  build-essential cmake ninja-build pkg-config libuv1-dev libcjson-dev
  clang libclang-rt-14-dev llvm clang-format mingw-w64 wine64 wine dpkg-dev
  redis-server redis-tools libmimalloc-dev libjemalloc-dev
  prometheus # promtool: the metrics tests check mbctl metrics, GET /metrics and config/prometheus/;
             # the server: test-prometheus and scripts/prometheus-demo.sh scrape a real broker
  curl       # scripts/prometheus-demo.sh
  systemd # systemd-analyze verify: the installed unit (install.systemd_unit)
  libxxhash-dev # XXH3-64, the checksum of map images and saved state (common/hash.c)
)
SRC_PACKAGES=(libuv1 cjson xxhash)
SRC_LIST_NAME=membroker-deb-src

NATIVE_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --native-only) NATIVE_ONLY=1 ;;
    -h | --help)
      sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "deps: unknown argument: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

DEPS_DIR="${MB_DEPS_DIR:-$REPO_DIR/build/deps}"
mkdir -p "$DEPS_DIR"
DEPS_DIR="$(cd "$DEPS_DIR" && pwd)"
STAMP_DIR="$DEPS_DIR/stamps"
LOG_DIR="$DEPS_DIR/logs"
SRC_DIR="$DEPS_DIR/src"
MINGW_PREFIX="$DEPS_DIR/mingw64"
MINGW_BUILD_DIR="$DEPS_DIR/build-mingw"
mkdir -p "$STAMP_DIR" "$LOG_DIR" "$SRC_DIR"

export DEBIAN_FRONTEND=noninteractive
STEP="start"
CUR_LOG=""

log() { echo "deps: $*"; }

on_error() {
  local rc=$?
  echo "deps: FAILED in step '$STEP' (exit $rc)" >&2
  if [[ -n "$CUR_LOG" && -s "$CUR_LOG" ]]; then
    echo "deps: last lines of $CUR_LOG:" >&2
    tail -n 25 "$CUR_LOG" | sed 's/^/deps:   /' >&2
  fi
  exit "$rc"
}
trap on_error ERR

# run LOGNAME CMD...: run a command with its output in $LOG_DIR/LOGNAME.log.
run() {
  CUR_LOG="$LOG_DIR/$1.log"
  shift
  "$@" >"$CUR_LOG" 2>&1
  CUR_LOG=""
}

SUDO=()
need_root() {
  if [[ $EUID -eq 0 ]]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
    if ! sudo -n true 2>/dev/null; then
      # Let sudo ask for a password only when there is a terminal.
      if [[ -t 0 ]]; then SUDO=(sudo); else
        echo "deps: step '$STEP' needs root: run as root, or set up passwordless sudo" >&2
        exit 1
      fi
    fi
  else
    echo "deps: step '$STEP' needs root and sudo is not installed: rerun as root" >&2
    exit 1
  fi
}

# stamp_ok NAME CONTENT: true when the stamp exists and records CONTENT.
stamp_ok() { [[ -f "$STAMP_DIR/$1" && "$(cat "$STAMP_DIR/$1")" == "$2" ]]; }
stamp_set() { printf '%s' "$2" >"$STAMP_DIR/$1"; }

# ---------------------------------------------------------------- packages
STEP="check packages"
missing_packages() {
  local p status
  for p in "${DEB_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)"
    [[ "$status" == ii* ]] || echo "$p"
  done
}
mapfile -t MISSING < <(missing_packages)

# --------------------------------------------------------- deb-src sources
# Prints deb822 stanzas (Types: deb-src) for every enabled deb stanza of the
# Debian release itself (suite == codename or codename-*) in *.sources files.
codename() {
  local c=""
  # shellcheck disable=SC1091
  if [[ -r /etc/os-release ]]; then c="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"; fi
  [[ -n "$c" ]] || c="$(lsb_release -sc 2>/dev/null || true)"
  [[ -n "$c" ]] || c=bookworm
  echo "$c"
}

derive_deb822() {
  local code="$1"
  shift
  # Stanzas are separated by blank lines; continuation lines start with space/tab.
  awk -v code="$code" '
    function flush(   i, out, types, suites, enabled, ok, n, s, k) {
      if (nf == 0) return
      types = ""; suites = ""; enabled = "yes"
      for (i = 1; i <= nf; i++) {
        k = tolower(key[i])
        if (k == "types") types = val[i]
        else if (k == "suites") suites = val[i]
        else if (k == "enabled") enabled = tolower(val[i])
      }
      gsub(/^[ \t]+|[ \t]+$/, "", enabled)
      ok = (enabled != "no") && (" " types " " ~ /[ \t]deb[ \t]/)
      if (ok) {
        ok = 0
        n = split(suites, s, /[ \t]+/)
        for (i = 1; i <= n; i++)
          if (s[i] == code || index(s[i], code "-") == 1) ok = 1
      }
      if (ok) {
        out = "Types: deb-src\n"
        for (i = 1; i <= nf; i++) {
          k = tolower(key[i])
          if (k == "types" || k == "architectures" || k == "enabled") continue
          out = out key[i] ":" raw[i] "\n"
        }
        printf "%s\n", out
      }
      nf = 0
    }
    FNR == 1 { flush() }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { flush(); next }
    /^[ \t]/ { if (nf > 0) { raw[nf] = raw[nf] "\n" $0; val[nf] = val[nf] " " $0 } next }
    {
      p = index($0, ":")
      if (p == 0) next
      nf++
      key[nf] = substr($0, 1, p - 1)
      raw[nf] = substr($0, p + 1)
      val[nf] = raw[nf]
    }
    END { flush() }
  ' "$@"
}

derive_legacy() {
  local code="$1"
  shift
  # "deb [opts] URI suite comps..." -> "deb-src [opts] URI suite comps..."
  awk -v code="$code" '
    /^[ \t]*deb[ \t]/ {
      line = $0
      sub(/^[ \t]*deb[ \t]+/, "", line)
      rest = line
      opts = ""
      if (substr(rest, 1, 1) == "[") {
        e = index(rest, "]")
        opts = substr(rest, 1, e) " "
        rest = substr(rest, e + 1)
        sub(/^[ \t]+/, "", rest)
      }
      split(rest, f, /[ \t]+/)
      if (f[2] == code || index(f[2], code "-") == 1) print "deb-src " opts rest
    }
  ' "$@"
}

have_deb_src() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] && grep -Eq '^[[:space:]]*deb-src[[:space:]]' "$f" && return 0
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] && grep -Eiq '^[[:space:]]*Types:.*deb-src' "$f" && return 0
  done
  return 1
}

# True when apt's index knows the source package $1 (deb-src entries fetched). The whole
# output is read before it is searched: `apt-cache showsrc | grep -q` under pipefail fails
# exactly when the package is there (grep -q exits at the first match, apt-cache dies of
# SIGPIPE, the pipeline exits 141), which made every run think the index was missing.
have_src_index() {
  local out
  out="$(apt-cache showsrc "$1" 2>/dev/null || true)"
  [[ $'\n'"$out" == *$'\nPackage: '* ]]
}

# Adds the deb-src file if needed; sets DEB_SRC_ADDED=1 when it wrote one.
ensure_deb_src() {
  have_deb_src && return 0
  local code tmp sources=() lists=() f
  code="$(codename)"
  tmp="$(mktemp)"
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" && "$(basename "$f")" != "$SRC_LIST_NAME.sources" ]] && sources+=("$f")
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" && "$(basename "$f")" != "$SRC_LIST_NAME.list" ]] && lists+=("$f")
  done
  need_root
  if ((${#sources[@]})); then
    derive_deb822 "$code" "${sources[@]}" >"$tmp"
    if [[ -s "$tmp" ]]; then
      { echo "# Added by membroker scripts/deps.sh: Debian source packages (apt-get source)."
        echo
        cat "$tmp"; } | "${SUDO[@]}" tee "/etc/apt/sources.list.d/$SRC_LIST_NAME.sources" >/dev/null
      rm -f "$tmp"
      log "added /etc/apt/sources.list.d/$SRC_LIST_NAME.sources"
      DEB_SRC_ADDED=1
      return 0
    fi
  fi
  if ((${#lists[@]})); then
    derive_legacy "$code" "${lists[@]}" | sort -u >"$tmp"
    if [[ -s "$tmp" ]]; then
      { echo "# Added by membroker scripts/deps.sh: Debian source packages (apt-get source)."
        cat "$tmp"; } | "${SUDO[@]}" tee "/etc/apt/sources.list.d/$SRC_LIST_NAME.list" >/dev/null
      rm -f "$tmp"
      log "added /etc/apt/sources.list.d/$SRC_LIST_NAME.list"
      DEB_SRC_ADDED=1
      return 0
    fi
  fi
  rm -f "$tmp"
  echo "deps: found no Debian '$code' deb entry in /etc/apt to derive a deb-src entry from" >&2
  return 1
}

# Source stamps: what the mingw part still has to fetch.
NEED_SOURCES=0
if ((!NATIVE_ONLY)); then
  for s in "${SRC_PACKAGES[@]}"; do
    [[ -f "$STAMP_DIR/src-$s.done" && -d "$SRC_DIR/$s" ]] || NEED_SOURCES=1
  done
fi

NEED_UPDATE=0
if ((NEED_SOURCES)); then
  STEP="add deb-src entry"
  DEB_SRC_ADDED=0
  ensure_deb_src
  ((DEB_SRC_ADDED)) && NEED_UPDATE=1
  # Sources may be configured but never fetched (e.g. an interrupted earlier run).
  if ((!NEED_UPDATE)) && ! have_src_index "${SRC_PACKAGES[0]}"; then
    NEED_UPDATE=1
  fi
fi
((${#MISSING[@]})) && NEED_UPDATE=1

if ((NEED_UPDATE)); then
  STEP="apt-get update"
  need_root
  log "apt-get update"
  run apt-update "${SUDO[@]}" apt-get update
fi

if ((${#MISSING[@]})); then
  STEP="apt-get install"
  need_root
  log "installing: ${MISSING[*]}"
  run apt-install "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${MISSING[@]}"
  mapfile -t MISSING < <(missing_packages)
  if ((${#MISSING[@]})); then
    echo "deps: still not installed after apt-get install: ${MISSING[*]}" >&2
    false
  fi
else
  log "debian packages: all installed"
fi

if ((NATIVE_ONLY)); then
  log "done (--native-only)"
  exit 0
fi

# ---------------------------------------------------------- source packages
fetch_source() {
  local pkg="$1" dl="$SRC_DIR/download-$1" dsc
  STEP="apt-get source $pkg"
  log "fetching Debian source package $pkg"
  rm -rf "${dl:?}" "${SRC_DIR:?}/$pkg"
  mkdir -p "$dl"
  local apt_opts=()
  # As root, apt drops to user _apt to download and warns that it cannot write
  # here; downloading as root into our own directory is what we want.
  [[ $EUID -eq 0 ]] && apt_opts=(-o APT::Sandbox::User=root)
  cd "$dl"
  run "src-$pkg-download" apt-get "${apt_opts[@]}" source --download-only "$pkg"
  cd "$REPO_DIR"
  dsc="$(find "$dl" -maxdepth 1 -name '*.dsc' | head -n 1)"
  [[ -n "$dsc" ]] || { echo "deps: apt-get source $pkg gave no .dsc" >&2; false; }
  STEP="dpkg-source -x $pkg"
  run "src-$pkg-extract" dpkg-source --no-check -x "$dsc" "$SRC_DIR/$pkg"
  basename "$dsc" .dsc >"$STAMP_DIR/src-$pkg.done"
  log "  $(cat "$STAMP_DIR/src-$pkg.done")"
}

for s in "${SRC_PACKAGES[@]}"; do
  if [[ -f "$STAMP_DIR/src-$s.done" && -d "$SRC_DIR/$s" ]]; then
    log "source $s: present ($(cat "$STAMP_DIR/src-$s.done"))"
  else
    fetch_source "$s"
  fi
done

# ----------------------------------------------------------- mingw builds
TOOLCHAIN_SUM="$(sha256sum "$TOOLCHAIN_FILE" | cut -c1-16)"

# mingw_build NAME SRC CMAKE_ARGS...
mingw_build() {
  local name="$1" src="$2"
  shift 2
  local bdir="$MINGW_BUILD_DIR/$name"
  local want pkg="${src#"$SRC_DIR"/}"
  pkg="${pkg%%/*}" # the source package (SRC may be a folder inside it)
  want="$(cat "$STAMP_DIR/src-$pkg.done") toolchain=$TOOLCHAIN_SUM prefix=$MINGW_PREFIX args=$*"
  if stamp_ok "mingw-$name.done" "$want"; then
    log "mingw $name: up to date"
    return 0
  fi
  log "mingw $name: building (log: $LOG_DIR/mingw-$name-*.log)"
  rm -f "$STAMP_DIR/mingw-$name.done"
  rm -rf "${bdir:?}"
  STEP="mingw $name: configure"
  run "mingw-$name-configure" cmake -S "$src" -B "$bdir" -G Ninja \
    -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN_FILE" \
    -DMB_MINGW_PREFIX="$MINGW_PREFIX" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$MINGW_PREFIX" \
    -DCMAKE_POSITION_INDEPENDENT_CODE=OFF \
    "$@"
  STEP="mingw $name: build"
  run "mingw-$name-build" cmake --build "$bdir"
  STEP="mingw $name: install"
  run "mingw-$name-install" cmake --install "$bdir"
  stamp_set "mingw-$name.done" "$want"
}

mkdir -p "$MINGW_PREFIX" "$MINGW_BUILD_DIR"

# libuv 1.44 has no switch for static-only: it always builds the DLL target
# (uv) and the static one (uv_a) and exports both, unnamespaced, in
# lib/cmake/libuv/libuvConfig.cmake. Link uv_a (or pkg-config libuv-static);
# the DLL stays installed only because libuvConfig.cmake checks that it exists.
mingw_build libuv "$SRC_DIR/libuv1" \
  -DLIBUV_BUILD_TESTS=OFF -DLIBUV_BUILD_BENCH=OFF -DBUILD_TESTING=OFF
mingw_build cjson "$SRC_DIR/cjson" \
  -DENABLE_CJSON_TEST=OFF -DBUILD_SHARED_LIBS=OFF -DBUILD_SHARED_AND_STATIC_LIBS=OFF \
  -DENABLE_CUSTOM_COMPILER_FLAGS=OFF -DENABLE_CJSON_UTILS=OFF \
  -DENABLE_TARGET_EXPORT=ON -DENABLE_PUBLIC_SYMBOLS=OFF -DENABLE_HIDDEN_SYMBOLS=OFF
# xxHash 0.8's CMake build lives in cmake_unofficial/. membroker uses it header-only
# (common/hash.c includes xxhash.h with XXH_INLINE_ALL), so only the installed headers
# matter; the static library and the package config come along and stay unused.
mingw_build xxhash "$SRC_DIR/xxhash/cmake_unofficial" \
  -DBUILD_SHARED_LIBS=OFF -DXXHASH_BUILD_XXHSUM=OFF

log "done: mingw prefix $MINGW_PREFIX"
