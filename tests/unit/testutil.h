/* Helpers shared by the unit tests. */
#ifndef LH_TESTUTIL_H
#define LH_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* A fresh empty folder for one test (under $LH_TEST_TMP or /tmp). Caller frees the string
 * and removes the folder with lh_test_rmdir. */
char *lh_test_tmpdir(const char *tag);
void lh_test_rmdir(char *dir);
/* Writes a small file. */
void lh_test_write_file(const char *path, const char *text);

#endif
