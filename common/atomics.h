/*
 * atomics.h - atomic integers for memory shared between processes.
 *
 * Cross-process fields are wrapped in one-member structs (mb_au32, mb_au64) so that a plain
 * read or write of them does not compile: every access goes through these functions. The
 * wrappers are lock-free, address-free and have the size and alignment of the integer, which
 * layout.h static-asserts. Acquire/release by default; *_relaxed where a counter needs no
 * ordering.
 */
#ifndef MB_ATOMICS_H
#define MB_ATOMICS_H

#include <stdint.h>

#include "os_setup.h"

typedef struct mb_au32_s {
  volatile uint32_t v_;
} mb_au32;

typedef struct mb_au64_s {
  volatile uint64_t v_;
} mb_au64;

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
/* x86-64 MSVC: aligned loads and stores are atomic; Interlocked* are full barriers. */
static __inline uint32_t mb_load32(const mb_au32 *a) {
  uint32_t v = a->v_;
  _ReadWriteBarrier();
  return v;
}
static __inline uint64_t mb_load64(const mb_au64 *a) {
  uint64_t v = a->v_;
  _ReadWriteBarrier();
  return v;
}
static __inline void mb_store32(mb_au32 *a, uint32_t v) {
  _InterlockedExchange((volatile long *)&a->v_, (long)v);
}
static __inline void mb_store64(mb_au64 *a, uint64_t v) {
  _InterlockedExchange64((volatile __int64 *)&a->v_, (__int64)v);
}
static __inline uint32_t mb_add32(mb_au32 *a, uint32_t d) {
  return (uint32_t)_InterlockedExchangeAdd((volatile long *)&a->v_, (long)d);
}
static __inline uint64_t mb_add64(mb_au64 *a, uint64_t d) {
  return (uint64_t)_InterlockedExchangeAdd64((volatile __int64 *)&a->v_, (__int64)d);
}
static __inline int mb_cas32(mb_au32 *a, uint32_t *expected, uint32_t desired) {
  uint32_t old = (uint32_t)_InterlockedCompareExchange((volatile long *)&a->v_, (long)desired,
                                                       (long)*expected);
  if (old == *expected)
    return 1;
  *expected = old;
  return 0;
}
static __inline int mb_cas64(mb_au64 *a, uint64_t *expected, uint64_t desired) {
  uint64_t old = (uint64_t)_InterlockedCompareExchange64((volatile __int64 *)&a->v_,
                                                         (__int64)desired, (__int64)*expected);
  if (old == *expected)
    return 1;
  *expected = old;
  return 0;
}
#define mb_load32_relaxed mb_load32
#define mb_load64_relaxed mb_load64
#define mb_store64_relaxed mb_store64
#define mb_add64_relaxed mb_add64
#else
static inline uint32_t mb_load32(const mb_au32 *a) {
  return __atomic_load_n(&a->v_, __ATOMIC_ACQUIRE);
}
static inline uint64_t mb_load64(const mb_au64 *a) {
  return __atomic_load_n(&a->v_, __ATOMIC_ACQUIRE);
}
static inline uint32_t mb_load32_relaxed(const mb_au32 *a) {
  return __atomic_load_n(&a->v_, __ATOMIC_RELAXED);
}
static inline uint64_t mb_load64_relaxed(const mb_au64 *a) {
  return __atomic_load_n(&a->v_, __ATOMIC_RELAXED);
}
static inline void mb_store32(mb_au32 *a, uint32_t v) {
  __atomic_store_n(&a->v_, v, __ATOMIC_RELEASE);
}
static inline void mb_store64(mb_au64 *a, uint64_t v) {
  __atomic_store_n(&a->v_, v, __ATOMIC_RELEASE);
}
static inline void mb_store64_relaxed(mb_au64 *a, uint64_t v) {
  __atomic_store_n(&a->v_, v, __ATOMIC_RELAXED);
}
/* Fetch-and-add; returns the old value. */
static inline uint32_t mb_add32(mb_au32 *a, uint32_t d) {
  return __atomic_fetch_add(&a->v_, d, __ATOMIC_ACQ_REL);
}
static inline uint64_t mb_add64(mb_au64 *a, uint64_t d) {
  return __atomic_fetch_add(&a->v_, d, __ATOMIC_ACQ_REL);
}
static inline uint64_t mb_add64_relaxed(mb_au64 *a, uint64_t d) {
  return __atomic_fetch_add(&a->v_, d, __ATOMIC_RELAXED);
}
/* Compare-and-swap; on failure *expected receives the current value. Returns 1 on success. */
static inline int mb_cas32(mb_au32 *a, uint32_t *expected, uint32_t desired) {
  return __atomic_compare_exchange_n(&a->v_, expected, desired, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE);
}
static inline int mb_cas64(mb_au64 *a, uint64_t *expected, uint64_t desired) {
  return __atomic_compare_exchange_n(&a->v_, expected, desired, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE);
}
#endif

/* A full fence (orders the seqlock's data accesses against its counter). MSVC: the intrinsic
 * that winnt.h's MemoryBarrier() stands for on x86-64 (a locked instruction), declared by
 * <intrin.h> above, so this header needs no windows.h. */
#if defined(_MSC_VER) && !defined(__clang__)
#define mb_fence() __faststorefence()
#else
#define mb_fence() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif

/* Raise *a to at least v (a peak): a CAS only while v is higher than what is there. */
static inline void mb_max64(mb_au64 *a, uint64_t v) {
  uint64_t cur = mb_load64(a);
  while (v > cur && !mb_cas64(a, &cur, v)) {
  }
}

#endif /* MB_ATOMICS_H */
