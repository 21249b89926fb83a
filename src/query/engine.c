/*
 * engine.c: the DuckDB databases behind every query, and the statements we run ourselves.
 *
 * Two kinds of database, each a generation (below):
 *   - the user database runs user SQL. Its sandbox reaches each bucket's datasets/ folder
 *     (allowed_directories) and its own spill folder, which DuckDB adds itself; it holds
 *     the dataset views. It cannot read uploads (<data>/_tmp/uploads), _secrets/ or
 *     _catalog/, nor anything outside the buckets' datasets/ folders. It can read a part
 *     being staged there, and DuckDB does not tell reading from writing (an allowed folder
 *     may also be written), so writes are refused one level up: result.c runs one prepared
 *     SELECT and nothing else (no COPY, EXPORT, ATTACH, SET, EXPLAIN ANALYZE). SECURITY.md
 *     states exactly what holds.
 *   - the internal database runs our own statements (ingest's COPY from an upload into a
 *     staging file, DESCRIBE of a staged part): each bucket's datasets/ folder and <data>/_tmp/.
 *
 * Generations. DuckDB's sandbox (allowed_directories, enable_external_access=false,
 * lock_configuration=true) cannot be changed once locked, so a bucket change opens new
 * databases — a generation of each — with every view re-created, and swaps them in.
 * Whoever runs something on a generation holds a reference (lh_gen_acquire); the engine
 * holds one on each current generation. A generation is closed when its last reference
 * goes, so a query that started before a swap finishes on the database it started on.
 *
 * A dataset change (create, replace, append, delete) opens no database: its two views are
 * created, replaced or dropped on the current user database, in one DuckDB transaction on
 * the generation's ddl connection (lh_view_registry_apply_one), under regen_mu. A commit
 * costs one view's DDL, whatever the number of datasets. A query that bound the old view
 * keeps reading the old parts (the retirer deletes them once it ends); queries started
 * after the commit see the new view.
 *
 * Listener failures surface. A catalog change whose view DuckDB refuses (a corrupt or
 * missing part), or a bucket change for which a database cannot be opened, is refused:
 * the transaction is rolled back or nothing is swapped, the listener returns the error,
 * and the catalog or storage call fails and undoes the change. When a refused change was
 * to a dataset already served, its current views are re-created to check them: if DuckDB
 * refuses those too (a part broke on disk), they are dropped and the dataset kept in the
 * registry with the reason (lh_engine_view_problems). The same holds for a served dataset
 * whose view fails when the databases are rebuilt (at open, a bucket change). Its name
 * then fails to bind until a change of it, or a rebuild, succeeds.
 *
 * Each generation spills to its own folder <data>/_tmp/duckdb/g<pid>-<seq>: DuckDB removes
 * its temporary files when a database closes, and two databases sharing one folder could
 * remove each other's. Folders of processes that no longer run are removed at open.
 *
 * The time zone is pinned to UTC before the configuration is locked, so TIMESTAMP WITH
 * TIME ZONE values and functions on them do not depend on the server's environment.
 */
#include "query_internal.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---------------------------------------------------------------- generations */

static void safe_views_refresh(lh_engine *eng, lh_gen *g, const lh_view_registry *reg,
                               const char *base, bool base_gone);

static void gen_free(lh_gen *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->nidle; i++) {
        lh_stmt_cache_clear(&g->idle[i].cache);
        duckdb_disconnect(&g->idle[i].conn);
    }
    free(g->idle);
    if (g->ddl)
        duckdb_disconnect(&g->ddl);
    if (g->db)
        duckdb_close(&g->db);
    if (g->tmp_dir)
        lh_fs_remove_tree(g->tmp_dir, NULL);
    free(g->tmp_dir);
    free(g);
}

/* "SET <setting> = ['a', 'b']" into sql. */
static void set_list(lh_buf *sql, const char *setting, char *const *items)
{
    lh_buf_printf(sql, "SET %s = [", setting);
    for (size_t i = 0; items[i]; i++) {
        char *lit = lh_sql_literal(items[i]);
        lh_buf_printf(sql, "%s%s", i ? ", " : "", lit);
        free(lit);
    }
    lh_buf_putc(sql, ']');
}

/* The lock-down, in the order DuckDB requires: directories first (external access off
 * forbids changing them), then external access (which adds the spill folder to the allowed
 * directories), then the lock. dirs is NULL-terminated, or NULL. */
static int gen_sandbox(lh_gen *g, char *const *dirs, lh_error *err)
{
    lh_buf set_dirs;
    lh_buf_init(&set_dirs);
    int rc = 0;
    lh_error tz_err;
    if (lh_duck_exec(g->ddl, "SET GLOBAL TimeZone = 'UTC'", &tz_err) != 0)
        lh_log(LH_LOG_WARN, "duckdb_timezone_not_set", "{s:s}", "message", tz_err.message);
    if (dirs && dirs[0])
        set_list(&set_dirs, "allowed_directories", dirs);

    const char *steps[] = {set_dirs.data, "SET enable_external_access = false",
                           "SET lock_configuration = true"};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        lh_error e;
        if (!steps[i])
            continue;
        if (lh_duck_exec(g->ddl, steps[i], &e) != 0) {
            rc = lh_error_set(err, LH_EINTERNAL, "cannot lock down DuckDB: %.200s", e.message);
            goto out;
        }
    }
out:
    lh_buf_free(&set_dirs);
    return rc;
}

/* Opens a generation whose sandbox allows dirs (NULL-terminated, or NULL) and its own spill
 * folder. Caller owns the one reference (gen_unref). */
static lh_gen *gen_open(lh_engine *eng, char *const *dirs, lh_error *err)
{
    lh_gen *g = lh_xcalloc(1, sizeof(*g));
    duckdb_config cfg = NULL;
    char *open_err = NULL;
    char threads[32], memory[48];
    bool ok = false;

    pthread_mutex_lock(&eng->gen_mu);
    g->seq = ++eng->gen_seq;
    pthread_mutex_unlock(&eng->gen_mu);
    g->tmp_dir =
        lh_xasprintf("%s/g%ld-%llu", eng->tmp_root, (long)getpid(), (unsigned long long)g->seq);
    if (lh_fs_mkdirs(g->tmp_dir, 0700, err) != 0)
        goto out;

    snprintf(threads, sizeof(threads), "%d", eng->threads);
    snprintf(memory, sizeof(memory), "%lldMiB", (long long)eng->memory_mb);
    const struct {
        const char *name;
        const char *value;
        bool wanted;
    } settings[] = {
        {"threads", threads, eng->threads > 0},
        {"memory_limit", memory, eng->memory_mb > 0},
        {"temp_directory", g->tmp_dir, true},
        /* extensions cannot be fetched here, and trying would only slow errors down */
        {"autoinstall_known_extensions", "false", true},
        {"autoload_known_extensions", "false", true},
    };
    if (duckdb_create_config(&cfg) == DuckDBError) {
        lh_error_set(err, LH_EINTERNAL, "cannot create a DuckDB configuration");
        goto out;
    }
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        if (!settings[i].wanted)
            continue;
        if (duckdb_set_config(cfg, settings[i].name, settings[i].value) == DuckDBError) {
            lh_error_set(err, LH_EINTERNAL, "DuckDB refused the setting %s = '%s'",
                         settings[i].name, settings[i].value);
            goto out;
        }
    }
    if (duckdb_open_ext(NULL, &g->db, cfg, &open_err) == DuckDBError) {
        lh_error_set(err, LH_EINTERNAL, "cannot open DuckDB: %s",
                     open_err ? open_err : "unknown error");
        g->db = NULL;
        goto out;
    }
    if (duckdb_connect(g->db, &g->ddl) == DuckDBError) {
        lh_error_set(err, LH_EINTERNAL, "cannot connect to DuckDB");
        g->ddl = NULL;
        goto out;
    }
    if (lh_row_filter_register(g->ddl, err) != 0 || gen_sandbox(g, dirs, err) != 0)
        goto out;
    ok = true;
out:
    if (cfg)
        duckdb_destroy_config(&cfg);
    if (open_err)
        duckdb_free(open_err);
    if (!ok) {
        gen_free(g);
        return NULL;
    }
    g->refs = 1;
    return g;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* A database for the current bucket roots, allowed each bucket's datasets/ folder (parts
 * are staged and committed there) and, when with_tmp, <data>/_tmp/ (uploads; the internal
 * database only). Not a bucket's root: primary's root is the data folder, which also holds
 * _secrets/ (the admin key, the key pepper), _catalog/ and _tmp/. The trailing '/' keeps
 * "datasets" from also allowing "datasets_x". */
static lh_gen *bucket_gen_open(lh_engine *eng, bool with_tmp, lh_error *err)
{
    char **roots = lh_storage_roots(eng->st);
    size_t n = 0;
    while (roots && roots[n])
        n++;
    char **dirs = lh_xcalloc(n + 2, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        dirs[i] = lh_path_join(roots[i], "datasets/");
    if (with_tmp)
        dirs[n] = lh_path_join(eng->data_dir, "_tmp/");
    lh_gen *g = gen_open(eng, dirs, err);
    strv_free(dirs);
    strv_free(roots);
    return g;
}

static lh_gen *internal_gen_open(lh_engine *eng, lh_error *err)
{
    return bucket_gen_open(eng, true, err);
}

/* A user database serving reg: allowed to read the buckets' datasets/ folders, with reg's
 * views created (the failures recorded in reg). */
static lh_gen *user_gen_open(lh_engine *eng, lh_view_registry *reg, lh_error *err)
{
    lh_gen *g = bucket_gen_open(eng, false, err);
    if (!g)
        return NULL;
    if (lh_view_registry_apply(reg, g->ddl, eng->st) > 0) {
        /* DuckDB names files in its errors; listings must not say where the lake is. */
        json_t *problems = lh_view_registry_problems(reg);
        const char *name;
        json_t *why;
        json_object_foreach(problems, name, why)
            lh_log(LH_LOG_WARN, "view_create_failed", "{s:s,s:s}", "dataset", name, "message",
                   json_string_value(why));
        json_decref(problems);
    }
    /* AI-safe views read the dataset views: after them */
    lh_error e;
    if (lh_safe_views_prelude(g->ddl, &e) != 0)
        lh_log(LH_LOG_WARN, "caller_attribute_unavailable", "{s:s}", "message", e.message);
    safe_views_refresh(eng, g, reg, NULL, false);
    return g;
}

static lh_gen *acquire(lh_engine *eng, lh_gen *const *slot, lh_error *err)
{
    lh_gen *g = NULL;
    pthread_mutex_lock(&eng->gen_mu);
    if (!eng->closing && *slot) {
        g = *slot;
        g->refs++;
        eng->users++;
    }
    pthread_mutex_unlock(&eng->gen_mu);
    if (!g)
        lh_error_set(err, LH_EUNAVAILABLE, "the query engine is shutting down");
    return g;
}

lh_gen *lh_gen_acquire(lh_engine *eng, lh_error *err)
{
    return acquire(eng, &eng->cur, err);
}

/* Drops the engine's own reference (after a swap, or at close). */
static void gen_unref(lh_engine *eng, lh_gen *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&eng->gen_mu);
    bool last = --g->refs == 0;
    pthread_mutex_unlock(&eng->gen_mu);
    if (last)
        gen_free(g);
}

void lh_gen_release(lh_engine *eng, lh_gen *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&eng->gen_mu);
    bool last = --g->refs == 0;
    if (--eng->users == 0)
        pthread_cond_broadcast(&eng->idle_cv);
    pthread_mutex_unlock(&eng->gen_mu);
    /* Closing outside the lock: duckdb_close waits for DuckDB's threads. */
    if (last)
        gen_free(g);
}

/* A query's connection is kept rather than closed, with the statement it last prepared. A
 * new connection's first statement sets up DuckDB's client state again (~40k instructions).
 * And a prepared statement over a Parquet view is bound twice, at prepare and again at
 * execution (DuckDB rebinds statements that read files): 1.7M of the 9.4M instructions of
 * bench/http_load's aggregate, measured with cachegrind. A dashboard repeating a statement
 * on a kept connection skips the first bind (result.c decides when the cache may serve).
 * Only a connection without state of its own comes back (lh_gen_disconnect's reusable), and
 * the pool belongs to one generation, so a connection never outlives the database and
 * sandbox it was opened on. */
void lh_stmt_cache_clear(lh_stmt_cache *c)
{
    if (c->stmt)
        duckdb_destroy_prepare(&c->stmt);
    free(c->sql);
    *c = (lh_stmt_cache){0};
}

int lh_gen_connect(lh_engine *eng, lh_gen *g, duckdb_connection *conn, lh_stmt_cache *cache,
                   lh_error *err)
{
    *conn = NULL;
    *cache = (lh_stmt_cache){0};
    pthread_mutex_lock(&eng->gen_mu);
    if (g->nidle > 0) {
        lh_idle_conn *ic = &g->idle[--g->nidle];
        *conn = ic->conn;
        *cache = ic->cache;
    }
    pthread_mutex_unlock(&eng->gen_mu);
    if (*conn)
        return 0;
    if (duckdb_connect(g->db, conn) == DuckDBError) {
        *conn = NULL;
        return lh_error_set(err, LH_EINTERNAL, "cannot connect to DuckDB");
    }
    return 0;
}

void lh_gen_disconnect(lh_engine *eng, lh_gen *g, duckdb_connection *conn, lh_stmt_cache *cache,
                       bool reusable)
{
    if (!*conn) {
        lh_stmt_cache_clear(cache);
        return;
    }
    if (reusable) {
        pthread_mutex_lock(&eng->gen_mu);
        if (!g->idle)
            g->idle = lh_xcalloc((size_t)eng->max_queries, sizeof(*g->idle));
        if (g->nidle < eng->max_queries) {
            g->idle[g->nidle++] = (lh_idle_conn){.conn = *conn, .cache = *cache};
            *conn = NULL;
            *cache = (lh_stmt_cache){0};
        }
        pthread_mutex_unlock(&eng->gen_mu);
    }
    lh_stmt_cache_clear(cache);
    if (*conn)
        duckdb_disconnect(conn);
}

/* ---------------------------------------------------------------- subject relations */

static char *lowered(const char *s);

static void pii_add(json_t *pii, const char *col)
{
    char *l = lh_xstrdup(col);
    for (char *c = l; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    json_array_append_new(pii, json_string(l));
    free(l);
}

/* True when the safe view def serves column col (any case) unredacted, or redacted to
 * something else than "null"; *redacted tells whether it is redacted. */
static bool view_keeps(const json_t *def, const char *col, bool *redacted)
{
    size_t i;
    const json_t *c;
    const json_t *reds = json_object_get(def, "column_redactions");
    json_array_foreach(json_object_get(def, "columns"), i, c)
    {
        const char *name = json_string_value(c);
        if (!name || strcasecmp(name, col) != 0)
            continue;
        const char *kind = lh_json_str(json_object_get(reds, name), "kind");
        *redacted = kind != NULL;
        return !kind || strcmp(kind, "null") != 0;
    }
    *redacted = false;
    return false;
}

/* The subject relations user SQL may name (lineage.c's input), rebuilt from the registry
 * and the safe views: {lowercased name: {"dataset": base, "key": K, "visible": the
 * relation's column holding K (raw, masked or hashed) or null, "pii": [lowercased PII
 * columns it serves unredacted]}}. Caller holds regen_mu. */
static void subjects_rebuild(lh_engine *eng)
{
    json_t *subj = json_object();
    const char *name;
    for (size_t i = 0; eng->views && (name = lh_view_registry_name(eng->views, i)); i++) {
        char *const *pii = NULL;
        const char *key = lh_view_registry_subject(eng->views, name, &pii);
        if (!key)
            continue;
        json_t *p = json_array();
        for (size_t k = 0; pii && pii[k]; k++)
            pii_add(p, pii[k]);
        char *l = lowered(name);
        json_object_set_new(
            subj, l,
            json_pack("{s:s,s:s,s:s,s:o}", "dataset", name, "key", key, "visible", key, "pii", p));
        free(l);
    }
    const char *vkey;
    json_t *def;
    json_object_foreach(eng->safe_views, vkey, def)
    {
        const char *vname = lh_json_str(def, "name");
        const char *base = lh_json_str(def, "base_dataset");
        char *const *pii = NULL;
        const char *key = base ? lh_view_registry_subject(eng->views, base, &pii) : NULL;
        if (!vname || !key)
            continue;
        pthread_mutex_lock(&eng->gen_mu);
        bool broken = eng->safe_view_problems && json_object_get(eng->safe_view_problems, vname);
        pthread_mutex_unlock(&eng->gen_mu);
        if (broken)
            continue;
        json_t *p = json_array();
        bool redacted;
        for (size_t k = 0; pii && pii[k]; k++)
            if (view_keeps(def, pii[k], &redacted) && !redacted)
                pii_add(p, pii[k]);
        json_t *e = json_pack("{s:s,s:s,s:o}", "dataset", base, "key", key, "pii", p);
        json_object_set_new(e, "visible",
                            view_keeps(def, key, &redacted) ? json_string(key) : json_null());
        json_object_set_new(subj, vkey, e);
    }
    pthread_mutex_lock(&eng->gen_mu);
    json_t *old = eng->subjects;
    eng->subjects = subj;
    pthread_mutex_unlock(&eng->gen_mu);
    json_decref(old);
}

json_t *lh_engine_subjects(lh_engine *eng)
{
    pthread_mutex_lock(&eng->gen_mu);
    json_t *s = json_incref(eng->subjects);
    pthread_mutex_unlock(&eng->gen_mu);
    return s;
}

/* The relations user SQL can name may have changed: the subject relations are rebuilt and
 * verdicts the firewall reached before are dropped (verdicts.c). Caller holds regen_mu. */
static void views_changed(lh_engine *eng)
{
    subjects_rebuild(eng);
    atomic_fetch_add(&eng->view_events, 1);
    lh_verdicts_invalidate(eng->verdicts);
}

/* Makes user (serving reg) and, when not NULL, internal current; the old ones go when
 * their last query ends. Takes all three. Caller holds regen_mu. */
static void publish(lh_engine *eng, lh_gen *user, lh_gen *internal, lh_view_registry *reg)
{
    pthread_mutex_lock(&eng->gen_mu);
    lh_gen *old_user = eng->cur, *old_internal = NULL;
    lh_view_registry *old_reg = eng->views;
    eng->cur = user;
    eng->views = reg;
    if (internal) {
        old_internal = eng->internal;
        eng->internal = internal;
    }
    pthread_mutex_unlock(&eng->gen_mu);
    views_changed(eng);
    gen_unref(eng, old_user);
    gen_unref(eng, old_internal);
    lh_view_registry_free(old_reg);
}

/* ---------------------------------------------------------------- AI-safe views */

/* The key of eng->safe_views. Caller frees. */
static char *lowered(const char *s)
{
    char *l = lh_xstrdup(s);
    for (char *c = l; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return l;
}

/* Records (why != NULL) or clears why the safe view name is not served. */
static void safe_view_problem(lh_engine *eng, const char *name, const char *why)
{
    pthread_mutex_lock(&eng->gen_mu);
    if (!eng->safe_view_problems)
        eng->safe_view_problems = json_object();
    if (why)
        json_object_set_new(eng->safe_view_problems, name, json_string(why));
    else
        json_object_del(eng->safe_view_problems, name);
    pthread_mutex_unlock(&eng->gen_mu);
}

/* (Re)creates on g the safe views over base (every one when base is NULL), after the
 * dataset views they read (reg: the registry g serves, for the bases' subject keys);
 * base_gone drops them instead. A view DuckDB refuses is dropped
 * and its reason recorded, never left stale; the base's change itself is not refused for
 * it (the view is reported broken, as the catalog reports it). Caller holds regen_mu. */
static void safe_views_refresh(lh_engine *eng, lh_gen *g, const lh_view_registry *reg,
                               const char *base, bool base_gone)
{
    const char *key;
    json_t *def;
    if (!eng->safe_views)
        return;
    json_object_foreach(eng->safe_views, key, def)
    {
        const char *name = lh_json_str(def, "name");
        if (base && strcasecmp(lh_json_str(def, "base_dataset"), base) != 0)
            continue;
        lh_error why, e;
        const char *bkey = lh_view_registry_subject(reg, lh_json_str(def, "base_dataset"), NULL);
        if (!base_gone && lh_safe_view_create(g->ddl, def, bkey, &why) == 0) {
            safe_view_problem(eng, name, NULL);
            continue;
        }
        if (base_gone)
            lh_error_set(&why, LH_ENOTFOUND, "base dataset '%s' was deleted",
                         lh_json_str(def, "base_dataset"));
        if (lh_safe_view_drop(g->ddl, name, &e) != 0)
            lh_log(LH_LOG_WARN, "view_drop_failed", "{s:s,s:s}", "view", name, "message",
                   e.message);
        lh_error_scrub(&why, eng->data_dir, "<lake>");
        safe_view_problem(eng, name, why.message);
    }
}

/* The catalog's view listener: checks the row filter, then creates (or drops) the view on
 * the current user database. Refused with the reason (400 for a bad filter). */
static int on_view(void *ctx, const char *name, const json_t *def, lh_error *err)
{
    lh_engine *eng = ctx;
    int rc = 0;
    pthread_mutex_lock(&eng->regen_mu);
    if (!eng->listening || !eng->cur)
        goto out;
    lh_gen *g = eng->cur;
    if (def) {
        if ((rc = lh_safe_view_filter_check(eng, def, err)) != 0)
            goto out;
        lh_error why;
        const char *key =
            lh_view_registry_subject(eng->views, lh_json_str(def, "base_dataset"), NULL);
        if (lh_safe_view_create(g->ddl, def, key, &why) != 0) {
            lh_error_scrub(&why, eng->data_dir, "<lake>");
            rc = lh_error_setk(err, LH_EINVAL, "bad_view",
                               "the query engine cannot create view '%s': %s", name, why.message);
            goto out;
        }
    } else if ((rc = lh_safe_view_drop(g->ddl, name, err)) != 0) {
        goto out;
    }
    if (!eng->safe_views)
        eng->safe_views = json_object();
    char *lname = lowered(name);
    if (def)
        json_object_set_new(eng->safe_views, lname, json_deep_copy(def));
    else
        json_object_del(eng->safe_views, lname);
    free(lname);
    safe_view_problem(eng, name, NULL);
    views_changed(eng);
out:
    pthread_mutex_unlock(&eng->regen_mu);
    return rc;
}

json_t *lh_engine_safe_view_problems(lh_engine *eng)
{
    pthread_mutex_lock(&eng->gen_mu);
    json_t *out = eng->safe_view_problems ? json_deep_copy(eng->safe_view_problems) : json_object();
    pthread_mutex_unlock(&eng->gen_mu);
    return out;
}

/* ---------------------------------------------------------------- listeners */

/* After a refused change of name, which the engine serves: re-creates its current views to
 * check them. When DuckDB refuses those too (a part broke on disk), they are dropped and
 * the reason recorded, so the dataset is listed as not queryable instead of failing at
 * query time. Caller holds regen_mu. */
static void recheck_served(lh_engine *eng, lh_gen *g, const char *name)
{
    lh_error why, e;
    if (lh_view_registry_apply_one(eng->views, name, g->ddl, eng->st, &why) == 0)
        return;
    lh_view_registry *none = lh_view_registry_new();
    if (lh_view_registry_apply_one(none, name, g->ddl, eng->st, &e) != 0)
        lh_log(LH_LOG_WARN, "view_drop_failed", "{s:s,s:s}", "view", name, "message", e.message);
    lh_view_registry_free(none);
    pthread_mutex_lock(&eng->gen_mu);
    lh_view_registry_set_problem(eng->views, name, why.message);
    pthread_mutex_unlock(&eng->gen_mu);
    views_changed(eng);
    lh_error_scrub(&why, eng->data_dir, "<lake>");
    lh_log(LH_LOG_WARN, "view_create_failed", "{s:s,s:s}", "dataset", name, "message", why.message);
}

/* The catalog listener: the change applied to the current user database in place (one
 * dataset's views, in one transaction), then to the registry. Refused (the database and
 * the registry as they were) when DuckDB refuses the changed dataset's view. */
static int on_dataset(void *ctx, const char *name, const json_t *manifest, lh_error *err)
{
    lh_engine *eng = ctx;
    lh_view_registry *one = NULL;
    int rc = 0;
    pthread_mutex_lock(&eng->regen_mu);
    /* Not seeded yet (lh_engine_open): the seed lists the catalog after this change is
     * stored. A metadata edit leaves the views as they are: nothing to apply. */
    if (!eng->listening || !eng->cur)
        goto out;
    if (manifest && lh_view_registry_same(eng->views, name, manifest)) {
        /* the PII flags lineage.c judges agents' aggregates by may have changed */
        pthread_mutex_lock(&eng->gen_mu);
        bool changed = lh_view_registry_set_pii(eng->views, name, manifest);
        pthread_mutex_unlock(&eng->gen_mu);
        if (changed)
            views_changed(eng);
        goto out;
    }
    /* cur and views change only under regen_mu, which we hold */
    lh_gen *g = eng->cur;
    one = lh_view_registry_new();
    if (manifest) {
        lh_view_registry_put(one, name, manifest);
        lh_view_registry_copy_tombstones(one, eng->views, name);
    }
    lh_error why;
    if (lh_view_registry_apply_one(one, name, g->ddl, eng->st, &why) != 0) {
        if (manifest)
            rc = lh_error_setk(err, LH_EINTERNAL, "dataset_unqueryable",
                               "the query engine cannot read dataset '%s', so the change was "
                               "not made: %s",
                               name, why.message);
        else
            rc = lh_error_set(err, why.code, "the query engine cannot drop dataset '%s': %s", name,
                              why.message);
        lh_error_scrub(err, eng->data_dir, "<lake>");
        /* a served dataset not known to be broken: is it still? (not known: no-op) */
        if (manifest && !lh_view_registry_problem(eng->views, name))
            recheck_served(eng, g, name);
        goto out;
    }
    pthread_mutex_lock(&eng->gen_mu);
    if (manifest)
        lh_view_registry_put(eng->views, name, manifest); /* clears a recorded problem */
    else
        lh_view_registry_remove(eng->views, name);
    pthread_mutex_unlock(&eng->gen_mu);
    safe_views_refresh(eng, g, eng->views, name, manifest == NULL);
    views_changed(eng);
out:
    pthread_mutex_unlock(&eng->regen_mu);
    lh_view_registry_free(one);
    return rc;
}

/* The tombstone listener: name's view re-created over its new key set (views.c, "tombstone
 * DDL"), in one transaction on the current user database, then the registry, so a rebuild
 * (bucket change) re-applies the set. Refused (both as they were) when DuckDB refuses. A
 * dataset the engine does not serve has nothing to filter.
 * An upsert (catalog.c) calls this listener with the new set while the catalog still
 * stores the previous manifest, then the dataset listener with the new manifest, which
 * keeps the registry's set: the view is built from (old manifest, new set), then (new
 * manifest, new set). The first is what the old pair served, because a scoped entry whose
 * live part the manifest does not list falls back on its previous part or hides nothing
 * (lh_tombstone_scope); so no view ever shows a key's old and new rows together or
 * neither, and the order of the two calls is what makes it so, not a combined call. */
static int on_tombstones(void *ctx, const char *name, const char *column, const char *type,
                         const lh_tombstone_entry *entries, size_t n, lh_error *err)
{
    lh_engine *eng = ctx;
    lh_view_registry *one = NULL;
    int rc = 0;
    pthread_mutex_lock(&eng->regen_mu);
    if (!eng->listening || !eng->cur)
        goto out;
    if (lh_view_registry_problem(eng->views, name)) {
        /* Not served now (its view failed): the set is kept for when it is again (a
         * change of the dataset copies it from the registry, a rebuild applies it). */
        pthread_mutex_lock(&eng->gen_mu);
        lh_view_registry_set_tombstones(eng->views, name, column, type, entries, n);
        pthread_mutex_unlock(&eng->gen_mu);
        goto out;
    }
    one = lh_view_registry_new();
    json_t *m = lh_catalog_get(eng->cat, name, NULL);
    if (!m)
        goto out;
    lh_view_registry_put(one, name, m);
    json_decref(m);
    lh_view_registry_set_tombstones(one, name, column, type, entries, n);
    lh_error why;
    if (lh_view_registry_apply_one(one, name, eng->cur->ddl, eng->st, &why) != 0) {
        rc = lh_error_setk(err, LH_EINTERNAL, "dataset_unqueryable",
                           "the query engine cannot apply the tombstones of dataset '%s', so "
                           "the change was not made: %s",
                           name, why.message);
        lh_error_scrub(err, eng->data_dir, "<lake>");
        goto out;
    }
    pthread_mutex_lock(&eng->gen_mu);
    lh_view_registry_set_tombstones(eng->views, name, column, type, entries, n);
    pthread_mutex_unlock(&eng->gen_mu);
    views_changed(eng);
out:
    pthread_mutex_unlock(&eng->regen_mu);
    lh_view_registry_free(one);
    return rc;
}

/* The storage listener: new internal and user databases for the new bucket roots. */
static int on_buckets(void *ctx, lh_error *err)
{
    lh_engine *eng = ctx;
    lh_view_registry *reg = NULL;
    lh_gen *user = NULL, *internal = NULL;
    int rc = 0;
    pthread_mutex_lock(&eng->regen_mu);
    if (!eng->listening)
        goto out;
    internal = internal_gen_open(eng, err);
    /* (NULL before the seed, which then replaces what is published here) */
    reg = eng->views ? lh_view_registry_copy(eng->views) : lh_view_registry_new();
    user = internal ? user_gen_open(eng, reg, err) : NULL;
    if (!user) {
        rc = err->code;
        lh_error_scrub(err, eng->data_dir, "<lake>");
        goto out;
    }
    publish(eng, user, internal, reg);
    lh_log(LH_LOG_INFO, "query_regenerated", "{s:I,s:I}", "generation", (json_int_t)user->seq,
           "views", (json_int_t)lh_view_registry_count(reg));
    user = internal = NULL;
    reg = NULL;
out:
    pthread_mutex_unlock(&eng->regen_mu);
    gen_unref(eng, user);
    gen_unref(eng, internal);
    lh_view_registry_free(reg);
    return rc;
}

/* Seeds the registry from the catalog. The listener is set first and regen_mu held across
 * the list: a change committed after the list waits for regen_mu and lands on top; one
 * whose listener call is still to come was not stored yet (the catalog calls it before
 * storing), so it is not in the list either. */
static int views_seed(lh_engine *eng, lh_error *err)
{
    int rc = 0;
    lh_view_registry *reg = lh_view_registry_new();
    pthread_mutex_lock(&eng->regen_mu);
    json_t *list = lh_catalog_list(eng->cat);
    size_t i;
    const json_t *m;
    json_array_foreach(list, i, m)
    {
        const char *name = lh_json_str(m, "name");
        if (!name)
            continue;
        lh_view_registry_put(reg, name, m);
        char *column, *type;
        lh_tombstone_entry *entries;
        size_t n;
        lh_catalog_tombstone_entries(eng->cat, name, &column, &type, &entries, &n);
        lh_view_registry_set_tombstones(reg, name, column, type, entries, n);
        lh_tombstone_entries_free(entries, n);
        free(column);
        free(type);
    }
    json_decref(list);
    json_t *views = lh_catalog_views_list(eng->cat);
    json_decref(eng->safe_views);
    eng->safe_views = json_object();
    json_array_foreach(views, i, m)
    {
        char *lname = lowered(lh_json_str(m, "name"));
        json_t *def = json_deep_copy(m);
        json_object_del(def, "status");
        json_object_del(def, "problem");
        json_object_set_new(eng->safe_views, lname, def);
        free(lname);
    }
    json_decref(views);
    lh_gen *g = user_gen_open(eng, reg, err);
    if (g) {
        publish(eng, g, NULL, reg);
        reg = NULL;
    } else {
        rc = err->code;
    }
    pthread_mutex_unlock(&eng->regen_mu);
    lh_view_registry_free(reg);
    return rc;
}

json_t *lh_engine_view_problems(lh_engine *eng)
{
    pthread_mutex_lock(&eng->gen_mu);
    json_t *out = eng->views ? lh_view_registry_problems(eng->views) : json_object();
    pthread_mutex_unlock(&eng->gen_mu);
    const char *name;
    json_t *why;
    json_object_foreach(out, name, why)
    {
        lh_error e;
        lh_error_set(&e, LH_EINTERNAL, "%s", json_string_value(why));
        lh_error_scrub(&e, eng->data_dir, "<lake>");
        json_object_set_new(out, name, json_string(e.message));
    }
    return out;
}

/* Spill folders whose process is gone (a crash left them). */
static void remove_stale_tmp(const char *tmp_root)
{
    DIR *d = opendir(tmp_root);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid;
        unsigned long long seq;
        if (sscanf(e->d_name, "g%ld-%llu", &pid, &seq) != 2 || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char *path = lh_path_join(tmp_root, e->d_name);
        lh_fs_remove_tree(path, NULL);
        free(path);
    }
    closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The one-column text result of sql (sorted) into kw. */
static void keywords_load(lh_keywords *kw, duckdb_connection conn, const char *sql)
{
    duckdb_result r;
    if (duckdb_query(conn, sql, &r) == DuckDBError) {
        lh_log(LH_LOG_WARN, "duckdb_keywords_unavailable", "{s:s}", "message",
               duckdb_result_error(&r) ? duckdb_result_error(&r) : "");
        duckdb_destroy_result(&r);
        return;
    }
    duckdb_data_chunk ch;
    while ((ch = duckdb_fetch_chunk(r))) {
        idx_t n = duckdb_data_chunk_get_size(ch);
        duckdb_vector v = duckdb_data_chunk_get_vector(ch, 0);
        duckdb_string_t *s = duckdb_vector_get_data(v);
        uint64_t *valid = duckdb_vector_get_validity(v);
        kw->words = lh_xrealloc(kw->words, (kw->count + n) * sizeof(char *));
        for (idx_t i = 0; i < n; i++) {
            if (valid && !((valid[i / 64] >> (i % 64)) & 1))
                continue;
            uint32_t len = duckdb_string_t_length(s[i]);
            const char *p = duckdb_string_t_data(&s[i]);
            char *w = lh_xmalloc(len + 1);
            memcpy(w, p, len);
            w[len] = '\0';
            kw->words[kw->count++] = w;
        }
        duckdb_destroy_data_chunk(&ch);
    }
    duckdb_destroy_result(&r);
    if (kw->count)
        qsort(kw->words, kw->count, sizeof(char *), cmp_str);
}

static void keywords_free(lh_keywords *kw)
{
    for (size_t i = 0; i < kw->count; i++)
        free(kw->words[i]);
    free(kw->words);
    kw->words = NULL;
    kw->count = 0;
}

/* ---------------------------------------------------------------- open / close */

lh_engine *lh_engine_open(const lh_config *cfg, lh_storage *st, lh_catalog *cat, lh_error *err)
{
    lh_engine *eng = lh_xcalloc(1, sizeof(*eng));
    bool ok = false;

    eng->st = st;
    eng->cat = cat;
    eng->data_dir = lh_xstrdup(lh_storage_data_dir(st));
    eng->tmp_root = lh_xasprintf("%s/_tmp/duckdb", eng->data_dir);
    eng->max_queries = cfg->max_concurrent_queries > 0 ? cfg->max_concurrent_queries : 1;
    eng->default_timeout_ms = cfg->query_timeout_ms > 0 ? cfg->query_timeout_ms : 30000;
    eng->default_rows = cfg->query_default_rows > 0 ? cfg->query_default_rows : 1000;
    eng->threads = cfg->duckdb_threads;
    eng->memory_mb = cfg->duckdb_memory_mb;
    eng->retirer = lh_retirer_new(st);
    pthread_mutex_init(&eng->regen_mu, NULL);
    pthread_mutex_init(&eng->gen_mu, NULL);
    pthread_cond_init(&eng->idle_cv, NULL);
    atomic_init(&eng->view_events, 0);
    eng->listening = true;
    eng->verdicts = lh_verdicts_new();

    if (lh_fs_mkdirs(eng->tmp_root, 0700, err) != 0)
        goto out;
    remove_stale_tmp(eng->tmp_root);
    eng->watchdog = lh_watchdog_start(err);
    if (!eng->watchdog)
        goto out;

    /* The listeners are set before the roots and the catalog are read, so a bucket or a
     * dataset changed meanwhile is either in this snapshot or rebuilds after it (waiting
     * for regen_mu). */
    lh_storage_set_listener(st, on_buckets, eng);
    lh_catalog_set_listener(cat, on_dataset, eng);
    lh_catalog_set_view_listener(cat, on_view, eng);
    lh_catalog_set_tombstone_listener(cat, on_tombstones, eng);
    lh_catalog_set_retirer(cat, lh_retirer_retire, eng->retirer);
    pthread_mutex_lock(&eng->regen_mu);
    lh_gen *g = internal_gen_open(eng, err);
    if (g) {
        keywords_load(&eng->keywords, g->ddl, "SELECT keyword_name FROM duckdb_keywords()");
        keywords_load(&eng->aggregates, g->ddl,
                      "SELECT DISTINCT lower(function_name) FROM duckdb_functions() WHERE "
                      "function_type = 'aggregate'");
        lh_functions_audit(g->ddl);
        pthread_mutex_lock(&eng->gen_mu);
        eng->internal = g;
        pthread_mutex_unlock(&eng->gen_mu);
    }
    pthread_mutex_unlock(&eng->regen_mu);
    if (!g)
        goto out;
    if (views_seed(eng, err) != 0)
        goto out;
    ok = true;
out:
    if (!ok) {
        lh_engine_close(eng); /* unsubscribes too */
        return NULL;
    }
    return eng;
}

void lh_engine_close(lh_engine *eng)
{
    if (!eng)
        return;
    lh_catalog_set_listener(eng->cat, NULL, NULL);
    lh_catalog_set_view_listener(eng->cat, NULL, NULL);
    lh_catalog_set_tombstone_listener(eng->cat, NULL, NULL);
    lh_catalog_set_retirer(eng->cat, NULL, NULL);
    lh_storage_set_listener(eng->st, NULL, NULL);
    /* A rebuild in flight finishes first; later ones see listening == false. */
    pthread_mutex_lock(&eng->regen_mu);
    eng->listening = false;
    pthread_mutex_unlock(&eng->regen_mu);

    pthread_mutex_lock(&eng->gen_mu);
    eng->closing = true;
    while (eng->users > 0)
        pthread_cond_wait(&eng->idle_cv, &eng->gen_mu);
    lh_gen *user = eng->cur, *internal = eng->internal;
    eng->cur = eng->internal = NULL;
    pthread_mutex_unlock(&eng->gen_mu);

    lh_watchdog_stop(eng->watchdog);
    gen_unref(eng, user);
    gen_unref(eng, internal);
    /* No query runs any more: parts still waiting go now. */
    lh_retirer_free(eng->retirer);
    lh_view_registry_free(eng->views);
    keywords_free(&eng->keywords);
    keywords_free(&eng->aggregates);
    json_decref(eng->subjects);
    json_decref(eng->safe_views);
    json_decref(eng->safe_view_problems);
    lh_verdicts_free(eng->verdicts);
    pthread_cond_destroy(&eng->idle_cv);
    pthread_mutex_destroy(&eng->gen_mu);
    pthread_mutex_destroy(&eng->regen_mu);
    free(eng->tmp_root);
    free(eng->data_dir);
    free(eng);
}

/* ---------------------------------------------------------------- internal statements */

/* A connection on the current internal generation for one internal statement. */
static int internal_connect(lh_engine *eng, lh_gen **g, duckdb_connection *conn, lh_error *err)
{
    *conn = NULL;
    *g = acquire(eng, &eng->internal, err);
    if (!*g)
        return err ? err->code : LH_EUNAVAILABLE;
    if (duckdb_connect((*g)->db, conn) == DuckDBError) {
        *conn = NULL;
        lh_gen_release(eng, *g);
        *g = NULL;
        return lh_error_set(err, LH_EINTERNAL, "cannot connect to DuckDB");
    }
    return 0;
}

static void internal_disconnect(lh_engine *eng, lh_gen *g, duckdb_connection *conn)
{
    if (*conn)
        duckdb_disconnect(conn);
    lh_gen_release(eng, g);
}

int lh_engine_exec(lh_engine *eng, const char *sql, int64_t *rows_out, lh_error *err)
{
    lh_gen *g;
    duckdb_connection conn;
    duckdb_result r;
    int rc = internal_connect(eng, &g, &conn, err);
    if (rc != 0)
        return rc;
    if (duckdb_query(conn, sql, &r) == DuckDBError) {
        const char *msg = duckdb_result_error(&r);
        rc = lh_error_setk(err, LH_EINVAL, "sql_error", "%s", msg ? msg : "unknown DuckDB error");
        goto out;
    }
    if (rows_out)
        *rows_out = (int64_t)duckdb_rows_changed(&r);
out:
    duckdb_destroy_result(&r);
    internal_disconnect(eng, g, &conn);
    return rc;
}

json_t *lh_conn_query_json(lh_engine *eng, duckdb_connection conn, const char *sql, lh_error *err)
{
    duckdb_result r;
    json_t *doc = NULL;
    lh_col *cols = NULL;
    idx_t ncols = 0;
    if (duckdb_query(conn, sql, &r) == DuckDBError) {
        const char *msg = duckdb_result_error(&r);
        lh_error_setk(err, LH_EINVAL, "sql_error", "%s", msg ? msg : "unknown DuckDB error");
        goto out;
    }
    cols = lh_cols_new(&r, &ncols, &eng->keywords);
    json_t *jcols = json_array(), *rows = json_array();
    doc = json_pack("{s:o,s:o}", "columns", jcols, "rows", rows);
    for (idx_t c = 0; c < ncols; c++)
        json_array_append_new(
            jcols, json_pack("{s:s,s:s}", "name", cols[c].name, "type", cols[c].type_name));
    duckdb_data_chunk ch;
    while ((ch = duckdb_fetch_chunk(r))) {
        idx_t n = duckdb_data_chunk_get_size(ch);
        lh_cols_bind(cols, ncols, ch);
        for (idx_t i = 0; i < n; i++) {
            json_t *row = json_array();
            for (idx_t c = 0; c < ncols; c++) {
                lh_cell cell;
                lh_col_cell(&cols[c], i, &cell);
                json_array_append_new(row, lh_cell_to_json(&cell));
            }
            json_array_append_new(rows, row);
        }
        duckdb_destroy_data_chunk(&ch);
    }
    if (duckdb_result_error(&r)) {
        lh_error_setk(err, LH_EINVAL, "sql_error", "%s", duckdb_result_error(&r));
        json_decref(doc);
        doc = NULL;
    }
out:
    lh_cols_free(cols, ncols);
    duckdb_destroy_result(&r);
    return doc;
}

json_t *lh_engine_query_json(lh_engine *eng, const char *sql, lh_error *err)
{
    lh_gen *g;
    duckdb_connection conn;
    if (internal_connect(eng, &g, &conn, err) != 0)
        return NULL;
    json_t *doc = lh_conn_query_json(eng, conn, sql, err);
    internal_disconnect(eng, g, &conn);
    return doc;
}

uint64_t lh_engine__user_generation(lh_engine *eng)
{
    pthread_mutex_lock(&eng->gen_mu);
    uint64_t seq = eng->cur ? eng->cur->seq : 0;
    pthread_mutex_unlock(&eng->gen_mu);
    return seq;
}
