/*
 * state.c - helpers on the shared layout used by broker and client alike: object names,
 * validation of a mapped control block, and the torn-read-free status message.
 */
#include "layout.h"

#include <stdio.h>
#include <string.h>

#include "error.h"
#include "os.h"

/* n as snprintf returned it for buf[size]: 0, or the error naming what did not fit. */
static int mb__object_name_fits(int n, size_t size, const char *instance, const char *kind,
                                const char *name) {
  if (n < 0 || (size_t)n >= size)
    return mb__errorf(MB_ENAMETOOLONG, 0, "object name for instance '%s' %s '%s' is too long",
                      instance, kind, name);
  return 0;
}

int mb__object_name(char *buf, size_t size, const char *instance, const char *region) {
  if (region == NULL)
    return mb__object_name_fits(snprintf(buf, size, "membroker.%s.state", instance), size, instance,
                                "control block", "state");
  return mb__object_name_fits(snprintf(buf, size, "membroker.%s.region.%s", instance, region), size,
                              instance, "region", region);
}

int mb__pool_object_name(char *buf, size_t size, const char *instance, const char *pool) {
  return mb__object_name_fits(snprintf(buf, size, "membroker.%s.pool.%s", instance, pool), size,
                              instance, "pool", pool);
}

int mb__map_object_name(char *buf, size_t size, const char *instance, const char *name,
                        uint32_t seq) {
  return mb__object_name_fits(
      snprintf(buf, size, "membroker.%s.map.%s.%u", instance, name, (unsigned)seq), size, instance,
      "map", name);
}

int mb__state_check(const mb_state_t *st, uint64_t mapped) {
  /* `initialised` first (acquire): once READY, the header the broker wrote before it is
   * visible. Before that, a block of zeros (or with our magic) is one being built: not
   * running yet, so an attach that waits tries again; anything else is not ours. */
  if (mapped >= 64 && mb_load32(&st->initialised) != MB_STATE_READY) {
    uint64_t magic;
    memcpy(&magic, (const void *)&st->magic, sizeof magic);
    if (magic == 0 || magic == MB_STATE_MAGIC)
      return mb__errorf(MB_ENOTRUNNING, 0, "control block is not initialised yet");
  }
  if (mapped < 64 || st->magic != MB_STATE_MAGIC)
    return mb__errorf(MB_EBADMAGIC, 0, "control block: magic %016llx, expected %016llx",
                      mapped < 64 ? 0ull : (unsigned long long)st->magic,
                      (unsigned long long)MB_STATE_MAGIC);
  if (st->layout_version != MB_LAYOUT_VERSION)
    return mb__errorf(MB_EVERSION, 0, "control block: layout version %u, this build reads %u",
                      (unsigned)st->layout_version, (unsigned)MB_LAYOUT_VERSION);
  if (st->header_size != offsetof(mb_state_t, game) || st->total_size != sizeof(mb_state_t) ||
      st->total_size > mapped)
    return mb__errorf(MB_EVERSION, 0,
                      "control block: header %u / total %llu bytes, this build expects %u / %u "
                      "(mapped %llu)",
                      (unsigned)st->header_size, (unsigned long long)st->total_size,
                      (unsigned)offsetof(mb_state_t, game), (unsigned)sizeof(mb_state_t),
                      (unsigned long long)mapped);
  if (mb_load32(&st->initialised) != MB_STATE_READY)
    return mb__errorf(MB_ENOTRUNNING, 0, "control block is not initialised yet");
  if (st->region_count > MB_REGIONS_MAX)
    return mb__errorf(MB_ECORRUPT, 0, "control block: region_count %u (at most %u)",
                      (unsigned)st->region_count, (unsigned)MB_REGIONS_MAX);
  if (st->max_clients == 0 || st->max_clients > MB_CLIENTS_MAX)
    return mb__errorf(MB_ECORRUPT, 0, "control block: max_clients %u (1 to %u)",
                      (unsigned)st->max_clients, (unsigned)MB_CLIENTS_MAX);
  if (st->pool_count > MB_POOLS_MAX)
    return mb__errorf(MB_ECORRUPT, 0, "control block: pool_count %u (at most %u)",
                      (unsigned)st->pool_count, (unsigned)MB_POOLS_MAX);
  return 0;
}

/* [off, off + len) inside [0, size), without overflow. */
static int mb__fits(uint64_t off, uint64_t len, uint64_t size) {
  return off <= size && len <= size - off;
}

/* [a, a + alen) and [b, b + blen) share no byte (both already inside one section). */
static int mb__apart(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
  return a + alen <= b || b + blen <= a;
}

static int mb__pow2(uint64_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

/*
 * The descriptor is copied first (its fixed part), so the checks see one set of values even
 * while another process writes it; the caller reads the shared fields again, so a value
 * forged after the check is the callee's to range-check (pool.c, slots.c) or the broker's
 * to repair (service/trust.c).
 */
int mb__region_desc_check(const mb_region_desc_t *src, uint64_t section) {
  mb_region_desc_t d;
  uint64_t pages, table;
  memcpy(&d, src, offsetof(mb_region_desc_t, committed));
  if (memchr(d.name, '\0', sizeof d.name) == NULL)
    return mb__errorf(MB_ECORRUPT, 0, "region descriptor: name is not NUL-terminated");
  if (!mb__pow2(d.page_size))
    return mb__errorf(MB_ECORRUPT, 0, "region '%s': page_size %u is not a power of two", d.name,
                      (unsigned)d.page_size);
  if (d.section_size == 0 || (section != 0 && d.section_size > section))
    return mb__errorf(MB_ECORRUPT, 0, "region '%s': section_size %llu, the section holds %llu",
                      d.name, (unsigned long long)d.section_size, (unsigned long long)section);
  if (d.size > d.section_size)
    return mb__errorf(MB_ECORRUPT, 0, "region '%s': size %llu past section_size %llu", d.name,
                      (unsigned long long)d.size, (unsigned long long)d.section_size);
  if ((d.flags & ~(uint32_t)(MB_REGION_LAZY | MB_REGION_LARGE_PAGES)) != 0)
    return mb__errorf(MB_ECORRUPT, 0, "region '%s': unknown flags %#x", d.name, (unsigned)d.flags);
  if (d.slot_size == 0) {
    if (d.slot_count != 0 || d.table_offset != 0)
      return mb__errorf(
          MB_ECORRUPT, 0, "region '%s': slot_count %llu / table_offset %llu without a slot size",
          d.name, (unsigned long long)d.slot_count, (unsigned long long)d.table_offset);
    return 0;
  }
  if (d.slot_count == 0 || d.slot_count > d.size / d.slot_size)
    return mb__errorf(MB_ECORRUPT, 0,
                      "region '%s': slot_count %llu of %u bytes in a region of %llu bytes", d.name,
                      (unsigned long long)d.slot_count, (unsigned)d.slot_size,
                      (unsigned long long)d.size);
  pages = d.size / d.page_size;
  if (pages > (UINT64_MAX >> 4) || d.slot_count > (UINT64_MAX >> 6))
    return mb__errorf(MB_ECORRUPT, 0, "region '%s': %llu pages, %llu slots", d.name,
                      (unsigned long long)pages, (unsigned long long)d.slot_count);
  table = ((pages * 4 + 7) & ~(uint64_t)7) + d.slot_count * sizeof(mb_slot_t);
  if (d.table_offset < d.size || !mb__fits(d.table_offset, table, d.section_size))
    return mb__errorf(MB_ECORRUPT, 0,
                      "region '%s': slot table at %llu (%llu bytes) outside the section's table "
                      "part [%llu, %llu)",
                      d.name, (unsigned long long)d.table_offset, (unsigned long long)table,
                      (unsigned long long)d.size, (unsigned long long)d.section_size);
  return 0;
}

int mb__pool_desc_check(const mb_pool_desc_t *src, uint64_t section) {
  mb_pool_desc_t d;
  uint64_t links, stamps, blocks, intents = (uint64_t)MB_POOL_INTENTS * sizeof(mb_pool_intent_t);
  uint64_t mags = (uint64_t)MB_POOL_INTENTS * sizeof(mb_pool_mag_t);
  memcpy(&d, src, offsetof(mb_pool_desc_t, head));
  if (memchr(d.name, '\0', sizeof d.name) == NULL)
    return mb__errorf(MB_ECORRUPT, 0, "pool descriptor: name is not NUL-terminated");
  if (d.object_size == 0 || !mb__pow2(d.align) || d.stride < d.object_size ||
      d.stride % d.align != 0 || d.capacity == 0)
    return mb__errorf(MB_ECORRUPT, 0,
                      "pool '%s': object_size %u, align %u, stride %u, capacity %u do not agree",
                      d.name, (unsigned)d.object_size, (unsigned)d.align, (unsigned)d.stride,
                      (unsigned)d.capacity);
  if ((d.flags & ~(uint32_t)MB_POOL_F_DEBUG) != 0)
    return mb__errorf(MB_ECORRUPT, 0, "pool '%s': unknown flags %#x", d.name, (unsigned)d.flags);
  if (d.section_size == 0 || (section != 0 && d.section_size > section))
    return mb__errorf(MB_ECORRUPT, 0, "pool '%s': section_size %llu, the section holds %llu",
                      d.name, (unsigned long long)d.section_size, (unsigned long long)section);
  links = (uint64_t)d.capacity * sizeof(mb_au64);
  stamps = (uint64_t)d.capacity * sizeof(mb_au32);
  blocks = (uint64_t)d.capacity * d.stride;
  {
    /* Each part after the intent records, aligned, inside the section, apart from the others. */
    const struct {
      const char *what;
      uint64_t off, len, align;
    } part[4] = {{"magazines", d.mags_offset, mags, 64},
                 {"links", d.links_offset, links, 8},
                 {"stamps", d.stamps_offset, stamps, 4},
                 {"blocks", d.blocks_offset, blocks, d.align}};
    int i, j;
    for (i = 0; i < 4; i++) {
      if (part[i].off % part[i].align != 0 || part[i].off < intents ||
          !mb__fits(part[i].off, part[i].len, d.section_size))
        return mb__errorf(MB_ECORRUPT, 0,
                          "pool '%s': %s at %llu (%llu bytes, aligned to %llu) do not fit after "
                          "the intent records in %llu bytes",
                          d.name, part[i].what, (unsigned long long)part[i].off,
                          (unsigned long long)part[i].len, (unsigned long long)part[i].align,
                          (unsigned long long)d.section_size);
      for (j = 0; j < i; j++)
        if (!mb__apart(part[j].off, part[j].len, part[i].off, part[i].len))
          return mb__errorf(MB_ECORRUPT, 0, "pool '%s': %s at %llu and %s at %llu overlap", d.name,
                            part[j].what, (unsigned long long)part[j].off, part[i].what,
                            (unsigned long long)part[i].off);
    }
  }
  return 0;
}

/*
 * Seqlock read: copy the words, then confirm the counter was even and unchanged; retry
 * otherwise. Each word is read atomically, so there is no data race, only a possibly mixed
 * copy, which the counter check throws away. Spins briefly, then naps, and gives up after
 * ~10 ms rather than hang on a writer that died.
 */
int mb__state_read_msg(const mb_state_t *st, char *buf) {
  uint64_t deadline = 0;
  unsigned tries;
  for (tries = 0;; tries++) {
    uint32_t s1 = mb_load32(&st->msg.seq), s2, len;
    size_t i;
    if (!(s1 & 1u)) {
      len = mb_load32_relaxed(&st->msg.len);
      for (i = 0; i < MB_STATUS_MSG_MAX / 8; i++) {
        uint64_t w = mb_load64_relaxed(&st->msg.text[i]);
        memcpy(buf + i * 8, &w, 8);
      }
      mb_fence();
      s2 = mb_load32_relaxed(&st->msg.seq);
      if (s1 == s2) {
        if (len > MB_STATUS_MSG_MAX - 1)
          len = MB_STATUS_MSG_MAX - 1;
        buf[len] = '\0';
        return (int)len;
      }
    }
    if (tries >= 1000) {
      uint64_t now = mb_os_mono_ns();
      if (deadline == 0)
        deadline = now + 10u * 1000000u;
      else if (now > deadline)
        break;
      mb_os_sleep_ms(1);
    }
  }
  buf[0] = '\0';
  return mb__errorf(MB_EBUSY, 0, "status message: a writer is in the middle of it");
}

size_t mb__utf8_invalid(const char *s, size_t n, int nul_ok) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, need, k;
  while (i < n) {
    unsigned c = p[i];
    uint32_t cp;
    if (c < 0x80) {
      if (c == 0 && !nul_ok)
        return i;
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF)
      need = 1, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
      need = 2, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
      need = 3, cp = c & 0x07;
    else
      return i;
    if (n - i <= need)
      return i;
    for (k = 1; k <= need; k++) {
      if ((p[i + k] & 0xC0) != 0x80)
        return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
      return i;
    i += need + 1;
  }
  return n;
}

/* Length of text cut to at most max bytes without splitting a UTF-8 sequence. */
static size_t mb__utf8_cut(const char *text, size_t max) {
  size_t n = strlen(text);
  if (n <= max)
    return n;
  n = max;
  while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
    n--;
  return n;
}

/*
 * The writer side is the counter moving from even s to odd s+1 (CAS); the writer records its
 * identity, writes, and publishes with a CAS from its odd value to the next even one. If the
 * counter stays odd, the recorded writer is checked: only when it is dead (or never got to
 * record itself within a second) is its turn taken over, with a CAS from its odd value to the
 * next odd one, so at most one process takes over and the dead one could never publish.
 */
int mb__state_write_msg(mb_state_t *st, const char *text) {
  char buf[MB_STATUS_MSG_MAX];
  size_t n = mb__utf8_cut(text, MB_STATUS_MSG_MAX - 1), i;
  uint32_t s = mb_load32(&st->msg.seq), mine;
  uint64_t waited_since = 0;
  mb_os_procid_t self;

  for (;;) {
    if (!(s & 1u)) {
      if (mb_cas32(&st->msg.seq, &s, s + 1)) {
        mine = s + 1;
        break;
      }
      continue;
    }
    /* Odd: someone writes. Normally gone in a microsecond; look closer after a while. */
    if (waited_since == 0) {
      waited_since = mb_os_mono_ns();
    } else if (mb_os_mono_ns() - waited_since > 1000000u) {
      mb_os_procid_t w;
      uint64_t age = mb_os_mono_ns() - waited_since;
      w.pid = (uint32_t)mb_load64(&st->msg.writer_pid);
      w.start_time = mb_load64(&st->msg.writer_start_time);
      if ((w.pid != 0 && mb_os_proc_alive(&w) == 0) || (w.pid == 0 && age > 1000000000u)) {
        if (mb_cas32(&st->msg.seq, &s, s + 2)) {
          mine = s + 2;
          break;
        }
        continue;
      }
      if (age > 1000000000u)
        return mb__errorf(MB_EBUSY, 0, "status message: process %u holds it for over a second",
                          (unsigned)w.pid);
      mb_os_sleep_ms(1);
    }
    s = mb_load32(&st->msg.seq);
  }
  mb_os_proc_self(&self);
  mb_store64(&st->msg.writer_pid, self.pid);
  mb_store64(&st->msg.writer_start_time, self.start_time);
  mb_fence();
  memset(buf, 0, sizeof buf);
  memcpy(buf, text, n);
  for (i = 0; i < MB_STATUS_MSG_MAX / 8; i++) {
    uint64_t w;
    memcpy(&w, buf + i * 8, 8);
    mb_store64_relaxed(&st->msg.text[i], w);
  }
  mb_store32(&st->msg.len, (uint32_t)n);
  mb_store64(&st->msg.writer_pid, 0);
  /* Publish. Failing here means our turn was taken over: the other writer's text stands. */
  if (!mb_cas32(&st->msg.seq, &mine, mine + 1))
    return mb__errorf(MB_EBUSY, 0, "status message: another writer took over");
  return 0;
}

void mb__name_get(const mb_au64 *words, char *buf) {
  size_t w;
  for (w = 0; w < 4; w++) {
    uint64_t v = mb_load64_relaxed(&words[w]);
    memcpy(buf + w * 8, &v, 8);
  }
  buf[31] = '\0';
}

void mb__name_set(mb_au64 *words, const char *name) {
  char buf[32];
  size_t w, n = strlen(name);
  memset(buf, 0, sizeof buf);
  memcpy(buf, name, n < sizeof buf - 1 ? n : sizeof buf - 1);
  for (w = 0; w < 4; w++) {
    uint64_t v;
    memcpy(&v, buf + w * 8, 8);
    mb_store64_relaxed(&words[w], v);
  }
}

void mb__client_name_get(const mb_client_entry_t *e, char *buf) {
  mb__name_get(e->name, buf);
}

void mb__client_name_set(mb_client_entry_t *e, const char *name) {
  mb__name_set(e->name, name);
}
