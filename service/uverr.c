/*
 * uverr.c - the one libuv error table (see uverr.h). It owns nothing else: a caller words its
 * own message (uv_strerror / uv_err_name) and keeps the raw code for the log.
 */
#include "uverr.h"

#include <uv.h>

#include "error.h"

int mb__from_uv(int uverr) {
  switch (uverr) {
  case UV_ENOENT:
  case UV_ENOTDIR:
    return MB_ENOENT;
  case UV_EACCES:
  case UV_EPERM:
  case UV_EROFS:
    return MB_EACCES;
  case UV_EEXIST:
    return MB_EEXIST;
  case UV_EADDRINUSE:
  case UV_EBUSY:
    return MB_EBUSY;
  case UV_ENAMETOOLONG:
    return MB_ENAMETOOLONG;
  case UV_ENOMEM:
    return MB_ENOMEM;
  case UV_ENOSPC:
  case UV_EFBIG:
    return MB_ENOSPC;
  case UV_EISDIR:
  case UV_EINVAL:
    return MB_EINVAL;
  case UV_EIO:
    return MB_EIO;
  case UV_ETIMEDOUT:
    return MB_ETIMEOUT;
  case UV_ENOSYS:
  case UV_ENOTSUP:
    return MB_ENOTSUP;
  default:
    return MB_EOS;
  }
}
