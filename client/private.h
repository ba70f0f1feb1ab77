/*
 * private.h - what the client library's files tell each other and no one else.
 */
#ifndef MB_CLIENT_PRIVATE_H
#define MB_CLIENT_PRIVATE_H

#include "membroker.h"

/* Whether another thread may read the pool's or heap's statistics while it is in use. */
int mb__lpool_threadsafe(const mb_lpool_t *pool);
int mb__heap_threadsafe(const mb_heap_t *heap);

#endif /* MB_CLIENT_PRIVATE_H */
