/*
 * hash.c - XXH3-64 for hash.h, from xxHash used header-only: Debian's libxxhash-dev natively,
 * the headers of Debian's xxhash source package built for mingw by scripts/deps.sh for
 * Windows. XXH_INLINE_ALL compiles the functions here, private to this file, so nothing links
 * libxxhash and the build picks the code path (SSE2 on x86-64) at compile time.
 */
#include "hash.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "layout.h" /* MB_LAYOUT_ASSERT */

MB_LAYOUT_ASSERT(sizeof(XXH3_state_t) + 63 <= sizeof(((mb_hash_t *)0)->state),
                 "mb_hash_t holds an XXH3_state_t at a 64-byte boundary");

/* The XXH3 state inside h, at the first 64-byte boundary (XXH3_state_t asks for it). */
static XXH3_state_t *mb__hash_state(const mb_hash_t *h) {
  uintptr_t p = (uintptr_t)h->state;
  return (XXH3_state_t *)((p + 63u) & ~(uintptr_t)63u);
}

uint64_t mb__hash64(const void *data, uint64_t size) {
  static const unsigned char none = 0;
  if (size == 0)
    data = &none;
  return (uint64_t)XXH3_64bits(data, (size_t)size);
}

void mb__hash_init(mb_hash_t *h) {
  XXH3_state_t *s = mb__hash_state(h);
  XXH3_INITSTATE(s);
  (void)XXH3_64bits_reset(s);
}

void mb__hash_more(mb_hash_t *h, const void *data, uint64_t size) {
  if (size == 0)
    return;
  (void)XXH3_64bits_update(mb__hash_state(h), data, (size_t)size);
}

uint64_t mb__hash_end(const mb_hash_t *h) {
  return (uint64_t)XXH3_64bits_digest(mb__hash_state(h));
}
