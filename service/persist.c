/*
 * persist.c - the broker's saved state (see persist.h for the files and their format).
 *
 * Start: mb__persist_open checks every file that would be restored, whole, before the broker
 * makes any object (pass 1: header and checksum of each file; pass 2: its contents against
 * the config), and keeps what it read except the pages' bytes. mb__persist_restore then reads
 * each region file once more, from the start with the checksum, putting the pages in place
 * (pass 3), and fills in the slot tables, the client entries, the counters and the message.
 * Nothing is restored unless every file passed.
 *
 * Flush: each region file is built from a snapshot of its slot table (held slots whose
 * holder has a name) and the pages those slots lie on, copied page by page into a buffer
 * that is both checksummed and written, so a page changing meanwhile never makes a file whose
 * checksum is wrong. Then the state file. Then the renames, region files first.
 */
#include "persist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "hash.h"
#include "log.h"

#define PF_CHUNK (64u * 1024u)            /* bytes read at a time while checksumming */
#define PF_WARN_EVERY_NS (60000000000ull) /* a failing flush is logged once a minute */
#define PF_ADVICE "move it away to start without it"

_Static_assert(sizeof(mb_persist_header_t) == 128, "persist header size");
_Static_assert(offsetof(mb_persist_header_t, checksum) == 120, "checksum is the last field");
_Static_assert(sizeof(mb_persist_game_t) == 296, "persist game state size");
_Static_assert(sizeof(mb_persist_region_t) == 48, "persist region size");
_Static_assert(sizeof(mb_persist_slot_t) == 24, "persist slot size");

/* A slot record and its place in the list, sorted by holder and player (pf_twins). */
typedef struct pf_key_s {
  uint32_t owner;
  uint64_t player, index, pos;
} pf_key_t;

static int pf_key_cmp(const void *a, const void *b) {
  const pf_key_t *x = (const pf_key_t *)a, *y = (const pf_key_t *)b;
  if (x->owner != y->owner)
    return x->owner < y->owner ? -1 : 1;
  if (x->player != y->player)
    return x->player < y->player ? -1 : 1;
  return x->index < y->index ? -1 : (x->index > y->index);
}

/*
 * Keep one slot per player of a game server in recs[0..n) (in rising slot order): a player
 * that a game server holds in two slots keeps the later one, the other record is dropped.
 * Returns the number kept (the kept ones stay in order at the front), or -1 (MB_ENOMEM
 * raised). `warn_path` non-NULL: each drop is logged as a warning naming the file, the game
 * server (owners[owner]), the player and both slots.
 *
 * Why the later slot: a save reads the slot table in rising order while game servers change
 * it, so a player that leaves slot k and is connected again into slot j > k between the two
 * reads is seen in both; j was read last and is where the player is. The save drops k itself
 * (pw_region), so only a damaged or forged file or one of an older release has such twins;
 * the restore drops them the same way (with a warning) instead of holding a slot nobody can
 * find (mb_player_find finds one of the two).
 */
static int64_t pf_twins(mb_persist_slot_t *recs, uint64_t n,
                        const char (*owners)[MB_CLIENT_NAME_MAX], const char *warn_path) {
  pf_key_t *keys;
  uint64_t k, kept, dropped = 0;
  if (n < 2)
    return (int64_t)n;
  if ((keys = malloc((size_t)n * sizeof *keys)) == NULL) {
    (void)mb__errorf(MB_ENOMEM, 0, "persist: %llu slot records", (unsigned long long)n);
    return -1;
  }
  for (k = 0; k < n; k++) {
    keys[k].owner = recs[k].owner;
    keys[k].player = recs[k].player;
    keys[k].index = recs[k].index;
    keys[k].pos = k;
  }
  qsort(keys, (size_t)n, sizeof *keys, pf_key_cmp);
  for (k = 0; k + 1 < n; k++) {
    if (keys[k].owner != keys[k + 1].owner || keys[k].player != keys[k + 1].player)
      continue;
    if (warn_path != NULL)
      mb_log_warn("persist: %s: player %llu of game server '%s' is saved in slots %llu and %llu: "
                  "restored in slot %llu only (the later one; a save of an older release that "
                  "raced a reconnect, or a damaged file)",
                  warn_path, (unsigned long long)(keys[k].player - 1), owners[keys[k].owner],
                  (unsigned long long)keys[k].index, (unsigned long long)keys[k + 1].index,
                  (unsigned long long)keys[k + 1].index);
    recs[keys[k].pos].player = 0; /* dropped */
    dropped++;
  }
  free(keys);
  if (dropped == 0)
    return (int64_t)n;
  for (k = 0, kept = 0; k < n; k++)
    if (recs[k].player != 0)
      recs[kept++] = recs[k];
  return (int64_t)kept;
}

/* One region file as mb__persist_open found it. */
typedef struct pf_region_s {
  int cfg_index; /* the region in the config (and in the broker) */
  char path[MB_PERSIST_PATH_MAX];
  mb_persist_header_t hdr;
  mb_persist_region_t info;
  char (*owners)[MB_CLIENT_NAME_MAX];
  uint32_t *owner_client; /* per owner: its index among the restored clients */
  mb_persist_slot_t *slots;
  uint64_t *bitmap;
  uint64_t bitmap_words;
  uint64_t meta_size; /* body bytes before the bitmap */
} pf_region_t;

struct mb_persist_image_s {
  char path[MB_PERSIST_PATH_MAX]; /* the state file */
  mb_persist_header_t hdr;
  mb_persist_game_t game;
  int nregions;
  pf_region_t regions[MB_REGIONS_MAX];
  uint32_t nclients; /* game servers that held slots, by name across the regions */
  char clients[MB_CLIENTS_MAX][MB_CLIENT_NAME_MAX];
};

/* A counter's base as persist keeps it: the base is signed (modulo 2^64, counters.h) and goes
 * below 0 when a set came under what the attached game servers had added; saved and restored,
 * that is 0, not 2^64 less a few. */
static uint64_t mb__base_to_save(uint64_t base) {
  return (int64_t)base < 0 ? 0 : base;
}

/* Start a file's checksum with its header, the checksum field as 0: where every file's
 * checksum begins (XXH3-64, hash.h). */
static void pf_header_hash(mb_hash_t *hash, const mb_persist_header_t *h) {
  mb_persist_header_t c = *h;
  c.checksum = 0;
  mb__hash_init(hash);
  mb__hash_more(hash, &c, sizeof c);
}

static unsigned pf_popcount(uint64_t w) {
  unsigned n = 0;
  for (; w != 0; w &= w - 1)
    n++;
  return n;
}

static int pf_bit(const uint64_t *bitmap, uint64_t i) {
  return (int)((bitmap[i / 64] >> (i % 64)) & 1u);
}

/* A NUL-terminated string inside a fixed field of `size` bytes, NUL-padded after it. */
static int pf_fixed_string(const char *s, size_t size) {
  size_t n = strnlen(s, size), i;
  if (n == size)
    return 0;
  for (i = n; i < size; i++)
    if (s[i] != '\0')
      return 0;
  return 1;
}

/* Copy a NUL-terminated string into a fixed field, NUL-padded. */
static void pf_set_fixed(char *dst, size_t size, const char *s) {
  size_t n = strlen(s);
  memset(dst, 0, size);
  memcpy(dst, s, n < size ? n : size - 1);
}

/* ---- paths ---------------------------------------------------------------------------------- */

int mb__persist_dir(const mb_config_t *cfg, char *out, size_t size) {
  size_t n = strlen(cfg->persist_dir);
  if (size == 0)
    return mb__errorf(MB_ENAMETOOLONG, 0, "persist.dir: no room");
  out[0] = '\0';
  /* Room for the longest file name after it: "/<instance>.region.<name>.tmp". */
  if (n + 1 + MB_INSTANCE_MAX + 8 + MB_REGION_NAME_MAX + 4 >= size)
    return mb__errorf(MB_ENAMETOOLONG, 0, "persist.dir '%s': the path is too long",
                      cfg->persist_dir);
  memcpy(out, cfg->persist_dir, n + 1);
  while (n > 1 && (out[n - 1] == '/' || out[n - 1] == '\\') && !(n == 3 && out[1] == ':'))
    out[--n] = '\0';
  return 0;
}

int mb__persist_path(const char *dir, const char *instance, const char *region, char *out,
                     size_t size) {
  int n = region ? snprintf(out, size, "%s/%s.region.%s", dir, instance, region)
                 : snprintf(out, size, "%s/%s.state", dir, instance);
  if (n < 0 || (size_t)n + 5 > size) /* and room for ".tmp" */
    return mb__errorf(MB_ENAMETOOLONG, 0, "persist: a file name in '%s' is too long", dir);
  return 0;
}

/* ---- pass 1: a file's header and checksum ------------------------------------------------- */

/* Failure of a check of file `path`: "persist: <path>: <what>: <advice>". */
/* How a refusal of a file of another format version ends: its code is MB_EVERSION
 * (version_mismatch), whose own sentence speaks of the shared-memory layout (which a layout
 * version refusal keeps, as it is one). */
#define PF_TAIL_FORMAT "unsupported saved-state file format version"

static int pf_bad(int code, const char *path, const char *what) {
  return mb__errorf(code, 0, "persist: %s: %s: " PF_ADVICE, path, what);
}

int mb__persist_read_header(const char *path, mb_persist_header_t *h) {
  FILE *f;
  size_t n;
  int rc;
  if ((rc = mb_os_file_open(path, "rb", &f)) != 0)
    return rc;
  n = fread(h, 1, sizeof *h, f);
  fclose(f);
  if (n != sizeof *h)
    return mb__errorf(MB_EIO, 0, "persist: %s: shorter than a header", path);
  return 0;
}

/*
 * Check file `path` as a whole: the header (magic, versions, instance, region `name`), the
 * size against body_size, and the checksum. *h receives the header. MB_ENOENT (no message
 * worth keeping) when there is no such file.
 */
static int pf_verify(const char *path, const char *magic, const char *instance, const char *name,
                     mb_persist_header_t *h) {
  char what[300];
  unsigned char *buf;
  uint64_t left, extra = 0;
  mb_hash_t hash;
  FILE *f;
  size_t n;
  int rc, c;

  if ((rc = mb_os_file_open(path, "rb", &f)) != 0) {
    if (rc == MB_ENOENT)
      return rc;
    return mb__errorf(rc, mb_last_os_error(), "persist: %s: cannot open the file", path);
  }
  if ((buf = malloc(PF_CHUNK)) == NULL) {
    fclose(f);
    return mb__errorf(MB_ENOMEM, 0, "persist: %s: read buffer", path);
  }
  n = fread(h, 1, sizeof *h, f);
  if (n < sizeof *h) {
    snprintf(what, sizeof what, "truncated: %zu bytes, shorter than the %zu-byte header", n,
             sizeof *h);
    rc = pf_bad(MB_EIO, path, what);
  } else if (memcmp(h->magic, magic, 8) != 0) {
    snprintf(what, sizeof what, "not a saved %s file of membroker (bad magic)",
             memcmp(magic, MB_PERSIST_MAGIC_STATE, 8) == 0 ? "state" : "region");
    rc = pf_bad(MB_EBADMAGIC, path, what);
  } else if (h->format_version == 1 && h->header_size == sizeof *h) {
    /* Format 1 is format 2 with an FNV-1a checksum: the state in it is readable, but only by
     * the release that wrote it, which can still check that checksum. */
    rc = mb__errorf_as(MB_EVERSION, PF_TAIL_FORMAT,
                       "persist: %s: file format version 1 (FNV-1a checksums) is no longer read; "
                       "this broker reads version %u (" MB_HASH_NAME "). To keep the state in it, "
                       "run the broker release that wrote it; else " PF_ADVICE,
                       path, MB_PERSIST_FORMAT);
  } else if (h->format_version != MB_PERSIST_FORMAT || h->header_size != sizeof *h) {
    snprintf(what, sizeof what,
             "file format version %u (header %u bytes); this broker reads "
             "version %u",
             (unsigned)h->format_version, (unsigned)h->header_size, MB_PERSIST_FORMAT);
    rc = mb__errorf_as(MB_EVERSION, PF_TAIL_FORMAT, "persist: %s: %s: " PF_ADVICE, path, what);
  } else if (h->layout_version != MB_LAYOUT_VERSION) {
    snprintf(what, sizeof what,
             "saved by a broker of layout version %u, this one has layout version %u (state "
             "is not carried across such an upgrade)",
             (unsigned)h->layout_version, MB_LAYOUT_VERSION);
    rc = pf_bad(MB_EVERSION, path, what);
  } else if (!pf_fixed_string(h->instance, sizeof h->instance) ||
             !pf_fixed_string(h->name, sizeof h->name)) {
    rc = pf_bad(MB_EIO, path, "the header's names are damaged (file is corrupt)");
  } else if (strcmp(h->instance, instance) != 0) {
    snprintf(what, sizeof what, "saved by instance '%s', this broker is instance '%s'", h->instance,
             instance);
    rc = pf_bad(MB_EINVAL, path, what);
  } else if (strcmp(h->name, name) != 0) {
    snprintf(what, sizeof what, "holds region '%s', not '%s'", h->name, name);
    rc = pf_bad(MB_EINVAL, path, what);
  }
  if (rc != 0) {
    free(buf);
    fclose(f);
    return rc;
  }
  pf_header_hash(&hash, h);
  for (left = h->body_size; left > 0; left -= n) {
    n = fread(buf, 1, left < PF_CHUNK ? (size_t)left : PF_CHUNK, f);
    if (n == 0)
      break;
    mb__hash_more(&hash, buf, n);
  }
  while (left == 0 && (c = fgetc(f)) != EOF) {
    (void)c;
    extra++;
  }
  if (ferror(f)) {
    rc = mb__errorf(MB_EIO, errno, "persist: %s: cannot read the file", path);
  } else if (left > 0) {
    snprintf(what, sizeof what, "truncated: %llu bytes, its header gives %llu",
             (unsigned long long)(sizeof *h + h->body_size - left),
             (unsigned long long)(sizeof *h + h->body_size));
    rc = pf_bad(MB_EIO, path, what);
  } else if (extra > 0) {
    snprintf(what, sizeof what, "%llu bytes more than the %llu its header gives (file is corrupt)",
             (unsigned long long)extra, (unsigned long long)(sizeof *h + h->body_size));
    rc = pf_bad(MB_EIO, path, what);
  } else if (mb__hash_end(&hash) != h->checksum) {
    rc = pf_bad(MB_EIO, path, "checksum mismatch (file is corrupt or was changed)");
  }
  free(buf);
  fclose(f);
  return rc;
}

/* ---- pass 2: contents against the config -------------------------------------------------- */

/* Read n bytes at the current position of f (a file pass 1 checked: short means changed). */
static int pf_read(FILE *f, const char *path, void *p, size_t n) {
  if (n > 0 && fread(p, 1, n, f) != n)
    return mb__errorf(MB_EIO, errno, "persist: %s: the file changed while it was read", path);
  return 0;
}

/* The state file's body into img->game. */
static int pf_state_body(mb_persist_image_t *img, char saved[][MB_REGION_NAME_MAX],
                         uint32_t *nsaved) {
  mb_persist_game_t *g = &img->game;
  FILE *f;
  uint32_t i;
  int rc;
  if (img->hdr.body_size < sizeof *g)
    return pf_bad(MB_EIO, img->path, "the body is too short for a state (file is corrupt)");
  if ((rc = mb_os_file_open(img->path, "rb", &f)) != 0)
    return rc;
  rc = mb_os_file_seek(f, sizeof(mb_persist_header_t)) != 0
           ? mb__errorf(MB_EIO, mb_last_os_error(), "persist: %s: seek", img->path)
           : pf_read(f, img->path, g, sizeof *g);
  if (rc == 0 && (g->nregions > MB_REGIONS_MAX ||
                  img->hdr.body_size != sizeof *g + (uint64_t)g->nregions * MB_REGION_NAME_MAX))
    rc = pf_bad(MB_EIO, img->path, "the body's size does not match its region count");
  if (rc == 0 && (g->msg_len >= MB_STATUS_MSG_MAX || g->msg[g->msg_len] != '\0'))
    rc = pf_bad(MB_EIO, img->path, "the status message is damaged");
  for (i = 0; rc == 0 && i < g->nregions; i++) {
    rc = pf_read(f, img->path, saved[i], MB_REGION_NAME_MAX);
    if (rc == 0 && (!pf_fixed_string(saved[i], MB_REGION_NAME_MAX) || saved[i][0] == '\0'))
      rc = pf_bad(MB_EIO, img->path, "a region name is damaged");
  }
  fclose(f);
  *nsaved = g->nregions;
  return rc;
}

/* The client index of game server `name` among img's restored clients, added if new. */
static int pf_client(mb_persist_image_t *img, const char *name, uint32_t max, uint32_t *index) {
  uint32_t i;
  for (i = 0; i < img->nclients; i++)
    if (strcmp(img->clients[i], name) == 0)
      break;
  if (i == img->nclients) {
    if (img->nclients >= max)
      return -1;
    pf_set_fixed(img->clients[i], MB_CLIENT_NAME_MAX, name);
    img->nclients++;
  }
  *index = i;
  return 0;
}

/* A region file's body (but its pages) into r, checked against region `rc_` of cfg. */
static int pf_region_body(mb_persist_image_t *img, pf_region_t *r, const mb_config_t *cfg) {
  const mb_region_cfg_t *rc_ = &cfg->regions[r->cfg_index];
  mb_persist_region_t *in = &r->info;
  uint32_t page = (uint32_t)mb_os_mem_config()->page_size, i, j;
  uint64_t npages, k, bits = 0, expect, prev = 0, first, last;
  char what[300];
  FILE *f;
  int rc;

  if (r->hdr.body_size < sizeof *in)
    return pf_bad(MB_EIO, r->path, "the body is too short for a region (file is corrupt)");
  if ((rc = mb_os_file_open(r->path, "rb", &f)) != 0)
    return rc;
  if (mb_os_file_seek(f, sizeof(mb_persist_header_t)) != 0) {
    fclose(f);
    return mb__errorf(MB_EIO, mb_last_os_error(), "persist: %s: seek", r->path);
  }
  if ((rc = pf_read(f, r->path, in, sizeof *in)) != 0)
    goto out;
  /* The region as configured now must be the one saved: else the config changed. */
  what[0] = '\0';
  if (in->size != rc_->size)
    snprintf(what, sizeof what, "region '%s' was saved with %llu bytes, the config gives %llu",
             rc_->name, (unsigned long long)in->size, (unsigned long long)rc_->size);
  else if (in->slot_size != rc_->slot_size)
    snprintf(what, sizeof what, "region '%s' was saved with slots of %u bytes, the config gives %u",
             rc_->name, (unsigned)in->slot_size, (unsigned)rc_->slot_size);
  else if (rc_->lazy && rc_->slot_size == 0)
    snprintf(what, sizeof what, "region '%s' is lazy without slots in the config", rc_->name);
  if (what[0] != '\0') {
    rc = mb__errorf(MB_ECONFIG, 0, "persist: %s: %s: change the config back, or " PF_ADVICE,
                    r->path, what);
    goto out;
  }
  if (in->page_size != page) {
    snprintf(what, sizeof what, "saved with pages of %u bytes, this machine's are %u bytes",
             (unsigned)in->page_size, (unsigned)page);
    rc = pf_bad(MB_EIO, r->path, what);
    goto out;
  }
  if (in->slot_count != (in->slot_size ? in->size / in->slot_size : 0) ||
      in->slot_records > in->slot_count || in->owner_count > MB_CLIENTS_MAX ||
      in->size % page != 0) {
    rc = pf_bad(MB_EIO, r->path, "its slot table header is damaged");
    goto out;
  }
  npages = in->size / page;
  r->bitmap_words = (npages + 63) / 64;
  r->meta_size = sizeof *in + (uint64_t)in->owner_count * MB_CLIENT_NAME_MAX +
                 in->slot_records * sizeof(mb_persist_slot_t);
  expect = r->meta_size + r->bitmap_words * 8;
  if (in->pages_written > npages || r->hdr.body_size != expect + in->pages_written * page) {
    rc = pf_bad(MB_EIO, r->path, "the body's size does not match its contents");
    goto out;
  }
  r->owners = calloc(in->owner_count ? in->owner_count : 1, MB_CLIENT_NAME_MAX);
  r->owner_client = calloc(in->owner_count ? in->owner_count : 1, sizeof *r->owner_client);
  r->slots = calloc(in->slot_records ? (size_t)in->slot_records : 1, sizeof *r->slots);
  r->bitmap = calloc((size_t)r->bitmap_words, 8);
  if (r->owners == NULL || r->owner_client == NULL || r->slots == NULL || r->bitmap == NULL) {
    rc = mb__errorf(MB_ENOMEM, 0, "persist: %s: its slot table", r->path);
    goto out;
  }
  if ((rc = pf_read(f, r->path, r->owners, (size_t)in->owner_count * MB_CLIENT_NAME_MAX)) != 0 ||
      (rc = pf_read(f, r->path, r->slots, (size_t)in->slot_records * sizeof *r->slots)) != 0 ||
      (rc = pf_read(f, r->path, r->bitmap, (size_t)r->bitmap_words * 8)) != 0)
    goto out;
  for (i = 0; i < in->owner_count; i++) {
    if (!pf_fixed_string(r->owners[i], MB_CLIENT_NAME_MAX) || r->owners[i][0] == '\0') {
      rc = pf_bad(MB_EIO, r->path, "a game server's name is damaged");
      goto out;
    }
    for (j = 0; j < i; j++)
      if (strcmp(r->owners[i], r->owners[j]) == 0) {
        rc = pf_bad(MB_EIO, r->path, "a game server is listed twice");
        goto out;
      }
    if (pf_client(img, r->owners[i], cfg->max_clients, &r->owner_client[i]) != 0) {
      snprintf(what, sizeof what,
               "more game servers held slots than clients.max (%u) allows: raise clients.max",
               (unsigned)cfg->max_clients);
      rc = mb__errorf(MB_ECONFIG, 0, "persist: %s: %s", r->path, what);
      goto out;
    }
  }
  for (k = 0; k < r->bitmap_words; k++)
    bits += pf_popcount(r->bitmap[k]);
  if (bits != in->pages_written ||
      (npages % 64 != 0 && (r->bitmap[r->bitmap_words - 1] >> (npages % 64)) != 0)) {
    rc = pf_bad(MB_EIO, r->path, "the page bitmap does not match its page count");
    goto out;
  }
  for (k = 0; k < in->slot_records; k++) {
    const mb_persist_slot_t *s = &r->slots[k];
    if ((k > 0 && s->index <= prev) || s->index >= in->slot_count || s->player == 0 ||
        s->owner >= in->owner_count) {
      snprintf(what, sizeof what, "slot record %llu is damaged", (unsigned long long)k);
      rc = pf_bad(MB_EIO, r->path, what);
      goto out;
    }
    prev = s->index;
    mb__slot_page_range(s->index, in->slot_size, page, &first, &last);
    for (; first <= last; first++)
      if (!pf_bit(r->bitmap, first)) {
        snprintf(what, sizeof what, "slot %llu lies on page %llu, which is not in the file",
                 (unsigned long long)s->index, (unsigned long long)first);
        rc = pf_bad(MB_EIO, r->path, what);
        goto out;
      }
  }
  { /* one slot per player of a game server (pf_twins): the file is sound, its bytes are kept */
    int64_t kept = pf_twins(r->slots, in->slot_records, r->owners, r->path);
    if (kept < 0) {
      rc = MB_ENOMEM;
      goto out;
    }
    in->slot_records = (uint64_t)kept;
  }
out:
  fclose(f);
  return rc;
}

void mb__persist_image_free(mb_persist_image_t *img) {
  int i;
  if (img == NULL)
    return;
  for (i = 0; i < img->nregions; i++) {
    free(img->regions[i].owners);
    free(img->regions[i].owner_client);
    free(img->regions[i].slots);
    free(img->regions[i].bitmap);
  }
  free(img);
}

/* Index of region `name` in cfg, or -1. */
static int pf_cfg_region(const mb_config_t *cfg, const char *name) {
  int i;
  for (i = 0; i < cfg->nregions; i++)
    if (strcmp(cfg->regions[i].name, name) == 0)
      return i;
  return -1;
}

/* Is `name` one of the first n names of list? */
static int pf_listed(char list[][MB_REGION_NAME_MAX], uint32_t n, const char *name) {
  uint32_t i;
  for (i = 0; i < n; i++)
    if (strcmp(list[i], name) == 0)
      return 1;
  return 0;
}

/* Remove "<file>.tmp" of the state file (region NULL) or of region `region` if there is one;
 * 1 if one was removed. */
static int pf_sweep_one(const char *dir, const char *instance, const char *region) {
  char path[MB_PERSIST_PATH_MAX], tmp[MB_PERSIST_PATH_MAX + 4];
  if (mb__persist_path(dir, instance, region, path, sizeof path) != 0)
    return 0;
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  if (mb_os_file_remove(tmp) != 0)
    return 0;
  mb_log_info("persist: removed %s, left by a save that did not finish (a broker killed while "
              "it saved)",
              tmp);
  return 1;
}

/*
 * At start, once the state file checked out (or there is none): remove the ".tmp" files a save of a
 * killed broker of this instance left in the directory (no other broker of the instance runs now).
 * Not only those of the regions saved now: the state file's, every region's of the config, and
 * every region's the last state file lists (`saved`), so a region taken out of persist.regions does
 * not keep its half-written file for good. A region gone from the config and from the last save is
 * not known by name: its ".tmp" stays (README says so).
 */
static void pf_sweep(const char *dir, const mb_config_t *cfg, char saved[][MB_REGION_NAME_MAX],
                     uint32_t nsaved) {
  uint32_t i;
  pf_sweep_one(dir, cfg->instance, NULL);
  for (i = 0; i < (uint32_t)cfg->nregions; i++)
    pf_sweep_one(dir, cfg->instance, cfg->regions[i].name);
  for (i = 0; i < nsaved; i++)
    if (pf_cfg_region(cfg, saved[i]) < 0)
      pf_sweep_one(dir, cfg->instance, saved[i]);
}

int mb__persist_open(mb_persist_t *p, const mb_config_t *cfg, mb_persist_image_t **out) {
  char saved[MB_REGIONS_MAX][MB_REGION_NAME_MAX];
  mb_persist_image_t *img;
  uint32_t nsaved = 0;
  uint64_t now = mb_os_wall_ns();
  int rc, i;

  memset(p, 0, sizeof *p);
  *out = NULL;
  if ((rc = mb__persist_dir(cfg, p->dir, sizeof p->dir)) != 0)
    return rc;
  if (p->dir[0] == '\0')
    return 0;
  p->enabled = 1;
  p->interval_ms = cfg->persist_interval_ms;
  if ((rc = mb_os_dir_create(p->dir)) != 0)
    return mb__errorf(rc, mb_last_os_error(), "persist.dir '%s': cannot create the directory",
                      p->dir);
  if ((img = calloc(1, sizeof *img)) == NULL)
    return mb__errorf(MB_ENOMEM, 0, "persist: %zu bytes", sizeof *img);
  if ((rc = mb__persist_path(p->dir, cfg->instance, NULL, img->path, sizeof img->path)) != 0)
    goto fail;
  rc = pf_verify(img->path, MB_PERSIST_MAGIC_STATE, cfg->instance, "", &img->hdr);
  if (rc == MB_ENOENT) {
    pf_sweep(p->dir, cfg, saved, 0);
    mb_log_info("persist: no saved state in %s (no %s): starting fresh", p->dir, img->path);
    mb__persist_image_free(img);
    return 0;
  }
  if (rc != 0 || (rc = pf_state_body(img, saved, &nsaved)) != 0)
    goto fail; /* the start stops here; a start that gets past it sweeps */
  pf_sweep(p->dir, cfg, saved, nsaved);
  for (i = 0; i < MB_REGIONS_MAX && cfg->persist_regions[i][0] != '\0'; i++) {
    const char *name = cfg->persist_regions[i];
    pf_region_t *r = &img->regions[img->nregions];
    if ((r->cfg_index = pf_cfg_region(cfg, name)) < 0)
      continue; /* the config's own check refuses that */
    if ((rc = mb__persist_path(p->dir, cfg->instance, name, r->path, sizeof r->path)) != 0)
      goto fail;
    rc = pf_verify(r->path, MB_PERSIST_MAGIC_REGION, cfg->instance, name, &r->hdr);
    if (rc == MB_ENOENT) {
      if (pf_listed(saved, nsaved, name))
        mb_log_warn("persist: region '%s' was saved but %s is missing: it starts empty", name,
                    r->path);
      else
        mb_log_info("persist: region '%s' has not been saved yet (no %s): it starts empty", name,
                    r->path);
      continue;
    }
    if (!pf_listed(saved, nsaved, name)) {
      /* Left from an older run (the region was out of persist.regions meanwhile): its slots
       * and holders are not those of the state that was saved last. */
      mb_log_warn("persist: %s is not part of the last save (the state file does not list "
                  "region '%s'): not restored, it starts empty",
                  r->path, name);
      continue;
    }
    img->nregions++; /* from here on freed with img */
    if (rc != 0 || (rc = pf_region_body(img, r, cfg)) != 0)
      goto fail;
  }
  for (i = 0; i < (int)nsaved; i++) {
    int k;
    for (k = 0; k < MB_REGIONS_MAX && strcmp(cfg->persist_regions[k], saved[i]) != 0; k++)
      ;
    if (k == MB_REGIONS_MAX)
      mb_log_warn("persist: region '%s' was saved but is not in persist.regions any more: not "
                  "restored (its file stays until it is removed)",
                  saved[i]);
  }
  mb_log_info("persist: found the state saved by generation %llu %.1f s ago in %s: %d region "
              "file%s, %u game server%s with slots",
              (unsigned long long)img->hdr.generation,
              now > img->hdr.wall_ns ? (double)(now - img->hdr.wall_ns) / 1e9 : 0.0, p->dir,
              img->nregions, img->nregions == 1 ? "" : "s", (unsigned)img->nclients,
              img->nclients == 1 ? "" : "s");
  *out = img;
  return 0;

fail:
  mb__persist_image_free(img);
  return rc;
}

/* ---- pass 3: restore ------------------------------------------------------------------------ */

/* Commit page p of lazy region r for the restore, charged as a claim's commit would be. */
static int pf_commit(mb_broker_t *b, mb_region_map_t *r, uint64_t p) {
  mb_state_t *st = b->state;
  mb_region_desc_t *d = r->desc;
  int rc;
  if (mb__commit_charge(st, d->page_size) != 0)
    return mb__errorf(MB_ENOSPC, 0,
                      "persist: restoring region '%s' needs more memory than "
                      "limits.max_committed (%llu bytes)",
                      d->name, (unsigned long long)mb_load64(&st->game.commit_limit));
  if ((rc = mb_os_section_commit(&r->sec, r->base, p * d->page_size, d->page_size)) != 0) {
    mb_add64(&st->game.committed_total, (uint64_t)0 - d->page_size);
    return rc;
  }
  mb__region_account(d, (int64_t)d->page_size);
  return 0;
}

/*
 * Region file f into the broker: pages committed for the slots, the slot table, then the
 * file read again from its start, checksummed, its pages copied into place. held[] counts
 * the slots restored per client.
 */
static int pf_restore_region(mb_broker_t *b, pf_region_t *f, uint64_t *held) {
  mb_region_map_t *r = &b->regions[f->cfg_index];
  mb_region_desc_t *d = r->desc;
  const mb_persist_region_t *in = &f->info;
  uint64_t npages = d->size / d->page_size, k, p, first, last, skip;
  mb_hash_t hash;
  mb_persist_header_t h;
  uint32_t *users = NULL;
  unsigned char *buf = NULL;
  FILE *fp = NULL;
  int rc = 0;

  if (d->slot_size != 0) {
    mb_au32 *pages = mb__region_pages(d, r->base);
    mb_slot_t *slots = mb__region_slots(d, r->base);
    if ((users = calloc((size_t)npages, sizeof *users)) == NULL)
      return mb__errorf(MB_ENOMEM, 0, "persist: restore region '%s'", d->name);
    for (k = 0; k < in->slot_records; k++) {
      mb__slot_page_range(f->slots[k].index, d->slot_size, d->page_size, &first, &last);
      for (p = first; p <= last; p++)
        users[p]++;
    }
    for (p = 0; p < npages; p++) {
      if (users[p] == 0)
        continue;
      if ((d->flags & MB_REGION_LAZY) && (rc = pf_commit(b, r, p)) != 0)
        goto out;
      mb_store32(&pages[p], MB_PAGE_COMMITTED | users[p]);
    }
    for (k = 0; k < in->slot_records; k++) {
      uint32_t c = f->owner_client[f->slots[k].owner];
      mb_store64(&slots[f->slots[k].index].player, f->slots[k].player);
      mb_store64(&slots[f->slots[k].index].owner, (uint64_t)c + 1);
      held[c]++;
    }
    mb_store64(&d->slots_used, in->slot_records);
  }

  /* The bytes: the whole file once more, with its checksum. */
  if ((buf = malloc(PF_CHUNK > d->page_size ? PF_CHUNK : d->page_size)) == NULL) {
    rc = mb__errorf(MB_ENOMEM, 0, "persist: restore region '%s'", d->name);
    goto out;
  }
  if ((rc = mb_os_file_open(f->path, "rb", &fp)) != 0 ||
      (rc = pf_read(fp, f->path, &h, sizeof h)) != 0)
    goto out;
  if (memcmp(&h, &f->hdr, sizeof h) != 0) {
    rc = mb__errorf(MB_EIO, 0, "persist: %s: the file changed while it was restored", f->path);
    goto out;
  }
  pf_header_hash(&hash, &h);
  for (skip = f->meta_size + f->bitmap_words * 8; skip > 0 && rc == 0;) {
    size_t n = skip < PF_CHUNK ? (size_t)skip : PF_CHUNK;
    if ((rc = pf_read(fp, f->path, buf, n)) == 0)
      mb__hash_more(&hash, buf, n);
    skip -= n;
  }
  for (p = 0; p < npages && rc == 0; p++) {
    unsigned char *dst;
    if (!pf_bit(f->bitmap, p))
      continue;
    /* A page of slots goes in place when a restored slot lies on it (always, as saved). */
    dst = d->slot_size == 0 || users[p] != 0 ? r->base + p * d->page_size : buf;
    if ((rc = pf_read(fp, f->path, dst, d->page_size)) == 0)
      mb__hash_more(&hash, dst, d->page_size);
  }
  if (rc == 0 && mb__hash_end(&hash) != h.checksum)
    rc = mb__errorf(MB_EIO, 0, "persist: %s: the file changed while it was restored", f->path);
out:
  if (fp != NULL)
    fclose(fp);
  free(buf);
  free(users);
  return rc;
}

int mb__persist_restore(mb_broker_t *b, mb_persist_image_t *img, uint64_t *saved_generation) {
  mb_state_t *st = b->state;
  uint64_t held[MB_CLIENTS_MAX], now = mb_os_mono_ns(), gen = img->hdr.generation, slots = 0;
  uint32_t i;
  int k, rc;

  memset(held, 0, sizeof held);
  for (k = 0; k < img->nregions; k++) {
    pf_region_t *f = &img->regions[k];
    if ((rc = pf_restore_region(b, f, held)) != 0)
      return rc;
    if (f->hdr.generation > gen)
      gen = f->hdr.generation;
    mb_log_info("persist: region '%s' restored: %llu pages, %llu slots", f->hdr.name,
                (unsigned long long)f->info.pages_written,
                (unsigned long long)f->info.slot_records);
  }
  /* One DEAD entry per game server that held slots: its own to take back within the grace
   * period. The block is not published yet, so plain stores in any order will do. */
  for (i = 0; i < img->nclients; i++) {
    mb_client_entry_t *e = &st->clients[i];
    mb__client_name_set(e, img->clients[i]);
    mb_store64(&e->slots_held, held[i]);
    mb_store64(&e->dead_since_ns, now);
    mb_store32(&e->dead_reason, MB_DEAD_RESTORED);
    mb_store64(&e->word, MB_CLIENT_WORD(MB_CLIENT_DEAD, 0, 0));
    slots += held[i];
  }
  /* Every share is 0: the truth is the base (counters.h); a negative one (an older save) is 0. */
  mb_store64(&st->players_base, mb__base_to_save(img->game.total_players));
  mb_store64(&st->npcs_base, mb__base_to_save(img->game.total_npcs));
  mb_store64(&st->game.total_players, mb__base_to_save(img->game.total_players));
  mb_store64(&st->game.total_npcs, mb__base_to_save(img->game.total_npcs));
  if ((rc = mb__state_write_msg(st, img->game.msg)) < 0)
    return rc;
  if (img->game.last_update_wall_ns != 0)
    mb_store64(&st->game.last_update_wall_ns, img->game.last_update_wall_ns);
  memcpy(b->persist.msg, img->game.msg, sizeof b->persist.msg);
  mb_log_info("persist: restored %llu players, %llu NPCs, message \"%s\"; %u game server%s with "
              "%llu slots kept for %u ms to take them back",
              (unsigned long long)img->game.total_players, (unsigned long long)img->game.total_npcs,
              img->game.msg, (unsigned)img->nclients, img->nclients == 1 ? "" : "s",
              (unsigned long long)slots, (unsigned)b->cfg.grace_period_ms);
  *saved_generation = gen;
  return 0;
}

/* ---- flush ---------------------------------------------------------------------------------- */

typedef struct pf_writer_s {
  FILE *f;
  const char *path;
  mb_hash_t hash;
  int rc;
} pf_writer_t;

static void pw_write(pf_writer_t *w, const void *p, size_t n) {
  if (w->rc != 0 || n == 0)
    return;
  mb__hash_more(&w->hash, p, n);
  if (fwrite(p, 1, n, w->f) != n)
    w->rc = mb__errorf(MB_EIO, errno, "persist: write %s", w->path);
}

/* A header for a file of this flush. */
static void pw_header(mb_broker_t *b, mb_persist_header_t *h, const char *magic, const char *name,
                      uint64_t wall, uint64_t body_size) {
  memset(h, 0, sizeof *h);
  memcpy(h->magic, magic, 8);
  h->format_version = MB_PERSIST_FORMAT;
  h->layout_version = MB_LAYOUT_VERSION;
  h->header_size = sizeof *h;
  pf_set_fixed(h->instance, sizeof h->instance, b->cfg.instance);
  pf_set_fixed(h->name, sizeof h->name, name);
  h->generation = mb_load64(&b->state->generation);
  h->flush_seq = b->persist.seq;
  h->wall_ns = wall;
  h->body_size = body_size;
}

/* Create `tmp` and write header h (its checksum still 0). */
static int pw_begin(pf_writer_t *w, const char *tmp, const mb_persist_header_t *h) {
  memset(w, 0, sizeof *w);
  w->path = tmp;
  pf_header_hash(&w->hash, h);
  if ((w->rc = mb_os_file_open(tmp, "wb", &w->f)) != 0)
    return w->rc;
  if (fwrite(h, 1, sizeof *h, w->f) != sizeof *h)
    w->rc = mb__errorf(MB_EIO, errno, "persist: write %s", tmp);
  return w->rc;
}

/* Put the checksum into the header, sync and close; the file is removed on failure. */
static int pw_end(pf_writer_t *w, mb_persist_header_t *h) {
  if (w->f == NULL)
    return w->rc;
  if (w->rc == 0) {
    h->checksum = mb__hash_end(&w->hash);
    if (mb_os_file_seek(w->f, 0) != 0 || fwrite(h, 1, sizeof *h, w->f) != sizeof *h)
      w->rc = mb__errorf(MB_EIO, errno, "persist: write %s", w->path);
  }
  if (w->rc == 0 && (w->rc = mb_os_file_sync(w->f)) != 0)
    w->rc = mb__errorf(w->rc, mb_last_os_error(), "persist: write %s", w->path);
  if (fclose(w->f) != 0 && w->rc == 0)
    w->rc = mb__errorf(MB_EIO, errno, "persist: write %s", w->path);
  w->f = NULL;
  if (w->rc != 0)
    mb_os_file_discard(w->path); /* the detail message of the failure stays */
  return w->rc;
}

/* Are the n bytes at p (page-aligned, n a multiple of 8) all zero? */
static int pf_zero(const unsigned char *p, size_t n) {
  const uint64_t *w = (const uint64_t *)(const void *)p;
  size_t i;
  for (i = 0; i < n / 8; i++)
    if (w[i] != 0)
      return 0;
  return 1;
}

/* What a region file of this flush holds, for the log. */
typedef struct pw_stats_s {
  uint64_t pages, slots;
  uint32_t owners;
} pw_stats_t;

/*
 * Write region i of the broker into `tmp`: a snapshot of the held slots with the names of
 * their holders, and the pages to restore them (or, without slots, every page not all zero).
 */
static int pw_region(mb_broker_t *b, int i, uint64_t wall, const char *tmp, pw_stats_t *out) {
  mb_region_map_t *r = &b->regions[i];
  mb_region_desc_t *d = &b->trust.regions[i]; /* the private copy: sizes never read back */
  mb_state_t *st = b->state;
  mb_persist_region_t in;
  mb_persist_header_t h;
  pf_writer_t w;
  uint64_t npages = d->size / d->page_size, words = (npages + 63) / 64, p, k, cap = 0;
  uint64_t *bitmap = calloc((size_t)words, 8);
  char(*owners)[MB_CLIENT_NAME_MAX] = calloc(MB_CLIENTS_MAX, MB_CLIENT_NAME_MAX);
  int32_t *owner_of = malloc(MB_CLIENTS_MAX * sizeof *owner_of);
  unsigned char *page = malloc(d->page_size);
  mb_persist_slot_t *recs = NULL;
  int rc = 0;

  memset(out, 0, sizeof *out);
  memset(&in, 0, sizeof in);
  if (bitmap == NULL || owners == NULL || owner_of == NULL || page == NULL) {
    rc = mb__errorf(MB_ENOMEM, 0, "persist: region '%s'", d->name);
    goto out;
  }
  for (k = 0; k < MB_CLIENTS_MAX; k++)
    owner_of[k] = -1; /* -1: not seen yet; -2: no holder to name */
  if (d->slot_size != 0) {
    mb_slot_t *slots = mb__region_slots(d, r->base);
    mb_au32 *pw = mb__region_pages(d, r->base);
    for (k = 0; k < d->slot_count; k++) {
      uint64_t owner = mb_load64_relaxed(&slots[k].owner), player, first, last;
      int32_t o;
      if (owner == 0 || owner > b->cfg.max_clients)
        continue;
      if ((player = mb_load64(&slots[k].player)) == 0)
        continue; /* a claim under way or cut short */
      if ((o = owner_of[owner - 1]) == -1) {
        char name[MB_CLIENT_NAME_MAX];
        mb_client_entry_t *e = &st->clients[owner - 1];
        uint64_t ew = mb_load64(&e->word);
        o = -2;
        if (MB_CLIENT_WORD_STATE(ew) != MB_CLIENT_FREE) {
          mb__client_name_get(e, name);
          /* The name is the slot's holder's only if neither the entry nor the slot changed
           * hands while it was read (a detach and another attach at this index). */
          if (name[0] != '\0' && mb_load64(&e->word) == ew && mb_load64(&slots[k].owner) == owner) {
            pf_set_fixed(owners[in.owner_count], MB_CLIENT_NAME_MAX, name);
            o = (int32_t)in.owner_count++;
          }
        }
        owner_of[owner - 1] = o;
      }
      if (o < 0)
        continue;
      mb__slot_page_range(k, d->slot_size, d->page_size, &first, &last);
      for (p = first; p <= last; p++)
        if ((mb_load32(&pw[p]) & (MB_PAGE_COMMITTED | MB_PAGE_BUSY)) != MB_PAGE_COMMITTED)
          break;
      if (p <= last)
        continue; /* not a settled slot */
      if (in.slot_records == cap) {
        mb_persist_slot_t *n;
        cap = cap ? cap * 2 : 256;
        if ((n = realloc(recs, (size_t)cap * sizeof *recs)) == NULL) {
          rc = mb__errorf(MB_ENOMEM, 0, "persist: region '%s'", d->name);
          goto out;
        }
        recs = n;
      }
      memset(&recs[in.slot_records], 0, sizeof *recs);
      recs[in.slot_records].index = k;
      recs[in.slot_records].player = player;
      recs[in.slot_records].owner = (uint32_t)o;
      in.slot_records++;
    }
    /* A player seen in two slots (it moved while the table was read) is saved once, in the
     * slot read last (pf_twins); the pages of the kept slots go into the file. */
    {
      int64_t kept = pf_twins(recs, in.slot_records, NULL, NULL);
      if (kept < 0) {
        rc = MB_ENOMEM;
        goto out;
      }
      in.slot_records = (uint64_t)kept;
    }
    for (k = 0; k < in.slot_records; k++) {
      uint64_t first, last;
      mb__slot_page_range(recs[k].index, d->slot_size, d->page_size, &first, &last);
      for (p = first; p <= last; p++)
        bitmap[p / 64] |= UINT64_C(1) << (p % 64);
    }
  } else {
    for (p = 0; p < npages; p++)
      if (!pf_zero(r->base + p * d->page_size, d->page_size))
        bitmap[p / 64] |= UINT64_C(1) << (p % 64);
  }
  for (k = 0; k < words; k++)
    in.pages_written += pf_popcount(bitmap[k]);
  in.size = d->size;
  in.slot_count = d->slot_count;
  in.slot_size = d->slot_size;
  in.page_size = d->page_size;
  in.flags = d->flags;

  pw_header(b, &h, MB_PERSIST_MAGIC_REGION, d->name, wall,
            sizeof in + (uint64_t)in.owner_count * MB_CLIENT_NAME_MAX +
                in.slot_records * sizeof *recs + words * 8 + in.pages_written * d->page_size);
  if (pw_begin(&w, tmp, &h) == 0) {
    pw_write(&w, &in, sizeof in);
    pw_write(&w, owners, (size_t)in.owner_count * MB_CLIENT_NAME_MAX);
    pw_write(&w, recs, (size_t)in.slot_records * sizeof *recs);
    pw_write(&w, bitmap, (size_t)words * 8);
    for (p = 0; p < npages && w.rc == 0; p++) {
      if (!pf_bit(bitmap, p))
        continue;
      /* Pages another process committed: usable in our view first where views commit for
       * themselves (no charge). Copied once, so the checksum is of the bytes written. */
      if ((d->flags & MB_REGION_LAZY) && mb_os_mem_config()->view_commit &&
          (w.rc = mb_os_section_commit(&r->sec, r->base, p * d->page_size, d->page_size)) != 0)
        break;
      memcpy(page, r->base + p * d->page_size, d->page_size);
      pw_write(&w, page, d->page_size);
    }
  }
  rc = pw_end(&w, &h);
  out->pages = in.pages_written;
  out->slots = in.slot_records;
  out->owners = in.owner_count;
out:
  free(recs);
  free(page);
  free(owner_of);
  free(owners);
  free(bitmap);
  return rc;
}

/* Write the state file into `tmp`: counters (less what attached game servers added: they add
 * it again after a restart), message, the names of the regions written. */
static int pw_state(mb_broker_t *b, uint64_t wall, const char *tmp, int *regions, int n) {
  mb_state_t *st = b->state;
  mb_persist_game_t g;
  mb_persist_header_t h;
  pf_writer_t w;
  char msg[MB_STATUS_MSG_MAX], name[MB_REGION_NAME_MAX];
  int i;

  /* A writer in the message right now (or one that died there): keep the last whole copy. */
  if (mb__state_read_msg(st, msg) >= 0)
    memcpy(b->persist.msg, msg, sizeof msg);
  memset(&g, 0, sizeof g);
  /* Without what the game servers attached now added: each counts its own again when it
   * attaches to the restarted broker (a new generation), so saving it would count it twice. */
  /* counters.h: the truth less the shares. A base below 0 (a set below what the attached
   * servers added: they will remove theirs) is saved as 0, never as a huge count. */
  g.total_players = mb__base_to_save(mb_load64(&st->players_base));
  g.total_npcs = mb__base_to_save(mb_load64(&st->npcs_base));
  g.last_update_wall_ns = mb_load64(&st->game.last_update_wall_ns);
  g.server_status = b->trust.server_status;
  pf_set_fixed(g.msg, sizeof g.msg, b->persist.msg);
  g.msg_len = (uint32_t)strlen(g.msg);
  g.nregions = (uint32_t)n;
  pw_header(b, &h, MB_PERSIST_MAGIC_STATE, "", wall, sizeof g + (uint64_t)n * MB_REGION_NAME_MAX);
  if (pw_begin(&w, tmp, &h) == 0) {
    pw_write(&w, &g, sizeof g);
    for (i = 0; i < n; i++) {
      pf_set_fixed(name, sizeof name, b->cfg.regions[regions[i]].name);
      pw_write(&w, name, sizeof name);
    }
  }
  return pw_end(&w, &h);
}

/* Log a failed flush: at once, then at most once a minute with the count. */
static void pf_warn_failure(mb_persist_t *p) {
  uint64_t now = mb_os_mono_ns();
  if (p->warn_ns != 0 && now - p->warn_ns < PF_WARN_EVERY_NS) {
    p->warn_suppressed++;
    return;
  }
  if (p->warn_suppressed)
    mb_log_event(MB_EV_PERSIST_FAILED, MB_LOG_WARN,
                 "persist: saving the state failed (and %lu more times in the last minute): %s",
                 p->warn_suppressed, mb_last_error());
  else
    mb_log_event(MB_EV_PERSIST_FAILED, MB_LOG_WARN,
                 "persist: saving the state failed: %s; the files of the last good save stay",
                 mb_last_error());
  p->warn_ns = now;
  p->warn_suppressed = 0;
}

int mb__persist_flush(mb_broker_t *b) {
  mb_persist_t *p = &b->persist;
  char tmp[MB_REGIONS_MAX + 1][MB_PERSIST_PATH_MAX + 4], path[MB_PERSIST_PATH_MAX];
  int regions[MB_REGIONS_MAX], n = 0, i, rc = 0;
  uint64_t t0 = mb_os_mono_ns(), wall = mb_os_wall_ns(), pages = 0, slots = 0;
  pw_stats_t s;

  if (!p->enabled || b->state == NULL)
    return 0;
  p->seq++;
  for (i = 0; i < MB_REGIONS_MAX && b->cfg.persist_regions[i][0] != '\0'; i++) {
    int k = pf_cfg_region(&b->cfg, b->cfg.persist_regions[i]);
    if (k >= 0 && k < b->nregions)
      regions[n++] = k;
  }
  for (i = 0; i <= n; i++)
    tmp[i][0] = '\0';
  for (i = 0; i <= n && rc == 0; i++) {
    const char *region = i < n ? b->cfg.regions[regions[i]].name : NULL;
    if ((rc = mb__persist_path(p->dir, b->cfg.instance, region, path, sizeof path)) != 0)
      break;
    snprintf(tmp[i], sizeof tmp[i], "%s.tmp", path);
    if (i < n) {
      rc = pw_region(b, regions[i], wall, tmp[i], &s);
      pages += s.pages;
      slots += s.slots;
    } else {
      rc = pw_state(b, wall, tmp[i], regions, n);
    }
  }
  /* Every file is whole on disk: put them in place, the state file last. */
  for (i = 0; i <= n && rc == 0; i++) {
    const char *region = i < n ? b->cfg.regions[regions[i]].name : NULL;
    if ((rc = mb__persist_path(p->dir, b->cfg.instance, region, path, sizeof path)) == 0 &&
        (rc = mb_os_file_replace(tmp[i], path)) != 0)
      rc = mb__errorf(rc, mb_last_os_error(), "persist: put %s in place", path);
    if (rc == 0)
      tmp[i][0] = '\0';
  }
  if (rc != 0) {
    p->failures++;
    p->failed_in_row++;
    pf_warn_failure(p);
    /* What was not put in place goes (mb_os_file_discard: the detail message stays); the files
     * of the last good flush stay. */
    for (i = 0; i <= n; i++)
      if (tmp[i][0] != '\0')
        mb_os_file_discard(tmp[i]);
    return rc;
  }
  if (p->failed_in_row != 0)
    mb_log_info("persist: saving works again after %llu failure%s",
                (unsigned long long)p->failed_in_row, p->failed_in_row == 1 ? "" : "s");
  p->failed_in_row = 0;
  p->warn_ns = 0;
  p->warn_suppressed = 0;
  p->flushes++;
  p->last_flush_ns = mb_os_mono_ns();
  mb_log_debug("persist: flush %llu to %s in %.1f ms: %d region%s, %llu pages, %llu slots",
               (unsigned long long)p->seq, p->dir, (double)(p->last_flush_ns - t0) / 1e6, n,
               n == 1 ? "" : "s", (unsigned long long)pages, (unsigned long long)slots);
  return 0;
}
