/*
 * biometric.c: the biometric consent gate (issue 12 item 3): POST
 * /biometric/subject/{id}/photo and GET /biometric/health. HTTP glue is in
 * src/http/biometric_routes.c; docs/AUDIT.md "Biometric upload" is the contract.
 *
 * Invariants:
 *   - Photos live only under the storage root (LH_BIOMETRIC_STORAGE_ROOT), which lies
 *     outside the data folder (checked at open, both ways round): no bucket, dataset,
 *     DuckDB allowed directory nor scratch folder of the lake ever holds one, not even
 *     while it is uploaded (the body streams straight into the subject's folder).
 *   - No moment with a wider mode: a folder is created 0700 (lh_fs_mkdirs sets exactly
 *     that; mkdir under any umask can only be narrower), a file is opened
 *     O_CREAT|O_EXCL|O_NOFOLLOW with 0600. Nothing is chmod-ed afterwards.
 *   - A photo under its final name is complete: it is written as ".<name>.part" beside
 *     it, fsynced, renamed, and the folder fsynced. A crash leaves at most a partial
 *     file, removed at the next open.
 *   - All or nothing, under the subject's stripe lock (the lock every manifest write of
 *     the subject takes): photo renamed → manifest written → audit row durable. Each
 *     failure undoes the steps before it: a manifest write that failed before its rename
 *     left the old manifest, so only the photo is removed; a failed audit append removes
 *     the photo and writes the old manifest back. Consent is checked before the body is
 *     read (refuse early) and again under the lock (a PUT may have withdrawn it meanwhile).
 *   - A manifest write that failed after its rename (LH_KIND_NOT_DURABLE) is rolled
 *     forward like every other commit of the code base (ARCHITECTURE.md "Crash safety").
 */
#include "subjects_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PART_SUFFIX ".part"
#define TOKEN_DAEMON "legal_token"
#define TRACE_ID_MAX 4096 /* the audit row's limit on accessor strings */

struct lh_biometric {
    char *root; /* absolute and resolved; NULL when unconfigured */
    lh_subjects *subjects;
    lh_audit *audit; /* NULL: no audit key, uploads refused */
};

/* The accepted media types, their file extensions and signatures. */
typedef struct media_type {
    const char *mime;
    const char *ext;
    const char *name; /* for messages */
    const char *magic;
    size_t magic_len;
} media_type;

static const media_type MEDIA[] = {
    {"image/jpeg", "jpg", "JPEG", "\xFF\xD8\xFF", 3},
    {"image/png", "png", "PNG", "\x89PNG\r\n\x1A\n", 8},
};

struct lh_biometric_upload {
    lh_biometric *b;
    char *id;
    char *daemon, *trace_id; /* for the audit row */
    char key[LH_SUBJECT_KEY_MAX];
    const media_type *type;
    char *dir;       /* <root>/<key> */
    char *name;      /* <ts>_<uuid8>.<ext> */
    char *part_path; /* <dir>/.<name>.part */
    int fd;
    int64_t bytes;
    unsigned char head[8]; /* the first bytes, for the signature */
    size_t head_len;
    crypto_hash_sha256_state sha;
    bool dead;      /* refused or failed: the partial file is gone */
    bool committed; /* the photo belongs to the manifest now */
};

/* ---------------------------------------------------------------- open */

/* True when path is dir itself or inside it (both absolute, resolved). */
static bool path_within(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return true;
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Removes the partial files a crash left in the subjects' folders. */
static void sweep_partials(const char *root)
{
    DIR *d = opendir(root);
    if (!d)
        return;
    int removed = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.')
            continue;
        char *sub = lh_path_join(root, de->d_name);
        DIR *sd = opendir(sub);
        for (struct dirent *fe; sd && (fe = readdir(sd));) {
            size_t n = strlen(fe->d_name), sl = strlen(PART_SUFFIX);
            if (fe->d_name[0] != '.' || n <= sl + 1 ||
                strcmp(fe->d_name + n - sl, PART_SUFFIX) != 0)
                continue;
            char *p = lh_path_join(sub, fe->d_name);
            removed += unlink(p) == 0;
            free(p);
        }
        if (sd)
            closedir(sd);
        free(sub);
    }
    closedir(d);
    if (removed)
        lh_log(LH_LOG_INFO, "biometric.partials_removed", "{s:i}", "files", removed);
}

/* Refuses a root that is inside a bucket's root (the data folder is primary's) or holds
 * one. path is absolute; bucket roots are compared resolved when they exist. */
static int check_outside_lake(const char *path, char *const *roots, lh_error *err)
{
    for (size_t i = 0; roots[i]; i++) {
        char real[PATH_MAX];
        const char *r = realpath(roots[i], real) ? real : roots[i];
        if (path_within(path, r) || path_within(r, path))
            return lh_error_set(err, LH_EINVAL,
                                "LH_BIOMETRIC_STORAGE_ROOT '%s' must lie outside the data folder "
                                "and every bucket ('%s' is %s it): biometric photos are never "
                                "stored in the lake",
                                path, r, path_within(path, r) ? "around" : "inside");
    }
    return 0;
}

lh_biometric *lh_biometric_open(const char *root, lh_storage *storage, lh_subjects *subjects,
                                lh_audit *audit, lh_error *err)
{
    lh_biometric *b = lh_xcalloc(1, sizeof(*b));
    b->subjects = subjects;
    b->audit = audit;
    if (!root || !*root)
        return b;
    char **roots = lh_storage_roots(storage);
    char *abs = lh_path_absolute(root, err);
    char real_root[PATH_MAX];
    struct stat st;
    /* checked before the folder is created (nothing is made inside the lake), and again
     * once symbolic links can be resolved */
    if (!abs || check_outside_lake(abs, roots, err) != 0 ||
        lh_fs_mkdirs(abs, LH_DIR_MODE, err) != 0)
        goto fail;
    if (!realpath(abs, real_root)) {
        lh_error_set(err, LH_EINVAL, "cannot resolve LH_BIOMETRIC_STORAGE_ROOT '%s': %s", root,
                     strerror(errno));
        goto fail;
    }
    if (check_outside_lake(real_root, roots, err) != 0)
        goto fail;
    if (stat(real_root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        lh_error_set(err, LH_EINVAL, "LH_BIOMETRIC_STORAGE_ROOT '%s' is not a folder", real_root);
        goto fail;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        lh_error_set(err, LH_EINVAL,
                     "LH_BIOMETRIC_STORAGE_ROOT '%s' must be a folder of this user closed to "
                     "group and others (mode %03o): chown it and chmod 700 it",
                     real_root, (unsigned)(st.st_mode & 0777));
        goto fail;
    }
    b->root = lh_xstrdup(real_root);
    sweep_partials(b->root);
    goto out;
fail:
    free(b);
    b = NULL;
out:
    for (size_t i = 0; roots[i]; i++)
        free(roots[i]);
    free(roots);
    free(abs);
    return b;
}

void lh_biometric_close(lh_biometric *b)
{
    if (!b)
        return;
    free(b->root);
    free(b);
}

/* ---------------------------------------------------------------- checks */

int lh_biometric_media_type(const char *content_type, const char **ext, lh_error *err)
{
    const char *p = content_type ? content_type : "";
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strcspn(p, ";");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    for (size_t i = 0; i < sizeof(MEDIA) / sizeof(MEDIA[0]); i++)
        if (strlen(MEDIA[i].mime) == n && strncasecmp(p, MEDIA[i].mime, n) == 0) {
            *ext = MEDIA[i].ext;
            return 0;
        }
    char *shown = lh_escape(p, n > 100 ? 100 : n, true);
    int rc = lh_error_setk(err, LH_EUNSUPPORTED, "unsupported_media_type",
                           "Content-Type '%s' is not accepted for a photo: send image/jpeg or "
                           "image/png",
                           content_type ? shown : "(none)");
    free(shown);
    return rc;
}

static const media_type *media_by_ext(const char *ext)
{
    for (size_t i = 0; i < sizeof(MEDIA) / sizeof(MEDIA[0]); i++)
        if (strcmp(MEDIA[i].ext, ext) == 0)
            return &MEDIA[i];
    return NULL;
}

/* May a photo of this subject be collected now? 403 naming what forbids it. */
static int check_allowed(const json_t *m, const char *id, lh_error *err)
{
    const char *status = lh_json_str(m, "status");
    if (!status || strcmp(status, "Active") != 0)
        return lh_error_setk(err, LH_EFORBIDDEN, "subject_not_active",
                             "subject '%s' is %s: no biometric data may be collected from a "
                             "subject that is Withdrawn, Erased or RetentionExpired",
                             id, status ? status : "(no status)");
    const json_t *bio = json_object_get(json_object_get(m, "consent"), "biometric");
    const char *consent = lh_json_str(bio, "status");
    if (!consent || strcmp(consent, "Given") != 0)
        return lh_error_setk(err, LH_EFORBIDDEN, "biometric_consent_required",
                             "subject '%s' has biometric consent status %s: a photo may be "
                             "collected only with status Given (PUT /subjects/{id} with "
                             "consent.biometric {status, version_hash, given_at})",
                             id, consent ? consent : "(none)");
    return 0;
}

static int unavailable(const lh_biometric *b, lh_error *err)
{
    if (!b->root)
        return lh_error_setk(err, LH_EUNAVAILABLE, "biometric_storage_unconfigured",
                             "biometric uploads are not configured: set "
                             "LH_BIOMETRIC_STORAGE_ROOT to a folder outside the data folder "
                             "and restart the server");
    if (!b->audit)
        return lh_error_setk(err, LH_EUNAVAILABLE, "audit_unconfigured",
                             "biometric uploads need the audit chain: set LH_SUBJECT_AUDIT_KEY "
                             "to the file of the audit key and restart the server");
    return 0;
}

/* ---------------------------------------------------------------- upload */

lh_biometric_upload *lh_biometric_begin(lh_biometric *b, const char *id, const char *content_type,
                                        int64_t content_length, const char *daemon,
                                        const char *trace_id, lh_error *err)
{
    lh_biometric_upload *up = NULL;
    json_t *m = NULL;
    const char *ext = NULL;
    char key[LH_SUBJECT_KEY_MAX];
    if (unavailable(b, err) || lh_biometric_media_type(content_type, &ext, err))
        return NULL;
    if (content_length > LH_BIOMETRIC_MAX_BYTES) {
        lh_error_set(err, LH_ETOOLARGE, "the photo is %lld bytes; at most %d are accepted",
                     (long long)content_length, LH_BIOMETRIC_MAX_BYTES);
        return NULL;
    }
    if (trace_id &&
        (strlen(trace_id) > TRACE_ID_MAX || !lh_utf8_valid(trace_id, strlen(trace_id)))) {
        lh_error_set(err, LH_EINVAL, "X-Lakehouse-Trace-Id must be valid UTF-8 of at most %d bytes",
                     TRACE_ID_MAX);
        return NULL;
    }
    if (lh_subject__key_of(id, key, err) != 0 || !(m = lh_subjects_get(b->subjects, id, err)) ||
        check_allowed(m, id, err) != 0)
        goto out;
    up = lh_xcalloc(1, sizeof(*up));
    up->b = b;
    up->fd = -1;
    up->id = lh_xstrdup(id);
    up->daemon = lh_xstrdup(daemon ? daemon : TOKEN_DAEMON);
    up->trace_id = trace_id ? lh_xstrdup(trace_id) : NULL;
    memcpy(up->key, key, sizeof(key));
    up->type = media_by_ext(ext);
    up->dir = lh_path_join(b->root, key);
    lh_error lerr;
    if (lh_fs_mkdirs(up->dir, LH_DIR_MODE, &lerr) != 0) {
        lh_log(LH_LOG_ERROR, "biometric.storage_failed", "{s:s}", "message", lerr.message);
        lh_error_setk(err, LH_EUNAVAILABLE, "biometric_storage_unusable",
                      "the biometric storage root is not writable (see the server log)");
        goto fail;
    }
    time_t now = time(NULL);
    struct tm tm;
    char ts[32], uuid[33];
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm);
    lh_random_hex(uuid, 8);
    up->name = lh_xasprintf("%s_%s.%s", ts, uuid, ext);
    char *part = lh_xasprintf(".%s%s", up->name, PART_SUFFIX);
    up->part_path = lh_path_join(up->dir, part);
    free(part);
    up->fd = lh_sys_open(up->part_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                         LH_FILE_MODE);
    if (up->fd < 0) {
        lh_log(LH_LOG_ERROR, "biometric.storage_failed", "{s:s,s:s}", "message",
               "cannot create a photo file", "errno", strerror(errno));
        lh_error_setk(err, LH_EUNAVAILABLE, "biometric_storage_unusable",
                      "cannot create the photo file under the biometric storage root: %s",
                      strerror(errno));
        goto fail;
    }
    crypto_hash_sha256_init(&up->sha);
    goto out;
fail:
    lh_biometric_upload_free(up);
    up = NULL;
out:
    json_decref(m);
    return up;
}

void lh_biometric_discard(lh_biometric_upload *up)
{
    if (!up || up->committed)
        return;
    if (up->fd >= 0) {
        close(up->fd);
        up->fd = -1;
    }
    if (!up->dead && up->part_path)
        unlink(up->part_path);
    up->dead = true;
}

int lh_biometric_write(lh_biometric_upload *up, const void *data, size_t len, lh_error *err)
{
    if (up->dead || up->committed)
        return lh_error_set(err, LH_EINVAL, "the upload was already refused or committed");
    if (up->bytes + (int64_t)len > LH_BIOMETRIC_MAX_BYTES) {
        lh_biometric_discard(up);
        return lh_error_set(err, LH_ETOOLARGE, "the photo is over the limit of %d bytes",
                            LH_BIOMETRIC_MAX_BYTES);
    }
    size_t need = up->type->magic_len;
    if (up->head_len < need) {
        size_t take = need - up->head_len < len ? need - up->head_len : len;
        memcpy(up->head + up->head_len, data, take);
        up->head_len += take;
        if (memcmp(up->head, up->type->magic, up->head_len) != 0) {
            lh_biometric_discard(up);
            return lh_error_setk(err, LH_EUNSUPPORTED, "photo_type_mismatch",
                                 "the body is not a %s image (its first bytes are not the %s "
                                 "signature): send the Content-Type the bytes are",
                                 up->type->name, up->type->name);
        }
    }
    if (lh_fs_write_all(up->fd, data, len) != 0) {
        int e = errno;
        lh_biometric_discard(up);
        return lh_error_set(err, LH_EIO, "cannot write the photo: %s", strerror(e));
    }
    crypto_hash_sha256_update(&up->sha, data, len);
    up->bytes += (int64_t)len;
    return 0;
}

void lh_biometric_upload_free(lh_biometric_upload *up)
{
    if (!up)
        return;
    lh_biometric_discard(up);
    free(up->id);
    free(up->daemon);
    free(up->trace_id);
    free(up->dir);
    free(up->name);
    free(up->part_path);
    free(up);
}

/* Removes the photo a failed commit had renamed into place. */
static void remove_final(const lh_biometric_upload *up, const char *final)
{
    lh_error lerr;
    if (lh_sys_unlink(final) != 0 && errno != ENOENT) {
        lh_log(LH_LOG_ERROR, "biometric.rollback_incomplete", "{s:s,s:s,s:s}", "candidate_id",
               up->id, "step", "remove photo", "errno", strerror(errno));
        return;
    }
    if (lh_fs_fsync_dir(up->dir, &lerr) != 0)
        lh_log(LH_LOG_WARN, "biometric.rollback_not_durable", "{s:s,s:s}", "candidate_id", up->id,
               "message", lerr.message);
}

/* The data_path of a previous collection that is the subject's own photo file (relative,
 * inside the subject's folder): the one to remove once the new photo is committed. */
static char *superseded_path(const lh_biometric_upload *up, const json_t *old, const char *now)
{
    const char *p = lh_json_str(json_object_get(old, "biometric_collection"), "data_path");
    size_t kl = strlen(up->key);
    if (!p || strncmp(p, up->key, kl) != 0 || p[kl] != '/' || strchr(p + kl + 1, '/') ||
        p[kl + 1] == '.' || p[kl + 1] == '\0' || strcmp(p, now) == 0)
        return NULL;
    return lh_xstrdup(p);
}

json_t *lh_biometric_commit(lh_biometric_upload *up, lh_error *err)
{
    lh_biometric *b = up->b;
    json_t *out = NULL, *old = NULL, *m = NULL;
    char *final = NULL, *data_path = NULL, *superseded = NULL;
    bool renamed = false, stored = false;
    pthread_mutex_t *mu = NULL;
    if (up->dead || up->committed) {
        lh_error_set(err, LH_EINVAL, "the upload was already refused or committed");
        return NULL;
    }
    if (up->head_len < up->type->magic_len) {
        if (up->bytes == 0)
            lh_error_setk(err, LH_EINVAL, "empty_photo",
                          "the body is empty: send the photo's bytes");
        else
            lh_error_setk(err, LH_EUNSUPPORTED, "photo_type_mismatch",
                          "the body (%lld bytes) is too short to be a %s image",
                          (long long)up->bytes, up->type->name);
        goto fail;
    }
    if (lh_sys_fsync(up->fd) != 0) {
        lh_error_set(err, LH_EIO, "cannot sync the photo: %s", strerror(errno));
        goto fail;
    }
    close(up->fd);
    up->fd = -1;
    unsigned char digest[crypto_hash_sha256_BYTES];
    char hash[2 * crypto_hash_sha256_BYTES + 1];
    crypto_hash_sha256_final(&up->sha, digest);
    sodium_bin2hex(hash, sizeof(hash), digest, sizeof(digest));

    mu = lh_subject__stripe(b->subjects, up->key);
    pthread_mutex_lock(mu);
    bool missing = false;
    old = lh_subject__load_owned(b->subjects, up->id, up->key, &missing, err);
    if (!old) {
        if (missing)
            lh_error_setk(err, LH_ENOTFOUND, "subject_not_found",
                          "no subject with candidate id '%s' (removed during the upload)", up->id);
        goto fail;
    }
    if (check_allowed(old, up->id, err) != 0)
        goto fail;

    /* 1. the photo under its final name, durable */
    final = lh_path_join(up->dir, up->name);
    if (lh_sys_rename(up->part_path, final) != 0) {
        lh_error_set(err, LH_EIO, "cannot store the photo: %s", strerror(errno));
        goto fail;
    }
    renamed = true;
    up->dead = true; /* the partial name is gone; the rollback removes `final` */
    if (lh_fs_fsync_dir(up->dir, err) != 0)
        goto fail;

    /* 2. the manifest names it */
    char now[LH_TS_MAX];
    lh_time_rfc3339(now);
    data_path = lh_xasprintf("%s/%s", up->key, up->name);
    const json_t *bio = json_object_get(json_object_get(old, "consent"), "biometric");
    json_t *collection = json_pack("{s:s,s:s,s:s,s:O?,s:[s,s],s:s,s:I}", "data_path", data_path,
                                   "template_hash", hash, "collected_at", now,
                                   "consent_version_hash", json_object_get(bio, "version_hash"),
                                   "classifications", "biometric", "special_category",
                                   "content_type", up->type->mime, "bytes", (json_int_t)up->bytes);
    m = json_deep_copy(old);
    json_object_set_new(m, "biometric_collection", collection);
    json_object_set_new(m, "updated_at", json_string(now));
    if (lh_subject__store(b->subjects, up->key, m, err) != 0) {
        if (!lh_error_not_durable(err))
            goto fail; /* the old manifest is intact */
        lh_log(LH_LOG_WARN, "biometric.manifest_not_durable", "{s:s}", "candidate_id", up->id);
    }
    stored = true;

    /* 3. the audit row, durable before anyone is told */
    static const char *const fields[] = {"photo"};
    lh_audit_entry e = {.candidate_id = up->id,
                        .accessor_kind = LH_BIOMETRIC_ACCESSOR_KIND,
                        .daemon = up->daemon,
                        .purpose = LH_BIOMETRIC_PURPOSE,
                        .trace_id = up->trace_id,
                        .fields = fields,
                        .n_fields = 1,
                        .result = "success"};
    char hmac[LH_AUDIT_HMAC_HEX];
    lh_error aerr;
    if (lh_audit_append(b->audit, &e, hmac, &aerr) != 0) {
        lh_error_setk(err, LH_EIO, "audit_write_failed",
                      "the audit row of the upload could not be written (%s): the photo was "
                      "removed and the manifest restored; nothing was collected",
                      aerr.message);
        goto fail;
    }
    up->committed = true;
    superseded = superseded_path(up, old, data_path);
    out = json_pack("{s:s,s:O,s:s,s:s?}", "candidate_id", up->id, "biometric_collection",
                    json_object_get(m, "biometric_collection"), "audit_row_hmac", hmac,
                    "superseded", superseded);
    goto out;

fail:
    if (renamed)
        remove_final(up, final);
    if (stored) {
        lh_error rerr;
        if (lh_subject__store(b->subjects, up->key, old, &rerr) != 0 &&
            !lh_error_not_durable(&rerr)) {
            lh_log(LH_LOG_ERROR, "biometric.rollback_incomplete", "{s:s,s:s,s:s}", "candidate_id",
                   up->id, "step", "restore manifest", "message", rerr.message);
            lh_error_setk(err, err->code, err->kind,
                          "%s; restoring the manifest failed too, so it names a photo that was "
                          "removed (see the server log)",
                          err->message);
        }
    }
    lh_biometric_discard(up);
out:
    if (mu)
        pthread_mutex_unlock(mu);
    /* The superseded photo is no longer referenced once the new manifest and row are
     * durable: remove it (a failure leaves an unreferenced file the sweep reports). */
    if (superseded) {
        char *p = lh_path_join(b->root, superseded);
        if (lh_sys_unlink(p) != 0 && errno != ENOENT)
            lh_log(LH_LOG_WARN, "biometric.superseded_not_removed", "{s:s,s:s}", "candidate_id",
                   up->id, "errno", strerror(errno));
        else
            lh_fs_fsync_dir(up->dir, NULL);
        free(p);
    }
    json_decref(old);
    json_decref(m);
    free(final);
    free(data_path);
    free(superseded);
    return out;
}

/* ---------------------------------------------------------------- health */

typedef struct counts {
    json_int_t folders, photos, bytes, partial;
} counts;

static void count_files(const char *root, counts *c)
{
    DIR *d = opendir(root);
    for (struct dirent *de; d && (de = readdir(d));) {
        if (de->d_name[0] == '.')
            continue;
        char *sub = lh_path_join(root, de->d_name);
        DIR *sd = opendir(sub);
        if (sd)
            c->folders++;
        for (struct dirent *fe; sd && (fe = readdir(sd));) {
            if (strcmp(fe->d_name, ".") == 0 || strcmp(fe->d_name, "..") == 0)
                continue;
            if (fe->d_name[0] == '.') {
                c->partial++;
                continue;
            }
            char *p = lh_path_join(sub, fe->d_name);
            int64_t size = lh_fs_size(p);
            free(p);
            if (size >= 0) {
                c->photos++;
                c->bytes += size;
            }
        }
        if (sd)
            closedir(sd);
        free(sub);
    }
    if (d)
        closedir(d);
}

json_t *lh_biometric_health(lh_biometric *b)
{
    bool usable = false;
    const char *problem = "LH_BIOMETRIC_STORAGE_ROOT is not set";
    if (b->root) {
        struct stat st;
        usable =
            stat(b->root, &st) == 0 && S_ISDIR(st.st_mode) && access(b->root, W_OK | X_OK) == 0;
        problem = usable ? NULL : "the storage root is missing or not writable";
    }
    counts c = {0};
    if (usable)
        count_files(b->root, &c);
    bool ok = usable && b->audit;
    return json_pack("{s:s,s:s,s:{s:b,s:b,s:s?},s:{s:b},s:{s:i,s:[s,s]},s:{s:I,s:I,s:I,s:I}}",
                     "schema", "biometric_health.v1", "status", ok ? "ok" : "unavailable",
                     "storage_root", "configured", b->root != NULL, "usable", usable, "problem",
                     problem, "audit_chain", "configured", b->audit != NULL, "limits",
                     "max_photo_bytes", LH_BIOMETRIC_MAX_BYTES, "media_types", "image/jpeg",
                     "image/png", "counts", "subject_folders", c.folders, "photos", c.photos,
                     "bytes", c.bytes, "partial", c.partial);
}
