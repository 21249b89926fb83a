/* Helpers shared by the unit tests. */
#ifndef LH_TESTUTIL_H
#define LH_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "catalog/catalog.h"

/* A fresh empty folder for one test (under $LH_TEST_TMP or /tmp). Caller frees the string
 * and removes the folder with lh_test_rmdir. */
char *lh_test_tmpdir(const char *tag);
void lh_test_rmdir(char *dir);
/* Writes a small file. */
void lh_test_write_file(const char *path, const char *text);

/* A data folder with its storage and catalog open, for the catalog's suites. new makes the
 * folder (tmp/data) and opens both; reopen closes and opens them again (a restart); free
 * closes them and removes the folder. A failure to open fails the test. */
typedef struct lh_test_cat {
    char *tmp, *data;
    lh_storage *st;
    lh_catalog *cat;
} lh_test_cat;
lh_test_cat *lh_test_cat_new(const char *tag);
void lh_test_cat_open(lh_test_cat *e);
void lh_test_cat_close(lh_test_cat *e);
void lh_test_cat_reopen(lh_test_cat *e);
void lh_test_cat_free(lh_test_cat *e);

#endif
