/*
 * state.c - helpers on the shared layout used by broker and client alike: object names,
 * validation of a mapped control block, and the torn-read-free status message.
 */
#include "layout.h"

#include <stdio.h>
#include <string.h>

#include "error.h"

int mb__object_name(char *buf, size_t size, const char *instance, const char *region) {
  int n = region ? snprintf(buf, size, "membroker.%s.region.%s", instance, region)
                 : snprintf(buf, size, "membroker.%s.state", instance);
  if (n < 0 || (size_t)n >= size)
    return mb__errorf(MB_ENAMETOOLONG, 0, "object name for instance '%s'%s%s is too long",
                      instance, region ? " region " : "", region ? region : "");
  return 0;
}

int mb__state_check(const mb_state_t *st, uint64_t mapped) {
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
  if (st->region_count > MB_REGIONS_MAX || st->max_clients > MB_CLIENTS_MAX)
    return mb__errorf(MB_EBADMAGIC, 0, "control block: %u regions, %u clients out of range",
                      (unsigned)st->region_count, (unsigned)st->max_clients);
  return 0;
}

/*
 * Seqlock read: copy the words, then confirm the counter was even and unchanged; retry
 * otherwise. Each word is read atomically, so there is no data race, only a possibly mixed
 * copy, which the counter check throws away. A writer that died mid-update leaves the counter
 * odd: after many tries the reader returns the (possibly mixed, always NUL-terminated) copy
 * rather than spin forever.
 */
size_t mb__state_read_msg(const mb_state_t *st, char *buf) {
  unsigned tries;
  uint32_t len = 0;
  for (tries = 0; tries < 100000; tries++) {
    uint32_t s1 = mb_load32(&st->msg.seq), s2;
    size_t i;
    if (s1 & 1u)
      continue;
    len = mb_load32_relaxed(&st->msg.len);
    for (i = 0; i < MB_STATUS_MSG_MAX / 8; i++) {
      uint64_t w = mb_load64_relaxed(&st->msg.text[i]);
      memcpy(buf + i * 8, &w, 8);
    }
    mb_fence();
    s2 = mb_load32_relaxed(&st->msg.seq);
    if (s1 == s2)
      break;
  }
  if (len > MB_STATUS_MSG_MAX - 1)
    len = MB_STATUS_MSG_MAX - 1;
  buf[len] = '\0';
  return len;
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

void mb__state_write_msg(mb_state_t *st, const char *text) {
  char buf[MB_STATUS_MSG_MAX];
  size_t n = mb__utf8_cut(text, MB_STATUS_MSG_MAX - 1), i;
  uint32_t s = mb_load32(&st->msg.seq);
  unsigned spins = 0;
  /* Take the writer side: move the counter from even s to odd s+1. */
  for (;;) {
    if (!(s & 1u)) {
      if (mb_cas32(&st->msg.seq, &s, s + 1))
        break;
      continue;
    }
    if (++spins > 1000000u) {
      s -= 1; /* a writer died mid-update: take its place (the counter is already odd) */
      break;
    }
    s = mb_load32(&st->msg.seq);
  }
  mb_fence();
  memset(buf, 0, sizeof buf);
  memcpy(buf, text, n);
  for (i = 0; i < MB_STATUS_MSG_MAX / 8; i++) {
    uint64_t w;
    memcpy(&w, buf + i * 8, 8);
    mb_store64_relaxed(&st->msg.text[i], w);
  }
  mb_store32(&st->msg.len, (uint32_t)n);
  mb_store32(&st->msg.seq, s + 2);
}
