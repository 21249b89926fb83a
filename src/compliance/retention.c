/*
 * retention.c: the retention sweep (issue 12 item 4; docs/AUDIT.md "Retention sweep").
 * An offline read of every subject manifest of a data folder against both retention
 * clocks, for `lakehouse retention-sweep`.
 *
 * Invariants:
 *   - Read only: manifests are read with plain reads, never through the subjects store
 *     (which could write), so the sweep can run beside a server and changes nothing but
 *     its own report, _catalog/subjects/_retention_sweep_<date>.jsonl. That name starts
 *     with '_', which no subject key does (lh_subject_key escapes a leading '_'), and ends
 *     in ".jsonl", so neither the manifest listing (<key>.json) nor the audit listing
 *     (<key>.audit.jsonl) can take it for one of theirs.
 *   - Deterministic: the report depends only on the manifests, the as-of instant and the
 *     photo files, never on the time the sweep ran (the default as-of is the last second
 *     of the current UTC day), and is written in key order with sorted JSON keys, so two
 *     runs on one day over the same manifests write the same bytes.
 *   - Subjects Erased or RetentionExpired are skipped (counted in the summary): their
 *     data is already gone or being removed.
 */
#include "subjects_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MANIFEST_MAX (1 << 20)
#define SUBJECTS_DIR "_catalog/subjects"
#define REPORT_PREFIX "_retention_sweep_"

/* "YYYY-MM-DDTHH:MM:SSZ" of an epoch. */
static void format_ts(int64_t epoch, char out[32])
{
    time_t t = (time_t)epoch;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A manifest's file name: "<key>.json" directly in the folder, the key being no hidden or
 * module file ('.' or '_' first). */
static bool is_manifest_name(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && name[0] != '.' && name[0] != '_' && strcmp(name + n - 5, ".json") == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The manifest file names of dir, sorted. *names: caller frees each and the array. */
static int list_manifests(const char *dir, char ***names, size_t *n, lh_error *err)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return lh_error_set(err, LH_EIO, "cannot list the subject manifests in '%s': %s", dir,
                            strerror(errno));
    }
    size_t cap = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (!is_manifest_name(de->d_name))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            *names = lh_xrealloc(*names, cap * sizeof(char *));
        }
        (*names)[(*n)++] = lh_xstrdup(de->d_name);
    }
    closedir(d);
    if (*n)
        qsort(*names, *n, sizeof(char *), cmp_str);
    return 0;
}

/* A timestamp field: *present and *epoch; a malformed one counts as absent (the manifest
 * rules refuse those on write, so only a hand-edited file has one) and is reported. */
static bool read_ts(const json_t *obj, const char *name, int64_t *epoch, json_t *warnings)
{
    const json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v))
        return false;
    if (!json_is_string(v) || lh_compliance__parse_ts(json_string_value(v), epoch) != 0) {
        json_array_append_new(warnings, json_sprintf("unparsable_%s", name));
        return false;
    }
    return true;
}

/* The photo files in the subject's folder under the storage root (names relative to the
 * root, sorted; partial ".*.part" files left out). Caller decrefs; NULL when the folder
 * does not exist. */
static json_t *photo_files(const char *root, const char *key)
{
    char *dir = lh_path_join(root, key);
    DIR *d = opendir(dir);
    free(dir);
    if (!d)
        return NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            names = lh_xrealloc(names, cap * sizeof(char *));
        }
        names[n++] = lh_xasprintf("%s/%s", key, de->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(char *), cmp_str);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(out, json_string(names[i]));
        free(names[i]);
    }
    free(names);
    return out;
}

/* Counters of the summary line. */
typedef struct sweep_counts {
    json_int_t checked, erased, expired, due_general, due_biometric, subjects_due;
} sweep_counts;

/* The finding of one manifest (NULL when there is nothing to report). */
static json_t *sweep_one(const json_t *m, const char *key, int64_t as_of, const char *as_of_s,
                         const char *storage_root, sweep_counts *c)
{
    const char *id = lh_json_str(m, "candidate_id");
    const char *status = lh_json_str(m, "status");
    if (status && strcmp(status, "Erased") == 0) {
        c->erased++;
        return NULL;
    }
    if (status && strcmp(status, "RetentionExpired") == 0) {
        c->expired++;
        return NULL;
    }
    c->checked++;
    const json_t *ret = json_object_get(m, "retention");
    const json_t *coll = json_object_get(m, "biometric_collection");
    const char *consent =
        lh_json_str(json_object_get(json_object_get(m, "consent"), "biometric"), "status");
    json_t *due = json_array(), *warnings = json_array();
    int64_t t;
    char buf[32];

    /* general PII: its own clock, when set */
    if (read_ts(ret, "general_pii_until", &t, warnings) && t <= as_of) {
        json_array_append_new(due, json_pack("{s:s,s:s,s:s}", "clock", "general_pii", "until",
                                             lh_json_str(ret, "general_pii_until"), "basis",
                                             "retention.general_pii_until"));
        c->due_general++;
    }

    /* biometric: whichever comes first of biometric_until and 3 years after the last
     * interaction (BIPA), for a subject with biometric data or consent to it */
    bool has_bio = json_is_object(coll) || (consent && strcmp(consent, "NeverCollected") != 0);
    int64_t until = 0, last = 0;
    bool has_until = read_ts(ret, "biometric_until", &until, warnings);
    bool has_last = read_ts(ret, "last_interaction_at", &last, warnings);
    if (has_bio) {
        int64_t cap = has_last ? lh_compliance__add_years(last, LH_BIPA_MAX_YEARS) : 0;
        bool capped = has_last && (!has_until || cap < until);
        if (has_until || has_last) {
            int64_t deadline = capped ? cap : until;
            if (deadline <= as_of) {
                format_ts(cap, buf);
                json_array_append_new(
                    due, json_pack("{s:s,s:s,s:s}", "clock", "biometric", "until",
                                   capped ? buf : lh_json_str(ret, "biometric_until"), "basis",
                                   capped ? "bipa_3_years_after_last_interaction"
                                          : "retention.biometric_until"));
                c->due_biometric++;
            }
        } else if (json_is_object(coll)) {
            json_array_append_new(warnings, json_string("biometric_data_without_clock"));
        }
    }

    /* photo files, when the storage root is known */
    json_t *files = NULL;
    if (storage_root) {
        files = photo_files(storage_root, key);
        const char *want = lh_json_str(coll, "data_path");
        bool found = false;
        size_t i;
        json_t *f;
        json_array_foreach(files, i, f)
        {
            if (want && strcmp(json_string_value(f), want) == 0)
                found = true;
            else
                json_array_append_new(
                    warnings, json_sprintf("unreferenced_photo_file:%s", json_string_value(f)));
        }
        if (want && !found)
            json_array_append_new(warnings, json_string("photo_file_missing"));
    }

    if (json_array_size(due) == 0 && json_array_size(warnings) == 0) {
        json_decref(due);
        json_decref(warnings);
        json_decref(files);
        return NULL;
    }
    if (json_array_size(due) > 0)
        c->subjects_due++;
    json_t *line =
        json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s,s:o,s:o,s:s?}", "schema", LH_RETENTION_SCHEMA, "kind",
                  "subject", "as_of", as_of_s, "candidate_id", id, "status", status, "key", key,
                  "due", due, "warnings", warnings, "biometric_consent", consent);
    json_object_set(line, "biometric_collection",
                    json_is_object(coll) ? (json_t *)coll : json_null());
    if (files)
        json_object_set_new(line, "photo_files", files);
    return line;
}

json_t *lh_retention_sweep(const lh_retention_opts *o, lh_error *err)
{
    int64_t as_of;
    char as_of_s[32], date[16];
    if (o->as_of) {
        if (lh_compliance__parse_ts(o->as_of, &as_of) != 0) {
            lh_error_set(err, LH_EINVAL,
                         "--as-of must be an RFC 3339 time such as 2026-05-03T00:00:00Z");
            return NULL;
        }
    } else {
        /* the last second of today (UTC): what falls due today is reported today, and
         * every run of the day sees the same instant */
        time_t now = time(NULL);
        as_of = (int64_t)now - (int64_t)now % 86400 + 86399;
    }
    format_ts(as_of, as_of_s);
    memcpy(date, as_of_s, 10);
    date[10] = '\0';

    char *dir = lh_path_join(o->data_dir, SUBJECTS_DIR);
    char **names = NULL;
    size_t n = 0;
    json_t *out = NULL;
    if (list_manifests(dir, &names, &n, err) != 0)
        goto out;
    sweep_counts c = {0};
    json_t *subjects = json_array(), *unreadable = json_array();
    for (size_t i = 0; i < n; i++) {
        char *path = lh_path_join(dir, names[i]);
        char *text = NULL;
        size_t len = 0;
        lh_error lerr;
        json_t *m = NULL;
        char key[LH_SUBJECT_KEY_MAX];
        const char *id = NULL;
        size_t kl = strlen(names[i]) - 5;
        if (lh_fs_read_all(path, MANIFEST_MAX, &text, &len, &lerr) == 0)
            m = lh_json_parse_object(text, len, &lerr);
        id = m ? lh_json_str(m, "candidate_id") : NULL;
        /* only a manifest stored under its own id's key is that subject's */
        if (!id || lh_subject_key(id, key, sizeof(key), NULL) != 0 || strlen(key) != kl ||
            strncmp(key, names[i], kl) != 0) {
            json_array_append_new(unreadable, json_string(names[i]));
        } else {
            json_t *line = sweep_one(m, key, as_of, as_of_s, o->storage_root, &c);
            if (line)
                json_array_append_new(subjects, line);
        }
        json_decref(m);
        free(text);
        free(path);
    }
    json_t *summary = json_pack(
        "{s:s,s:s,s:s,s:s,s:I,s:{s:I,s:I},s:I,s:{s:I,s:I},s:o,s:b}", "schema", LH_RETENTION_SCHEMA,
        "kind", "summary", "as_of", as_of_s, "date", date, "subjects_checked", c.checked, "skipped",
        "Erased", c.erased, "RetentionExpired", c.expired, "subjects_due", c.subjects_due, "due",
        "general_pii", c.due_general, "biometric", c.due_biometric, "unreadable_manifests",
        unreadable, "photo_files_checked", o->storage_root != NULL);
    out = json_pack("{s:o,s:o}", "summary", summary, "subjects", subjects);
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(dir);
    return out;
}

char *lh_retention_render(const json_t *report)
{
    lh_buf b;
    lh_buf_init(&b);
    char *line = json_dumps(json_object_get(report, "summary"), JSON_COMPACT | JSON_SORT_KEYS);
    lh_buf_printf(&b, "%s\n", line);
    free(line);
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(report, "subjects"), i, s)
    {
        line = json_dumps(s, JSON_COMPACT | JSON_SORT_KEYS);
        lh_buf_printf(&b, "%s\n", line);
        free(line);
    }
    return b.data;
}

int lh_retention_write(const char *data_dir, const json_t *report, char **path_out, lh_error *err)
{
    const char *date = lh_json_str(json_object_get(report, "summary"), "date");
    if (!date || strlen(date) != 10)
        return lh_error_set(err, LH_EINVAL, "the report has no date");
    char *dir = lh_path_join(data_dir, SUBJECTS_DIR);
    char *path = lh_xasprintf("%s/" REPORT_PREFIX "%s.jsonl", dir, date);
    char *text = lh_retention_render(report);
    int rc = lh_fs_mkdirs(dir, LH_DIR_MODE, err);
    if (rc == 0)
        rc = lh_fs_write_atomic(path, text, strlen(text), err);
    if (rc == 0 && path_out) {
        *path_out = path;
        path = NULL;
    }
    free(text);
    free(path);
    free(dir);
    return rc;
}
