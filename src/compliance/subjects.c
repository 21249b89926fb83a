/*
 * subjects.c: the store of subject manifests (subject_manifest.v1): create/update, read,
 * list, and the audit chain's root mirror. Validation is in subject_manifest.c, backfill
 * in backfill.c.
 *
 * Invariants:
 *   - A manifest is stored only under the key its candidate_id sanitises to
 *     (lh_subject_key), with that candidate_id inside. A manifest under an id's key that
 *     names another subject is refused (LH_EEXISTS), never merged: the check and the
 *     write happen under the key's stripe lock.
 *   - Every write is atomic (lh_storage_put, or lh_storage_put_many for batches): a
 *     failure leaves the old manifest or the new one whole, never a mix.
 *   - Read-only fields (the mirrored chain root, the biometric collection, the
 *     timestamps) change only through this module's own paths, so a client PUT cannot make
 *     a manifest claim a chain root the log does not have.
 *   - Journal events are appended after the manifest is durable, under the stripe lock.
 *
 * Lock order: stripe locks (several only in ascending order: backfill and the root
 * flusher take all 64), then (inside lh_catalog_record / lh_catalog_get) the catalog's;
 * roots_mu is a leaf. The catalog never calls into this module.
 */
#include "subjects_internal.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MANIFEST_MAX (1 << 20)
#define LIST_MAX 10000

/* ---------------------------------------------------------------- ids and keys */

/* The storage key of id (lh_subject_key, the audit chain's sanitiser), refused when the
 * manifest's object name would be longer than a file name may be (ids with many escaped
 * bytes). */
int lh_subject__key_of(const char *id, char *key, lh_error *err)
{
    int rc = lh_subject_key(id, key, LH_SUBJECT_KEY_MAX, err);
    if (rc == 0 && strlen(key) + sizeof(".audit.jsonl") > 255)
        rc = lh_error_set(err, LH_EINVAL,
                          "the candidate id is too long once escaped for storage (%zu bytes; "
                          "bytes outside [A-Za-z0-9._-] take three)",
                          strlen(key));
    return rc;
}

const char *lh_subject_strip_prefix(const char *value, const char *prefix)
{
    if (!value || !prefix || !*prefix)
        return value;
    size_t n = strlen(prefix);
    return strncmp(value, prefix, n) == 0 ? value + n : value;
}

char *lh_subject__manifest_key(const char *key)
{
    return lh_xasprintf(SUBJECTS_PREFIX "%s.json", key);
}

pthread_mutex_t *lh_subject__stripe(lh_subjects *s, const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return &s->stripes[h % LH_SUBJECT_STRIPES];
}

/* ---------------------------------------------------------------- store */

static void *roots_flusher(void *arg);

lh_subjects *lh_subjects_open(lh_storage *st, lh_catalog *cat, lh_error *err)
{
    lh_subjects *s = lh_xcalloc(1, sizeof(*s));
    s->st = st;
    s->cat = cat;
    for (int i = 0; i < LH_SUBJECT_STRIPES; i++)
        pthread_mutex_init(&s->stripes[i], NULL);
    pthread_mutex_init(&s->roots_mu, NULL);
    pthread_cond_init(&s->roots_work, NULL);
    pthread_cond_init(&s->roots_idle, NULL);
    s->roots = json_object();
    if (pthread_create(&s->flusher, NULL, roots_flusher, s) != 0) {
        lh_error_set(err, LH_EINTERNAL, "cannot start the subjects' chain-root flusher");
        json_decref(s->roots);
        free(s);
        return NULL;
    }
    return s;
}

void lh_subjects_close(lh_subjects *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->roots_mu);
    s->closing = true; /* the flusher writes what is pending, then stops */
    pthread_cond_broadcast(&s->roots_work);
    pthread_mutex_unlock(&s->roots_mu);
    pthread_join(s->flusher, NULL);
    json_decref(s->roots);
    pthread_cond_destroy(&s->roots_work);
    pthread_cond_destroy(&s->roots_idle);
    pthread_mutex_destroy(&s->roots_mu);
    for (int i = 0; i < LH_SUBJECT_STRIPES; i++)
        pthread_mutex_destroy(&s->stripes[i]);
    free(s);
}

void lh_subjects_attach_audit(lh_subjects *s, lh_audit *audit)
{
    s->audit = audit;
    if (audit)
        lh_audit_set_root_listener(audit, lh_subjects_root_listener, s);
}

/* The stored manifest of key (NULL + LH_ENOTFOUND when none). Caller decrefs. */
static json_t *load(lh_subjects *s, const char *key, lh_error *err)
{
    char *okey = lh_subject__manifest_key(key);
    char *text = NULL;
    size_t len = 0;
    json_t *m = NULL;
    if (lh_storage_get(s->st, LH_BUCKET_PRIMARY, okey, MANIFEST_MAX, &text, &len, err) != 0)
        goto out;
    m = lh_json_parse_object(text, len, err);
    if (!m)
        lh_error_set(err, LH_EINTERNAL, "the manifest of subject key '%s' is not valid JSON", key);
out:
    free(text);
    free(okey);
    return m;
}

static int store(lh_subjects *s, const char *key, const json_t *m, lh_error *err)
{
    char *okey = lh_subject__manifest_key(key);
    char *text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
    int rc = lh_storage_put(s->st, LH_BUCKET_PRIMARY, okey, text, strlen(text), err);
    free(text);
    free(okey);
    return rc;
}

int lh_subject__store(lh_subjects *s, const char *key, const json_t *m, lh_error *err)
{
    return store(s, key, m, err);
}

/* Loads the manifest of key owned by id: NULL with *missing when there is none; NULL +
 * LH_EEXISTS when another id owns the key. */
json_t *lh_subject__load_owned(lh_subjects *s, const char *id, const char *key, bool *missing,
                               lh_error *err)
{
    lh_error lerr;
    *missing = false;
    json_t *m = load(s, key, &lerr);
    if (!m) {
        if (lerr.code == LH_ENOTFOUND) {
            *missing = true;
            return NULL;
        }
        if (err)
            *err = lerr;
        return NULL;
    }
    const char *owner = lh_json_str(m, "candidate_id");
    if (!owner || strcmp(owner, id) != 0) {
        char *esc = lh_escape(owner ? owner : "", strlen(owner ? owner : ""), true);
        lh_error_setk(err, LH_EEXISTS, "subject_key_collision",
                      "the manifest stored under candidate id '%s' (key '%s') belongs to "
                      "subject '%s': refused, never merged (was the file written by hand or "
                      "by another sanitiser?)",
                      id, key, esc);
        free(esc);
        json_decref(m);
        return NULL;
    }
    return m;
}

json_t *lh_subject__new_manifest(lh_subjects *s, const char *id, const char *now)
{
    json_t *m = json_pack(
        "{s:s,s:s,s:s,s:{s:{s:s,s:n,s:n},s:{s:s,s:n,s:n,s:n}},s:{s:n,s:n,s:n},s:[],s:n,s:s,s:s}",
        "schema", LH_SUBJECT_MANIFEST_SCHEMA, "candidate_id", id, "status", "Active", "consent",
        "general", "status", "NotGiven", "given_at", "withdrawn_at", "biometric", "status",
        "NeverCollected", "version_hash", "given_at", "withdrawn_at", "retention",
        "general_pii_until", "biometric_until", "last_interaction_at", "datasets",
        "audit_log_chain_root", "created_at", now, "updated_at", now);
    if (s && s->audit) {
        /* rows logged before the manifest existed: start mirrored */
        char root[LH_AUDIT_HMAC_HEX] = "";
        lh_error lerr;
        if (lh_audit_tip(s->audit, id, root, &lerr) == 0 && root[0] &&
            strcmp(root, LH_AUDIT_GENESIS) != 0)
            json_object_set_new(m, "audit_log_chain_root", json_string(root));
    }
    return m;
}

/* Applies body onto m: top-level fields replace, consent's two parts each replace. */
static void merge_body(json_t *m, const json_t *body)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        if (lh_subject__read_only(k))
            continue;
        json_t *cur = json_object_get(m, "consent");
        if (strcmp(k, "consent") == 0 && json_is_object(v) && json_is_object(cur)) {
            json_t *copy = json_deep_copy(cur);
            json_object_update(copy, v);
            json_object_set_new(m, k, copy);
        } else {
            json_object_set_new(m, k, json_deep_copy(v));
        }
    }
}

/* Known sub-fields a client left out are stored as null, so every manifest has one shape. */
static void fill_nulls(json_t *obj, const char *const *keys)
{
    for (size_t i = 0; json_is_object(obj) && keys[i]; i++)
        if (!json_object_get(obj, keys[i]))
            json_object_set_new(obj, keys[i], json_null());
}

static void normalise(json_t *m)
{
    static const char *const general[] = {"given_at", "withdrawn_at", NULL};
    static const char *const biometric[] = {"version_hash", "given_at", "withdrawn_at", NULL};
    static const char *const retention[] = {"general_pii_until", "biometric_until",
                                            "last_interaction_at", NULL};
    json_t *consent = json_object_get(m, "consent");
    fill_nulls(json_object_get(consent, "general"), general);
    fill_nulls(json_object_get(consent, "biometric"), biometric);
    fill_nulls(json_object_get(m, "retention"), retention);
}

/* Names of the top-level fields whose value differs between a and b (for the journal). */
static json_t *changed_fields(const json_t *a, const json_t *b)
{
    json_t *out = json_array();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)b, k, v)
    {
        if (strcmp(k, "updated_at") != 0 && (!a || !json_equal(json_object_get(a, k), v)))
            json_array_append_new(out, json_string(k));
    }
    return out;
}

int lh_subjects_put(lh_subjects *s, const char *id, const json_t *body, const char *actor,
                    bool *created, json_t **manifest_out, lh_error *err)
{
    char key[LH_SUBJECT_KEY_MAX];
    int rc = lh_subject__key_of(id, key, err);
    if (rc)
        return rc;
    if (!json_is_object(body))
        return lh_error_set(err, LH_EINVAL, "the subject manifest must be a JSON object");
    const char *body_id = lh_json_str(body, "candidate_id");
    if (json_object_get(body, "candidate_id") && (!body_id || strcmp(body_id, id) != 0))
        return lh_error_set(err, LH_EINVAL,
                            "'candidate_id' in the body differs from the id in the path");
    char now[LH_TS_MAX];
    lh_time_rfc3339(now);
    pthread_mutex_t *mu = lh_subject__stripe(s, key);
    pthread_mutex_lock(mu);
    bool missing;
    json_t *m = NULL;
    json_t *old = lh_subject__load_owned(s, id, key, &missing, err);
    if (!old && !missing) {
        rc = err ? err->code : LH_EINTERNAL;
        goto out;
    }
    m = old ? json_deep_copy(old) : lh_subject__new_manifest(s, id, now);
    merge_body(m, body);
    if ((rc = lh_subject_manifest_validate(m, body, old, s->cat, err)))
        goto out;
    normalise(m);
    if (old && json_equal(old, m)) {
        *created = false; /* nothing changed: no write, no event */
        goto done;
    }
    json_object_set_new(m, "updated_at", json_string(now));
    if ((rc = store(s, key, m, err)) && !lh_error_not_durable(err))
        goto out;
    if (rc)
        lh_log(LH_LOG_WARN, "subject.not_durable", "{s:s}", "candidate_id", id);
    *created = old == NULL;
    rc = lh_catalog_record(s->cat, actor, old ? "subject.updated" : "subject.created", id,
                           json_pack("{s:o}", "fields", changed_fields(old, m)), err);
done:
    if (manifest_out) {
        *manifest_out = m;
        m = NULL;
    }
out:
    pthread_mutex_unlock(mu);
    json_decref(old);
    json_decref(m);
    return rc;
}

json_t *lh_subjects_get(lh_subjects *s, const char *id, lh_error *err)
{
    char key[LH_SUBJECT_KEY_MAX];
    if (lh_subject__key_of(id, key, err) != 0)
        return NULL;
    bool missing;
    json_t *m = lh_subject__load_owned(s, id, key, &missing, err);
    if (missing || (!m && err && err->code == LH_EEXISTS))
        lh_error_setk(err, LH_ENOTFOUND, "subject_not_found", "no subject with candidate id '%s'",
                      id);
    return m;
}

json_t *lh_subjects_list(lh_subjects *s, const char *status, const char *after, size_t limit,
                         lh_error *err)
{
    if (status && lh_subject__check_status(status, err) != 0)
        return NULL;
    if (limit == 0 || limit > LIST_MAX)
        limit = LIST_MAX;
    char **keys = NULL;
    size_t n = 0;
    if (lh_storage_list(s->st, LH_BUCKET_PRIMARY, SUBJECTS_PREFIX, &keys, &n, err) != 0)
        return NULL;
    json_t *out = json_array();
    const char *next = NULL;
    size_t plen = strlen(SUBJECTS_PREFIX);
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[i] + plen;
        size_t kl = strlen(k);
        /* Manifests are <key>.json directly in the folder; the audit chain's
         * <key>.audit.jsonl and sweep reports end otherwise. */
        if (strncmp(keys[i], SUBJECTS_PREFIX, plen) != 0 || strchr(k, '/') || kl <= 5 ||
            k[0] == '_' || strcmp(k + kl - 5, ".json") != 0)
            continue;
        char key[LH_SUBJECT_KEY_MAX + 8];
        snprintf(key, sizeof(key), "%.*s", (int)(kl - 5), k);
        if (after && strcmp(key, after) <= 0)
            continue;
        if (json_array_size(out) == limit) {
            next = json_string_value(json_object_get(json_array_get(out, limit - 1), "_key"));
            break;
        }
        lh_error lerr;
        json_t *m = load(s, key, &lerr);
        if (!m)
            continue; /* removed meanwhile, or unreadable: GET names the problem */
        if (!status ||
            strcmp(status, lh_json_str(m, "status") ? lh_json_str(m, "status") : "") == 0) {
            json_object_set_new(m, "_key", json_string(key));
            json_array_append(out, m);
        }
        json_decref(m);
    }
    json_t *doc = json_pack("{s:o,s:o}", "subjects", out, "next_after",
                            next ? json_string(next) : json_null());
    size_t i;
    json_t *m;
    json_array_foreach(out, i, m) json_object_del(m, "_key");
    lh_storage_keys_free(keys);
    return doc;
}

int lh_subjects_root_listener(void *ctx, const char *id, const char *root, lh_error *err)
{
    (void)err;
    lh_subjects *s = ctx;
    if (!id || !root || !lh_utf8_valid(id, strlen(id)))
        return lh_error_set(err, LH_EINVAL, "no subject id or root to mirror");
    pthread_mutex_lock(&s->roots_mu);
    json_object_set_new(s->roots, id, json_string(root));
    pthread_cond_signal(&s->roots_work);
    pthread_mutex_unlock(&s->roots_mu);
    return 0;
}

/* Writes one batch of roots (id → root) into their manifests, under every stripe lock
 * (taken in order) so no PUT can read a manifest before and write it after, which would
 * put the old root back. Subjects without a manifest (or with another's) are skipped. */
static int roots_write(lh_subjects *s, const json_t *batch, lh_error *err)
{
    size_t cap = json_object_size(batch), n = 0;
    char **keys = lh_xcalloc(cap + 1, sizeof(char *)),
         **texts = lh_xcalloc(cap + 1, sizeof(char *));
    size_t *lens = lh_xcalloc(cap + 1, sizeof(size_t));
    char now[LH_TS_MAX];
    lh_time_rfc3339(now);
    int rc = 0;
    for (int k = 0; k < LH_SUBJECT_STRIPES; k++)
        pthread_mutex_lock(&s->stripes[k]);
    const char *id;
    json_t *root;
    json_object_foreach((json_t *)batch, id, root)
    {
        char key[LH_SUBJECT_KEY_MAX];
        bool missing;
        lh_error lerr;
        if (lh_subject__key_of(id, key, &lerr) != 0)
            continue;
        json_t *m = lh_subject__load_owned(s, id, key, &missing, &lerr);
        if (!m)
            continue;
        if (!json_equal(json_object_get(m, "audit_log_chain_root"), root)) {
            json_object_set(m, "audit_log_chain_root", root);
            json_object_set_new(m, "updated_at", json_string(now));
            keys[n] = lh_subject__manifest_key(key);
            texts[n] = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
            lens[n] = strlen(texts[n]);
            n++;
        }
        json_decref(m);
    }
    if (n > 0)
        rc = lh_storage_put_many(s->st, LH_BUCKET_PRIMARY, keys, texts, lens, n, err);
    for (int k = LH_SUBJECT_STRIPES - 1; k >= 0; k--)
        pthread_mutex_unlock(&s->stripes[k]);
    for (size_t j = 0; j < n; j++) {
        free(keys[j]);
        free(texts[j]);
    }
    free(keys);
    free(texts);
    free(lens);
    return rc;
}

static void *roots_flusher(void *arg)
{
    lh_subjects *s = arg;
    pthread_mutex_lock(&s->roots_mu);
    for (;;) {
        while (json_object_size(s->roots) == 0 && !s->closing)
            pthread_cond_wait(&s->roots_work, &s->roots_mu);
        if (json_object_size(s->roots) == 0)
            break; /* closing, nothing left */
        json_t *batch = s->roots;
        s->roots = json_object();
        s->roots_flushing = true;
        pthread_mutex_unlock(&s->roots_mu);
        lh_error err;
        int rc = roots_write(s, batch, &err);
        pthread_mutex_lock(&s->roots_mu);
        s->roots_flushing = false;
        if (rc != 0 && !lh_error_not_durable(&err)) {
            /* keep what no newer root replaced, and retry in a second (at close: give up,
             * the log is the truth and the next start's appends mirror again) */
            s->roots_failures++;
            lh_log(LH_LOG_WARN, "subjects.chain_roots_not_mirrored", "{s:I,s:s}", "subjects",
                   (json_int_t)json_object_size(batch), "message", err.message);
            const char *id;
            json_t *root;
            json_object_foreach(batch, id, root)
            {
                if (!json_object_get(s->roots, id))
                    json_object_set(s->roots, id, root);
            }
            pthread_cond_broadcast(&s->roots_idle);
            json_decref(batch);
            if (s->closing)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&s->roots_work, &s->roots_mu, &ts);
            continue;
        }
        pthread_cond_broadcast(&s->roots_idle);
        json_decref(batch);
    }
    pthread_cond_broadcast(&s->roots_idle);
    pthread_mutex_unlock(&s->roots_mu);
    return NULL;
}

int lh_subjects_flush_roots(lh_subjects *s, lh_error *err)
{
    pthread_mutex_lock(&s->roots_mu);
    uint64_t failures = s->roots_failures;
    while ((json_object_size(s->roots) > 0 || s->roots_flushing) && s->roots_failures == failures &&
           !s->closing) {
        pthread_cond_signal(&s->roots_work);
        pthread_cond_wait(&s->roots_idle, &s->roots_mu);
    }
    bool failed = s->roots_failures != failures;
    pthread_mutex_unlock(&s->roots_mu);
    return failed ? lh_error_set(err, LH_EIO,
                                 "the chain roots could not be written (see the "
                                 "log); they are retried every second")
                  : 0;
}
