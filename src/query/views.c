/*
 * views.c: the registry of dataset views and the DDL that creates them (views.h).
 *
 * The registry is what the engine serves. A new user database (at open, on a bucket change)
 * gets every view from it (lh_view_registry_apply); a dataset change is then applied to
 * the live database one dataset at a time (lh_view_registry_apply_one), in one DuckDB
 * transaction, so the database either holds the change or is left as it was, and the
 * registry is updated only after it succeeded. Nothing here takes a lock or knows the
 * engine: the engine runs all view DDL under its regen_mu.
 *
 * A view that cannot be created (a part missing, a bucket gone) is left out and its reason
 * recorded: a stale view over old files is worse than a clear "not queryable" with a
 * reason, which GET /catalog/datasets shows.
 */
#include "views.h"

#include "query/query.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct view_def {
    char *name;
    char *bucket;
    char **keys;
    size_t nkeys;
    char *problem; /* why the last apply could not create the view, or NULL */
} view_def;

struct lh_view_registry {
    view_def *v; /* sorted by name, case-insensitively */
    size_t n, cap;
};

static void def_clear(view_def *d)
{
    free(d->name);
    free(d->bucket);
    for (size_t i = 0; i < d->nkeys; i++)
        free(d->keys[i]);
    free(d->keys);
    free(d->problem);
    memset(d, 0, sizeof(*d));
}

static void def_from_manifest(view_def *d, const char *name, const json_t *m)
{
    const char *bucket = lh_json_str(m, "bucket");
    const json_t *files = json_object_get(m, "files");
    memset(d, 0, sizeof(*d));
    d->name = lh_xstrdup(name);
    /* legacy manifests without a bucket live in primary */
    d->bucket = lh_xstrdup(bucket && *bucket ? bucket : LH_BUCKET_PRIMARY);
    d->keys = lh_xcalloc(json_array_size(files) + 1, sizeof(char *));
    size_t i;
    const json_t *f;
    json_array_foreach(files, i, f)
    {
        const char *key = lh_json_str(f, "key");
        if (key)
            d->keys[d->nkeys++] = lh_xstrdup(key);
    }
}

lh_view_registry *lh_view_registry_new(void)
{
    return lh_xcalloc(1, sizeof(lh_view_registry));
}

lh_view_registry *lh_view_registry_copy(const lh_view_registry *reg)
{
    lh_view_registry *c = lh_view_registry_new();
    c->cap = c->n = reg->n;
    c->v = lh_xcalloc(c->cap ? c->cap : 1, sizeof(view_def));
    for (size_t i = 0; i < reg->n; i++) {
        const view_def *s = &reg->v[i];
        view_def *d = &c->v[i];
        d->name = lh_xstrdup(s->name);
        d->bucket = lh_xstrdup(s->bucket);
        d->keys = lh_xcalloc(s->nkeys + 1, sizeof(char *));
        for (size_t k = 0; k < s->nkeys; k++)
            d->keys[k] = lh_xstrdup(s->keys[k]);
        d->nkeys = s->nkeys;
        d->problem = s->problem ? lh_xstrdup(s->problem) : NULL;
    }
    return c;
}

void lh_view_registry_free(lh_view_registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n; i++)
        def_clear(&reg->v[i]);
    free(reg->v);
    free(reg);
}

/* Position of name (case-insensitive, as SQL names are), or where it would go. */
static size_t find(const lh_view_registry *reg, const char *name, bool *found)
{
    size_t lo = 0, hi = reg->n;
    *found = false;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcasecmp(reg->v[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void lh_view_registry_put(lh_view_registry *reg, const char *name, const json_t *manifest)
{
    bool found;
    size_t pos = find(reg, name, &found);
    if (found) {
        def_clear(&reg->v[pos]);
    } else {
        if (reg->n == reg->cap) {
            reg->cap = reg->cap ? reg->cap * 2 : 16;
            reg->v = lh_xrealloc(reg->v, reg->cap * sizeof(view_def));
        }
        memmove(&reg->v[pos + 1], &reg->v[pos], (reg->n - pos) * sizeof(view_def));
        reg->n++;
    }
    def_from_manifest(&reg->v[pos], name, manifest);
}

void lh_view_registry_remove(lh_view_registry *reg, const char *name)
{
    bool found;
    size_t pos = find(reg, name, &found);
    if (!found)
        return;
    def_clear(&reg->v[pos]);
    memmove(&reg->v[pos], &reg->v[pos + 1], (reg->n - pos - 1) * sizeof(view_def));
    reg->n--;
}

size_t lh_view_registry_count(const lh_view_registry *reg)
{
    return reg->n;
}

bool lh_view_registry_same(const lh_view_registry *reg, const char *name, const json_t *manifest)
{
    bool found;
    size_t pos = find(reg, name, &found);
    if (!found)
        return false;
    view_def want;
    def_from_manifest(&want, name, manifest);
    const view_def *have = &reg->v[pos];
    bool same = strcmp(have->name, want.name) == 0 && strcmp(have->bucket, want.bucket) == 0 &&
                have->nkeys == want.nkeys;
    for (size_t i = 0; same && i < want.nkeys; i++)
        same = strcmp(have->keys[i], want.keys[i]) == 0;
    def_clear(&want);
    return same;
}

/* ---------------------------------------------------------------- DDL */

/* "SELECT * FROM read_parquet([...])" over the dataset's files; NULL + err when a path
 * cannot be resolved. Caller frees. */
static char *view_select(const view_def *d, lh_storage *st, lh_error *err)
{
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_puts(&b, "SELECT * FROM read_parquet([");
    for (size_t i = 0; i < d->nkeys; i++) {
        char *path = lh_storage_path(st, d->bucket, d->keys[i], err);
        if (!path) {
            lh_buf_free(&b);
            return NULL;
        }
        char *lit = lh_sql_literal(path);
        lh_buf_printf(&b, "%s%s", i ? ", " : "", lit);
        free(lit);
        free(path);
    }
    lh_buf_puts(&b, "])");
    return b.data;
}

/* DROP VIEW IF EXISTS of both views of name. */
static int view_drop_pair(duckdb_connection conn, const char *name, lh_error *err)
{
    int rc = 0;
    char *raw = lh_xasprintf(LH_RAW_PREFIX "%s", name);
    const char *rels[] = {name, raw};
    for (size_t i = 0; i < 2 && rc == 0; i++) {
        char *ident = lh_sql_ident(rels[i]);
        char *sql = lh_xasprintf("DROP VIEW IF EXISTS %s", ident);
        rc = lh_duck_exec(conn, sql, err);
        free(sql);
        free(ident);
    }
    free(raw);
    return rc;
}

static void view_drop(duckdb_connection conn, const char *name)
{
    lh_error err;
    if (view_drop_pair(conn, name, &err) != 0)
        lh_log(LH_LOG_WARN, "view_drop_failed", "{s:s,s:s}", "view", name, "message", err.message);
}

/* CREATE OR REPLACE VIEW of both views of d; on failure one of them may exist (callers
 * drop or roll back). */
static int view_create_pair(duckdb_connection conn, const view_def *d, lh_storage *st,
                            lh_error *err)
{
    int rc = 0;
    char *select = NULL, *raw = lh_xasprintf(LH_RAW_PREFIX "%s", d->name);
    const char *rels[] = {d->name, raw};
    if (d->nkeys == 0) {
        rc = lh_error_set(err, LH_EINVAL, "the manifest lists no files");
        goto out;
    }
    select = view_select(d, st, err);
    if (!select) {
        rc = err->code;
        goto out;
    }
    for (size_t i = 0; i < 2 && rc == 0; i++) {
        char *ident = lh_sql_ident(rels[i]);
        char *sql = lh_xasprintf("CREATE OR REPLACE VIEW %s AS %s", ident, select);
        rc = lh_duck_exec(conn, sql, err);
        free(sql);
        free(ident);
    }
out:
    free(select);
    free(raw);
    return rc;
}

static int view_create(duckdb_connection conn, const view_def *d, lh_storage *st, lh_error *err)
{
    int rc = view_create_pair(conn, d, st, err);
    if (rc != 0)
        view_drop(conn, d->name); /* never one of the pair without the other */
    return rc;
}

/* DuckDB's first line says it; the rest quotes our DDL. */
static void first_line(lh_error *err)
{
    err->message[strcspn(err->message, "\n")] = '\0';
}

size_t lh_view_registry_apply(lh_view_registry *reg, duckdb_connection conn, lh_storage *st)
{
    size_t failed = 0;
    for (size_t i = 0; i < reg->n; i++) {
        view_def *d = &reg->v[i];
        lh_error err;
        free(d->problem);
        d->problem = NULL;
        if (view_create(conn, d, st, &err) != 0) {
            first_line(&err);
            d->problem = lh_xstrdup(err.message);
            failed++;
        }
    }
    return failed;
}

int lh_view_registry_apply_one(const lh_view_registry *reg, const char *name,
                               duckdb_connection conn, lh_storage *st, lh_error *err)
{
    bool found;
    size_t pos = find(reg, name, &found);
    int rc = lh_duck_exec(conn, "BEGIN TRANSACTION", err);
    if (rc != 0)
        return rc;
    rc = found ? view_create_pair(conn, &reg->v[pos], st, err) : view_drop_pair(conn, name, err);
    if (rc == 0)
        rc = lh_duck_exec(conn, "COMMIT", err);
    if (rc != 0) {
        lh_error e;
        if (lh_duck_exec(conn, "ROLLBACK", &e) != 0 && !strstr(e.message, "no transaction"))
            lh_log(LH_LOG_WARN, "view_rollback_failed", "{s:s,s:s}", "view", name, "message",
                   e.message);
        first_line(err);
    }
    return rc;
}

void lh_view_registry_set_problem(lh_view_registry *reg, const char *name, const char *why)
{
    bool found;
    size_t pos = find(reg, name, &found);
    if (!found)
        return;
    free(reg->v[pos].problem);
    reg->v[pos].problem = why ? lh_xstrdup(why) : NULL;
}

const char *lh_view_registry_problem(const lh_view_registry *reg, const char *name)
{
    bool found;
    size_t pos = find(reg, name, &found);
    return found ? reg->v[pos].problem : NULL;
}

json_t *lh_view_registry_problems(const lh_view_registry *reg)
{
    json_t *out = json_object();
    for (size_t i = 0; i < reg->n; i++)
        if (reg->v[i].problem)
            json_object_set_new(out, reg->v[i].name, json_string(reg->v[i].problem));
    return out;
}
