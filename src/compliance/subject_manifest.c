/*
 * subject_manifest.c: the rules of a subject manifest (docs/AUDIT.md "Subjects"): every
 * known field checked with a message naming it, read-only fields refused unless sent
 * unchanged, BIPA's retention limit refused rather than clamped. Pure functions over JSON
 * (the catalog is only asked whether datasets and columns exist), so unit tests judge with
 * the rules the server uses.
 */
#include "subjects_internal.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---------------------------------------------------------------- time */

int lh_compliance__parse_ts(const char *s, int64_t *epoch)
{
    int y, mo, d, h, mi, sec, n = 0;
    /* the fixed part digit by digit: sscanf alone would take " 5" or "+5" for a field */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    for (size_t i = 0; s && i < sizeof(shape) - 1; i++)
        if (shape[i] == 'd' ? !isdigit((unsigned char)s[i])
                            : s[i] != shape[i] && !(shape[i] == 'T' && s[i] == 't'))
            return -1; /* RFC 3339 allows a lower-case t and z */
    if (!s || sscanf(s, "%4d-%2d-%2d%*c%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
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
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, m2 = 0;
        if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]) || p[3] != ':' ||
            !isdigit((unsigned char)p[4]) || !isdigit((unsigned char)p[5]) ||
            sscanf(p + 1, "%2d:%2d%n", &oh, &om, &m2) != 2 || m2 != 5 || oh > 23 || om > 59)
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

int64_t lh_compliance__add_years(int64_t epoch, int years)
{
    return add_years(epoch, years);
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

int lh_subject__check_status(const char *status, lh_error *err)
{
    json_t *v = json_string(status);
    int rc = check_enum("status", v, STATUS_VALUES, err);
    json_decref(v);
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
#define BIPA_MAX_YEARS LH_BIPA_MAX_YEARS

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

bool lh_subject__read_only(const char *field)
{
    for (size_t i = 0; READ_ONLY[i]; i++)
        if (strcmp(field, READ_ONLY[i]) == 0)
            return true;
    return false;
}

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
