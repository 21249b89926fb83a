#include "testutil.h"

#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *lh_test_tmpdir(const char *tag)
{
    const char *base = getenv("LH_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    lh_error err;
    if (lh_fs_mkdirs(base, 0755, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        abort();
    }
    char hex[17];
    lh_random_hex(hex, 16);
    char *dir = lh_xasprintf("%s/%s-%s", base, tag, hex);
    if (lh_fs_mkdirs(dir, 0755, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        abort();
    }
    return dir;
}

void lh_test_rmdir(char *dir)
{
    if (!dir)
        return;
    lh_fs_remove_tree(dir, NULL);
    free(dir);
}

void lh_test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fputs(text, f);
    fclose(f);
}

void lh_test_cat_open(lh_test_cat *e)
{
    lh_error err;
    e->st = lh_storage_open(e->data, &err);
    if (!e->st)
        fail_msg("storage: %s", err.message);
    e->cat = lh_catalog_open(e->st, &err);
    if (!e->cat)
        fail_msg("catalog: %s", err.message);
}

void lh_test_cat_close(lh_test_cat *e)
{
    lh_catalog_close(e->cat);
    lh_storage_close(e->st);
    e->cat = NULL;
    e->st = NULL;
}

lh_test_cat *lh_test_cat_new(const char *tag)
{
    lh_test_cat *e = lh_xcalloc(1, sizeof(*e));
    e->tmp = lh_test_tmpdir(tag);
    e->data = lh_path_join(e->tmp, "data");
    lh_test_cat_open(e);
    return e;
}

void lh_test_cat_reopen(lh_test_cat *e)
{
    lh_test_cat_close(e);
    lh_test_cat_open(e);
}

void lh_test_cat_free(lh_test_cat *e)
{
    lh_test_cat_close(e);
    free(e->data);
    lh_test_rmdir(e->tmp);
    free(e);
}
