/*
 * local.c: the `local` backend, objects as files under a bucket's root folder.
 *
 * Invariants:
 *   - An object under its final key is always complete: every write goes to a staging
 *     file beside it ("<final>.stage-<random>.tmp"), is fsynced, renamed over the final
 *     name, and the folder is fsynced (lh_fs_commit). Listing never shows staging files;
 *     keys may not contain ".stage-", so the two name spaces cannot collide.
 *   - Keys are validated before they touch the file system, so no key escapes its
 *     bucket's root ("..", absolute paths, backslashes, control characters).
 *   - Primary's root is the data folder, which also holds other buckets (`buckets/`,
 *     `_rescue/`) and internal folders (`_tmp/`, ...): keys under `buckets/` and
 *     `_rescue/` are refused in primary, and listing primary skips every top-level folder
 *     starting with '_' except `_catalog`, unless the prefix names it.
 *   - Deleting an object removes the folders it leaves empty. Creating folders for a new
 *     file and removing empty folders are serialised (dir lock) and a new file is created
 *     before the lock is released, so a delete never removes a folder a writer is about
 *     to use.
 *   - Symbolic links are neither followed nor listed.
 *   - Everything is owner-only: folders LH_DIR_MODE (0700), objects LH_FILE_MODE (0600),
 *     including what DuckDB writes (a staged file is chmod-ed before it is committed).
 *   - A commit step that fails after the rename (or a delete after the unlink) reports
 *     LH_KIND_NOT_DURABLE: the change is visible, its durability unknown (see fs.c).
 *   - Discarding a staged file also removes what DuckDB's COPY left beside it (its own
 *     temp file "tmp_<staged name>"), so a failed write leaves nothing behind at once.
 */
#define _GNU_SOURCE /* syncfs, for lh_storage_put_many */
#include "storage_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_MAX 1024
#define SEGMENT_MAX 255

/* Top-level folders of the data folder that belong to other buckets: never reachable
 * through primary. */
static const char *const primary_reserved[] = {"buckets", "_rescue"};

/* ---------------------------------------------------------------- keys */

int lh_storage_key_validate(const char *key, lh_error *err)
{
    if (!key || !*key)
        return lh_error_set(err, LH_EINVAL, "object key is empty");
    size_t n = strlen(key);
    if (n > KEY_MAX)
        return lh_error_set(err, LH_EINVAL, "object key is %zu bytes long; the limit is %d", n,
                            KEY_MAX);
    if (key[0] == '/')
        return lh_error_set(err, LH_EINVAL, "object key '%s' must be relative (no leading '/')",
                            key);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x20 || c == 0x7f)
            return lh_error_set(err, LH_EINVAL,
                                "object key contains a control character (byte 0x%02x at %zu)", c,
                                i);
        if (c == '\\')
            return lh_error_set(err, LH_EINVAL, "object key '%s' contains a backslash", key);
    }
    const char *seg = key;
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t sl = end ? (size_t)(end - seg) : strlen(seg);
        if (sl == 0)
            return lh_error_set(err, LH_EINVAL, "object key '%s' has an empty segment", key);
        if ((sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.'))
            return lh_error_set(err, LH_EINVAL, "object key '%s' contains a '.' or '..' segment",
                                key);
        if (sl > SEGMENT_MAX)
            return lh_error_set(err, LH_EINVAL, "object key '%s' has a segment over %d bytes", key,
                                SEGMENT_MAX);
        if (!end)
            break;
        seg = end + 1;
    }
    if (strstr(key, LH_STAGE_MARK))
        return lh_error_set(err, LH_EINVAL,
                            "object key '%s' contains '" LH_STAGE_MARK
                            "', which is reserved for staging files",
                            key);
    return 0;
}

bool lh_storage__is_staging_name(const char *base)
{
    size_t n = strlen(base), sl = strlen(LH_STAGE_SUFFIX);
    return strstr(base, LH_STAGE_MARK) && n > sl && strcmp(base + n - sl, LH_STAGE_SUFFIX) == 0;
}

/* Length of the first segment of a key or prefix. */
static size_t first_segment_len(const char *key)
{
    const char *slash = strchr(key, '/');
    return slash ? (size_t)(slash - key) : strlen(key);
}

static int check_primary_reserved(const char *key, lh_error *err)
{
    size_t sl = first_segment_len(key);
    for (size_t i = 0; i < sizeof(primary_reserved) / sizeof(primary_reserved[0]); i++)
        if (strlen(primary_reserved[i]) == sl && strncmp(key, primary_reserved[i], sl) == 0)
            return lh_error_set(err, LH_EINVAL,
                                "object key '%s' is inside primary's reserved folder '%s/'", key,
                                primary_reserved[i]);
    return 0;
}

char *lh_storage__resolve(lh_storage *st, const char *bucket, const char *key, char **root_out,
                          lh_error *err)
{
    if (root_out)
        *root_out = NULL;
    if (lh_storage_key_validate(key, err) != 0)
        return NULL;
    bool is_primary = false;
    char *root = lh_storage__root(st, bucket, &is_primary, err);
    if (!root)
        return NULL;
    if (is_primary && check_primary_reserved(key, err) != 0) {
        free(root);
        return NULL;
    }
    char *path = lh_path_join(root, key);
    if (root_out)
        *root_out = root;
    else
        free(root);
    return path;
}

char *lh_storage_path(lh_storage *st, const char *bucket, const char *key, lh_error *err)
{
    return lh_storage__resolve(st, bucket, key, NULL, err);
}

int64_t lh_storage_size(lh_storage *st, const char *bucket, const char *key)
{
    char *path = lh_storage__resolve(st, bucket, key, NULL, NULL);
    if (!path)
        return -1;
    struct stat s;
    int64_t size = lstat(path, &s) == 0 && S_ISREG(s.st_mode) ? (int64_t)s.st_size : -1;
    free(path);
    return size;
}

/* ---------------------------------------------------------------- writes */

static char *parent_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return lh_xasprintf("%.*s", (int)(slash && slash != path ? slash - path : 1), path);
}

/* Creates the parent folders of final_path and an empty staging file beside it, under the
 * dir lock (see the header comment). Caller frees the returned path. */
static char *stage_file(lh_storage *st, const char *final_path, lh_error *err)
{
    char hex[17];
    lh_random_hex(hex, 16);
    char *staged = lh_xasprintf("%s" LH_STAGE_MARK "%s" LH_STAGE_SUFFIX, final_path, hex);
    char *dir = parent_of(final_path);
    lh_storage__dir_lock(st);
    int rc = lh_fs_mkdirs(dir, LH_DIR_MODE, err);
    if (rc == 0) {
        int fd = lh_sys_open(staged, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, LH_FILE_MODE);
        if (fd < 0)
            rc = lh_error_set(err, LH_EIO, "cannot create '%s': %s", staged, strerror(errno));
        else
            close(fd);
    }
    lh_storage__dir_unlock(st);
    free(dir);
    if (rc) {
        free(staged);
        return NULL;
    }
    return staged;
}

char *lh_storage_stage(lh_storage *st, const char *bucket, const char *key, lh_error *err)
{
    char *final_path = lh_storage__resolve(st, bucket, key, NULL, err);
    if (!final_path)
        return NULL;
    char *staged = stage_file(st, final_path, err);
    free(final_path);
    return staged;
}

int lh_storage_commit(lh_storage *st, const char *bucket, const char *staged_path, const char *key,
                      lh_error *err)
{
    char *root = NULL;
    char *final_path = lh_storage__resolve(st, bucket, key, &root, err);
    int rc = 0;
    if (!final_path)
        return err ? err->code : LH_EINVAL;
    /* Only files made by lh_storage_stage in this bucket may be committed: commit must
     * not become a way to move arbitrary files into a bucket. */
    const char *base = staged_path ? strrchr(staged_path, '/') : NULL;
    if (!base || staged_path[0] != '/' || strstr(staged_path, "/../") ||
        !lh_storage__path_within(staged_path, root) || !lh_storage__is_staging_name(base + 1)) {
        rc = lh_error_set(err, LH_EINVAL, "'%s' is not a staging file of bucket '%s'",
                          staged_path ? staged_path : "(null)", bucket);
        goto out;
    }
    /* Another writer (DuckDB's COPY) may have replaced the staged file with one of its own,
     * created with the process umask: the object becomes owner-only before it is named. */
    if (chmod(staged_path, LH_FILE_MODE) != 0) {
        rc = lh_error_set(err, LH_EIO, "cannot set the mode of '%s': %s", staged_path,
                          strerror(errno));
        goto out;
    }
    rc = lh_fs_commit(staged_path, final_path, err);
out:
    free(root);
    free(final_path);
    return rc;
}

void lh_storage_discard(const char *staged_path)
{
    if (!staged_path)
        return;
    unlink(staged_path);
    /* DuckDB's COPY TO writes "tmp_<name>" beside an existing target and renames it at the
     * end; a COPY that failed (a parse error, a full disk) leaves it, possibly large. */
    const char *slash = strrchr(staged_path, '/');
    char *duck_tmp =
        slash ? lh_xasprintf("%.*s/tmp_%s", (int)(slash - staged_path), staged_path, slash + 1)
              : lh_xasprintf("tmp_%s", staged_path);
    unlink(duck_tmp);
    free(duck_tmp);
}

int lh_storage_put(lh_storage *st, const char *bucket, const char *key, const void *data,
                   size_t len, lh_error *err)
{
    char *final_path = lh_storage__resolve(st, bucket, key, NULL, err);
    char *staged = NULL;
    int rc = 0, fd = -1;
    if (!final_path)
        return err ? err->code : LH_EINVAL;
    staged = stage_file(st, final_path, err);
    if (!staged) {
        rc = err ? err->code : LH_EIO;
        goto out;
    }
    fd = lh_sys_open(staged, O_WRONLY | O_TRUNC | O_CLOEXEC, 0);
    if (fd < 0) {
        rc = lh_error_set(err, LH_EIO, "cannot open '%s': %s", staged, strerror(errno));
        goto out;
    }
    if (lh_fs_write_all(fd, data, len) != 0)
        rc = lh_error_set(err, LH_EIO, "cannot write '%s': %s", staged, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = lh_error_set(err, LH_EIO, "cannot write '%s': %s", staged, strerror(errno));
    fd = -1;
    if (rc)
        goto out;
    rc = lh_fs_commit(staged, final_path, err); /* fsync, rename, fsync folder */
out:
    if (rc && staged)
        unlink(staged);
    free(staged);
    free(final_path);
    return rc;
}

/* ---------------------------------------------------------------- many objects (issue 11) */

/* The durability barrier of lh_storage_put_many: every file written so far on the file
 * system holding dir reaches the disk. Counted as an fsync by the fault hook. */
static int sync_fs_of(const char *dir)
{
    if (lh_fault__fail(LH_FAULT_FSYNC))
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = syncfs(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int lh_storage_put_many(lh_storage *st, const char *bucket, char *const *keys, char *const *data,
                        const size_t *lens, size_t n, lh_error *err)
{
    char **finals = lh_xcalloc(n + 1, sizeof(char *)), **staged = lh_xcalloc(n + 1, sizeof(char *));
    char *root = NULL, *last_dir = NULL;
    size_t renamed = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(finals[i] = lh_storage__resolve(st, bucket, keys[i], i == 0 ? &root : NULL, err)) ||
            !(staged[i] = stage_file(st, finals[i], err))) {
            rc = err ? err->code : LH_EIO;
            goto out;
        }
        int fd = lh_sys_open(staged[i], O_WRONLY | O_TRUNC | O_CLOEXEC, 0);
        if (fd < 0) {
            rc = lh_error_set(err, LH_EIO, "cannot open '%s': %s", staged[i], strerror(errno));
            goto out;
        }
        if (lh_fs_write_all(fd, data[i], lens[i]) != 0)
            rc = lh_error_set(err, LH_EIO, "cannot write '%s': %s", staged[i], strerror(errno));
        if (close(fd) != 0 && rc == 0)
            rc = lh_error_set(err, LH_EIO, "cannot write '%s': %s", staged[i], strerror(errno));
        if (rc)
            goto out;
    }
    if (n > 0 && sync_fs_of(root) != 0) {
        rc = lh_error_set(err, LH_EIO, "cannot sync the file system of bucket '%s': %s", bucket,
                          strerror(errno));
        goto out;
    }
    /* The data is durable: from here each rename makes one complete object visible. */
    for (size_t i = 0; i < n; i++) {
        if (lh_sys_rename(staged[i], finals[i]) != 0) {
            rc = lh_error_set(err, LH_EIO, "cannot rename '%s' to '%s': %s", staged[i], finals[i],
                              strerror(errno));
            goto out;
        }
        free(staged[i]);
        staged[i] = NULL;
        renamed++;
    }
    for (size_t i = 0; i < n; i++) {
        char *dir = parent_of(finals[i]);
        if (last_dir && strcmp(dir, last_dir) == 0) {
            free(dir);
            continue;
        }
        free(last_dir);
        last_dir = dir;
        if ((rc = lh_fs_fsync_dir(dir, err)) != 0)
            goto out;
    }
out:
    if (rc && renamed > 0 && err)
        err->kind = LH_KIND_NOT_DURABLE;
    for (size_t i = 0; i < n; i++) {
        if (staged[i])
            unlink(staged[i]);
        free(staged[i]);
        free(finals[i]);
    }
    free(staged);
    free(finals);
    free(root);
    free(last_dir);
    return rc;
}

/* ---------------------------------------------------------------- append */

int lh_storage_append(lh_storage *st, const char *bucket, const char *key, int64_t at,
                      const void *data, size_t len, lh_error *err)
{
    char *path = lh_storage__resolve(st, bucket, key, NULL, err);
    char *dir = NULL;
    int rc = 0, fd = -1;
    if (!path)
        return err ? err->code : LH_EINVAL;
    if (at < 0) {
        rc = lh_error_set(err, LH_EINVAL, "append to '%s' at a negative offset", key);
        goto out;
    }
    dir = parent_of(path);
    if (at == 0) {
        /* Creating: folders and file under the dir lock, like stage_file. */
        lh_storage__dir_lock(st);
        rc = lh_fs_mkdirs(dir, LH_DIR_MODE, err);
        if (rc == 0) {
            fd = lh_sys_open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, LH_FILE_MODE);
            if (fd < 0)
                rc = lh_error_set(err, LH_EIO, "cannot open '%s': %s", path, strerror(errno));
        }
        lh_storage__dir_unlock(st);
    } else {
        fd = lh_sys_open(path, O_WRONLY | O_APPEND | O_CLOEXEC, 0);
        if (fd < 0)
            rc = lh_error_set(err, LH_EIO, "cannot open '%s': %s", path, strerror(errno));
    }
    if (rc)
        goto out;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = lh_error_set(err, LH_EIO, "cannot stat '%s': %s", path, strerror(errno));
        goto out;
    }
    if (sb.st_size < at) {
        rc = lh_error_set(err, LH_EIO, "'%s' is %lld bytes, shorter than the %lld expected", path,
                          (long long)sb.st_size, (long long)at);
        goto out;
    }
    /* What lies past `at` is a failed append's remains: never acknowledged, so cut. */
    if (sb.st_size > at && ftruncate(fd, (off_t)at) != 0) {
        rc = lh_error_set(err, LH_EIO, "cannot truncate '%s': %s", path, strerror(errno));
        goto out;
    }
    if (lh_fs_write_all(fd, data, len) != 0) {
        rc = lh_error_set(err, LH_EIO, "cannot append to '%s': %s", path, strerror(errno));
        goto out;
    }
    if (lh_sys_fsync(fd) != 0) {
        rc = lh_error_set(err, LH_EIO, "cannot sync '%s': %s", path, strerror(errno));
        goto out;
    }
    if (at == 0)
        rc = lh_fs_fsync_dir(dir, err); /* the file's name is durable too */
out:
    if (rc && fd >= 0 && ftruncate(fd, (off_t)at) != 0)
        lh_log(LH_LOG_WARN, "storage_append_truncate_failed", "{s:s,s:s}", "key", key, "error",
               strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    free(path);
    return rc;
}

/* ---------------------------------------------------------------- reads */

int lh_storage_get(lh_storage *st, const char *bucket, const char *key, size_t max_len, char **data,
                   size_t *len, lh_error *err)
{
    *data = NULL;
    if (len)
        *len = 0;
    char *path = lh_storage__resolve(st, bucket, key, NULL, err);
    if (!path)
        return err ? err->code : LH_EINVAL;
    int rc = lh_fs_read_all(path, max_len, data, len, err);
    if (rc == LH_ENOTFOUND)
        lh_error_set(err, LH_ENOTFOUND, "no object '%s' in bucket '%s'", key, bucket);
    free(path);
    return rc;
}

/* ---------------------------------------------------------------- delete */

int lh_storage_delete(lh_storage *st, const char *bucket, const char *key, lh_error *err)
{
    char *root = NULL;
    char *path = lh_storage__resolve(st, bucket, key, &root, err);
    int rc = 0;
    if (!path)
        return err ? err->code : LH_EINVAL;
    if (lh_sys_unlink(path) != 0 && errno != ENOENT) {
        rc = lh_error_set(err, LH_EIO, "cannot delete object '%s' in bucket '%s': %s", key, bucket,
                          strerror(errno));
        goto out;
    }
    /* Remove the folders the object leaves empty, stopping at the first one that is not
     * (rmdir refuses non-empty folders, which is the test), then fsync the folder that
     * survives: it holds the last removed entry, so the delete is durable. */
    char *dir = parent_of(path);
    lh_storage__dir_lock(st);
    while (strlen(dir) > strlen(root) && lh_storage__path_within(dir, root)) {
        if (rmdir(dir) != 0)
            break;
        char *up = parent_of(dir);
        free(dir);
        dir = up;
    }
    lh_storage__dir_unlock(st);
    if (lh_fs_exists(dir) && lh_fs_fsync_dir(dir, err) != 0)
        rc = lh_error_setk(err, LH_EIO, LH_KIND_NOT_DURABLE,
                           "object '%s' in bucket '%s' was deleted but the folder could not be "
                           "synced; the delete may not survive a crash",
                           key, bucket);
    free(dir);
out:
    free(root);
    free(path);
    return rc;
}

/* ---------------------------------------------------------------- listing */

typedef struct walk {
    const char *root;
    const char *prefix;
    bool is_primary;
    bool want_staging; /* false: keys of objects; true: paths of staging files */
    char **items;
    size_t n, cap;
} walk;

static void walk_push(walk *w, char *item)
{
    if (w->n + 1 >= w->cap) {
        w->cap = w->cap ? w->cap * 2 : 64;
        w->items = lh_xrealloc(w->items, w->cap * sizeof(*w->items));
    }
    w->items[w->n++] = item;
    w->items[w->n] = NULL;
}

/* Primary's top-level folders other than _catalog that start with '_' are internal (and
 * buckets/ is other buckets): listing skips them unless the prefix names them. */
static bool primary_hides(const walk *w, const char *rel)
{
    size_t sl = first_segment_len(rel);
    bool internal = (rel[0] == '_' && !(sl == 8 && strncmp(rel, "_catalog", 8) == 0)) ||
                    (sl == 7 && strncmp(rel, "buckets", 7) == 0);
    if (!internal)
        return false;
    return !(strncmp(w->prefix, rel, sl) == 0 && w->prefix[sl] == '/');
}

/* rel: key-relative path of the folder ("" for the root). */
static int walk_dir(walk *w, const char *rel, lh_error *err)
{
    char *dir = *rel ? lh_path_join(w->root, rel) : lh_xstrdup(w->root);
    DIR *d = opendir(dir);
    int rc = 0;
    if (!d) {
        if (errno != ENOENT && errno != ENOTDIR)
            rc = lh_error_set(err, LH_EIO, "cannot list '%s': %s", dir, strerror(errno));
        free(dir);
        return rc;
    }
    size_t plen = strlen(w->prefix);
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *child = *rel ? lh_xasprintf("%s/%s", rel, de->d_name) : lh_xstrdup(de->d_name);
        char *full = lh_path_join(w->root, child);
        struct stat s;
        if (lstat(full, &s) != 0 || (w->is_primary && primary_hides(w, child))) {
            /* vanished meanwhile, or internal */
        } else if (S_ISDIR(s.st_mode)) {
            /* Descend only when keys below can match: the folder is under the prefix, or
             * the prefix goes on inside it. */
            size_t cl = strlen(child);
            bool under = strncmp(child, w->prefix, cl < plen ? cl : plen) == 0 &&
                         (cl >= plen || w->prefix[cl] == '/');
            if (under)
                rc = walk_dir(w, child, err);
        } else if (S_ISREG(s.st_mode) && strncmp(child, w->prefix, plen) == 0) {
            /* Keys never contain the mark, so anything carrying it is a staging file
             * (DuckDB may also leave "<staged>.tmp" beside it). */
            bool staging = strstr(de->d_name, LH_STAGE_MARK) != NULL;
            if (w->want_staging && lh_storage__is_staging_name(de->d_name)) {
                walk_push(w, full);
                full = NULL;
            } else if (!w->want_staging && !staging) {
                walk_push(w, child);
                child = NULL;
            }
        }
        free(child);
        free(full);
    }
    closedir(d);
    free(dir);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs a walk of bucket under prefix. On success w->items holds the results. */
static int walk_bucket(lh_storage *st, const char *bucket, const char *prefix, walk *w,
                       lh_error *err)
{
    if (!prefix)
        prefix = "";
    char *root = NULL;
    int rc = 0;
    if (*prefix) {
        /* A prefix is a key, possibly ending in '/' or in the middle of a segment. */
        size_t n = strlen(prefix);
        char *trimmed =
            lh_xasprintf("%.*s", (int)(n > 1 && prefix[n - 1] == '/' ? n - 1 : n), prefix);
        char *path = lh_storage__resolve(st, bucket, trimmed, &root, err);
        free(trimmed);
        if (!path)
            return err ? err->code : LH_EINVAL;
        free(path);
    } else {
        bool is_primary = false;
        root = lh_storage__root(st, bucket, &is_primary, err);
        if (!root)
            return err ? err->code : LH_ENOTFOUND;
    }
    w->root = root;
    w->prefix = prefix;
    w->is_primary = strcmp(bucket, LH_BUCKET_PRIMARY) == 0;
    /* Start at the deepest folder the prefix fully names. */
    const char *slash = strrchr(prefix, '/');
    char *start = slash ? lh_xasprintf("%.*s", (int)(slash - prefix), prefix) : lh_xstrdup("");
    rc = walk_dir(w, start, err);
    free(start);
    free(root);
    w->root = NULL;
    if (rc) {
        for (size_t i = 0; i < w->n; i++)
            free(w->items[i]);
        free(w->items);
        w->items = NULL;
        w->n = 0;
        return rc;
    }
    if (!w->items)
        w->items = lh_xcalloc(1, sizeof(*w->items));
    qsort(w->items, w->n, sizeof(*w->items), cmp_str);
    return 0;
}

int lh_storage_list(lh_storage *st, const char *bucket, const char *prefix, char ***keys,
                    size_t *count, lh_error *err)
{
    walk w = {0};
    *keys = NULL;
    if (count)
        *count = 0;
    int rc = walk_bucket(st, bucket, prefix, &w, err);
    if (rc)
        return rc;
    *keys = w.items;
    if (count)
        *count = w.n;
    return 0;
}

void lh_storage_keys_free(char **keys)
{
    if (!keys)
        return;
    for (char **k = keys; *k; k++)
        free(*k);
    free(keys);
}

int lh_storage_sweep_staged(lh_storage *st, const char *bucket, const char *prefix, lh_error *err)
{
    walk w = {.want_staging = true};
    int rc = walk_bucket(st, bucket, prefix, &w, err);
    if (rc)
        return rc;
    int removed = 0;
    for (size_t i = 0; i < w.n; i++) {
        if (unlink(w.items[i]) == 0) {
            removed++;
            lh_log(LH_LOG_INFO, "staging_file_removed", "{s:s,s:s}", "bucket", bucket, "path",
                   w.items[i]);
        }
        free(w.items[i]);
    }
    free(w.items);
    return removed;
}
