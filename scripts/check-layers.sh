#!/usr/bin/env bash
# check-layers.sh - the layering and OS-call check (README, "Layering"). Fails, naming
# file:line, when a C file of the product
#  (a) includes an OS header or calls an OS API outside the platform layer (common/os_*.c,
#      common/os_setup.h) and the service glue (service/svc_*.c). Tests (tests/) and the
#      examples (client/examples/, programs written as a game server's would be) may call the
#      OS; everything else goes through common/os.h.
#      OS calls are the C library's OS parts (fopen, getenv, time, strerror, ...), POSIX calls
#      and families (pthread_*, sched_*, _w*), and every Win32 call: the Windows API is
#      CamelCase (CreateFileW, ExitProcess, CoInitialize), the project's own names never are.
#      OS headers are the POSIX and Windows ones (sys/*, unistd.h, sched.h, windows.h,
#      win*.h, *api.h, tlhelp32.h, ...).
#  (b) includes a project header across layers the wrong way: common/ includes nothing from
#      service/ or client/; service/ nothing from client/; client/ nothing from service/; the
#      public header client/include/membroker.h is the contract under all of them, and the
#      examples include nothing of the project but it. Nothing includes a .c file. libuv
#      (<uv.h>) and cJSON (<cjson/...>) belong to the broker, mbctl and the tools: common/ and
#      the client library (the files directly in client/, and client/include/) use neither.
#  (c) tests the OS (_WIN32, __linux__, __APPLE__, MB_OS_WIN, MB_OS_POSIX, ...) in an #if or in
#      code outside the platform layer (common/os_*.c, common/os_setup.h) and the service glue
#      (service/svc_*.c): portable code calls common/os.h or uses a fact of os_setup.h.
#      Compiler tests (_MSC_VER, __GNUC__) are not OS tests.
# Tests (tests/) and the examples (client/examples/) are exempt from (a) and (c).
# The rules go by folder, not by a list of today's files, so files that move or split keep
# being checked. Exceptions, each with its reason, are in scripts/check-layers.allow:
#   <path glob> <name> <reason...>
# where name is a call (localtime), a header (<sys/stat.h>, "os_posix.c") or an OS macro
# (MB_OS_WIN) and the glob matches the path from the repository's top (`*` also matches '/').
#
#   scripts/check-layers.sh [ROOT]    (default: the repository this script is in)
#   scripts/check-layers.sh --self-test [SCRATCH]   plant one violation of each kind in a copy
#                                     of the tree (in SCRATCH, default a mktemp -d folder) and
#                                     fail unless every one is reported, and nothing else
# Exit status: 0 clean, 1 violations found (listed on stderr), 2 usage or setup error.
# Needs only bash, find, sort and a POSIX awk (mawk, gawk or busybox).
set -euo pipefail

self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")

# --self-test: the check must be able to fail. Each plant is one line appended to a file of
# the copy; the check must name exactly those file:line places.
if [ "${1:-}" = --self-test ]; then
  src=$(cd "$(dirname "$self")/.." && pwd)
  scratch=${2:-$(mktemp -d)}
  rm -rf "$scratch/tree"
  mkdir -p "$scratch/tree"
  cp -R "$src/common" "$src/service" "$src/client" "$src/scripts" "$scratch/tree/"
  t=$scratch/tree
  expect=()
  plant() { # FILE TEXT: append TEXT as the last line of FILE, expect FILE:that line
    printf '%s\n' "$2" >>"$t/$1"
    expect+=("$1:$(wc -l <"$t/$1" | tr -d ' ')")
  }
  plant service/report.c '#include <unistd.h>'
  plant service/report.c 'static int mb__plant1(void) { return (int)getpid(); }'
  plant common/pool.c '#include <sys/mman.h>'
  plant common/pool.c '#include "broker.h"'
  plant service/trust.c '#include "private.h"'
  plant client/lpool.c 'static void mb__plant2(void) { CreateFileW(0); }'
  plant client/heap.c 'static void mb__plant3(void) { FILE *f = fopen("x", "r"); (void)f; }'
  plant client/include/membroker.h '#include "os.h"'
  plant client/examples/gameserver_sim.c '#include "../../service/log.h"'
  printf '%s\n' '/* an X-macro list */' >"$t/service/mb_plant.def"
  plant client/heap.c '#include "mb_plant.def"'
  # OS conditionals outside the platform layer and the service glue, in #if lines and code
  plant service/cmd_maps.c '#if MB_OS_WIN'
  plant service/protocol.c '#ifdef _WIN32'
  plant client/attach.c '#if defined(__linux__) || defined(__APPLE__)'
  plant common/pool.c 'static const int mb__plant6 = MB_OS_POSIX ? 1 : 2;'
  # C library and POSIX calls that are the OS, one by name and the families by prefix
  plant client/mbctl/mbctl.c 'static void mb__plant7(void) { (void)getenv("X"); }'
  plant common/gmap.c 'static void mb__plant8(int e) { (void)strerror(e); }'
  plant service/report.c 'static void mb__plant9(void) { (void)time(0); }'
  plant client/players.c 'static void mb__plant10(void) { sched_yield(); }'
  plant service/broker.c 'static void mb__plant11(void) { pthread_create(0, 0, 0, 0); }'
  plant client/tools/gmaptool.c 'static void mb__plant12(void) { _wstat(0, 0); }'
  # Win32 calls whatever their prefix
  plant service/ctl.c 'static void mb__plant13(void) { EnumServicesStatusExW(0); }'
  plant common/slots.c 'static void mb__plant14(void) { ExitProcess(1); }'
  plant client/publish.c 'static void mb__plant15(void) { CoInitialize(0); }'
  plant service/log.c 'static void mb__plant16(void) { OutputDebugStringA("x"); }'
  # OS headers
  plant service/config.c '#include <sched.h>'
  plant client/gamemaps.c '#include <netdb.h>'
  plant common/tagheap.c '#include <TlHelp32.h>'
  plant service/maps.c '#include <winsvc.h>'
  plant common/regions.c '#include <processthreadsapi.h>'
  # libuv and cJSON are not for common/ nor the client library
  plant common/gmap.c '#include <uv.h>'
  plant client/attach.c '#include <cjson/cJSON.h>'
  plant client/include/membroker.h '#include "cJSON.h"'
  # a source file included
  plant service/ctl.c '#include "os_posix.c"'
  # Not violations: OS names in comments and strings, members, the platform layer itself.
  printf '%s\n' '/* fopen(x) in a comment */ static const char *mb__plant4 = "signal(";' \
    'static int mb__plant5(struct { int (*open)(void); } *o) { return o->open(); }' \
    >>"$t/client/lpool.c"
  printf '%s\n' '#include <sys/stat.h>' '#if MB_OS_POSIX' '#endif' >>"$t/common/os_posix.c"
  printf '%s\n' '#include <windows.h>' '#ifdef _WIN32' '#endif' >>"$t/service/svc_posix.c"
  printf '%s\n' '/* #if MB_OS_WIN in a comment, MB_OS_WINDOWS and MB_OS_SEC_GLOBAL are not */' \
    'static int mb__plant17(struct { int (*Open)(void); } *o) { return o->Open() + MB_OS_WINDOWS; }' \
    '#include <uv.h>' '#include <cjson/cJSON.h>' >>"$t/service/ctl.c"
  printf '%s\n' '#include <cjson/cJSON.h>' >>"$t/client/mbctl/show.c"
  printf '%s\n' '#if defined(_MSC_VER) && !defined(__clang__)' '#endif' >>"$t/common/atomics.h"
  out=$(bash "$self" "$t" 2>&1) && { echo "$out"; echo "check-layers.sh: self-test: the check passed a tree with violations" >&2; exit 1; }
  echo "$out"
  fail=0
  for e in "${expect[@]}"; do
    grep -q "^$e: " <<<"$out" || { echo "check-layers.sh: self-test: $e was not reported" >&2; fail=1; }
  done
  got=$(grep -cE '^[a-z]+/[^ ]*:[0-9]+: ' <<<"$out" || true)
  if [ "$got" -ne "${#expect[@]}" ]; then
    echo "check-layers.sh: self-test: $got places reported, ${#expect[@]} planted" >&2
    fail=1
  fi
  [ -z "${2:-}" ] && rm -rf "$scratch"
  [ "$fail" -eq 0 ] && echo "check-layers.sh: self-test ok: ${#expect[@]} planted violations reported, nothing else"
  exit "$fail"
fi

root=${1:-$(cd "$(dirname "$self")/.." && pwd)}
cd "$root" || exit 2
[ -d common ] && [ -d service ] && [ -d client ] || {
  echo "check-layers.sh: '$root' has no common/, service/ and client/" >&2
  exit 2
}
allow=scripts/check-layers.allow

# Every C source and header of the product (tests/ only for nothing: it may do anything).
files=$(find common service client -type f \( -name '*.c' -o -name '*.h' -o -name '*.cpp' \
  -o -name '*.def' \) | LC_ALL=C sort)
# Where each project header (and X-macro list, *.def) lives, by its path from the top (a quoted include is resolved
# against these: first beside the including file, then by name anywhere in the product).
headers=$(find common service client -type f \( -name '*.h' -o -name '*.def' \) | LC_ALL=C sort)

# shellcheck disable=SC2086
awk -v headers="$headers" -v allowfile="$allow" '
# ---- OS headers and calls (rule a) -----------------------------------------------------------
BEGIN {
  n = split("windows.h winsock2.h ws2tcpip.h winternl.h aclapi.h sddl.h psapi.h process.h io.h " \
            "direct.h shlobj.h userenv.h unistd.h fcntl.h signal.h pthread.h dirent.h poll.h " \
            "spawn.h grp.h pwd.h dlfcn.h termios.h syslog.h sched.h netdb.h semaphore.h " \
            "mqueue.h malloc.h tlhelp32.h shellapi.h shlwapi.h objbase.h combaseapi.h " \
            "dbghelp.h iphlpapi.h lmcons.h ntstatus.h mswsock.h knownfolders.h tchar.h", h, " ")
  for (i = 1; i <= n; i++) oshdr[h[i]] = 1
  # and Windows headers by their shape: windows.h, winsvc.h, winternl.h, processthreadsapi.h
  oshdrre = "^(win[a-z0-9_]*|[a-z0-9_]+api)\\.h$"
  # prefixes: any header under these folders is an OS header
  n = split("sys/ netinet/ arpa/ linux/ asm/ bits/", h, " ")
  for (i = 1; i <= n; i++) osdir[h[i]] = 1
  # C library and POSIX calls that are the OS (files, time zones, signals, processes, memory)
  n = split("fopen freopen fdopen _wfopen _wfreopen _fdopen ftell fseek ftello fseeko " \
            "_ftelli64 _fseeki64 rewind remove rename _wremove _wrename tmpfile tmpnam " \
            "gmtime gmtime_r gmtime_s _gmtime64_s localtime localtime_r localtime_s " \
            "_localtime64_s mktime timegm signal sigaction raise kill " \
            "open openat creat read write close lseek pread pwrite fsync fdatasync " \
            "ftruncate truncate stat fstat lstat fstatat access unlink unlinkat mkdir rmdir " \
            "chmod fchmod chown fchown link symlink readlink realpath opendir readdir " \
            "closedir mmap munmap mprotect madvise msync mlock shm_open shm_unlink memfd_create " \
            "fork vfork execv execve execvp execl execlp waitpid wait posix_spawn system " \
            "popen pclose getpid getppid getuid geteuid getgid setuid setgid pipe dup dup2 " \
            "ioctl fcntl flock socket connect bind listen accept send recv sendto recvfrom " \
            "setsockopt getsockopt shutdown poll select epoll_create epoll_wait sleep usleep " \
            "nanosleep clock_gettime gettimeofday sysconf getrlimit setrlimit dlopen dlsym " \
            "_open _close _read _write _open_osfhandle _get_osfhandle _beginthreadex " \
            "_beginthread _wputenv _putenv setenv unsetenv putenv getenv secure_getenv " \
            "_dupenv_s time clock strerror strerror_r strerror_s _strerror perror _getpid " \
            "getcwd _getcwd chdir _chdir umask _umask mkstemp mkostemp mkdtemp syscall " \
            "isatty _isatty fileno _fileno _stat _stat64 _fstat _mkdir _rmdir _unlink " \
            "_access _chmod _pipe _dup _dup2 _exit _Exit _spawnv _spawnvp _execv _popen " \
            "_pclose getaddrinfo freeaddrinfo gethostbyname gethostname inet_pton inet_ntop " \
            "getlogin getpwnam getpwuid getgrnam getgrgid prctl", c, " ")
  for (i = 1; i <= n; i++) oscall[c[i]] = 1
  # whole families by prefix: pthread_create, sched_yield, sem_open, _wgetenv, _wstat, ...
  oscallre = "^(pthread_|sched_|sem_|epoll_|inotify_|posix_|shm_|sd_|_w[a-z])"
  # Win32 names by their shape: the Windows API is CamelCase (CreateFileW, Sleep,
  # ExitProcess, SHGetKnownFolderPath, CoInitialize, OutputDebugStringA), while the project
  # calls mb_* functions, MB_* macros and its libraries (uv_*, cJSON_*). So a call of a name
  # that starts with a capital letter and has a lowercase one is an OS call.
  win32 = "^[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$"
  # OS conditionals (rule c): the OS is detected once, in common/os_setup.h
  osmacro = "(^|[^A-Za-z0-9_])(MB_OS_WIN|MB_OS_POSIX|_WIN32|_WIN64|WIN32|_WINDOWS|__WIN32__|" \
            "__CYGWIN__|__linux__|__linux|__gnu_linux__|__unix__|__unix|__APPLE__|__MACH__|" \
            "__FreeBSD__|__NetBSD__|__OpenBSD__|__DragonFly__|__sun|__ANDROID__|" \
            "_POSIX_VERSION)([^A-Za-z0-9_]|$)"

  nh = split(headers, hl, "\n")
  for (i = 1; i <= nh; i++) {
    hp = hl[i]; b = hp; sub(/.*\//, "", b)
    byname[b] = byname[b] (byname[b] == "" ? "" : " ") hp
    ishdr[hp] = 1
  }
  na = 0
  while ((getline line < allowfile) > 0) {
    if (line ~ /^[ \t]*(#|$)/) continue
    split(line, f, /[ \t]+/)
    na++; aglob[na] = f[1]; aname[na] = f[2]
  }
  rule["common"] = "common/ includes only common/ and the public client/include/membroker.h"
  rule["service"] = "service/ includes service/, common/ and the public header, never client/"
  rule["client"] = "client/ includes client/, common/ and the public header, never service/"
  rule["public"] = "the public header includes nothing else of the project"
  rule["example"] = "an example includes only the public header membroker.h"
  bad = 0
}

function glob_re(g,    r, i, ch) {
  r = "^"
  for (i = 1; i <= length(g); i++) {
    ch = substr(g, i, 1)
    if (ch == "*") r = r ".*"
    else if (ch == "?") r = r "."
    else if (index("\\^$.[]|()+{}", ch)) r = r "\\" ch
    else r = r ch
  }
  return r "$"
}
function allowed(file, name,    i) {
  for (i = 1; i <= na; i++)
    if (aname[i] == name && file ~ glob_re(aglob[i])) { used[i] = 1; return 1 }
  return 0
}
function report(file, line, msg) {
  printf "%s:%d: %s\n", file, line, msg > "/dev/stderr"
  bad++
}

# ---- layers (rule b) -------------------------------------------------------------------------
function layer(p) {
  if (p ~ /^client\/include\//) return "public"
  if (p ~ /^client\/examples\//) return "example"
  if (p ~ /^common\//) return "common"
  if (p ~ /^service\//) return "service"
  if (p ~ /^client\//) return "client"
  return "other"
}
function may_include(from, to) {
  if (to == "public") return 1
  if (from == "example") return 0
  if (from == "public") return 0
  if (from == to) return 1
  if (to == "common") return from == "service" || from == "client"
  return 0
}
function normalize(p,    n, parts, out, i, k) {
  n = split(p, parts, "/"); k = 0
  for (i = 1; i <= n; i++) {
    if (parts[i] == "." || parts[i] == "") continue
    if (parts[i] == "..") { if (k > 0) k--; continue }
    out[++k] = parts[i]
  }
  p = ""
  for (i = 1; i <= k; i++) p = p (i > 1 ? "/" : "") out[i]
  return p
}
function check_include(file, lineno, name, quoted,    dir, cand, n, c, i, ok, lf, lt, base) {
  base = name; sub(/.*\//, "", base)
  if (name ~ /\.(c|cc|cpp)$/) {
    if (!allowed(file, "\"" base "\""))
      report(file, lineno, "includes the source file \"" name "\": build it on its own (CMake " \
             "picks the platform file) and share declarations through a header")
    return
  }
  if (base == "uv.h" || name ~ /^uv\// || name ~ /^cjson\// || base ~ /^cJSON(_Utils)?\.h$/) {
    lf = layer(file)
    if ((lf == "common" || lf == "public" || (lf == "client" && file ~ /^client\/[^\/]*$/)) &&
        !allowed(file, (quoted ? "\"" name "\"" : "<" name ">")))
      report(file, lineno, "includes " (quoted ? "\"" name "\"" : "<" name ">") ": libuv and " \
             "cJSON are the broker'"'"'s (service/) and mbctl'"'"'s and the tools'"'"'; common/ and " \
             "the client library (client/*.c, client/include/) use neither")
    return
  }
  if (!os_exempt && (oshdr[tolower(name)] || (!quoted && tolower(name) ~ oshdrre) ||
                     (name ~ /^[a-z]+\// && osdir[substr(name, 1, index(name, "/"))]))) {
    if (!allowed(file, "<" name ">"))
      report(file, lineno, "includes the OS header <" name "> outside the platform layer " \
             "(common/os_*.c) and the service glue (service/svc_*.c): use common/os.h")
    return
  }
  if (!quoted) return
  dir = file; sub(/\/[^\/]*$/, "", dir)
  cand = ""
  if (ishdr[normalize(dir "/" name)]) cand = normalize(dir "/" name)
  else if (name ~ /\//) { if (ishdr[normalize(name)]) cand = normalize(name) }
  else cand = byname[base]
  if (cand == "") return  # not a project header (a generated one: mb_events.h)
  lf = layer(file)
  n = split(cand, c, " "); ok = 0
  for (i = 1; i <= n; i++) { lt = layer(c[i]); if (may_include(lf, lt)) ok = 1 }
  if (!ok && !allowed(file, "\"" name "\""))
    report(file, lineno, "includes \"" name "\" (" cand ") the wrong way: " rule[lf])
}

# ---- per file: strip comments and literals, keeping line numbers ------------------------------
FNR == 1 {
  incomment = 0
  os_exempt = (FILENAME ~ /^common\/os_[^\/]*\.c$/ || FILENAME == "common/os_setup.h" ||
               FILENAME ~ /^service\/svc_[^\/]*\.c$/)
  call_exempt = os_exempt || FILENAME ~ /^client\/examples\//
  cond_exempt = call_exempt
  inc_exempt = os_exempt
}
{
  raw = $0; out = ""; i = 1; L = length(raw)
  while (i <= L) {
    ch = substr(raw, i, 1); two = substr(raw, i, 2)
    if (incomment) {
      if (two == "*/") { incomment = 0; i += 2; out = out " " } else i++
      continue
    }
    if (two == "/*") { incomment = 1; i += 2; continue }
    if (two == "//") break
    if (ch == "\"" || ch == "\047") {
      q = ch; out = out q; i++
      while (i <= L) {
        ch = substr(raw, i, 1)
        if (ch == "\\") { i += 2; continue }
        i++
        if (ch == q) break
      }
      out = out q
      continue
    }
    out = out ch; i++
  }
  # OS conditionals (rule c): #if _WIN32, #ifdef __linux__, MB_OS_WIN in an expression, ...
  if (!cond_exempt && match(out, osmacro)) {
    id = substr(out, RSTART, RLENGTH); gsub(/^[^A-Za-z0-9_]|[^A-Za-z0-9_]$/, "", id)
    if (!allowed(FILENAME, id))
      report(FILENAME, FNR, "tests the OS (" id ") outside the platform layer " \
             "(common/os_*.c, common/os_setup.h) and the service glue (service/svc_*.c): " \
             "add a capability or a function to common/os.h, or a macro to os_setup.h")
  }
  # includes: from the cleaned line (an include inside a comment does not count), name from raw
  if (out ~ /^[ \t]*#[ \t]*include[ \t]*["<]/) {
    r = raw; sub(/^[ \t]*#[ \t]*include[ \t]*/, "", r)
    quoted = substr(r, 1, 1) == "\""
    r = substr(r, 2); sub(/[">].*$/, "", r)
    if (FILENAME ~ /^client\/examples\// && quoted)
      check_include(FILENAME, FNR, r, 1)
    else if (FILENAME ~ /^client\/examples\//)
      ;  # an example is a program: any system header
    else
      check_include(FILENAME, FNR, r, quoted)
    next
  }
  if (out ~ /^[ \t]*#/) next  # other preprocessor lines
  if (call_exempt) next
  # calls: an identifier followed by "(", not a member (. or ->) and not a declaration of ours
  s = out
  while (match(s, /[A-Za-z_][A-Za-z0-9_]*[ \t]*\(/)) {
    id = substr(s, RSTART, RLENGTH); sub(/[ \t]*\($/, "", id)
    pre = RSTART > 1 ? substr(s, RSTART - 1, 1) : ""
    pre2 = RSTART > 2 ? substr(s, RSTART - 2, 2) : ""
    s = substr(s, RSTART + RLENGTH)
    if (pre == "." || pre2 == "->") continue
    if (oscall[id] || id ~ oscallre || id ~ win32) {
      if (!allowed(FILENAME, id))
        report(FILENAME, FNR, "calls " id "() outside the platform layer (common/os_*.c) and " \
               "the service glue (service/svc_*.c): add or use a function of common/os.h")
    }
  }
}
END {
  for (i = 1; i <= na; i++)
    if (!used[i])
      printf "check-layers.sh: note: %s: the exception \"%s %s\" matched nothing (remove it?)\n",
             allowfile, aglob[i], aname[i] > "/dev/stderr"
  if (bad) {
    printf "check-layers.sh: %d violation(s) of the layering (README, \"Layering\")\n", bad > "/dev/stderr"
    exit 1
  }
}
' $files
echo "check-layers.sh: layering and OS calls ok ($(wc -w <<<"$files") files)"
