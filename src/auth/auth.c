/*
 * auth.c: the key store. See auth.h for the model; the invariants kept here:
 *   - no key ever reaches disk, a log line or an error message; only HMAC(pepper, key);
 *   - a lookup compares against every stored hash in constant time per entry;
 *   - the store file is replaced atomically, so a crash leaves either the old or the new
 *     key set; writes of the file are serialised by `io_mu` and render the state they
 *     write under `mu`, so an older snapshot never overwrites a newer one;
 *   - key creation and revocation write the store before they answer; a write that fails
 *     before its rename is rolled back in memory, one that fails after it (the folder
 *     fsync: LH_KIND_NOT_DURABLE) is rolled forward, since the new file is what disk shows;
 *   - last_used_at is never written on the request path: lh_auth_check only marks the
 *     store changed (a counter under `mu`), and a flusher thread writes it every
 *     FLUSH_INTERVAL_MS without holding `mu` while it does I/O; a failed write is logged
 *     and retried (after RETRY_MS) until it succeeds, and once more at close.
 *   Lock order: io_mu, then mu.
 *   - secrets files are created with their final mode (O_CREAT 0600 inside a 0700
 *     folder): there is no window in which they are readable by others.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEY_PREFIX "lh_"
#define KEY_RANDOM_BYTES 32
#define HASH_BYTES crypto_auth_hmacsha256_BYTES
#define FLUSH_INTERVAL_MS 60000
#define RETRY_MS 5000
#define ENV_ADMIN_NAME "env-admin"
#define MAX_KEYS 10000

typedef struct key_entry {
    char *name;
    lh_role role;
    char *profile;
    json_t *datasets;   /* array of strings */
    json_t *attributes; /* caller attributes {name: string} for views' row filters; never NULL */
    char created_at[LH_TS_MAX];
    char last_used_at[LH_TS_MAX]; /* "" when never used */
    unsigned char hash[HASH_BYTES];
    bool from_env;
} key_entry;

struct lh_auth {
    pthread_mutex_t io_mu; /* serialises writes of keys.json (taken before mu) */
    pthread_mutex_t mu;    /* guards everything below */
    char *dir;             /* <data>/_secrets */
    char *store_path;      /* keys.json */
    unsigned char pepper[crypto_auth_hmacsha256_KEYBYTES];
    key_entry *keys;
    size_t n, cap;
    uint64_t changes;         /* bumped by every last_used_at change */
    uint64_t flushed_changes; /* `changes` as of the last store write that succeeded */
    /* The flusher thread. */
    pthread_t flusher;
    bool has_flusher, stopping;
    pthread_cond_t wake;
    int64_t flush_interval_ms;
    unsigned flush_failures; /* consecutive; the next try comes after RETRY_MS */
};

static const char *role_names[] = {"admin", "analyst", "agent", "legal"};

int lh_role_parse(const char *s, lh_role *out, lh_error *err)
{
    for (int i = 0; s && i < 4; i++) {
        if (strcmp(s, role_names[i]) == 0) {
            *out = (lh_role)i;
            return 0;
        }
    }
    return lh_error_set(err, LH_EINVAL, "unknown role '%s': use admin, analyst, agent or legal",
                        s ? s : "(none)");
}

const char *lh_role_name(lh_role r)
{
    return (unsigned)r < 4 ? role_names[r] : "unknown";
}

/* ---------------------------------------------------------------- principals */

void lh_principal_free(lh_principal *p)
{
    if (!p)
        return;
    free(p->name);
    free(p->profile);
    for (char **d = p->datasets; d && *d; d++)
        free(*d);
    free(p->datasets);
    json_decref(p->attributes);
    free(p);
}

bool lh_principal_may_read(const lh_principal *p, const char *name)
{
    switch (p->role) {
    case LH_ROLE_ADMIN:
    case LH_ROLE_ANALYST:
        return true;
    case LH_ROLE_AGENT:
        for (char **d = p->datasets; d && *d; d++)
            if (strcasecmp(*d, name) == 0)
                return true;
        return false;
    case LH_ROLE_LEGAL:
        return false;
    }
    return false;
}

static lh_principal *principal_of(const key_entry *k)
{
    lh_principal *p = lh_xcalloc(1, sizeof(*p));
    p->name = lh_xstrdup(k->name);
    p->role = k->role;
    p->profile = k->profile ? lh_xstrdup(k->profile) : NULL;
    size_t n = json_array_size(k->datasets);
    p->datasets = lh_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        p->datasets[i] = lh_xstrdup(json_string_value(json_array_get(k->datasets, i)));
    p->attributes = json_deep_copy(k->attributes);
    return p;
}

/* ---------------------------------------------------------------- secrets files */

/* Reads a secrets file, or creates it with `len` fresh random bytes (mode 0600 from
 * creation; O_EXCL so two starting servers cannot both write one). */
static int load_or_create_pepper(lh_auth *a, lh_error *err)
{
    char *path = lh_path_join(a->dir, "key_pepper");
    int rc = 0;
    char *data = NULL;
    size_t len = 0;
    rc = lh_fs_read_all(path, 4096, &data, &len, err);
    if (rc == LH_ENOTFOUND) {
        randombytes_buf(a->pepper, sizeof(a->pepper));
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            rc = lh_error_set(err, LH_EIO, "cannot create '%s': %s", path, strerror(errno));
            goto out;
        }
        ssize_t w = write(fd, a->pepper, sizeof(a->pepper));
        int sync_rc = fsync(fd);
        close(fd);
        if (w != (ssize_t)sizeof(a->pepper) || sync_rc != 0) {
            unlink(path);
            rc = lh_error_set(err, LH_EIO, "cannot write '%s'", path);
            goto out;
        }
        rc = lh_fs_fsync_dir(a->dir, err);
        goto out;
    }
    if (rc)
        goto out;
    if (len != sizeof(a->pepper)) {
        rc = lh_error_set(err, LH_EIO, "'%s' is damaged (%zu bytes, expected %zu)", path, len,
                          sizeof(a->pepper));
        goto out;
    }
    memcpy(a->pepper, data, len);
out:
    if (data) {
        sodium_memzero(data, len);
        free(data);
    }
    free(path);
    return rc;
}

static void hash_key(const lh_auth *a, const char *key, unsigned char out[HASH_BYTES])
{
    crypto_auth_hmacsha256(out, (const unsigned char *)key, strlen(key), a->pepper);
}

/* The store as JSON text. Caller holds mu; frees the text. */
static char *render_store(const lh_auth *a)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < a->n; i++) {
        const key_entry *k = &a->keys[i];
        if (k->from_env)
            continue;
        char hex[HASH_BYTES * 2 + 1];
        sodium_bin2hex(hex, sizeof(hex), k->hash, HASH_BYTES);
        json_t *e = json_pack("{s:s,s:s,s:s?,s:O,s:s,s:s?,s:s}", "name", k->name, "role",
                              lh_role_name(k->role), "profile", k->profile, "datasets", k->datasets,
                              "created_at", k->created_at, "last_used_at",
                              k->last_used_at[0] ? k->last_used_at : NULL, "hash", hex);
        if (json_object_size(k->attributes))
            json_object_set(e, "attributes", k->attributes);
        json_array_append_new(arr, e);
    }
    json_t *doc = json_pack("{s:s,s:o}", "format_version", "api_keys.v1", "keys", arr);
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    return text;
}

/* Writes text as the store. Caller holds io_mu. A write whose rename took effect but whose
 * folder fsync failed counts as written (the file is in place; see the header): it is
 * logged and 0 is returned. */
static int write_store(lh_auth *a, char *text, lh_error *err)
{
    lh_error local;
    if (!err)
        err = &local;
    if (!text)
        return lh_error_set(err, LH_EINTERNAL, "cannot render the key store");
    int rc = lh_fs_write_atomic_mode(a->store_path, text, strlen(text), 0600, err);
    if (rc && lh_error_not_durable(err)) {
        lh_log(LH_LOG_WARN, "auth.store_not_durable", "{s:s}", "error", err->message);
        lh_error_clear(err);
        rc = 0;
    }
    free(text);
    return rc;
}

/* Writes the whole store now (key creation, revocation, bootstrap). Caller holds io_mu and
 * mu; the write includes every last_used_at change so far. */
static int persist(lh_auth *a, lh_error *err)
{
    uint64_t changes = a->changes;
    int rc = write_store(a, render_store(a), err);
    if (rc == 0)
        a->flushed_changes = changes;
    return rc;
}

int lh_auth_flush(lh_auth *a, lh_error *err)
{
    pthread_mutex_lock(&a->io_mu);
    pthread_mutex_lock(&a->mu);
    uint64_t changes = a->changes;
    char *text = changes != a->flushed_changes ? render_store(a) : NULL;
    pthread_mutex_unlock(&a->mu);
    int rc = 0;
    if (text) {
        /* No mu held: lookups go on while the file is written. */
        lh_error werr;
        rc = write_store(a, text, &werr);
        pthread_mutex_lock(&a->mu);
        if (rc == 0) {
            if (changes > a->flushed_changes)
                a->flushed_changes = changes;
            a->flush_failures = 0;
        } else {
            a->flush_failures++;
        }
        unsigned failures = a->flush_failures;
        pthread_mutex_unlock(&a->mu);
        if (rc) {
            lh_log(LH_LOG_WARN, "auth.flush_failed", "{s:s,s:i,s:s}", "error", werr.message,
                   "failures", (json_int_t)failures, "note",
                   "last_used_at stays in memory and is written again later");
            if (err)
                *err = werr;
        }
    }
    pthread_mutex_unlock(&a->io_mu);
    return rc;
}

/* The flusher thread: writes last_used_at changes every flush interval, and retries a
 * failed write after RETRY_MS (or the interval, when shorter). */
static void *flusher_main(void *arg)
{
    lh_auth *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stopping) {
        int64_t wait = a->flush_interval_ms;
        if (a->flush_failures && wait > RETRY_MS)
            wait = RETRY_MS;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)(wait / 1000);
        until.tv_nsec += (long)(wait % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        int w = pthread_cond_timedwait(&a->wake, &a->mu, &until);
        if (a->stopping)
            break;
        if (w != ETIMEDOUT)
            continue; /* the interval changed: wait again with the new one */
        pthread_mutex_unlock(&a->mu);
        lh_auth_flush(a, NULL);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

void lh_auth_set_flush_interval(lh_auth *a, int64_t ms)
{
    pthread_mutex_lock(&a->mu);
    a->flush_interval_ms = ms > 0 ? ms : 1;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
}

static key_entry *add_entry(lh_auth *a)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->keys = lh_xrealloc(a->keys, a->cap * sizeof(*a->keys));
    }
    key_entry *k = &a->keys[a->n++];
    memset(k, 0, sizeof(*k));
    k->attributes = json_object();
    return k;
}

static void entry_free(key_entry *k)
{
    free(k->name);
    free(k->profile);
    json_decref(k->datasets);
    json_decref(k->attributes);
    sodium_memzero(k->hash, sizeof(k->hash));
}

static int load_store(lh_auth *a, lh_error *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = lh_fs_read_all(a->store_path, 64 << 20, &text, &len, err);
    if (rc == LH_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, 0, &jerr);
    free(text);
    json_t *arr = json_object_get(doc, "keys");
    if (!json_is_array(arr)) {
        json_decref(doc);
        return lh_error_set(err, LH_EIO, "'%s' is damaged: %s", a->store_path,
                            doc ? "no \"keys\" array" : jerr.text);
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const char *name = lh_json_str(e, "name");
        const char *hex = lh_json_str(e, "hash");
        lh_role role = LH_ROLE_ANALYST;
        unsigned char hash[HASH_BYTES];
        size_t hlen = 0;
        if (!name || !hex || lh_role_parse(lh_json_str(e, "role"), &role, NULL) != 0 ||
            sodium_hex2bin(hash, sizeof(hash), hex, strlen(hex), NULL, &hlen, NULL) != 0 ||
            hlen != HASH_BYTES) {
            lh_log(LH_LOG_WARN, "auth.bad_entry", "{s:s,s:I}", "file", a->store_path, "index",
                   (json_int_t)i);
            continue;
        }
        key_entry *k = add_entry(a);
        k->name = lh_xstrdup(name);
        k->role = role;
        const char *profile = lh_json_str(e, "profile");
        k->profile = profile ? lh_xstrdup(profile) : NULL;
        json_t *ds = json_object_get(e, "datasets");
        k->datasets = json_is_array(ds) ? json_incref(ds) : json_array();
        json_t *attrs = json_object_get(e, "attributes");
        if (attrs && lh_auth_attributes_validate(attrs, NULL) == 0)
            json_object_update(k->attributes, attrs);
        else if (attrs)
            lh_log(LH_LOG_WARN, "auth.bad_attributes", "{s:s}", "key", name);
        snprintf(k->created_at, sizeof(k->created_at), "%s",
                 lh_json_str(e, "created_at") ? lh_json_str(e, "created_at") : "");
        snprintf(k->last_used_at, sizeof(k->last_used_at), "%s",
                 lh_json_str(e, "last_used_at") ? lh_json_str(e, "last_used_at") : "");
        memcpy(k->hash, hash, HASH_BYTES);
    }
    json_decref(doc);
    return 0;
}

/* Random key text: "lh_" + hex of 32 random bytes. Caller frees (after zeroing). */
static char *new_key_text(void)
{
    unsigned char raw[KEY_RANDOM_BYTES];
    randombytes_buf(raw, sizeof(raw));
    char hex[KEY_RANDOM_BYTES * 2 + 1];
    sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
    char *key = lh_xasprintf(KEY_PREFIX "%s", hex);
    sodium_memzero(hex, sizeof(hex));
    return key;
}

static bool has_admin(const lh_auth *a)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->keys[i].role == LH_ROLE_ADMIN)
            return true;
    return false;
}

/* First start without LH_ADMIN_KEY: an admin key in <data>/_secrets/admin.key. */
static int bootstrap_admin(lh_auth *a, lh_error *err)
{
    char *path = lh_path_join(a->dir, "admin.key");
    char *key = new_key_text();
    int rc = 0;
    /* A leftover admin.key whose hash is no longer in the store (the store was reset) is
     * replaced: O_EXCL on a fresh temp, then rename. */
    char *tmp = lh_xasprintf("%s.tmp", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = lh_error_set(err, LH_EIO, "cannot create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    size_t n = strlen(key);
    ssize_t w = write(fd, key, n);
    ssize_t w2 = write(fd, "\n", 1);
    close(fd);
    if (w != (ssize_t)n || w2 != 1) {
        unlink(tmp);
        rc = lh_error_set(err, LH_EIO, "cannot write '%s'", tmp);
        goto out;
    }
    if ((rc = lh_fs_commit(tmp, path, err)) != 0) {
        unlink(tmp);
        goto out;
    }
    key_entry *k = add_entry(a);
    k->name = lh_xstrdup("admin");
    k->role = LH_ROLE_ADMIN;
    k->datasets = json_array();
    lh_time_rfc3339(k->created_at);
    hash_key(a, key, k->hash);
    if ((rc = persist(a, err)) != 0)
        goto out;
    lh_log(LH_LOG_INFO, "auth.admin_key_created", "{s:s,s:s}", "path", path, "note",
           "the admin API key was written to this file (mode 0600); keep it secret");
out:
    sodium_memzero(key, strlen(key));
    free(key);
    free(tmp);
    free(path);
    return rc;
}

lh_auth *lh_auth_open(const char *data_dir, const char *env_admin_key, lh_error *err)
{
    if (sodium_init() < 0) {
        lh_error_set(err, LH_EINTERNAL, "libsodium failed to initialise");
        return NULL;
    }
    if (env_admin_key && strlen(env_admin_key) < 32) {
        lh_error_set(err, LH_EINVAL, "LH_ADMIN_KEY must be at least 32 characters");
        return NULL;
    }
    lh_auth *a = lh_xcalloc(1, sizeof(*a));
    pthread_mutex_init(&a->io_mu, NULL);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->wake, NULL);
    a->flush_interval_ms = FLUSH_INTERVAL_MS;
    a->dir = lh_path_join(data_dir, "_secrets");
    a->store_path = lh_path_join(a->dir, "keys.json");
    if (lh_fs_mkdirs(a->dir, 0700, err) != 0 || chmod(a->dir, 0700) != 0 ||
        load_or_create_pepper(a, err) != 0 || load_store(a, err) != 0)
        goto fail;
    if (env_admin_key) {
        key_entry *k = add_entry(a);
        k->name = lh_xstrdup(ENV_ADMIN_NAME);
        k->role = LH_ROLE_ADMIN;
        k->datasets = json_array();
        k->from_env = true;
        lh_time_rfc3339(k->created_at);
        hash_key(a, env_admin_key, k->hash);
    } else if (!has_admin(a) && bootstrap_admin(a, err) != 0) {
        goto fail;
    }
    if (pthread_create(&a->flusher, NULL, flusher_main, a) != 0) {
        lh_error_set(err, LH_EINTERNAL, "cannot start the key store's flusher thread");
        goto fail;
    }
    a->has_flusher = true;
    return a;
fail:
    lh_auth_close(a);
    return NULL;
}

void lh_auth_close(lh_auth *a)
{
    if (!a)
        return;
    if (a->has_flusher) {
        pthread_mutex_lock(&a->mu);
        a->stopping = true;
        pthread_cond_signal(&a->wake);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->flusher, NULL);
    }
    lh_auth_flush(a, NULL); /* last_used_at changes since the last flush; logged on failure */
    for (size_t i = 0; i < a->n; i++)
        entry_free(&a->keys[i]);
    free(a->keys);
    sodium_memzero(a->pepper, sizeof(a->pepper));
    free(a->dir);
    free(a->store_path);
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->io_mu);
    free(a);
}

lh_principal *lh_auth_check(lh_auth *a, const char *key, lh_error *err)
{
    if (!key || !*key) {
        lh_error_set(err, LH_EUNAUTH, "missing API key: send 'Authorization: Bearer <key>'");
        return NULL;
    }
    unsigned char h[HASH_BYTES];
    hash_key(a, key, h);
    lh_principal *p = NULL;
    pthread_mutex_lock(&a->mu);
    /* Every entry is compared, whatever matched: the time taken says nothing about which
     * key (if any) matched. */
    ssize_t hit = -1;
    for (size_t i = 0; i < a->n; i++)
        if (sodium_memcmp(a->keys[i].hash, h, HASH_BYTES) == 0)
            hit = (ssize_t)i;
    if (hit >= 0) {
        key_entry *k = &a->keys[hit];
        p = principal_of(k);
        if (!k->from_env) {
            /* Marked only: the flusher writes it (no I/O under mu on the request path). */
            lh_time_rfc3339(k->last_used_at);
            a->changes++;
        }
    }
    pthread_mutex_unlock(&a->mu);
    sodium_memzero(h, sizeof(h));
    if (!p)
        lh_error_set(err, LH_EUNAUTH, "unknown or revoked API key");
    return p;
}

static int validate_key_name(const char *name, lh_error *err)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 64)
        return lh_error_set(err, LH_EINVAL, "key name must be 1 to 64 characters");
    if (strcmp(name, ENV_ADMIN_NAME) == 0)
        return lh_error_set(err, LH_EINVAL, "key name '%s' is reserved for LH_ADMIN_KEY", name);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return lh_error_set(err, LH_EINVAL,
                                "key name '%s' is not valid: use letters, digits, '_', '-', '.'",
                                name);
    }
    return 0;
}

static json_t *entry_info(const key_entry *k)
{
    json_t *info = json_pack("{s:s,s:s,s:s?,s:O,s:s,s:s?,s:b}", "name", k->name, "role",
                             lh_role_name(k->role), "profile", k->profile, "datasets", k->datasets,
                             "created_at", k->created_at, "last_used_at",
                             k->last_used_at[0] ? k->last_used_at : NULL, "from_env", k->from_env);
    json_object_set(info, "attributes", k->attributes);
    return info;
}

int lh_auth_create(lh_auth *a, const char *name, lh_role role, const char *profile,
                   const json_t *datasets, char **key_out, json_t **info_out, lh_error *err)
{
    *key_out = NULL;
    int rc = validate_key_name(name, err);
    if (rc)
        return rc;
    if (role != LH_ROLE_AGENT && (profile || (datasets && json_array_size(datasets) > 0)))
        return lh_error_set(err, LH_EINVAL, "only agent keys take a profile or datasets");
    if (profile && lh_name_validate(profile, "profile id", err) != 0)
        return err ? err->code : LH_EINVAL;
    if (datasets && !json_is_array(datasets))
        return lh_error_set(err, LH_EINVAL, "datasets must be an array of dataset names");
    size_t i;
    json_t *d;
    json_array_foreach(datasets, i, d)
    {
        if (!json_is_string(d))
            return lh_error_set(err, LH_EINVAL, "datasets must be an array of dataset names");
        if ((rc = lh_name_validate(json_string_value(d), "dataset name", err)) != 0)
            return rc;
    }
    pthread_mutex_lock(&a->io_mu);
    pthread_mutex_lock(&a->mu);
    for (size_t j = 0; j < a->n; j++) {
        if (strcmp(a->keys[j].name, name) == 0) {
            rc = lh_error_set(err, LH_EEXISTS, "a key named '%s' already exists", name);
            goto out;
        }
    }
    if (a->n >= MAX_KEYS) {
        rc = lh_error_set(err, LH_EINVAL, "too many keys (limit %d)", MAX_KEYS);
        goto out;
    }
    char *key = new_key_text();
    key_entry *k = add_entry(a);
    k->name = lh_xstrdup(name);
    k->role = role;
    k->profile = profile ? lh_xstrdup(profile) : NULL;
    k->datasets = datasets ? json_deep_copy(datasets) : json_array();
    lh_time_rfc3339(k->created_at);
    hash_key(a, key, k->hash);
    rc = persist(a, err);
    if (rc) {
        entry_free(k);
        a->n--;
        sodium_memzero(key, strlen(key));
        free(key);
    } else {
        *key_out = key;
        if (info_out)
            *info_out = entry_info(k);
    }
out:
    pthread_mutex_unlock(&a->mu);
    pthread_mutex_unlock(&a->io_mu);
    return rc;
}

static int by_name(const void *x, const void *y)
{
    return strcmp(lh_json_str(*(json_t *const *)x, "name"),
                  lh_json_str(*(json_t *const *)y, "name"));
}

json_t *lh_auth_list(lh_auth *a)
{
    pthread_mutex_lock(&a->mu);
    json_t **items = lh_xcalloc(a->n, sizeof(json_t *));
    for (size_t i = 0; i < a->n; i++)
        items[i] = entry_info(&a->keys[i]);
    size_t n = a->n;
    pthread_mutex_unlock(&a->mu);
    qsort(items, n, sizeof(json_t *), by_name);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, items[i]);
    free(items);
    return arr;
}

int lh_auth_revoke(lh_auth *a, const char *name, lh_error *err)
{
    pthread_mutex_lock(&a->io_mu);
    pthread_mutex_lock(&a->mu);
    int rc = 0;
    ssize_t at = -1;
    size_t admins = 0;
    /* A stored key wins over the env key of the same name (a store written before the name
     * was reserved may hold one), so such a key can still be revoked. */
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->keys[i].name, name ? name : "") == 0 && (at < 0 || a->keys[at].from_env))
            at = (ssize_t)i;
        if (a->keys[i].role == LH_ROLE_ADMIN)
            admins++;
    }
    if (at < 0) {
        rc = lh_error_set(err, LH_ENOTFOUND, "no key named '%s'", name ? name : "");
        goto out;
    }
    key_entry *k = &a->keys[at];
    if (k->from_env) {
        rc = lh_error_set(err, LH_EFORBIDDEN,
                          "the LH_ADMIN_KEY key cannot be revoked through the API; unset "
                          "LH_ADMIN_KEY and restart the server");
        goto out;
    }
    if (k->role == LH_ROLE_ADMIN && admins == 1) {
        rc = lh_error_set(err, LH_ECONFLICT,
                          "'%s' is the last admin key; create another admin key first", name);
        goto out;
    }
    key_entry removed = *k;
    memmove(k, k + 1, (a->n - (size_t)at - 1) * sizeof(*k));
    a->n--;
    rc = persist(a, err);
    if (rc) {
        /* Put it back: the store on disk still has it, and memory must agree. */
        memmove(&a->keys[at + 1], &a->keys[at], (a->n - (size_t)at) * sizeof(*k));
        a->keys[at] = removed;
        a->n++;
    } else {
        entry_free(&removed);
    }
out:
    pthread_mutex_unlock(&a->mu);
    pthread_mutex_unlock(&a->io_mu);
    return rc;
}

/* ---------------------------------------------------------------- caller attributes */

int lh_auth_attributes_validate(const json_t *attrs, lh_error *err)
{
    if (!json_is_object(attrs))
        return lh_error_set(err, LH_EINVAL,
                            "attributes must be an object {name: string}, e.g. {\"region\": "
                            "\"CO\"}");
    if (json_object_size(attrs) > LH_AUTH_MAX_ATTRIBUTES)
        return lh_error_set(err, LH_EINVAL, "at most %d attributes per key",
                            LH_AUTH_MAX_ATTRIBUTES);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)attrs, k, v)
    {
        size_t n = strlen(k);
        bool ok = n >= 1 && n <= 64 && k[0] >= 'a' && k[0] <= 'z';
        for (size_t i = 0; ok && i < n; i++)
            ok = (k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_';
        if (!ok)
            return lh_error_set(err, LH_EINVAL,
                                "attribute name '%s' must be 1 to 64 of [a-z0-9_], starting "
                                "with a letter",
                                k);
        if (!json_is_string(v) || json_string_length(v) > LH_AUTH_MAX_ATTRIBUTE_BYTES)
            return lh_error_set(err, LH_EINVAL,
                                "attribute '%s' must be a string of at most %d bytes", k,
                                LH_AUTH_MAX_ATTRIBUTE_BYTES);
    }
    return 0;
}

int lh_auth_set_attributes(lh_auth *a, const char *name, const json_t *attrs, json_t **info_out,
                           lh_error *err)
{
    if (info_out)
        *info_out = NULL;
    int rc = lh_auth_attributes_validate(attrs, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&a->io_mu);
    pthread_mutex_lock(&a->mu);
    key_entry *k = NULL;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->keys[i].name, name ? name : "") == 0 && (!k || k->from_env))
            k = &a->keys[i];
    if (!k) {
        rc = lh_error_set(err, LH_ENOTFOUND, "no key named '%s'", name ? name : "");
        goto out;
    }
    if (k->from_env) {
        rc = lh_error_set(err, LH_EFORBIDDEN,
                          "the LH_ADMIN_KEY key is not stored and takes no attributes");
        goto out;
    }
    json_t *old = k->attributes;
    k->attributes = json_deep_copy(attrs);
    rc = persist(a, err);
    if (rc) { /* the store on disk still has the old ones, and memory must agree */
        json_decref(k->attributes);
        k->attributes = old;
        goto out;
    }
    json_decref(old);
    if (info_out)
        *info_out = entry_info(k);
out:
    pthread_mutex_unlock(&a->mu);
    pthread_mutex_unlock(&a->io_mu);
    return rc;
}
