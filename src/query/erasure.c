/*
 * erasure.c: the SQL of erasure: counting the rows a tombstone would hide, and compaction.
 *
 * Compaction of a dataset (lh_compact), each step's failure leaving the previous state
 * queryable and intact:
 *   1. read the manifest and the tombstone set (a snapshot: later changes are not applied);
 *   2. one COPY on the internal database merges every part minus the tombstoned rows into
 *      a staging file beside the dataset's parts (same Parquet options as the ingest): a
 *      plain tombstone's rows everywhere, a scoped one's (an upsert's) outside its live
 *      part, so each key keeps its current version only;
 *   3. the staging file is read back: its row count must be what the COPY wrote;
 *   4. lh_storage_commit makes it durable under datasets/<name>/<id>/part-<hex>.parquet
 *      (unreferenced until step 5: a crash here leaves an orphan the open sweep removes);
 *   5. lh_catalog_commit_compaction swaps the parts for it in one manifest write (the
 *      linearization point; parts appended meanwhile are kept), clears the applied
 *      tombstones and hands the old parts to the retirer, which deletes them once no query
 *      that started before still reads them.
 * A failure before 5 removes what 2-4 wrote; a failure in 5 before the manifest rename is
 * the catalog's rollback (the caller removes the part); a rename that took effect is rolled
 * forward by the catalog.
 *
 * The tombstone keys appear in the COPY's text (a VALUES list on the internal database,
 * which no user reaches) and nowhere else: errors are cut to DuckDB's first line and
 * scrubbed of paths before they leave.
 */
#include "query_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define COMPACT_STEPS 5

/* "read_parquet([...])" of the manifest's files; NULL + err. Caller frees. */
static char *parts_relation(lh_engine *eng, const json_t *m, lh_error *err)
{
    const json_t *files = json_object_get(m, "files");
    size_t n = json_array_size(files);
    const char **keys = lh_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        keys[i] = lh_json_str(json_array_get(files, i), "key"); /* borrowed */
    lh_buf b;
    lh_buf_init(&b);
    int rc = lh_duck_put_read_parquet(&b, eng->st, lh_json_str(m, "bucket"), keys, n, err);
    free(keys);
    if (rc != 0) {
        lh_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* One key as a SQL value of the key column's type: integers (canonical decimal text) bare,
 * strings quoted. */
static void key_value(lh_buf *b, const char *key, bool text)
{
    if (text) {
        char *lit = lh_sql_literal(key);
        lh_buf_puts(b, lit);
        free(lit);
    } else {
        lh_buf_puts(b, key);
    }
}

/* DuckDB's first line, without our paths. */
static int duck_error(lh_engine *eng, lh_error *err, const char *what)
{
    err->message[strcspn(err->message, "\n")] = '\0';
    lh_error_scrub(err, eng->data_dir, "<lake>");
    lh_error e = *err;
    return lh_error_setk(err, LH_EINTERNAL, "compaction_failed", "%s: %s", what, e.message);
}

int lh_erasure_count_keys(lh_engine *eng, const json_t *manifest, const char *column,
                          const char *type, char *const *keys, size_t n, int64_t *counts,
                          lh_error *err)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        counts[i] = 0;
    if (n == 0)
        return 0;
    char *rel = parts_relation(eng, manifest, err);
    if (!rel)
        return err->code;
    bool text = strcasecmp(type, "VARCHAR") == 0;
    char *col = lh_sql_ident(column);
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_puts(&b, "SELECT k.i, count(b.");
    lh_buf_puts(&b, col);
    lh_buf_puts(&b, ") FROM (VALUES ");
    for (size_t i = 0; i < n; i++) {
        lh_buf_printf(&b, "%s(%zu, ", i ? "," : "", i);
        key_value(&b, keys[i], text);
        lh_buf_puts(&b, ")");
    }
    lh_buf_printf(&b, ") AS k(i, v) LEFT JOIN %s AS b ON b.%s = k.v GROUP BY k.i", rel, col);
    json_t *doc = lh_engine_query_json(eng, b.data, err);
    if (!doc) {
        rc = duck_error(eng, err, "cannot count the rows of the keys");
        goto out;
    }
    size_t r;
    const json_t *row;
    json_array_foreach(json_object_get(doc, "rows"), r, row)
    {
        json_int_t i = json_integer_value(json_array_get(row, 0));
        if (i >= 0 && (size_t)i < n)
            counts[i] = json_integer_value(json_array_get(row, 1));
    }
    json_decref(doc);
out:
    lh_buf_free(&b);
    free(col);
    free(rel);
    return rc;
}

/* Appends the compaction's COPY to sql: every row of the parts in m (rel: their
 * read_parquet) but those the tombstones hide (lh_tombstone_scope against m's parts): a
 * plain entry's rows everywhere, a scoped entry's rows outside its live part, an inactive
 * entry's none. With no scoped entry, one scan anti-joined with the keys; with one, one
 * scan per part anti-joined with the keys that do not spare it (per-part relations rather
 * than the scan's filename or file_index column, which a dataset column of that name would
 * shadow). col is the key column's identifier (NULL when ntomb is 0). */
static int merge_select(lh_engine *eng, const json_t *m, const lh_tombstone_entry *tomb,
                        size_t ntomb, const char *ttype, const char *col, const char *rel,
                        lh_buf *sql, const char *staged_lit, lh_error *err)
{
    const json_t *files = json_object_get(m, "files");
    size_t nparts = json_array_size(files);
    const char **parts = lh_xcalloc(nparts + 1, sizeof(char *));
    int64_t *live = lh_xcalloc(ntomb + 1, sizeof(int64_t));
    bool scoped = false;
    size_t active = 0;
    int rc = 0;
    for (size_t i = 0; i < nparts; i++)
        parts[i] = lh_json_str(json_array_get(files, i), "key");
    for (size_t k = 0; k < ntomb; k++) {
        size_t at = 0;
        lh_tombstone_scope_kind kind = lh_tombstone_scope(&tomb[k], parts, nparts, &at);
        live[k] = kind == LH_TOMB_PLAIN ? -1 : kind == LH_TOMB_SCOPED ? (int64_t)at : -2;
        scoped = scoped || kind == LH_TOMB_SCOPED;
        active += kind != LH_TOMB_INACTIVE;
    }
    bool text = ttype && strcasecmp(ttype, "VARCHAR") == 0;
    lh_buf_puts(sql, "COPY (");
    if (!active) {
        lh_buf_printf(sql, "SELECT * FROM %s", rel);
    } else if (!scoped) {
        /* the form measured before scoped entries existed, unchanged */
        lh_buf_printf(sql, "SELECT * FROM %s AS b ANTI JOIN (VALUES ", rel);
        size_t w = 0;
        for (size_t k = 0; k < ntomb; k++) {
            if (live[k] == -2)
                continue;
            lh_buf_puts(sql, w++ ? ",(" : "(");
            key_value(sql, tomb[k].key, text);
            lh_buf_puts(sql, ")");
        }
        lh_buf_printf(sql, ") AS t(k) ON b.%s = t.k", col);
    } else {
        /* The keys once, (k, live part index or -1), filtered per part in a subquery: a
         * join condition beside the key equality (ON b.k = t.k AND t.live <> i) made
         * DuckDB 1.4 run the anti-join ~50x slower (10,000 keys, 1M rows); the filtered subquery
         * keeps it a plain hash anti-join. */
        lh_buf_puts(sql, "WITH t(k, live) AS MATERIALIZED (VALUES ");
        size_t w = 0;
        for (size_t k = 0; k < ntomb; k++) {
            if (live[k] == -2)
                continue;
            lh_buf_puts(sql, w++ ? ",(" : "(");
            key_value(sql, tomb[k].key, text);
            lh_buf_printf(sql, ", %lld)", (long long)live[k]);
        }
        lh_buf_puts(sql, ") ");
        for (size_t i = 0; i < nparts && rc == 0; i++) {
            lh_buf_puts(sql, i ? " UNION ALL SELECT * FROM " : "SELECT * FROM ");
            rc =
                lh_duck_put_read_parquet(sql, eng->st, lh_json_str(m, "bucket"), &parts[i], 1, err);
            lh_buf_printf(sql,
                          " AS b ANTI JOIN (SELECT k FROM t WHERE live <> %zu) AS s ON b.%s = s.k",
                          i, col);
        }
    }
    lh_buf_printf(sql, ") TO %s " LH_PARQUET_COPY_OPTIONS, staged_lit);
    free(parts);
    free(live);
    return rc;
}

static void strv_free_n(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

int lh_compact(lh_engine *eng, const char *dataset, const char *actor, lh_job *job,
               lh_compact_result *out, lh_error *err)
{
    memset(out, 0, sizeof(*out));
    json_t *m = NULL, *doc = NULL;
    char *rel = NULL, *key = NULL, *staged = NULL, *staged_lit = NULL, *col = NULL;
    char *tcol = NULL, *ttype = NULL, **tkeys = NULL, **tlive = NULL, **replaced = NULL;
    lh_tombstone_entry *tomb = NULL;
    size_t ntomb = 0, nrep = 0;
    lh_buf sql;
    lh_buf_init(&sql);
    int rc = 0;
    bool committed = false;

    lh_job_progress(job, 0, COMPACT_STEPS);
    m = lh_catalog_get(eng->cat, dataset, err);
    if (!m)
        return err->code;
    const char *name = lh_json_str(m, "name"), *bucket = lh_json_str(m, "bucket");
    const json_t *files = json_object_get(m, "files");
    replaced = lh_xcalloc(json_array_size(files) + 1, sizeof(char *));
    size_t i;
    const json_t *f;
    json_array_foreach(files, i, f)
    {
        replaced[nrep++] = lh_xstrdup(lh_json_str(f, "key"));
        out->rows_before += lh_json_int(f, "rows", 0);
        out->bytes_before += lh_json_int(f, "bytes", 0);
    }
    if (nrep == 0) {
        rc = lh_error_set(err, LH_EINVAL, "dataset '%s' has no parts to compact", name);
        goto out;
    }
    lh_catalog_tombstone_entries(eng->cat, name, &tcol, &ttype, &tomb, &ntomb);
    tkeys = lh_xcalloc(ntomb + 1, sizeof(char *)); /* borrowed from tomb */
    tlive = lh_xcalloc(ntomb + 1, sizeof(char *));
    for (size_t k = 0; k < ntomb; k++) {
        tkeys[k] = tomb[k].key;
        tlive[k] = tomb[k].live_part;
    }
    rel = parts_relation(eng, m, err);
    if (!rel) {
        rc = err->code;
        goto out;
    }
    lh_job_progress(job, 1, COMPACT_STEPS);

    char part[17];
    lh_random_hex(part, 16);
    key = lh_xasprintf("datasets/%s/%s/part-%s.parquet", name, lh_json_str(m, "id"), part);
    staged = lh_storage_stage(eng->st, bucket, key, err);
    if (!staged) {
        rc = err->code;
        goto out;
    }
    staged_lit = lh_sql_literal(staged);
    if (ntomb)
        col = lh_sql_ident(tcol);
    rc = merge_select(eng, m, tomb, ntomb, ttype, col, rel, &sql, staged_lit, err);
    if (rc)
        goto out;
    int64_t rows = 0;
    if (lh_engine_exec(eng, sql.data, &rows, err) != 0) {
        rc = duck_error(eng, err, "cannot write the merged part");
        goto out;
    }
    lh_job_progress(job, 2, COMPACT_STEPS);

    /* Read back what DuckDB wrote: a part that does not hold every row is never committed. */
    lh_buf_free(&sql);
    lh_buf_init(&sql);
    lh_buf_printf(&sql, "SELECT count(*) FROM read_parquet(%s)", staged_lit);
    doc = lh_engine_query_json(eng, sql.data, err);
    if (!doc) {
        rc = duck_error(eng, err, "cannot read the merged part back");
        goto out;
    }
    json_int_t back =
        json_integer_value(json_array_get(json_array_get(json_object_get(doc, "rows"), 0), 0));
    if (back != rows) {
        rc = lh_error_setk(err, LH_EINTERNAL, "compaction_failed",
                           "the merged part of '%s' holds %lld rows, the copy wrote %lld; "
                           "nothing was changed",
                           name, (long long)back, (long long)rows);
        goto out;
    }
    lh_job_progress(job, 3, COMPACT_STEPS);

    /* From here the part may be under its final name (a failed folder fsync after the
     * rename): a failure deletes it (deleting a missing key is no error). */
    committed = true;
    rc = lh_storage_commit(eng->st, bucket, staged, key, err);
    if (rc)
        goto out;
    lh_job_progress(job, 4, COMPACT_STEPS);

    out->rows_after = rows;
    out->bytes_after = lh_storage_size(eng->st, bucket, key);
    lh_catalog_compaction c = {
        .name = name,
        .expected_id = lh_json_str(m, "id"),
        .replaced = replaced,
        .n_replaced = nrep,
        .part_key = key,
        .part_rows = rows,
        .part_bytes = out->bytes_after,
        .applied = tkeys,
        .applied_live = tlive,
        .n_applied = ntomb,
        .actor = actor,
    };
    rc = lh_catalog_commit_compaction(eng->cat, &c, &out->tombstones_cleared, err);
    if (rc)
        goto out;
    out->tombstones_applied = ntomb;
    lh_job_progress(job, COMPACT_STEPS, COMPACT_STEPS);
out:
    if (staged)
        lh_storage_discard(staged);
    /* A commit whose event could not be recorded took effect: the part is the dataset's. */
    if (rc && committed && !lh_error_event_not_recorded(err)) {
        lh_error derr;
        if (lh_storage_delete(eng->st, bucket, key, &derr) != 0)
            lh_log(LH_LOG_WARN, "compaction_part_delete_failed", "{s:s,s:s}", "dataset", name,
                   "error", derr.message); /* an orphan: the open sweep removes it */
    }
    if (rc)
        lh_error_scrub(err, eng->data_dir, "<lake>");
    if (rc)
        lh_log(LH_LOG_WARN, "compaction_failed", "{s:s,s:s}", "dataset", dataset, "error",
               err->message);
    lh_buf_free(&sql);
    json_decref(doc);
    json_decref(m);
    free(tkeys);
    free(tlive);
    lh_tombstone_entries_free(tomb, ntomb);
    strv_free_n(replaced, nrep);
    free(tcol);
    free(ttype);
    free(rel);
    free(key);
    free(staged);
    free(staged_lit);
    free(col);
    return rc;
}
