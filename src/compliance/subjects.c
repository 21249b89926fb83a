/*
 * subjects.c: one manifest per person (subject_manifest.v1), and backfill from a dataset.
 *
 * Invariants:
 *   - A manifest is stored only under the key its candidate_id sanitises to
 *     (lh_subject_key), with that candidate_id inside. Another id of the same key is
 *     refused (LH_EEXISTS), never merged: the check and the write happen under the key's
 *     stripe lock, so two such ids cannot both pass it.
 *   - Every write is one atomic lh_storage_put: a failure leaves the old manifest or the
 *     new one whole, never a mix.
 *   - Read-only fields (the chain root and row count mirrored from the audit chain, the
 *     biometric collection, the timestamps) change only through this file's own paths, so
 *     a client PUT cannot make a manifest claim a chain root the log does not have.
 *   - Journal events are appended after the manifest is durable, under the stripe lock.
 *
 * Lock order: a stripe lock, then (inside lh_catalog_record / lh_catalog_get) the
 * catalog's. The catalog never calls into this file.
 */
#include "subjects_internal.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SUBJECTS_PREFIX "_catalog/subjects/"
#define MANIFEST_MAX (1 << 20)
#define KEY_VALUE_MAX 1024
#define VERSION_HASH_MAX 128
#define LIST_MAX 10000
#define LH_SUBJECT_STRIPES 64

struct lh_subjects {
    lh_storage *st;
    lh_catalog *cat;
    pthread_mutex_t stripes[LH_SUBJECT_STRIPES];
    lh_audit *audit; /* for chain tips; NULL when the server has no audit key */

    /* The chain-root mirror. The audit chain calls the listener after every durable
     * append, on the appender's thread; writing the manifest there would cost two fsyncs
     * per subject per append and undo the chain's group commit (a query returning 1,000
     * people would wait for 2,000 fsyncs). So the listener only records the newest root
     * per subject, and the flusher thread writes them in batches with one durability
     * barrier (lh_storage_put_many). The manifest may lag the log meanwhile (and after a
     * crash): verification tolerates a lagging root (lh_audit_verdict.manifest_lag) and
     * never sees a root ahead of the log, because the row is durable before the call. */
    pthread_mutex_t roots_mu;
    pthread_cond_t roots_work; /* the flusher has something to do, or must stop */
    pthread_cond_t roots_idle; /* a batch finished */
    json_t *roots;             /* candidate_id → newest root not yet written */
    bool roots_flushing, closing;
    uint64_t roots_failures;
    pthread_t flusher;
};

/* ---------------------------------------------------------------- ids and keys */

/* The storage key of id (lh_subject_key, the audit chain's sanitiser), refused when the
 * manifest's object name would be longer than a file name may be (ids with many escaped
 * bytes). */
static int key_of(const char *id, char *key, lh_error *err)
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

static char *manifest_key(const char *key)
{
    return lh_xasprintf(SUBJECTS_PREFIX "%s.json", key);
}

static pthread_mutex_t *stripe(lh_subjects *s, const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return &s->stripes[h % LH_SUBJECT_STRIPES];
}

/* ---------------------------------------------------------------- time */

int lh_compliance__parse_ts(const char *s, int64_t *epoch)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
        n != 19)
        return -1;
    const char *p = s + n;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        int digits = 0;
        while (isdigit((unsigned char)*p) && digits < 9) {
            p++;
            digits++;
        }
        if (isdigit((unsigned char)*p))
            return -1;
    }
    int off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, m2 = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &m2) != 2 || m2 != 5 || oh > 23 || om > 59)
            return -1;
        off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
        sec > 60)
        return -1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return -1;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    *epoch = (int64_t)timegm(&tm) - off;
    return 0;
}

/* The same instant plus `years` calendar years (Feb 29 → Mar 1 in a common year). */
static int64_t add_years(int64_t epoch, int years)
{
    time_t t = (time_t)epoch;
    struct tm tm;
    gmtime_r(&t, &tm);
    tm.tm_year += years;
    return (int64_t)timegm(&tm);
}

/* ---------------------------------------------------------------- validation */

/* One allowed value set, for messages and checks. */
typedef struct {
    const char *field;
    const char *const *values;
} enum_spec;

static const char *const STATUS_VALUES[] = {"Active", "Withdrawn", "Erased", "RetentionExpired",
                                            NULL};
static const char *const GENERAL_CONSENT_VALUES[] = {"NotGiven", "Given", "Withdrawn", NULL};
static const char *const BIOMETRIC_CONSENT_VALUES[] = {"NeverCollected", "Given", "Withdrawn",
                                                       NULL};

static int check_enum(const char *field, const json_t *v, const char *const *values, lh_error *err)
{
    const char *s = json_string_value(v);
    for (size_t i = 0; s && values[i]; i++)
        if (strcmp(s, values[i]) == 0)
            return 0;
    lh_buf b;
    lh_buf_init(&b);
    for (size_t i = 0; values[i]; i++)
        lh_buf_printf(&b, "%s%s", i ? ", " : "", values[i]);
    int rc = lh_error_set(err, LH_EINVAL, "'%s' must be one of %s", field, b.data);
    lh_buf_free(&b);
    return rc;
}

bool lh_subject_status_valid(const char *status)
{
    for (size_t i = 0; status && STATUS_VALUES[i]; i++)
        if (strcmp(status, STATUS_VALUES[i]) == 0)
            return true;
    return false;
}

/* A timestamp field of obj: absent or null → *present false; else RFC 3339. */
static int check_ts(const json_t *obj, const char *parent, const char *name, bool *present,
                    int64_t *epoch, lh_error *err)
{
    const json_t *v = json_object_get(obj, name);
    *present = false;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || lh_compliance__parse_ts(json_string_value(v), epoch) != 0)
        return lh_error_set(err, LH_EINVAL,
                            "'%s.%s' must be an RFC 3339 timestamp such as "
                            "\"2026-05-03T12:00:00Z\", or null",
                            parent, name);
    *present = true;
    return 0;
}

/* Refuses keys of obj outside allowed (a typo in a consent field must not be stored as an
 * unknown field while the consent it meant to record is lost). */
static int check_keys(const json_t *obj, const char *parent, const char *const *allowed,
                      lh_error *err)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        size_t i;
        for (i = 0; allowed[i]; i++)
            if (strcmp(k, allowed[i]) == 0)
                break;
        if (!allowed[i]) {
            lh_buf b;
            lh_buf_init(&b);
            for (size_t j = 0; allowed[j]; j++)
                lh_buf_printf(&b, "%s%s", j ? ", " : "", allowed[j]);
            int rc = lh_error_set(err, LH_EINVAL, "unknown field '%s.%s' (allowed: %s)", parent, k,
                                  b.data);
            lh_buf_free(&b);
            return rc;
        }
    }
    return 0;
}

/* given_at / withdrawn_at rules shared by both consents. */
static int check_consent_times(const json_t *c, const char *parent, const char *status,
                               lh_error *err)
{
    bool has_given, has_withdrawn;
    int64_t given = 0, withdrawn = 0;
    int rc;
    if ((rc = check_ts(c, parent, "given_at", &has_given, &given, err)) ||
        (rc = check_ts(c, parent, "withdrawn_at", &has_withdrawn, &withdrawn, err)))
        return rc;
    if (strcmp(status, "Given") == 0 && !has_given)
        return lh_error_set(err, LH_EINVAL, "'%s.given_at' is required when status is Given",
                            parent);
    if (strcmp(status, "Given") == 0 && has_withdrawn)
        return lh_error_set(err, LH_EINVAL,
                            "'%s.withdrawn_at' must be null while status is Given (set status "
                            "Withdrawn to withdraw)",
                            parent);
    if (strcmp(status, "Withdrawn") == 0 && !has_withdrawn)
        return lh_error_set(err, LH_EINVAL,
                            "'%s.withdrawn_at' is required when status is Withdrawn", parent);
    if (has_given && has_withdrawn && withdrawn < given)
        return lh_error_set(err, LH_EINVAL, "'%s.withdrawn_at' is before '%s.given_at'", parent,
                            parent);
    return 0;
}

static int check_general(const json_t *g, lh_error *err)
{
    static const char *const keys[] = {"status", "given_at", "withdrawn_at", NULL};
    if (!json_is_object(g))
        return lh_error_set(err, LH_EINVAL,
                            "'consent.general' must be an object {status, given_at, "
                            "withdrawn_at}");
    int rc;
    if ((rc = check_keys(g, "consent.general", keys, err)) ||
        (rc = check_enum("consent.general.status", json_object_get(g, "status"),
                         GENERAL_CONSENT_VALUES, err)))
        return rc;
    if (strcmp(lh_json_str(g, "status"), "NotGiven") == 0 &&
        json_is_string(json_object_get(g, "given_at")))
        return lh_error_set(err, LH_EINVAL,
                            "'consent.general.given_at' must be null while status is NotGiven");
    return check_consent_times(g, "consent.general", lh_json_str(g, "status"), err);
}

static int check_biometric(const json_t *b, lh_error *err)
{
    static const char *const keys[] = {"status", "version_hash", "given_at", "withdrawn_at", NULL};
    if (!json_is_object(b))
        return lh_error_set(err, LH_EINVAL,
                            "'consent.biometric' must be an object {status, version_hash, "
                            "given_at, withdrawn_at}");
    int rc;
    if ((rc = check_keys(b, "consent.biometric", keys, err)) ||
        (rc = check_enum("consent.biometric.status", json_object_get(b, "status"),
                         BIOMETRIC_CONSENT_VALUES, err)))
        return rc;
    const char *status = lh_json_str(b, "status");
    const json_t *vh = json_object_get(b, "version_hash");
    if (vh && !json_is_null(vh)) {
        const char *h = json_string_value(vh);
        size_t n = h ? strlen(h) : 0;
        if (!h || n == 0 || n > VERSION_HASH_MAX)
            return lh_error_set(err, LH_EINVAL,
                                "'consent.biometric.version_hash' must be a non-empty string of "
                                "at most %d characters (the hash of the consent text), or null",
                                VERSION_HASH_MAX);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)h[i] <= 0x20 || (unsigned char)h[i] >= 0x7f)
                return lh_error_set(err, LH_EINVAL,
                                    "'consent.biometric.version_hash' must be printable ASCII "
                                    "without spaces");
    }
    bool has_hash = vh && !json_is_null(vh);
    if (strcmp(status, "NeverCollected") == 0) {
        if (has_hash || json_is_string(json_object_get(b, "given_at")) ||
            json_is_string(json_object_get(b, "withdrawn_at")))
            return lh_error_set(err, LH_EINVAL,
                                "'consent.biometric': version_hash, given_at and withdrawn_at "
                                "must be null while status is NeverCollected");
        return 0;
    }
    if (!has_hash)
        return lh_error_set(err, LH_EINVAL,
                            "'consent.biometric.version_hash' is required when status is %s "
                            "(which consent text was agreed to)",
                            status);
    return check_consent_times(b, "consent.biometric", status, err);
}

static int check_consent(const json_t *c, lh_error *err)
{
    static const char *const keys[] = {"general", "biometric", NULL};
    if (!json_is_object(c))
        return lh_error_set(err, LH_EINVAL, "'consent' must be an object {general, biometric}");
    int rc;
    if ((rc = check_keys(c, "consent", keys, err)) ||
        (rc = check_general(json_object_get(c, "general"), err)) ||
        (rc = check_biometric(json_object_get(c, "biometric"), err)))
        return rc;
    return 0;
}

/* BIPA: biometric data may be kept at most 3 years after the last interaction. Refused
 * rather than clamped: a stored date other than the one sent would be a silent change of
 * a legal deadline. */
#define BIPA_MAX_YEARS 3

static int check_retention(const json_t *r, lh_error *err)
{
    static const char *const keys[] = {"general_pii_until", "biometric_until",
                                       "last_interaction_at", NULL};
    if (!json_is_object(r))
        return lh_error_set(err, LH_EINVAL,
                            "'retention' must be an object {general_pii_until, biometric_until, "
                            "last_interaction_at}");
    int rc;
    bool has_g, has_b, has_last;
    int64_t g, b, last;
    if ((rc = check_keys(r, "retention", keys, err)) ||
        (rc = check_ts(r, "retention", "general_pii_until", &has_g, &g, err)) ||
        (rc = check_ts(r, "retention", "biometric_until", &has_b, &b, err)) ||
        (rc = check_ts(r, "retention", "last_interaction_at", &has_last, &last, err)))
        return rc;
    if (has_b && !has_last)
        return lh_error_set(err, LH_EINVAL,
                            "'retention.biometric_until' needs 'retention.last_interaction_at' "
                            "(BIPA: at most %d years after the last interaction)",
                            BIPA_MAX_YEARS);
    if (has_b && b > add_years(last, BIPA_MAX_YEARS)) {
        time_t max = (time_t)add_years(last, BIPA_MAX_YEARS);
        struct tm tm;
        char buf[32];
        gmtime_r(&max, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
        return lh_error_set(err, LH_EINVAL,
                            "'retention.biometric_until' is more than %d years after "
                            "'retention.last_interaction_at' (BIPA); the latest allowed is %s",
                            BIPA_MAX_YEARS, buf);
    }
    return 0;
}

static int check_dataset_entry(const json_t *e, size_t i, lh_catalog *cat, lh_error *err)
{
    static const char *const keys[] = {"dataset", "key_column", "key_value", NULL};
    char where[48];
    snprintf(where, sizeof(where), "datasets[%zu]", i);
    if (!json_is_object(e))
        return lh_error_set(err, LH_EINVAL,
                            "'%s' must be an object {dataset, key_column, key_value}", where);
    int rc = check_keys(e, where, keys, err);
    if (rc)
        return rc;
    const char *ds = lh_json_str(e, "dataset"), *col = lh_json_str(e, "key_column"),
               *val = lh_json_str(e, "key_value");
    if (!ds || lh_name_validate(ds, "dataset name", NULL) != 0)
        return lh_error_set(err, LH_EINVAL, "'%s.dataset' must be a dataset name", where);
    if (!col || !*col)
        return lh_error_set(err, LH_EINVAL, "'%s.key_column' must be a column name", where);
    if (!val || !*val || strlen(val) > KEY_VALUE_MAX || !lh_utf8_valid(val, strlen(val)))
        return lh_error_set(err, LH_EINVAL,
                            "'%s.key_value' must be a non-empty UTF-8 string of at most %d "
                            "bytes (the subject's value in that column)",
                            where, KEY_VALUE_MAX);
    if (!cat)
        return 0;
    lh_error lerr;
    json_t *m = lh_catalog_get(cat, ds, &lerr);
    if (!m)
        return lh_error_set(err, LH_EINVAL, "'%s.dataset': no dataset named '%s'", where, ds);
    bool found = false;
    size_t j;
    const json_t *c;
    json_array_foreach(json_object_get(m, "columns"), j, c)
    {
        if (strcasecmp(lh_json_str(c, "name"), col) == 0)
            found = true;
    }
    json_decref(m);
    if (!found)
        return lh_error_set(err, LH_EINVAL, "'%s.key_column': dataset '%s' has no column '%s'",
                            where, ds, col);
    return 0;
}

static int check_datasets(const json_t *a, lh_catalog *cat, lh_error *err)
{
    if (!json_is_array(a))
        return lh_error_set(err, LH_EINVAL,
                            "'datasets' must be an array of {dataset, key_column, key_value}");
    size_t i, j;
    const json_t *e, *f;
    json_array_foreach(a, i, e)
    {
        int rc = check_dataset_entry(e, i, cat, err);
        if (rc)
            return rc;
        json_array_foreach(a, j, f)
        {
            if (j >= i)
                break;
            if (json_equal((json_t *)e, (json_t *)f))
                return lh_error_set(err, LH_EINVAL, "'datasets[%zu]' repeats 'datasets[%zu]'", i,
                                    j);
        }
    }
    return 0;
}

/* Fields only this module writes: a client may send them with their current value (a GET,
 * edited and PUT back), never another. */
static const char *const READ_ONLY[] = {"schema",
                                        "candidate_id",
                                        "audit_log_chain_root",
                                        "audit_rows",
                                        "biometric_collection",
                                        "created_at",
                                        "updated_at",
                                        NULL};

int lh_subject_manifest_validate(const json_t *m, const json_t *body, const json_t *old,
                                 lh_catalog *cat, lh_error *err)
{
    int rc;
    for (size_t i = 0; body && READ_ONLY[i]; i++) {
        const json_t *sent = json_object_get(body, READ_ONLY[i]);
        if (!sent)
            continue;
        const json_t *cur = old ? json_object_get(old, READ_ONLY[i]) : NULL;
        if (!cur)
            cur = json_object_get(m, READ_ONLY[i]);
        if (!cur || !json_equal((json_t *)sent, (json_t *)cur))
            return lh_error_set(err, LH_EINVAL,
                                "'%s' is set by the server and cannot be changed (send its "
                                "current value or leave it out)",
                                READ_ONLY[i]);
    }
    if ((rc = check_enum("status", json_object_get(m, "status"), STATUS_VALUES, err)) ||
        (rc = check_consent(json_object_get(m, "consent"), err)) ||
        (rc = check_retention(json_object_get(m, "retention"), err)) ||
        (rc = check_datasets(json_object_get(m, "datasets"), cat, err)))
        return rc;
    return 0;
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
    char *okey = manifest_key(key);
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
    char *okey = manifest_key(key);
    char *text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
    int rc = lh_storage_put(s->st, LH_BUCKET_PRIMARY, okey, text, strlen(text), err);
    free(text);
    free(okey);
    return rc;
}

/* Loads the manifest of key owned by id: NULL with *missing when there is none; NULL +
 * LH_EEXISTS when another id owns the key. */
static json_t *load_owned(lh_subjects *s, const char *id, const char *key, bool *missing,
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

static json_t *manifest_default(lh_subjects *s, const char *id, const char *now)
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
        bool ro = false;
        for (size_t i = 0; READ_ONLY[i]; i++)
            ro = ro || strcmp(k, READ_ONLY[i]) == 0;
        if (ro)
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
    int rc = key_of(id, key, err);
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
    pthread_mutex_t *mu = stripe(s, key);
    pthread_mutex_lock(mu);
    bool missing;
    json_t *m = NULL;
    json_t *old = load_owned(s, id, key, &missing, err);
    if (!old && !missing) {
        rc = err ? err->code : LH_EINTERNAL;
        goto out;
    }
    m = old ? json_deep_copy(old) : manifest_default(s, id, now);
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
    if (key_of(id, key, err) != 0)
        return NULL;
    bool missing;
    json_t *m = load_owned(s, id, key, &missing, err);
    if (missing || (!m && err && err->code == LH_EEXISTS))
        lh_error_setk(err, LH_ENOTFOUND, "subject_not_found", "no subject with candidate id '%s'",
                      id);
    return m;
}

json_t *lh_subjects_list(lh_subjects *s, const char *status, const char *after, size_t limit,
                         lh_error *err)
{
    if (status && !lh_subject_status_valid(status)) {
        json_t *v = json_string(status);
        check_enum("status", v, STATUS_VALUES, err);
        json_decref(v);
        return NULL;
    }
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
        if (key_of(id, key, &lerr) != 0)
            continue;
        json_t *m = load_owned(s, id, key, &missing, &lerr);
        if (!m)
            continue;
        if (!json_equal(json_object_get(m, "audit_log_chain_root"), root)) {
            json_object_set(m, "audit_log_chain_root", root);
            json_object_set_new(m, "updated_at", json_string(now));
            keys[n] = manifest_key(key);
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

/* ---------------------------------------------------------------- backfill */

typedef struct {
    json_t *report;
    json_t *refused;
    int64_t created, existing, added, refused_total, values;
} backfill_state;

/* Values come from user data: they reach the report escaped (invalid UTF-8 and controls
 * as \xHH), so the report is always valid JSON. */
static void refuse(backfill_state *b, const char *id, const char *value, const char *why)
{
    b->refused_total++;
    if (json_array_size(b->refused) >= LH_BACKFILL_REFUSED_MAX)
        return;
    char *eid = lh_escape(id, strlen(id), true), *eval = lh_escape(value, strlen(value), true);
    json_array_append_new(b->refused,
                          json_pack("{s:s,s:s,s:s}", "id", eid, "value", eval, "reason", why));
    free(eid);
    free(eval);
}

/* A page of the backfill is planned in memory, then written with one durability barrier
 * (lh_storage_put_many: one file-system sync for up to LH_BACKFILL_BATCH manifests
 * instead of two fsyncs each). pending maps a key to {"m": manifest, "dirty": bool}, so
 * two values of one page that name one subject ("W-1" and "1" with prefix "W-") land in
 * one manifest, and two ids of one key are told apart within the page too. */
static int plan_one(lh_subjects *s, const lh_backfill_opts *o, const char *column,
                    const char *value, backfill_state *b, json_t *pending, lh_error *err)
{
    const char *id = lh_subject_strip_prefix(value, o->strip_prefix);
    char key[LH_SUBJECT_KEY_MAX];
    lh_error lerr;
    b->values++;
    if (key_of(id, key, &lerr) != 0) {
        refuse(b, id, value, lerr.message);
        return 0;
    }
    if (strlen(value) > KEY_VALUE_MAX) {
        refuse(b, id, value, "the value is longer than 1024 bytes");
        return 0;
    }
    json_t *slot = json_object_get(pending, key), *m = json_object_get(slot, "m");
    if (!slot) {
        bool missing;
        m = load_owned(s, id, key, &missing, &lerr);
        if (!m && !missing) {
            if (lerr.code != LH_EEXISTS)
                return lh_error_set(err, lerr.code, "%s", lerr.message);
            refuse(b, id, value, lerr.message);
            return 0;
        }
        char now[LH_TS_MAX];
        if (m) {
            b->existing++;
        } else {
            m = manifest_default(s, id, lh_time_rfc3339(now));
            b->created++;
        }
        slot = json_pack("{s:o,s:b}", "m", m, "dirty", missing);
        json_object_set_new(pending, key, slot);
    } else if (strcmp(lh_json_str(m, "candidate_id"), id) != 0) {
        lh_error_setk(&lerr, LH_EEXISTS, "subject_key_collision",
                      "candidate id '%s' maps to the storage key '%s' of subject '%s': "
                      "refused, never merged",
                      id, key, lh_json_str(m, "candidate_id"));
        refuse(b, id, value, lerr.message);
        return 0;
    }
    json_t *entry =
        json_pack("{s:s,s:s,s:s}", "dataset", o->dataset, "key_column", column, "key_value", value);
    json_t *ds = json_object_get(m, "datasets");
    if (!json_is_array(ds)) {
        ds = json_array();
        json_object_set_new(m, "datasets", ds);
    }
    size_t i;
    json_t *e;
    bool have = false;
    json_array_foreach(ds, i, e) have = have || json_equal(e, entry);
    if (!have) {
        json_array_append(ds, entry);
        if (!json_is_true(json_object_get(slot, "dirty")))
            b->added++;
        json_object_set_new(slot, "dirty", json_true());
    }
    json_decref(entry);
    return 0;
}

/* Plans one page under every stripe lock (taken in order, so never a deadlock with a PUT,
 * which takes one) and writes what changed with one barrier. */
static int backfill_page_apply(lh_subjects *s, const lh_backfill_opts *o, const char *column,
                               const json_t *page, backfill_state *b, lh_error *err)
{
    json_t *pending = json_object();
    size_t n = 0, i;
    int rc = 0;
    char **keys = NULL, **texts = NULL;
    size_t *lens = NULL;
    for (int k = 0; k < LH_SUBJECT_STRIPES; k++)
        pthread_mutex_lock(&s->stripes[k]);
    json_t *v;
    json_array_foreach(page, i, v)
    {
        if ((rc = plan_one(s, o, column, json_string_value(v), b, pending, err)) != 0)
            goto out;
    }
    size_t cap = json_object_size(pending);
    keys = lh_xcalloc(cap + 1, sizeof(char *));
    texts = lh_xcalloc(cap + 1, sizeof(char *));
    lens = lh_xcalloc(cap + 1, sizeof(size_t));
    char now[LH_TS_MAX];
    lh_time_rfc3339(now);
    const char *key;
    json_t *slot;
    json_object_foreach(pending, key, slot)
    {
        if (!json_is_true(json_object_get(slot, "dirty")))
            continue;
        json_t *m = json_object_get(slot, "m");
        json_object_set_new(m, "updated_at", json_string(now));
        keys[n] = manifest_key(key);
        texts[n] = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
        lens[n] = strlen(texts[n]);
        n++;
    }
    if (n > 0 && (rc = lh_storage_put_many(s->st, LH_BUCKET_PRIMARY, keys, texts, lens, n, err)))
        lh_log(LH_LOG_WARN, "subjects.backfill_write_failed", "{s:s,s:I}", "dataset", o->dataset,
               "manifests", (json_int_t)n);
out:
    for (int k = LH_SUBJECT_STRIPES - 1; k >= 0; k--)
        pthread_mutex_unlock(&s->stripes[k]);
    for (size_t j = 0; j < n; j++) {
        free(keys[j]);
        free(texts[j]);
    }
    free(keys);
    free(texts);
    free(lens);
    json_decref(pending);
    return rc;
}

/* One keyset page: the next LH_BACKFILL_BATCH distinct values after `after` (NULL: from
 * the start), in byte order. Caller decrefs the array of strings. */
static json_t *backfill_page(lh_engine *eng, const char *dataset, const char *column,
                             const char *after, int timeout_ms, lh_error *err)
{
    char *rel = lh_sql_ident(dataset), *col = lh_sql_ident(column);
    char *lit = after ? lh_sql_literal(after) : NULL;
    char *sql = lit ? lh_xasprintf("SELECT DISTINCT CAST(%s AS VARCHAR) AS v FROM %s WHERE %s IS "
                                   "NOT NULL AND CAST(%s AS VARCHAR) > %s ORDER BY v LIMIT %d",
                                   col, rel, col, col, lit, LH_BACKFILL_BATCH)
                    : lh_xasprintf("SELECT DISTINCT CAST(%s AS VARCHAR) AS v FROM %s WHERE %s IS "
                                   "NOT NULL ORDER BY v LIMIT %d",
                                   col, rel, col, LH_BACKFILL_BATCH);
    lh_query_opts qo = {.format = LH_FORMAT_JSON,
                        .max_rows = LH_BACKFILL_BATCH,
                        .timeout_ms = timeout_ms > 0 ? timeout_ms : 30000,
                        .policy = NULL};
    json_t *out = NULL, *doc = NULL;
    lh_buf buf;
    lh_buf_init(&buf);
    lh_query *q = NULL;
    /* All query slots busy: wait a little, as a client retrying a 429 would. */
    for (int attempt = 0; attempt < 100; attempt++) {
        lh_error lerr;
        q = lh_query_start(eng, sql, &qo, &lerr);
        if (q || lerr.code != LH_EBUSY) {
            if (!q && err)
                *err = lerr;
            break;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!q)
        goto out;
    char chunk[16384];
    ssize_t n;
    while ((n = lh_query_read(q, chunk, sizeof(chunk))) > 0)
        lh_buf_append(&buf, chunk, (size_t)n);
    if (n < 0 || lh_query_error(q)) {
        const lh_error *qe = lh_query_error(q);
        lh_error_set(err, qe ? qe->code : LH_EINTERNAL, "%s",
                     qe ? qe->message : "the backfill query failed");
        goto out;
    }
    doc = lh_json_parse_object(buf.data ? buf.data : "", buf.len, err);
    if (!doc)
        goto out;
    out = json_array();
    size_t i;
    const json_t *row;
    json_array_foreach(json_object_get(doc, "rows"), i, row)
    {
        const char *v = json_string_value(json_array_get(row, 0));
        if (v)
            json_array_append_new(out, json_string(v));
    }
out:
    lh_query_free(q);
    json_decref(doc);
    lh_buf_free(&buf);
    free(sql);
    free(lit);
    free(rel);
    free(col);
    return out;
}

json_t *lh_subjects_backfill(lh_subjects *s, lh_engine *eng, const lh_backfill_opts *o, lh_job *job,
                             lh_error *err)
{
    json_t *ds = NULL, *page = NULL, *report = NULL;
    char *column = NULL, *last = NULL;
    backfill_state b = {.refused = json_array()};
    if (!o->dataset || !*o->dataset) {
        lh_error_set(err, LH_EINVAL, "'dataset' is required");
        goto out;
    }
    if (!(ds = lh_catalog_get(s->cat, o->dataset, err)))
        goto out;
    const char *want =
        o->id_column && *o->id_column ? o->id_column : lh_json_str(ds, "subject_key_column");
    if (!want) {
        lh_error_set(err, LH_EINVAL,
                     "'id_column' is required: dataset '%s' declares no subject_key_column "
                     "(PATCH its metadata to set one)",
                     lh_json_str(ds, "name"));
        goto out;
    }
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(ds, "columns"), i, c)
    {
        if (strcasecmp(lh_json_str(c, "name"), want) == 0)
            column = lh_xstrdup(lh_json_str(c, "name"));
    }
    if (!column) {
        lh_error_set(err, LH_EINVAL, "dataset '%s' has no column '%s'", lh_json_str(ds, "name"),
                     want);
        goto out;
    }
    const char *name = lh_json_str(ds, "name");
    lh_backfill_opts real = *o;
    real.dataset = name;
    int64_t total = lh_json_int(ds, "row_count", 0);
    for (;;) {
        json_decref(page);
        if (!(page = backfill_page(eng, name, column, last, o->timeout_ms, err)))
            goto out;
        if (backfill_page_apply(s, &real, column, page, &b, err) != 0)
            goto out;
        lh_job_progress(job, b.values, total);
        if (json_array_size(page) < LH_BACKFILL_BATCH)
            break;
        free(last);
        last = lh_xstrdup(json_string_value(json_array_get(page, json_array_size(page) - 1)));
    }
    report =
        json_pack("{s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:O,s:I}", "dataset", name, "id_column", column,
                  "strip_prefix",
                  o->strip_prefix && *o->strip_prefix ? json_string(o->strip_prefix) : json_null(),
                  "distinct_values", (json_int_t)b.values, "created", (json_int_t)b.created,
                  "existing", (json_int_t)b.existing, "datasets_added", (json_int_t)b.added,
                  "refused", b.refused, "refused_total", (json_int_t)b.refused_total);
    json_t *details = json_deep_copy(report);
    json_object_del(details, "refused");
    lh_error lerr;
    if (lh_catalog_record(s->cat, o->actor, "subjects.backfilled", name, details, &lerr) != 0) {
        if (err)
            *err = lerr;
        json_decref(report);
        report = NULL;
    }
out:
    json_decref(ds);
    json_decref(page);
    json_decref(b.refused);
    free(column);
    free(last);
    return report;
}
