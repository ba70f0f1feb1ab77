/*
 * uverr.h - the one table from libuv's error codes (UV_E*, negative) to ours (MB_E*), for the
 * broker's libuv files (ctl.c: the pipe server; maps.c: reading game data files). The errno
 * table of the platform layer is its counterpart for the OS's own calls (mb__os_from_errno).
 */
#ifndef MB_UVERR_H
#define MB_UVERR_H

#ifdef __cplusplus
extern "C" {
#endif

/* libuv's error `uverr` as an MB_E* code; MB_EOS for the ones without a better meaning. */
int mb__from_uv(int uverr);

#ifdef __cplusplus
}
#endif

#endif /* MB_UVERR_H */
