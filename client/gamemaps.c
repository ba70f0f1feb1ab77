/*
 * gamemaps.c - game data maps seen by a client (membroker.h): finding a map in the broker's
 * directory, mapping its section read-only, and the accessors of a map handle. Handles outlive
 * the attachment; mb_detach and mb_close close those left open.
 */
#include "membroker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gmap.h"
#include "layout.h"
#include "os.h"
#include "private.h"

/* ---- game data maps ------------------------------------------------------------------------ */

/*
 * A map handle: its own read-only view of one load's section (membroker.<instance>.map.
 * <name>.<seq>), independent of the attachment, so it stays valid across mb_reattach and
 * after the broker unloads or reloads the map. The section never changes after the broker
 * published it, so what the handle caches from the checked header stays true.
 */
struct mb_map_s {
  mb_client_t *client; /* whose list of open handles it is on */
  struct mb_map_s *prev, *next;
  mb_os_section_t sec;
  const unsigned char *base; /* the whole section */
  uint64_t mapped;           /* bytes mapped */
  const mb_gmap_header_t *hdr;
  const mb_gmap_tile_t *tiles;
  const mb_gmap_object_t *objects;
  uint32_t width, height, object_count;
  char name[MB_MAP_NAME_MAX];
};

/*
 * Find map `name` in the directory: the seq and image size of its entry, read consistently
 * (layout.h: seq and state, the fields, a fence, state and seq again; an entry caught while
 * it changes is read again). MB_ENOENT if no READY entry has that name.
 */
static int mb__map_find(mb_client_t *c, const char *name, uint32_t *seq, uint64_t *size) {
  char n[MB_MAP_NAME_MAX];
  int tries, i;
  for (tries = 0; tries < 1000; tries++) {
    int torn = 0;
    for (i = 0; i < MB_MAPS_MAX; i++) {
      const mb_map_desc_t *d = &c->st->maps[i];
      uint32_t s1 = mb_load32(&d->seq);
      uint64_t sz;
      if (mb_load32(&d->state) != MB_MAP_READY)
        continue;
      mb__name_get(d->name, n);
      sz = mb_load64(&d->size);
      mb_fence();
      if (mb_load32(&d->state) != MB_MAP_READY || mb_load32(&d->seq) != s1) {
        torn = 1;
        continue;
      }
      if (strcmp(n, name) == 0) {
        *seq = s1;
        *size = sz;
        return 0;
      }
    }
    if (!torn)
      return mb__errorf(MB_ENOENT, 0, "the broker of instance '%s' has no map '%s'", c->instance,
                        name);
    mb_os_sleep_ms(tries < 10 ? 0 : 1);
  }
  return mb__errorf(MB_EBUSY, 0, "map '%s': the broker's map directory kept changing", name);
}

/* Open and map (read-only) the section of load `seq` of map `name`, `size` bytes of image. */
static int mb__map_attach(mb_client_t *c, const char *name, uint32_t seq, uint64_t size,
                          mb_map_t *m) {
  char obj[MB_OS_NAME_MAX + 1], what[MB_MAP_NAME_MAX + 16];
  mb_gmap_header_t h;
  void *base;
  int rc;
  if ((rc = mb__map_object_name(obj, sizeof obj, c->instance, name, seq)) != 0 ||
      (rc = mb_os_section_open(&m->sec, obj, c->sec_flags, 0)) != 0)
    return rc;
  if (size == 0 || m->sec.size < size) {
    rc = mb__errorf(MB_EVERSION, 0, "map '%s' holds %llu bytes, its directory entry says %llu",
                    name, (unsigned long long)m->sec.size, (unsigned long long)size);
    mb_os_section_close(&m->sec);
    return rc;
  }
  if ((rc = mb_os_section_map(&m->sec, 0, 0, &base)) != 0) {
    mb_os_section_close(&m->sec);
    return rc;
  }
  /* The broker checked these bytes before it published them; check the header again, so a
   * handle never trusts sizes it has not seen agree with the section (header-only cost), and
   * keep the figures from a copy that is the same before and after the check. */
  snprintf(what, sizeof what, "map '%s'", name);
  memcpy(&h, base, sizeof h);
  if ((rc = mb_gmap_check(base, size, what)) != 0 || memcmp(&h, base, sizeof h) != 0) {
    if (rc == 0)
      rc = mb__errorf(MB_EBUSY, 0, "map '%s' changed while it was opened", name);
    mb_os_section_unmap(base, m->sec.size);
    mb_os_section_close(&m->sec);
    return rc;
  }
  m->base = base;
  m->mapped = m->sec.size;
  m->hdr = (const mb_gmap_header_t *)base;
  m->tiles = (const mb_gmap_tile_t *)(m->base + MB_GMAP_TILES_OFFSET);
  m->objects = (const mb_gmap_object_t *)(m->base + MB_GMAP_OBJECTS_OFFSET(&h));
  m->width = h.width;
  m->height = h.height;
  m->object_count = h.object_count;
  snprintf(m->name, sizeof m->name, "%s", name);
  return 0;
}

int mb_map_open(mb_client_t *c, const char *name, mb_map_t **map) {
  const char *why;
  mb_map_t *m;
  uint32_t seq = 0;
  uint64_t size = 0;
  int rc, tries;
  if ((rc = mb__need(c)) != 0)
    return rc;
  if (name == NULL || map == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_map_open: name and map are required");
  *map = NULL;
  if (name[0] == '\0' || strlen(name) >= MB_MAP_NAME_MAX)
    return mb__errorf(MB_EINVAL, 0, "map name '%.64s': 1 to %d bytes", name, MB_MAP_NAME_MAX - 1);
  /* A dead or stopping broker's directory is not read: reattach first. */
  if ((why = mb__stopping(c->st)) != NULL)
    return mb__errorf(MB_ENOTRUNNING, 0, "map '%s': the broker is %s", name, why);
  if ((m = calloc(1, sizeof *m)) == NULL)
    return mb__errorf(MB_ENOMEM, 0, "mb_map_open '%s'", name);
  /* The entry may be unloaded (its name removed) between reading it and opening the section:
   * then read the directory again (a reload has a new seq). */
  for (tries = 0;; tries++) {
    if ((rc = mb__map_find(c, name, &seq, &size)) != 0)
      break;
    rc = mb__map_attach(c, name, seq, size, m);
    if (rc != MB_ENOENT || tries >= 10)
      break;
  }
  if (rc != 0) {
    free(m);
    return rc;
  }
  m->client = c;
  m->next = c->maps_open;
  if (m->next)
    m->next->prev = m;
  c->maps_open = m;
  *map = m;
  return 0;
}

const mb_gmap_header_t *mb_map_header(const mb_map_t *map) {
  return map ? map->hdr : NULL;
}

int mb_map_tile(const mb_map_t *map, uint32_t x, uint32_t y, const mb_gmap_tile_t **tile) {
  if (map == NULL || tile == NULL) {
    if (tile)
      *tile = NULL;
    return mb__errorf(MB_EINVAL, 0, "mb_map_tile: map and tile are required");
  }
  if (x >= map->width || y >= map->height) {
    *tile = NULL;
    return mb__errorf(MB_ERANGE, 0, "map '%s': tile (%u, %u) is outside its %u x %u tiles",
                      map->name, (unsigned)x, (unsigned)y, (unsigned)map->width,
                      (unsigned)map->height);
  }
  *tile = &map->tiles[(size_t)y * map->width + x];
  return 0;
}

int mb_map_object(const mb_map_t *map, uint32_t index, const mb_gmap_object_t **obj) {
  if (map == NULL || obj == NULL) {
    if (obj)
      *obj = NULL;
    return mb__errorf(MB_EINVAL, 0, "mb_map_object: map and obj are required");
  }
  if (index >= map->object_count) {
    *obj = NULL;
    return mb__errorf(MB_ERANGE, 0, "map '%s': object %u is past its %u objects", map->name,
                      (unsigned)index, (unsigned)map->object_count);
  }
  *obj = &map->objects[index];
  return 0;
}

void mb_map_close(mb_map_t *map) {
  if (map == NULL)
    return;
  if (map->prev)
    map->prev->next = map->next;
  else if (map->client)
    map->client->maps_open = map->next;
  if (map->next)
    map->next->prev = map->prev;
  mb_os_section_unmap((void *)map->base, map->mapped);
  mb_os_section_close(&map->sec);
  free(map);
}

/* mb_detach and mb_close: the handles left open are closed (their pointers die with them). */
void mb__maps_close_all(mb_client_t *c) {
  while (c->maps_open != NULL)
    mb_map_close(c->maps_open);
}
