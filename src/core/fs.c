/*
 * fs.c: file-system helpers with crash safety spelled out.
 *
 * Invariant: a file under its final name is always complete. Writers create a temp file
 * in the same folder (so rename is atomic), fsync it, rename it over the final name and
 * fsync the folder so the rename itself survives a power cut.
 */
#include "core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int lh_fs_mkdirs(const char *path, mode_t mode, lh_error *err)
{
    char *p = lh_xstrdup(path);
    int rc = 0;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST) {
            rc = lh_error_set(err, LH_EIO, "cannot create folder '%s': %s", p, strerror(errno));
            goto out;
        }
        *s = '/';
    }
    if (mkdir(p, mode) != 0 && errno != EEXIST) {
        rc = lh_error_set(err, LH_EIO, "cannot create folder '%s': %s", p, strerror(errno));
        goto out;
    }
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
        rc = lh_error_set(err, LH_EIO, "'%s' exists and is not a folder", p);
out:
    free(p);
    return rc;
}

int lh_fs_fsync_dir(const char *dir, lh_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return lh_error_set(err, LH_EIO, "cannot open folder '%s': %s", dir, strerror(errno));
    int rc = 0;
    if (fsync(fd) != 0)
        rc = lh_error_set(err, LH_EIO, "cannot sync folder '%s': %s", dir, strerror(errno));
    close(fd);
    return rc;
}

static char *parent_dir(const char *path)
{
    char *copy = lh_xstrdup(path);
    char *d = lh_xstrdup(dirname(copy));
    free(copy);
    return d;
}

int lh_fs_commit(const char *tmp_path, const char *final_path, lh_error *err)
{
    int fd = open(tmp_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lh_error_set(err, LH_EIO, "cannot open '%s': %s", tmp_path, strerror(errno));
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return lh_error_set(err, LH_EIO, "cannot sync '%s': %s", tmp_path, strerror(e));
    }
    close(fd);
    if (rename(tmp_path, final_path) != 0)
        return lh_error_set(err, LH_EIO, "cannot rename '%s' to '%s': %s", tmp_path, final_path,
                            strerror(errno));
    char *dir = parent_dir(final_path);
    int rc = lh_fs_fsync_dir(dir, err);
    free(dir);
    return rc;
}

int lh_fs_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int lh_fs_write_atomic(const char *path, const void *data, size_t len, lh_error *err)
{
    return lh_fs_write_atomic_mode(path, data, len, 0644, err);
}

int lh_fs_write_atomic_mode(const char *path, const void *data, size_t len, mode_t mode,
                            lh_error *err)
{
    char hex[17];
    lh_random_hex(hex, 16);
    char *tmp = lh_xasprintf("%s.%s.tmp", path, hex);
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        rc = lh_error_set(err, LH_EIO, "cannot create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    if (lh_fs_write_all(fd, data, len) != 0) {
        rc = lh_error_set(err, LH_EIO, "cannot write '%s': %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (fsync(fd) != 0) {
        rc = lh_error_set(err, LH_EIO, "cannot sync '%s': %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        rc =
            lh_error_set(err, LH_EIO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    char *dir = parent_dir(path);
    rc = lh_fs_fsync_dir(dir, err);
    free(dir);
out:
    free(tmp);
    return rc;
}

int lh_fs_read_all(const char *path, size_t max_len, char **data, size_t *len, lh_error *err)
{
    *data = NULL;
    if (len)
        *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return lh_error_set(err, LH_ENOTFOUND, "'%s' does not exist", path);
        return lh_error_set(err, LH_EIO, "cannot open '%s': %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return lh_error_set(err, LH_EIO, "'%s' is not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_len) {
        close(fd);
        return lh_error_set(err, LH_ETOOLARGE, "'%s' is %lld bytes, over the limit of %zu", path,
                            (long long)st.st_size, max_len);
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = lh_xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > max_len) {
                free(buf);
                close(fd);
                return lh_error_set(err, LH_ETOOLARGE, "'%s' is over the limit of %zu bytes", path,
                                    max_len);
            }
            cap *= 2;
            buf = lh_xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return lh_error_set(err, LH_EIO, "cannot read '%s': %s", path, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *data = buf;
    if (len)
        *len = n;
    return 0;
}

int lh_fs_remove_tree(const char *path, lh_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT
                   ? 0
                   : lh_error_set(err, LH_EIO, "cannot stat '%s': %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d)
            return lh_error_set(err, LH_EIO, "cannot open '%s': %s", path, strerror(errno));
        struct dirent *de;
        int rc = 0;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char *child = lh_path_join(path, de->d_name);
            rc = lh_fs_remove_tree(child, err);
            free(child);
            if (rc)
                break;
        }
        closedir(d);
        if (rc)
            return rc;
        if (rmdir(path) != 0 && errno != ENOENT)
            return lh_error_set(err, LH_EIO, "cannot remove '%s': %s", path, strerror(errno));
        return 0;
    }
    if (unlink(path) != 0 && errno != ENOENT)
        return lh_error_set(err, LH_EIO, "cannot remove '%s': %s", path, strerror(errno));
    return 0;
}

int64_t lh_fs_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    return (int64_t)st.st_size;
}

bool lh_fs_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

char *lh_path_join(const char *a, const char *b)
{
    size_t la = strlen(a);
    while (la > 1 && a[la - 1] == '/')
        la--;
    while (*b == '/')
        b++;
    if (la == 1 && a[0] == '/')
        return lh_xasprintf("/%s", b);
    return lh_xasprintf("%.*s/%s", (int)la, a, b);
}

char *lh_path_absolute(const char *path, lh_error *err)
{
    if (!path || !*path) {
        lh_error_set(err, LH_EINVAL, "empty path");
        return NULL;
    }
    char *joined;
    if (path[0] == '/') {
        joined = lh_xstrdup(path);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof(cwd))) {
            lh_error_set(err, LH_EIO, "cannot read the current folder: %s", strerror(errno));
            return NULL;
        }
        joined = lh_path_join(cwd, path);
    }
    /* Normalise lexically: drop "." and empty segments, resolve "..". */
    size_t n = strlen(joined);
    char *out = lh_xmalloc(n + 2);
    size_t o = 0;
    const char *p = joined;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *seg = p;
        while (*p && *p != '/')
            p++;
        size_t sl = (size_t)(p - seg);
        if (sl == 1 && seg[0] == '.')
            continue;
        if (sl == 2 && seg[0] == '.' && seg[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
            continue;
        }
        out[o++] = '/';
        memcpy(out + o, seg, sl);
        o += sl;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    free(joined);
    return out;
}
