/*
 * backfill.c: subject manifests from a dataset's id column (POST /subjects/backfill,
 * `lakehouse subjects backfill`).
 *
 * Invariants:
 *   - Never every row in memory: distinct values come from the query engine in keyset
 *     pages of LH_BACKFILL_BATCH (the engine holds the distinct set, we hold one page).
 *   - The prefix is stripped once (lh_subject_strip_prefix), never repeatedly.
 *   - Idempotent: a manifest is written only when created or when it gains the dataset
 *     entry, so a second run writes nothing.
 *   - A page is planned under every stripe lock and written with one durability barrier
 *     (lh_storage_put_many); a crash leaves each manifest old or new and whole, and a
 *     rerun finishes the work.
 */
#include "subjects_internal.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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
    if (lh_subject__key_of(id, key, &lerr) != 0) {
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
        m = lh_subject__load_owned(s, id, key, &missing, &lerr);
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
            m = lh_subject__new_manifest(s, id, lh_time_rfc3339(now));
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
        keys[n] = lh_subject__manifest_key(key);
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
