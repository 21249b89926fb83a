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
