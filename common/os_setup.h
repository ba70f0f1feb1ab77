/*
 * os_setup.h - detect the operating system once.
 *
 * The platform files (common/os_*.c) and the service glue (service/svc_*.c) test
 * MB_OS_WIN / MB_OS_POSIX with #if (they are always defined to 0 or 1; the build uses -Wundef
 * so a typo is an error); _WIN32 appears here only. Portable code does not branch on the OS:
 * it calls common/os.h, reads its capabilities, or uses a fact from here (MB_OS_NAME).
 * scripts/check-layers.sh enforces this.
 */
#ifndef MB_OS_SETUP_H
#define MB_OS_SETUP_H

#if defined(_WIN32)
#define MB_OS_WIN 1
#define MB_OS_POSIX 0
#else
#define MB_OS_WIN 0
#define MB_OS_POSIX 1
#endif

/* The platform family as the broker reports it (its build id: "gcc 12.2.0, posix"). */
#if MB_OS_WIN
#define MB_OS_NAME "windows"
#else
#define MB_OS_NAME "posix"
#endif

#if defined(_MSC_VER) && !defined(__clang__)
#define MB_THREAD_LOCAL __declspec(thread)
#define MB_PRINTF(fmt, args)
#elif defined(__MINGW32__) && !defined(__clang__)
/* Built with __USE_MINGW_ANSI_STDIO=1, so the C99 formats (%zu, %lld) are the ones checked. */
#define MB_THREAD_LOCAL _Thread_local
#define MB_PRINTF(fmt, args) __attribute__((format(gnu_printf, fmt, args)))
#else
#define MB_THREAD_LOCAL _Thread_local
#define MB_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#endif

/* A function kept out of line, so that its caller's fast path stays small (no register
 * saves for the rare case). */
#if defined(_MSC_VER) && !defined(__clang__)
#define MB_COLD __declspec(noinline)
#else
#define MB_COLD __attribute__((noinline, cold))
#endif

/* A thread-local on a hot path: on ELF, the initial-exec model (an offset from the thread
 * pointer, no __tls_get_addr call in a shared library; it takes a few bytes of the static TLS
 * that the C library keeps for libraries loaded later). */
#if defined(__ELF__) && (defined(__GNUC__) || defined(__clang__))
#define MB_THREAD_LOCAL_FAST _Thread_local __attribute__((tls_model("initial-exec")))
#else
#define MB_THREAD_LOCAL_FAST MB_THREAD_LOCAL
#endif

#endif /* MB_OS_SETUP_H */
