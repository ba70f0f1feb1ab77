/*
 * storm.c - the truth after a kill storm (storm.h): free stack, bump, stamps and intent records
 * of a pool; slot owners, page words and slots_used of a slotted region.
 */
#include "storm.h"

#include <stdlib.h>
#include <string.h>

#include "task.h"

uint64_t mb_storm_free_stack_blocks(mb_pool_map_t *p) {
  uint64_t n = 0, h = mb_load64(&p->desc->head);
  uint32_t cap = p->desc->capacity, first = MB_POOL_WORD_LOW(h);
  while (first != 0 && first <= cap && n <= cap) {
    uint32_t i = first - 1, k = 0;
    uint64_t l0 = mb_load64(&p->links[i]);
    for (;;) {
      uint32_t low = (uint32_t)(mb_load64(&p->links[i]) & 0xFFFFFFFFu);
      n++;
      if (low == 0 || low > cap || ++k == MB_POOL_CHAIN || n > cap)
        break;
      i = low - 1;
    }
    first = (uint32_t)(l0 >> 32);
  }
  return n;
}

uint64_t mb_storm_never_used(mb_pool_map_t *p) {
  uint64_t b = MB_POOL_WORD_LOW(mb_load64(&p->desc->bump));
  return b < p->desc->capacity ? p->desc->capacity - b : 0;
}

uint64_t mb_storm_held_blocks(mb_pool_map_t *p) {
  uint64_t n = 0;
  uint32_t i;
  for (i = 0; i < p->desc->capacity; i++)
    n += mb_load32(&p->stamps[i]) != MB_STAMP_FREE;
  return n;
}

int64_t mb_storm_counted_out(mb_pool_map_t *p) {
  uint64_t a, f;
  mb__pool_totals(p, &a, &f);
  return (int64_t)(a - f);
}

void mb_storm_look(mb_region_map_t *r, mb_storm_slots_t *t) {
  mb_region_desc_t *d = r->desc;
  mb_au32 *pages = mb__region_pages(d, r->base);
  mb_slot_t *slots = mb__region_slots(d, r->base);
  uint64_t npages = d->size / d->page_size, p, i, first, last;
  uint32_t *owned = calloc((size_t)npages, sizeof *owned);
  ASSERT(owned != NULL);
  memset(t, 0, sizeof *t);
  for (i = 0; i < d->slot_count; i++) {
    if (mb_load64(&slots[i].owner) == 0)
      continue;
    t->owned++;
    mb__slot_page_range(i, d->slot_size, d->page_size, &first, &last);
    for (p = first; p <= last; p++)
      owned[p]++; /* a page's users: the used slots that lie on it */
  }
  for (p = 0; p < npages; p++) {
    uint32_t v = mb_load32(&pages[p]), users = v & MB_PAGE_USERS_MASK;
    t->busy += (v & MB_PAGE_BUSY) != 0;
    t->committed += (v & MB_PAGE_COMMITTED) != 0;
    if (users != owned[p]) {
      t->users_wrong++;
      t->users_extra += users - owned[p];
    }
  }
  free(owned);
}

void mb_storm_spin_us(uint64_t us) {
  uint64_t end = mb_os_mono_ns() + us * 1000u;
  while (mb_os_mono_ns() < end) {
  }
}

uint32_t mb_storm_rnd(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

void mb_storm_spawn(mb_os_child_t *k, const char *child, const char *a0, const char *a1,
                    const char *a2) {
  uint64_t deadline = mb_os_mono_ns() + 5000000000u;
  int rc, tries = 0;
  while ((rc = mb_test_spawn(k, child, a0, a1, a2, (char *)NULL)) != 0) {
    tries++;
    if (mb_os_mono_ns() > deadline)
      FAIL("spawn of child %s refused %d times in 5 s: %s (%d): %s", child, tries, mb_err_name(rc),
           rc, mb_last_error());
    mb_os_sleep_ms(20); /* a transient refusal: try again */
  }
  if (tries > 0)
    printf("# spawn of child %s refused %d times before it started\n", child, tries);
}
