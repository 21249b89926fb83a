/*
 * fs.c: file-system helpers with crash safety spelled out.
 *
 * Invariants:
 *   - A file under its final name is always complete. Writers create a temp file in the
 *     same folder (so rename is atomic), fsync it, rename it over the final name and fsync
 *     the folder so the rename itself survives a power cut.
 *   - A failure before the rename leaves the old file; a failure after it (the folder
 *     fsync) is reported with the kind LH_KIND_NOT_DURABLE: the new file is what every
 *     reader sees now, but a power cut may still bring the old one back, so the caller
 *     must keep both whole (roll forward, delete nothing the old state references).
 *   - A folder we create is fsynced into its parent before we return it, and created
 *     owner-only (LH_DIR_MODE; files LH_FILE_MODE) whatever the process umask.
 *   - Every call a commit path makes to the file system goes through lh_sys_*, where test
 *     builds (LH_FAULT_INJECTION) can make the Nth call of an operation fail.
 */
#include "core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool lh_error_not_durable(const lh_error *err)
{
    return err && err->code != 0 && err->kind && strcmp(err->kind, LH_KIND_NOT_DURABLE) == 0;
}

/* ---------------------------------------------------------------- fault injection */

#ifdef LH_FAULT_INJECTION
static const char *const fault_op_names[LH_FAULT_OP_COUNT] = {
    [LH_FAULT_OPEN] = "open",     [LH_FAULT_WRITE] = "write",         [LH_FAULT_FSYNC] = "fsync",
    [LH_FAULT_RENAME] = "rename", [LH_FAULT_FSYNC_DIR] = "fsync_dir", [LH_FAULT_MKDIR] = "mkdir",
    [LH_FAULT_UNLINK] = "unlink", [LH_FAULT_ZERO_FILL] = "zero_fill",
};

static const struct {
    const char *name;
    int value;
} fault_errnos[] = {
    {"EIO", EIO},       {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT}, {"EACCES", EACCES},
    {"EPERM", EPERM},   {"EROFS", EROFS},   {"EMFILE", EMFILE}, {"ENOENT", ENOENT},
    {"EEXIST", EEXIST}, {"EFBIG", EFBIG},   {"EINTR", EINTR},
};

/* One armed fault at a time; counters are atomics so threads may race on them (a
 * multi-threaded test then knows only that *some* Nth call failed). */
static struct {
    atomic_uint calls[LH_FAULT_OP_COUNT];
    atomic_uint fired;
    atomic_int op; /* -1: disarmed */
    unsigned nth, count;
    int errnum;
} fault = {.op = -1};

void lh_fault_reset(void)
{
    atomic_store(&fault.op, -1);
    for (int i = 0; i < LH_FAULT_OP_COUNT; i++)
        atomic_store(&fault.calls[i], 0);
    atomic_store(&fault.fired, 0);
}

void lh_fault_arm(lh_fault_op op, unsigned nth, unsigned count, int errnum)
{
    lh_fault_reset();
    fault.nth = nth;
    fault.count = count;
    fault.errnum = errnum;
    atomic_store(&fault.op, (int)op);
}

const char *lh_fault_op_name(lh_fault_op op)
{
    return (unsigned)op < LH_FAULT_OP_COUNT ? fault_op_names[op] : "?";
}

unsigned lh_fault_calls(lh_fault_op op)
{
    return (unsigned)op < LH_FAULT_OP_COUNT ? atomic_load(&fault.calls[op]) : 0;
}

unsigned lh_fault_fired(void)
{
    return atomic_load(&fault.fired);
}

int lh_fault_arm_spec(const char *spec, lh_error *err)
{
    char op[32] = "", en[32] = "";
    unsigned nth = 0, count = 1;
    int n = sscanf(spec, "%31[a-z_]:%u:%31[A-Z0-9]:%u", op, &nth, en, &count);
    int opi = -1, errnum = 0;
    for (int i = 0; n >= 3 && i < LH_FAULT_OP_COUNT; i++)
        if (strcmp(op, fault_op_names[i]) == 0)
            opi = i;
    for (size_t i = 0; i < sizeof(fault_errnos) / sizeof(fault_errnos[0]); i++)
        if (strcmp(en, fault_errnos[i].name) == 0)
            errnum = fault_errnos[i].value;
    if (!errnum && en[0] >= '0' && en[0] <= '9')
        errnum = atoi(en);
    if (opi < 0 || nth == 0 || errnum <= 0)
        return lh_error_set(err, LH_EINVAL,
                            "LH_FAULT '%s' is not op:N:ERRNO[:COUNT] (ops: open, write, fsync, "
                            "rename, fsync_dir, mkdir, unlink)",
                            spec);
    lh_fault_arm((lh_fault_op)opi, nth, count, errnum);
    return 0;
}

void lh_fault_arm_from_env(void)
{
    const char *spec = getenv("LH_FAULT");
    lh_error err;
    if (!spec || !*spec)
        return;
    if (lh_fault_arm_spec(spec, &err) != 0)
        lh_log(LH_LOG_ERROR, "fault.bad_spec", "{s:s}", "message", err.message);
    else
        lh_log(LH_LOG_WARN, "fault.armed", "{s:s}", "spec", spec);
}

bool lh_fault__fail(lh_fault_op op)
{
    unsigned n = atomic_fetch_add(&fault.calls[op], 1) + 1;
    if (atomic_load(&fault.op) != (int)op || n < fault.nth ||
        (fault.count && n >= fault.nth + fault.count))
        return false;
    atomic_fetch_add(&fault.fired, 1);
    /* Logged so an end-to-end test can tell that its fault was reached (log.c writes
     * with write(2) directly, not through the hook). */
    lh_log(LH_LOG_WARN, "fault.injected", "{s:s,s:i,s:s}", "op", fault_op_names[op], "call",
           (json_int_t)n, "errno", strerror(fault.errnum));
    errno = fault.errnum;
    return true;
}
#endif

int lh_sys_open(const char *path, int flags, mode_t mode)
{
    return lh_fault__fail(LH_FAULT_OPEN) ? -1 : open(path, flags, mode);
}

ssize_t lh_sys_write(int fd, const void *buf, size_t len)
{
    return lh_fault__fail(LH_FAULT_WRITE) ? -1 : write(fd, buf, len);
}

int lh_sys_fsync(int fd)
{
    return lh_fault__fail(LH_FAULT_FSYNC) ? -1 : fsync(fd);
}

int lh_sys_fdatasync(int fd)
{
    return lh_fault__fail(LH_FAULT_FSYNC) ? -1 : fdatasync(fd);
}

int lh_sys_rename(const char *from, const char *to)
{
    return lh_fault__fail(LH_FAULT_RENAME) ? -1 : rename(from, to);
}

int lh_sys_mkdir(const char *path, mode_t mode)
{
    return lh_fault__fail(LH_FAULT_MKDIR) ? -1 : mkdir(path, mode);
}

int lh_sys_unlink(const char *path)
{
    return lh_fault__fail(LH_FAULT_UNLINK) ? -1 : unlink(path);
}

/* ---------------------------------------------------------------- folders */

static char *parent_dir(const char *path)
{
    char *copy = lh_xstrdup(path);
    char *d = lh_xstrdup(dirname(copy));
    free(copy);
    return d;
}

/* Creates one folder (mode exactly `mode`) and makes its entry durable in the parent.
 * An existing folder is left as it is. */
static int mkdir_one(const char *p, mode_t mode, lh_error *err)
{
    if (lh_sys_mkdir(p, mode) != 0) {
        if (errno == EEXIST)
            return 0;
        return lh_error_set(err, LH_EIO, "cannot create folder '%s': %s", p, strerror(errno));
    }
    /* mkdir applies the umask; a folder of personal data gets exactly `mode`. */
    if (chmod(p, mode) != 0)
        return lh_error_set(err, LH_EIO, "cannot set the mode of '%s': %s", p, strerror(errno));
    char *parent = parent_dir(p);
    int rc = lh_fs_fsync_dir(parent, err);
    free(parent);
    return rc;
}

int lh_fs_mkdirs(const char *path, mode_t mode, lh_error *err)
{
    char *p = lh_xstrdup(path);
    int rc = 0;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        rc = mkdir_one(p, mode, err);
        if (rc)
            goto out;
        *s = '/';
    }
    rc = mkdir_one(p, mode, err);
    if (rc)
        goto out;
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
    if (lh_fault__fail(LH_FAULT_FSYNC_DIR) || fsync(fd) != 0)
        rc = lh_error_set(err, LH_EIO, "cannot sync folder '%s': %s", dir, strerror(errno));
    close(fd);
    return rc;
}

/* The last step of a commit: after the rename, only the folder's fsync is left. Its
 * failure leaves the outcome unknown (see the file comment). */
static int fsync_after_rename(const char *final_path, lh_error *err)
{
    char *dir = parent_dir(final_path);
    int rc = lh_fs_fsync_dir(dir, err);
    if (rc)
        rc = lh_error_setk(err, LH_EIO, LH_KIND_NOT_DURABLE,
                           "'%s' was replaced but its folder could not be synced; the change "
                           "may not survive a crash",
                           final_path);
    free(dir);
    return rc;
}

int lh_fs_commit(const char *tmp_path, const char *final_path, lh_error *err)
{
    int fd = lh_sys_open(tmp_path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return lh_error_set(err, LH_EIO, "cannot open '%s': %s", tmp_path, strerror(errno));
    if (lh_sys_fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return lh_error_set(err, LH_EIO, "cannot sync '%s': %s", tmp_path, strerror(e));
    }
    close(fd);
    if (lh_sys_rename(tmp_path, final_path) != 0)
        return lh_error_set(err, LH_EIO, "cannot rename '%s' to '%s': %s", tmp_path, final_path,
                            strerror(errno));
    return fsync_after_rename(final_path, err);
}

int lh_fs_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = lh_sys_write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int lh_fs_zero_fill(int fd, uint64_t from, uint64_t to, uint64_t *done)
{
    static const char zeros[1 << 16];
    *done = from;
    if (lh_fault__fail(LH_FAULT_ZERO_FILL))
        return -1;
    while (*done < to) {
        size_t n = to - *done < sizeof(zeros) ? (size_t)(to - *done) : sizeof(zeros);
        ssize_t w = pwrite(fd, zeros, n, (off_t)*done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        *done += (uint64_t)w;
    }
    return 0;
}

int lh_fs_write_atomic(const char *path, const void *data, size_t len, lh_error *err)
{
    return lh_fs_write_atomic_mode(path, data, len, LH_FILE_MODE, err);
}

int lh_fs_write_atomic_mode(const char *path, const void *data, size_t len, mode_t mode,
                            lh_error *err)
{
    char hex[17];
    lh_random_hex(hex, 16);
    char *tmp = lh_xasprintf("%s.%s.tmp", path, hex);
    int rc = 0;
    int fd = lh_sys_open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        rc = lh_error_set(err, LH_EIO, "cannot create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    if (lh_fs_write_all(fd, data, len) != 0)
        rc = lh_error_set(err, LH_EIO, "cannot write '%s': %s", tmp, strerror(errno));
    if (rc == 0 && lh_sys_fsync(fd) != 0)
        rc = lh_error_set(err, LH_EIO, "cannot sync '%s': %s", tmp, strerror(errno));
    close(fd);
    if (rc == 0 && lh_sys_rename(tmp, path) != 0)
        rc =
            lh_error_set(err, LH_EIO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (rc) {
        unlink(tmp); /* cleanup is not a commit step: never fault-injected */
        goto out;
    }
    rc = fsync_after_rename(path, err);
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
