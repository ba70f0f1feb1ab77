/*
 * testfile.c - files the tests write byte for byte (see testfile.h). Compiled into each test
 * binary that uses it.
 */
#include "testfile.h"

#include "task.h"

void tf_sparse_file(const char *path, const unsigned char *head, size_t head_len, uint64_t size) {
  FILE *fp;
  if (size < head_len + 1)
    FAIL("tf_sparse_file: %llu bytes cannot hold a %u-byte head and the last byte",
         (unsigned long long)size, (unsigned)head_len);
  ASSERT_OK(mb_os_file_open(path, "wb", &fp));
  ASSERT_EQ(fwrite(head, 1, head_len, fp), head_len);
  ASSERT_OK(mb_os_file_seek(fp, size - 1));
  ASSERT_EQ(fputc(0, fp), 0);
  ASSERT_EQ(fclose(fp), 0);
}
