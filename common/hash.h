/*
 * hash.h - the one checksum of membroker's files: XXH3-64 (xxHash 0.8), over map images
 * (the GMAP header's checksum, gmap.h) and saved state (persist.h). The library behind it is
 * chosen in hash.c only; nothing else includes xxhash.h.
 *
 * XXH3-64 with seed 0 and the default secret: the value xxh3sum / XXH3_64bits give, so a
 * file's checksum can be checked with xxHash's own tools (`xxhsum -H3`, which prints it
 * big-endian hex).
 */
#ifndef MB_HASH_H
#define MB_HASH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MB_HASH_NAME "XXH3-64" /* how messages and tools name the checksum */

/* XXH3-64 of data[0..size) (data may be NULL when size is 0). Never fails. */
uint64_t mb__hash64(const void *data, uint64_t size);

/*
 * A checksum built up a piece at a time: mb__hash_init, mb__hash_more for each piece in order,
 * mb__hash_end (which may be called more than once, and more pieces added after). The result
 * is the mb__hash64 of all the pieces joined. The state is plain memory (on the stack or in a
 * struct, no cleanup); hash.c aligns its working state inside it.
 */
typedef struct mb_hash_s {
  unsigned char state[704]; /* room for xxHash's XXH3_state_t (576 bytes) at a 64-byte boundary */
} mb_hash_t;
void mb__hash_init(mb_hash_t *h);
void mb__hash_more(mb_hash_t *h, const void *data, uint64_t size);
uint64_t mb__hash_end(const mb_hash_t *h);

#ifdef __cplusplus
}
#endif

#endif /* MB_HASH_H */
