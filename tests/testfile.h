/*
 * testfile.h - files the tests write byte for byte (not configs: those are fixture.h's), shared
 * by the test files that need the same shape of file. Every helper fails the test (FAIL,
 * task.h) instead of returning an error.
 */
#ifndef MB_TEST_TESTFILE_H
#define MB_TEST_TESTFILE_H

#include <stddef.h>
#include <stdint.h>

/*
 * A file of `size` bytes at `path` whose first `head_len` bytes are `head` and whose rest is
 * zero, sparse past the head where the file system allows (a 140 GiB file costs no disk):
 * for a reader that must check a header against the file's real size before reading on.
 */
void tf_sparse_file(const char *path, const unsigned char *head, size_t head_len, uint64_t size);

#endif /* MB_TEST_TESTFILE_H */
