/*
 * result.c: a user query from start to the last byte of its JSON, CSV or NDJSON.
 *
 * Life of a query:
 *   start   take a slot (max_concurrent_queries), a reference on the current generation, a
 *           connection; register with the watchdog (the deadline covers everything from
 *           here to the last fetch); extract statements (exactly one), prepare (no
 *           parameters, SELECT only — a second wall behind the firewall: nothing a user
 *           sends may change the views or the database, or write a file; EXPLAIN is refused
 *           because EXPLAIN ANALYZE runs its statement, COPY included), execute to a streaming
 *           result and fetch the first chunk, so that SQL errors and most timeouts are
 *           reported before the HTTP status line;
 *   read    render rows one at a time into an internal buffer and hand it out; rendering
 *           stops once the buffer passes LH_QUERY_OUT_BUDGET and resumes at chunk_pos when
 *           the client has drained it, and the next chunk is fetched only once the current
 *           one is fully rendered. So a query holds at most one DuckDB chunk plus about
 *           LH_QUERY_OUT_BUDGET + one row of rendered text, whatever the result or row size
 *           (a chunk is up to 2,048 rows: rendering it whole let one slow client make the
 *           server hold gigabytes outside DuckDB's memory limit);
 *   finish  after the last row (or the row cap, or an error) the tail is rendered and every
 *           DuckDB resource, the generation and the slot are given back at once, even if
 *           the client is still draining the buffer.
 *
 * Row cap: at most max_rows rows are rendered; `truncated` is true only when another row
 * really exists (checked by looking at the rest of the chunk or fetching one more), and
 * nothing is fetched after that.
 *
 * Timeouts: the deadline bounds the whole response, delivery included. The watchdog
 * interrupts the connection at the deadline; an error seen after that is reported as
 * LH_ETIMEOUT "query_timeout". Before each fetch the deadline is also checked here, because
 * a fetch served from DuckDB's buffered results would not notice an interrupt. A query
 * whose client has not drained it by then is not running anywhere (it waits for a socket
 * that libmicrohttpd will not call us for until it is writable), so the watchdog also
 * expires it (query_expire): under q->mu it renders the error trailer after the rows
 * already buffered and gives back the DuckDB result, connection, generation, reader epoch
 * and slot at once, whether or not the client ever reads again. The reader then only
 * hands out what is buffered and ends the stream (JSON/NDJSON with the trailer; CSV,
 * which cannot carry one, is cut off).
 *
 * Locking: q->mu guards everything below it in struct lh_query against the watchdog's
 * expiry; whichever thread works on the query holds it in lh_query_run, lh_query_read,
 * lh_query_read_buffered, lh_query_fill, the accessors and lh_query_free (one such thread
 * at a time: the HTTP layer runs lh_query_run and lh_query_fill on its query pool while
 * the connection is suspended, and lh_query_read_buffered on the HTTP worker, which calls
 * DuckDB only in lh_query_run_inline: a cached statement, for LH_QUERY_INLINE_BUDGET_MS,
 * whose unfinished pending execution lh_query_run then completes on the pool). The
 * watchdog only try-locks it (see watchdog.c).
 */
#include "query_internal.h"

#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { Q_ROWS, Q_DONE } q_state;

struct lh_query {
    lh_engine *eng;
    pthread_mutex_t mu;
    bool started; /* lh_query_run succeeded: the expiry may finish the query */
    lh_gen *gen;  /* reference, released at finish */
    duckdb_connection conn;
    bool conn_has_state; /* variables were set on conn: never reused (lh_gen_disconnect) */
    lh_stmt_cache cache; /* conn's statement, kept with it in the generation's pool */
    /* Set between an inline start that ran out of budget and lh_query_run on the pool,
     * which finishes the SAME pending execution (never executes twice). */
    duckdb_prepared_statement stmt;
    duckdb_pending_result pending;
    duckdb_result res;
    bool has_res;
    bool exhausted;
    duckdb_data_chunk chunk;
    idx_t chunk_rows, chunk_pos;
    lh_watch watch;
    bool watching;
    bool has_slot;
    uint64_t start_epoch; /* for retire.c: parts retired after it may still be read */

    lh_result_format fmt;
    int64_t max_rows;
    int timeout_ms;
    int64_t t0, deadline;

    lh_col *cols;
    idx_t ncols;
    char **ndjson_keys; /* per column: the JSON-quoted name and ':' */

    lh_buf out;
    size_t out_pos;
    q_state state;
    int64_t rows;
    bool truncated;
    bool failed; /* err holds a mid-stream error */
    lh_error err;

    /* Access auditing (lineage.c). nvis: the columns rendered; an audited ROWS query's
     * result has one more, last, hidden: __lh_key, each row's subject keys. Rendered bytes
     * from out_mark on (and the rows from rows_mark on) are not audited yet: audit_flush
     * reports their new keys to the sink before any of them can be handed out, so outside
     * q->mu out_mark == out.len always holds for such a query. */
    lh_lineage lin;
    lh_subject_access access;
    idx_t nvis;
    bool audited_rows;
    lh_subject_sink sink;
    void *sink_ctx;
    lh_buf key_text; /* every distinct key of the query, each NUL-terminated */
    uint32_t *seen;  /* open-addressing set: offset + 1 into key_text, 0 = empty */
    size_t seen_cap, seen_n;
    uint32_t *unreported; /* offsets of the keys not reported yet */
    size_t nunreported, cap_unreported;
    size_t out_mark;
    int64_t rows_mark;
};

/* ---------------------------------------------------------------- formats */

static const struct {
    const char *name;
    lh_result_format fmt;
    const char *mime;
} formats[] = {
    {"json", LH_FORMAT_JSON, "application/json"},
    {"csv", LH_FORMAT_CSV, "text/csv; charset=utf-8"},
    {"ndjson", LH_FORMAT_NDJSON, "application/x-ndjson"},
};

int lh_result_format_parse(const char *s, lh_result_format *out, lh_error *err)
{
    if (!s || !*s) {
        *out = LH_FORMAT_JSON;
        return 0;
    }
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        if (strcasecmp(s, formats[i].name) == 0) {
            *out = formats[i].fmt;
            return 0;
        }
    }
    return lh_error_set(err, LH_EINVAL, "unknown result format '%s' (formats: json, csv, ndjson)",
                        s);
}

const char *lh_result_format_mime(lh_result_format f)
{
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
        if (formats[i].fmt == f)
            return formats[i].mime;
    return formats[0].mime;
}

/* ---------------------------------------------------------------- errors */

static int timeout_error(const lh_query *q, lh_error *err)
{
    return lh_error_setk(err, LH_ETIMEOUT, "query_timeout",
                         "query ran past its time limit of %d ms and was stopped", q->timeout_ms);
}

/* A DuckDB error; after the watchdog fired it is the interrupt, whatever DuckDB says. */
static int duck_error(const lh_query *q, const char *msg, lh_error *err)
{
    if (atomic_load(&q->watch.fired))
        return timeout_error(q, err);
    lh_error_setk(err, LH_EINVAL, "sql_error", "%s", msg ? msg : "unknown DuckDB error");
    /* DuckDB names files in some errors (a part that vanished under a replace); callers
     * must not learn where the lake lives. */
    char **roots = lh_storage_roots(q->eng->st);
    for (size_t i = 0; roots && roots[i]; i++) {
        lh_error_scrub(err, roots[i], "<lake>");
        free(roots[i]);
    }
    free(roots);
    lh_error_scrub(err, q->eng->data_dir, "<lake>");
    return err->code;
}

static const struct {
    duckdb_statement_type type;
    const char *name;
} statement_names[] = {
    {DUCKDB_STATEMENT_TYPE_INSERT, "INSERT"},   {DUCKDB_STATEMENT_TYPE_UPDATE, "UPDATE"},
    {DUCKDB_STATEMENT_TYPE_DELETE, "DELETE"},   {DUCKDB_STATEMENT_TYPE_CREATE, "CREATE"},
    {DUCKDB_STATEMENT_TYPE_ALTER, "ALTER"},     {DUCKDB_STATEMENT_TYPE_DROP, "DROP"},
    {DUCKDB_STATEMENT_TYPE_COPY, "COPY"},       {DUCKDB_STATEMENT_TYPE_SET, "SET"},
    {DUCKDB_STATEMENT_TYPE_PRAGMA, "PRAGMA"},   {DUCKDB_STATEMENT_TYPE_ATTACH, "ATTACH"},
    {DUCKDB_STATEMENT_TYPE_DETACH, "DETACH"},   {DUCKDB_STATEMENT_TYPE_LOAD, "LOAD"},
    {DUCKDB_STATEMENT_TYPE_EXPORT, "EXPORT"},   {DUCKDB_STATEMENT_TYPE_CALL, "CALL"},
    {DUCKDB_STATEMENT_TYPE_VACUUM, "VACUUM"},   {DUCKDB_STATEMENT_TYPE_TRANSACTION, "transaction"},
    {DUCKDB_STATEMENT_TYPE_PREPARE, "PREPARE"}, {DUCKDB_STATEMENT_TYPE_EXECUTE, "EXECUTE"},
    {DUCKDB_STATEMENT_TYPE_EXPLAIN, "EXPLAIN"},
};

static const char *statement_name(duckdb_statement_type t)
{
    for (size_t i = 0; i < sizeof(statement_names) / sizeof(statement_names[0]); i++)
        if (statement_names[i].type == t)
            return statement_names[i].name;
    return "non-SELECT";
}

/* ---------------------------------------------------------------- resources */

static void release_slot(lh_query *q)
{
    if (!q->has_slot)
        return;
    pthread_mutex_lock(&q->eng->gen_mu);
    q->eng->slots--;
    pthread_mutex_unlock(&q->eng->gen_mu);
    q->has_slot = false;
    lh_retirer_exit(q->eng->retirer, q->start_epoch); /* deletes what only it could read */
}

/* Gives back everything DuckDB-side. The watchdog entry goes before the connection, so
 * the watchdog never interrupts a closed connection. */
static void release_duckdb(lh_query *q)
{
    if (q->chunk)
        duckdb_destroy_data_chunk(&q->chunk);
    q->chunk_rows = q->chunk_pos = 0;
    if (q->pending)
        duckdb_destroy_pending(&q->pending);
    if (q->stmt)
        duckdb_destroy_prepare(&q->stmt);
    if (q->has_res) {
        duckdb_destroy_result(&q->res);
        q->has_res = false;
    }
    if (q->watching) {
        lh_watchdog_remove(q->eng->watchdog, &q->watch);
        q->watching = false;
    }
    /* Only a connection whose SELECT ended as planned goes back to the generation's pool:
     * not after an error or the watchdog's interrupt (checked once the entry is gone), not
     * with the caller's attributes set as variables. */
    bool reusable =
        q->state == Q_DONE && !q->failed && !q->conn_has_state && !atomic_load(&q->watch.fired);
    lh_gen_disconnect(q->eng, q->gen, &q->conn, &q->cache, reusable);
    if (q->gen) {
        lh_gen_release(q->eng, q->gen);
        q->gen = NULL;
    }
    release_slot(q);
}

/* Moves to the next non-empty chunk; q->chunk stays NULL at the end. */
static int fetch_next(lh_query *q, lh_error *err)
{
    if (q->chunk)
        duckdb_destroy_data_chunk(&q->chunk);
    q->chunk_rows = q->chunk_pos = 0;
    while (!q->exhausted) {
        if (atomic_load(&q->watch.fired) || lh_now_ms() >= q->deadline)
            return timeout_error(q, err);
        q->chunk = duckdb_fetch_chunk(q->res);
        if (!q->chunk) {
            q->exhausted = true;
            const char *msg = duckdb_result_error(&q->res);
            if (msg)
                return duck_error(q, msg, err);
            break;
        }
        q->chunk_rows = duckdb_data_chunk_get_size(q->chunk);
        if (q->chunk_rows > 0) {
            lh_cols_bind(q->cols, q->ncols, q->chunk);
            break;
        }
        duckdb_destroy_data_chunk(&q->chunk);
    }
    return 0;
}

/* ---------------------------------------------------------------- rendering */

static void render_head(lh_query *q)
{
    lh_buf *b = &q->out;
    switch (q->fmt) {
    case LH_FORMAT_JSON:
        lh_buf_puts(b, "{\"columns\":[");
        for (idx_t i = 0; i < q->nvis; i++) {
            lh_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
            lh_buf_json_string(b, q->cols[i].name, strlen(q->cols[i].name));
            lh_buf_puts(b, ",\"type\":");
            lh_buf_json_string(b, q->cols[i].type_name, strlen(q->cols[i].type_name));
            lh_buf_putc(b, '}');
        }
        lh_buf_puts(b, "],\"rows\":[");
        break;
    case LH_FORMAT_CSV:
        for (idx_t i = 0; i < q->nvis; i++) {
            if (i)
                lh_buf_putc(b, ',');
            lh_csv_field(b, q->cols[i].name, strlen(q->cols[i].name));
        }
        lh_buf_puts(b, "\r\n");
        break;
    case LH_FORMAT_NDJSON:
        q->ndjson_keys = lh_xcalloc(q->ncols ? q->ncols : 1, sizeof(char *));
        for (idx_t i = 0; i < q->nvis; i++) {
            lh_buf k;
            lh_buf_init(&k);
            lh_buf_json_string(&k, q->cols[i].name, strlen(q->cols[i].name));
            lh_buf_putc(&k, ':');
            q->ndjson_keys[i] = k.data;
        }
        break;
    }
}

/* ---------------------------------------------------------------- subject keys */

/* FNV-1a, then a 64-bit finaliser: FNV's low bits (the table index) depend only on the
 * inputs' low bits, which clusters ids like "C1".."C9999" badly. */
static uint64_t key_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

/* Adds the key (len bytes) to the query's set; a new one also to unreported. Keys live in
 * one buffer (no allocation per key); the set holds their offsets. */
static void key_add(lh_query *q, const char *k, size_t len)
{
    if (2 * (q->seen_n + 1) > q->seen_cap) {
        size_t cap = q->seen_cap ? 2 * q->seen_cap : 4096;
        uint32_t *t = lh_xcalloc(cap, sizeof(uint32_t));
        for (size_t i = 0; i < q->seen_cap; i++) {
            uint32_t e = q->seen[i];
            if (!e)
                continue;
            const char *ks = q->key_text.data + e - 1;
            size_t j = key_hash(ks, strlen(ks)) & (cap - 1);
            while (t[j])
                j = (j + 1) & (cap - 1);
            t[j] = e;
        }
        free(q->seen);
        q->seen = t;
        q->seen_cap = cap;
    }
    size_t j = key_hash(k, len) & (q->seen_cap - 1);
    for (; q->seen[j]; j = (j + 1) & (q->seen_cap - 1)) {
        const char *e = q->key_text.data + q->seen[j] - 1;
        if (strncmp(e, k, len) == 0 && e[len] == '\0')
            return;
    }
    if (q->key_text.len + len + 1 >= UINT32_MAX)
        return; /* 4 GiB of distinct keys in one query: past any row cap we allow */
    uint32_t off = (uint32_t)q->key_text.len;
    lh_buf_append(&q->key_text, k, len);
    lh_buf_putc(&q->key_text, '\0');
    q->seen[j] = off + 1;
    q->seen_n++;
    if (q->nunreported == q->cap_unreported) {
        q->cap_unreported = q->cap_unreported ? 2 * q->cap_unreported : 1024;
        q->unreported = lh_xrealloc(q->unreported, q->cap_unreported * sizeof(uint32_t));
    }
    q->unreported[q->nunreported++] = off;
}

static bool valid_at(const uint64_t *validity, idx_t i)
{
    return !validity || ((validity[i / 64] >> (i % 64)) & 1);
}

/* The keys of row `row` of the bound chunk (its hidden last column; NULL keys skipped). */
static void collect_keys(lh_query *q, idx_t row)
{
    duckdb_vector v = q->cols[q->nvis].vec;
    if (!valid_at(duckdb_vector_get_validity(v), row))
        return;
    const duckdb_list_entry *ent = (const duckdb_list_entry *)duckdb_vector_get_data(v) + row;
    duckdb_vector child = duckdb_list_vector_get_child(v);
    duckdb_string_t *cs = duckdb_vector_get_data(child);
    const uint64_t *cvalid = duckdb_vector_get_validity(child);
    for (idx_t i = ent->offset; i < ent->offset + ent->length; i++) {
        if (!valid_at(cvalid, i))
            continue;
        key_add(q, duckdb_string_t_data(&cs[i]), duckdb_string_t_length(cs[i]));
    }
}

static void keys_free(lh_query *q)
{
    lh_buf_free(&q->key_text);
    free(q->seen);
    free(q->unreported);
    q->seen = q->unreported = NULL;
    q->seen_cap = q->seen_n = q->nunreported = q->cap_unreported = 0;
}

static void render_row(lh_query *q, idx_t row)
{
    lh_buf *b = &q->out;
    lh_cell cell;
    switch (q->fmt) {
    case LH_FORMAT_JSON:
        lh_buf_puts(b, q->rows ? ",[" : "[");
        for (idx_t i = 0; i < q->nvis; i++) {
            if (i)
                lh_buf_putc(b, ',');
            lh_col_cell(&q->cols[i], row, &cell);
            lh_cell_write_json(b, &cell);
        }
        lh_buf_putc(b, ']');
        break;
    case LH_FORMAT_CSV:
        for (idx_t i = 0; i < q->nvis; i++) {
            if (i)
                lh_buf_putc(b, ',');
            lh_col_cell(&q->cols[i], row, &cell);
            lh_cell_write_csv(b, &cell);
        }
        lh_buf_puts(b, "\r\n");
        break;
    case LH_FORMAT_NDJSON:
        lh_buf_putc(b, '{');
        for (idx_t i = 0; i < q->nvis; i++) {
            if (i)
                lh_buf_putc(b, ',');
            lh_buf_puts(b, q->ndjson_keys[i]);
            lh_col_cell(&q->cols[i], row, &cell);
            lh_cell_write_json(b, &cell);
        }
        lh_buf_puts(b, "}\n");
        break;
    }
    if (q->audited_rows)
        collect_keys(q, row);
    q->rows++;
}

static void render_error_object(lh_buf *b, const lh_error *err)
{
    const char *kind = lh_error_kind(err);
    lh_buf_puts(b, "{\"error\":");
    lh_buf_json_string(b, kind, strlen(kind));
    lh_buf_puts(b, ",\"message\":");
    lh_buf_json_string(b, err->message, strlen(err->message));
    lh_buf_putc(b, '}');
}

/* The tail, then everything DuckDB-side is given back. */
static void finish(lh_query *q)
{
    lh_buf *b = &q->out;
    switch (q->fmt) {
    case LH_FORMAT_JSON:
        lh_buf_printf(b, "],\"row_count\":%lld,\"truncated\":%s,\"elapsed_ms\":%lld",
                      (long long)q->rows, q->truncated ? "true" : "false",
                      (long long)(lh_now_ms() - q->t0));
        if (q->failed) {
            lh_buf_puts(b, ",\"error\":");
            render_error_object(b, &q->err);
        }
        lh_buf_putc(b, '}');
        break;
    case LH_FORMAT_NDJSON:
        if (q->failed) {
            render_error_object(b, &q->err);
            lh_buf_putc(b, '\n');
        }
        break;
    case LH_FORMAT_CSV: /* cannot carry an error: lh_query_read returns -1 instead */
        break;
    }
    if (q->failed)
        lh_log(LH_LOG_WARN, "query_failed_mid_stream", "{s:s,s:s,s:I}", "error",
               lh_error_kind(&q->err), "message", q->err.message, "rows", (json_int_t)q->rows);
    q->state = Q_DONE;
    release_duckdb(q);
}

/* Reports the keys of the rows rendered since the last flush to the sink, before any of
 * their bytes can be handed out. On the sink's failure those rows (and a tail rendered
 * after them) are cut from the buffer and the query ends with the sink's error (JSON and
 * NDJSON: the trailer; CSV: cut off). Returns 0 or the sink's error code. Under q->mu. */
static int audit_flush(lh_query *q)
{
    if (!q->audited_rows)
        return 0;
    int rc = 0;
    if (q->nunreported > 0) {
        const char **fields = lh_xcalloc(q->nvis + 1, sizeof(char *));
        for (idx_t i = 0; i < q->nvis; i++)
            fields[i] = q->cols[i].name;
        const char **keys = lh_xcalloc(q->nunreported + 1, sizeof(char *));
        for (size_t i = 0; i < q->nunreported; i++)
            keys[i] = q->key_text.data + q->unreported[i];
        lh_error e = {0};
        rc = q->sink(q->sink_ctx, keys, q->nunreported, fields, q->nvis, &e);
        free(keys);
        free(fields);
        if (rc != 0) {
            if (e.code == LH_OK)
                lh_error_setk(&e, rc, "audit_write_failed", "the access could not be audited");
            q->out.len = q->out_mark;
            q->rows = q->rows_mark;
            q->truncated = false;
            q->err = e;
            q->failed = true;
            finish(q);
        }
        q->nunreported = 0;
    }
    q->out_mark = q->out.len;
    q->rows_mark = q->rows;
    return rc;
}

/* Renders rows of the current chunk into q->out until the chunk ends or q->out passes
 * LH_QUERY_OUT_BUDGET (at least one row, so a row larger than the budget still goes out);
 * the next call continues at chunk_pos. Fetches the next chunk (or renders the tail) only
 * when the current one is fully rendered. */
static void step(lh_query *q)
{
    if (q->chunk_pos >= q->chunk_rows) {
        if (fetch_next(q, &q->err) != 0) {
            q->failed = true;
            finish(q);
            return;
        }
        if (!q->chunk) {
            finish(q);
            return;
        }
    }
    if (q->rows >= q->max_rows) { /* the cap is reached and another row exists */
        q->truncated = true;
        finish(q);
        return;
    }
    idx_t end = q->chunk_rows;
    if ((int64_t)(end - q->chunk_pos) > q->max_rows - q->rows)
        end = q->chunk_pos + (idx_t)(q->max_rows - q->rows);
    do
        render_row(q, q->chunk_pos++);
    while (q->chunk_pos < end && q->out.len < LH_QUERY_OUT_BUDGET);
}

/* The watchdog's expire callback (watchdog thread, after the deadline fired): finishes a
 * query that is still streaming with a timeout, so its resources go now rather than when
 * (if ever) its client reads again. Never blocks on q->mu: if the request's thread holds
 * it, that thread is working on the query and the watchdog retries shortly. */
static bool query_expire(lh_watch *w)
{
    lh_query *q = (lh_query *)((char *)w - offsetof(lh_query, watch));
    if (pthread_mutex_trylock(&q->mu) != 0)
        return false;
    /* The watchdog unlinks the entry when we return true; release_duckdb must not wait for
     * this very callback in lh_watchdog_remove. */
    q->watching = false;
    if (q->started && q->state == Q_ROWS) {
        timeout_error(q, &q->err);
        q->failed = true;
        finish(q);
    }
    pthread_mutex_unlock(&q->mu);
    return true;
}

/* ---------------------------------------------------------------- public */

static int take_slot(lh_engine *eng, uint64_t *start_epoch, lh_error *err)
{
    int rc = 0;
    pthread_mutex_lock(&eng->gen_mu);
    if (eng->closing)
        rc = lh_error_set(err, LH_EUNAVAILABLE, "the query engine is shutting down");
    else if (eng->slots >= eng->max_queries)
        rc = lh_error_set(err, LH_EBUSY, "too many concurrent queries (limit %d); retry shortly",
                          eng->max_queries);
    else {
        eng->slots++;
        *start_epoch = lh_retirer_enter(eng->retirer);
    }
    pthread_mutex_unlock(&eng->gen_mu);
    return rc;
}

/* Extracts, checks and prepares the one statement of sql. The statement-type check is the
 * user database's write barrier: its sandbox allows the buckets' datasets/ folders, which
 * DuckDB would let a COPY write, so only a SELECT ever runs (EXPLAIN, which may run
 * ANALYZE's statement, included in the refusal). */
static int prepare_one(lh_query *q, const char *sql, duckdb_prepared_statement *stmt, lh_error *err)
{
    duckdb_extracted_statements ext = NULL;
    int rc = 0;
    idx_t n = duckdb_extract_statements(q->conn, sql, &ext);
    if (n != 1) {
        const char *msg = n == 0 ? duckdb_extract_statements_error(ext) : NULL;
        if (msg)
            rc = duck_error(q, msg, err);
        else if (n == 0)
            rc = lh_error_setk(err, LH_EINVAL, "sql_error", "the query is empty");
        else
            rc = lh_error_setk(err, LH_EINVAL, "sql_error",
                               "expected exactly one SQL statement, got %llu",
                               (unsigned long long)n);
        goto out;
    }
    if (duckdb_prepare_extracted_statement(q->conn, ext, 0, stmt) == DuckDBError) {
        rc = duck_error(q, duckdb_prepare_error(*stmt), err);
        goto out;
    }
    idx_t np = duckdb_nparams(*stmt);
    if (np > 0) {
        rc = lh_error_setk(err, LH_EINVAL, "sql_error",
                           "the query has %llu parameter(s) ($1 or ?), which cannot be bound "
                           "here; write the values into the query",
                           (unsigned long long)np);
        goto out;
    }
    duckdb_statement_type type = duckdb_prepared_statement_type(*stmt);
    if (type != DUCKDB_STATEMENT_TYPE_SELECT)
        rc = lh_error_setk(err, LH_EFORBIDDEN, "sql_forbidden",
                           "only SELECT queries can run here (got a %s statement)",
                           statement_name(type));
out:
    duckdb_destroy_extracted(&ext);
    return rc;
}

lh_query *lh_query_open(lh_engine *eng, const lh_query_opts *opts, lh_error *err)
{
    lh_query *q = lh_xcalloc(1, sizeof(*q));
    q->eng = eng;
    q->t0 = lh_now_ms();
    q->fmt = opts ? opts->format : LH_FORMAT_JSON;
    q->max_rows = opts && opts->max_rows >= 0 ? opts->max_rows : eng->default_rows;
    q->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : eng->default_timeout_ms;
    q->deadline = q->t0 + q->timeout_ms;
    lh_buf_init(&q->out);
    lh_buf_init(&q->key_text);
    static char *no_datasets[] = {NULL};
    q->access.datasets = no_datasets; /* until classified (access_check) */
    pthread_mutex_init(&q->mu, NULL);
    if (take_slot(eng, &q->start_epoch, err) != 0) {
        lh_query_free(q);
        return NULL;
    }
    q->has_slot = true;
    return q;
}

/* Inline starts (lh_query_run_inline) that finished on the caller's thread, and those
 * that ran out of budget and were handed on; for tests and the benchmark. */
static atomic_uint_fast64_t inline_starts, inline_handoffs;
/* Statements started from a pooled connection's kept statement (prepare_cached). */
static atomic_uint_fast64_t stmt_cache_hits;

/* q->stmt for sql, after the firewall allowed it: the statement the pooled connection kept
 * when it was prepared from the same text, on this connection, with the views unchanged
 * since (so it is the statement prepare_one would make now: the checks it passed depend on
 * the text alone), else prepare_one's. Not for a caller whose attributes were set on the
 * connection: getvariable() binds at prepare, and the kept statement was prepared without
 * them. Ownership: q->stmt is the query's until start_finish hands it to q->cache. */
static int prepare_cached(lh_query *q, const char *sql, lh_error *err)
{
    lh_stmt_cache *c = &q->cache;
    if (c->stmt && !q->conn_has_state && strcmp(c->sql, sql) == 0 &&
        c->view_events == atomic_load(&q->eng->view_events)) {
        q->stmt = c->stmt;
        c->stmt = NULL;
        atomic_fetch_add(&stmt_cache_hits, 1);
        return 0;
    }
    lh_stmt_cache_clear(c);
    uint64_t views = atomic_load(&q->eng->view_events); /* before the prepare binds them */
    int rc = prepare_one(q, sql, &q->stmt, err);
    if (rc == 0 && !q->conn_has_state)
        *c = (lh_stmt_cache){.sql = lh_xstrdup(sql), .view_events = views};
    return rc;
}

/* After the firewall: the query's access record, the agents' rule and the sink. An agent
 * may not read row-level data of a subject relation that it cannot be attributed to
 * (docs/SECURITY.md): UNATTRIBUTED, or ROWS without the key in the visible result. */
static int access_check(lh_query *q, const char *sql, const lh_query_opts *opts, lh_error *err)
{
    const lh_sql_policy *policy = opts ? opts->policy : NULL;
    if (!q->lin.datasets)
        q->lin.datasets = lh_xcalloc(1, sizeof(char *)); /* never NULL for the accessor */
    q->access.kind = q->lin.kind;
    q->access.key_visible = q->lin.key_visible;
    q->access.datasets = q->lin.datasets;
    snprintf(q->access.reason, sizeof(q->access.reason), "%s", q->lin.reason);
    if (!policy || !policy->audited)
        return 0;
    lh_sql_fingerprint(sql, q->access.fingerprint);
    if (policy->agent && q->lin.kind == LH_ACCESS_UNATTRIBUTED)
        return lh_error_setk(err, LH_EFORBIDDEN, "unattributed_access",
                             "this query returns row-level data of subject datasets%s%s%s that "
                             "cannot be attributed to subjects: %s; %s",
                             q->lin.datasets[0] ? " (" : "",
                             q->lin.datasets[0] ? q->lin.datasets[0] : "",
                             q->lin.datasets[0] ? ")" : "", q->lin.reason,
                             q->lin.hint[0] ? q->lin.hint : "select the subject key, or aggregate");
    if (policy->agent && q->lin.kind == LH_ACCESS_ROWS && !q->lin.key_visible)
        return lh_error_setk(err, LH_EFORBIDDEN, "unattributed_access",
                             "this query returns row-level personal data without the subject "
                             "key: %s",
                             q->lin.hint);
    if (q->lin.kind != LH_ACCESS_ROWS)
        return 0;
    if (!opts->sink)
        return lh_error_setk(err, LH_EUNAVAILABLE, "audit_unavailable",
                             "this query returns subjects' data and cannot be audited here");
    q->audited_rows = true;
    q->sink = opts->sink;
    q->sink_ctx = opts->sink_ctx;
    return 0;
}

/* Under q->mu: generation, connection, watchdog, firewall, prepare and a pending streaming
 * execution in q->pending (nothing executed yet). */
static int start_prepare(lh_query *q, const char *sql, const lh_query_opts *opts, lh_error *err)
{
    lh_engine *eng = q->eng;
    q->gen = lh_gen_acquire(eng, err);
    if (!q->gen)
        return err ? err->code : LH_EINTERNAL;
    if (lh_gen_connect(eng, q->gen, &q->conn, &q->cache, err) != 0)
        return err ? err->code : LH_EINTERNAL;
    q->watch.conn = q->conn;
    q->watch.deadline_ms = q->deadline;
    q->watch.expire = query_expire;
    lh_watchdog_add(eng->watchdog, &q->watch);
    q->watching = true;
    /* The caller's attributes for safe views' row filters: on this query's own
     * connection, before anything is prepared (getvariable binds at prepare). */
    q->conn_has_state = opts && opts->policy && json_object_size(opts->policy->attributes) > 0;
    if (q->conn_has_state &&
        lh_safe_view_set_attributes(q->conn, opts->policy->attributes, err) != 0)
        return err ? err->code : LH_EINTERNAL;

    if (opts && opts->policy &&
        lh_firewall_on_conn(eng, q->conn, sql, opts->policy, &q->lin, err) != 0) {
        if (lh_now_ms() >= q->deadline)
            lh_error_setk(err, LH_ETIMEOUT, "query_timeout",
                          "query ran past its time limit of %d ms and was stopped "
                          "(while being checked)",
                          q->timeout_ms);
        return err ? err->code : LH_EINTERNAL;
    }
    if (access_check(q, sql, opts, err) != 0)
        return err ? err->code : LH_EINTERNAL;
    if (prepare_cached(q, q->audited_rows ? q->lin.sql : sql, err) != 0)
        return err ? err->code : LH_EINTERNAL;
    if (duckdb_pending_prepared_streaming(q->stmt, &q->pending) == DuckDBError)
        return duck_error(q, duckdb_pending_error(q->pending), err);
    return 0;
}

/* Under q->mu, with q->pending set: runs the pending execution to the streaming result
 * (duckdb_execute_pending: in DuckDB 1.4 it loops, without sleeping, while DuckDB's own
 * threads hold the remaining tasks, and waits only on a BLOCKED task), fetches the first
 * chunk and renders the head. */
static int start_finish(lh_query *q, lh_error *err)
{
    q->has_res = true;
    int rc = 0;
    if (duckdb_execute_pending(q->pending, &q->res) == DuckDBError)
        rc = duck_error(q, duckdb_result_error(&q->res), err);
    duckdb_destroy_pending(&q->pending);
    if (rc == 0 && q->cache.sql) { /* kept with the connection for its next query */
        q->cache.stmt = q->stmt;
        q->stmt = NULL;
    } else
        duckdb_destroy_prepare(&q->stmt);
    if (rc != 0)
        return rc;
    q->cols = lh_cols_new(&q->res, &q->ncols, &q->eng->keywords);
    q->nvis = q->ncols;
    if (q->audited_rows) {
        /* the rewrite's hidden key list is the last column; never rendered */
        if (q->ncols < 1 || strcmp(q->cols[q->ncols - 1].name, LH_KEY_COLUMN) != 0 ||
            q->cols[q->ncols - 1].type.id != DUCKDB_TYPE_LIST)
            return lh_error_set(err, LH_EINTERNAL, "the audit rewrite lost its key column");
        q->nvis = q->ncols - 1;
    }
    if ((rc = fetch_next(q, err)) != 0)
        return rc;
    render_head(q);
    q->state = Q_ROWS;
    q->started = true;
    return 0;
}

/* An audited ROWS query renders and audits its first rows before lh_query_run returns,
 * so a failed audit before the first byte is the query's error (the HTTP status) and
 * nothing is readable. Under q->mu. */
static int first_fill(lh_query *q, lh_error *err)
{
    while (q->state == Q_ROWS && q->out.len < LH_QUERY_OUT_BUDGET)
        step(q);
    if (audit_flush(q) == 0)
        return 0;
    if (err)
        *err = q->err;
    q->out.len = q->out_pos = q->out_mark = 0;
    return q->err.code;
}

int lh_query_run(lh_query *q, const char *sql, const lh_query_opts *opts, lh_error *err)
{
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    if (!q->pending) /* else an inline start prepared it and handed it on */
        rc = start_prepare(q, sql, opts, err);
    if (rc == 0)
        rc = start_finish(q, err);
    if (rc == 0 && q->audited_rows)
        rc = first_fill(q, err);
    pthread_mutex_unlock(&q->mu);
    if (rc != 0 && err && err->code != LH_OK)
        rc = err->code;
    return rc;
}

int lh_query_run_inline(lh_query *q, const char *sql, const lh_query_opts *opts, lh_error *err)
{
    lh_engine *eng = q->eng;
    int rc = LH_QUERY_PENDING;
    /* Only a statement the firewall already allowed for this identity: an unknown (maybe
     * hostile, slow to parse) text is checked on the pool. The prepare of a cached text
     * costs what its first, checked run cost. */
    if (!opts || !opts->policy ||
        !lh_verdicts_allowed(eng->verdicts, opts->policy->identity, sql,
                             lh_verdicts_epoch(eng->verdicts)))
        return LH_QUERY_PENDING;
    pthread_mutex_lock(&eng->gen_mu);
    bool alone = eng->slots <= 1; /* no other user query holds a slot now */
    pthread_mutex_unlock(&eng->gen_mu);
    pthread_mutex_lock(&q->mu);
    int64_t until = lh_now_ms() + LH_QUERY_INLINE_BUDGET_MS;
    if ((rc = start_prepare(q, sql, opts, err)) != 0)
        goto out;
    if (q->audited_rows) {
        /* its sink may wait for a durable write: never on this thread (lh_query_run
         * finishes the same pending execution on the pool) */
        atomic_fetch_add(&inline_handoffs, 1);
        rc = LH_QUERY_PENDING;
        goto out;
    }
    for (;;) {
        duckdb_pending_state st = duckdb_pending_execute_task(q->pending);
        if (st == DUCKDB_PENDING_ERROR) {
            rc = duck_error(q, duckdb_pending_error(q->pending), err);
            goto out;
        }
        if (duckdb_pending_execution_is_finished(st))
            break;
        /* DuckDB's own threads hold every task. Alone, wait for them by yielding (the
         * pool's hand-off would cost more than the wait); beside other queries, every
         * yield would take a core from a DuckDB thread and hold up this worker's other
         * connections, so the pool thread finishes it in duckdb_execute_pending instead
         * (bench/http_load, 16 clients on 2 cores: 0.54-0.77x DuckDB alone while
         * yielding, 1.06-1.27x handing on; ARCHITECTURE.md has later rounds). */
        if (st == DUCKDB_PENDING_NO_TASKS_AVAILABLE) {
            if (!alone)
                until = 0;
            else
                sched_yield();
        }
        if (lh_now_ms() >= until) { /* slow: the pool finishes the same execution */
            atomic_fetch_add(&inline_handoffs, 1);
            rc = LH_QUERY_PENDING;
            goto out;
        }
    }
    if ((rc = start_finish(q, err)) != 0)
        goto out;
    atomic_fetch_add(&inline_starts, 1);
    /* The first rows, as the pool's start renders them (bounded by LH_QUERY_OUT_BUDGET). */
    while (q->state == Q_ROWS && q->out.len < LH_QUERY_OUT_BUDGET)
        step(q);
out:
    pthread_mutex_unlock(&q->mu);
    if (rc < 0 && err && err->code != LH_OK)
        rc = err->code;
    return rc;
}

uint64_t lh_query__inline_starts(void)
{
    return atomic_load(&inline_starts);
}

uint64_t lh_query__inline_handoffs(void)
{
    return atomic_load(&inline_handoffs);
}

uint64_t lh_query__stmt_cache_hits(void)
{
    return atomic_load(&stmt_cache_hits);
}

lh_query *lh_query_start(lh_engine *eng, const char *sql, const lh_query_opts *opts, lh_error *err)
{
    lh_query *q = lh_query_open(eng, opts, err);
    if (q && lh_query_run(q, sql, opts, err) != 0) {
        lh_query_free(q);
        q = NULL;
    }
    return q;
}

/* The client has taken everything buffered: start the buffer over. Under q->mu. */
static void out_reset(lh_query *q)
{
    q->out.len = 0;
    q->out_pos = 0;
    q->out_mark = 0;
    /* a row far larger than the budget grew the buffer: give that memory back */
    if (q->out.cap > 4 * LH_QUERY_OUT_BUDGET)
        lh_buf_free(&q->out);
}

/* Hands out up to cap buffered bytes. Under q->mu, with something buffered. */
static ssize_t out_take(lh_query *q, char *buf, size_t cap)
{
    size_t n = q->out.len - q->out_pos;
    if (n > cap)
        n = cap;
    memcpy(buf, q->out.data + q->out_pos, n);
    q->out_pos += n;
    return (ssize_t)n;
}

ssize_t lh_query_read(lh_query *q, char *buf, size_t cap)
{
    ssize_t rc;
    pthread_mutex_lock(&q->mu);
    while (q->out_pos == q->out.len) {
        out_reset(q);
        if (q->state == Q_DONE) {
            rc = q->failed && q->fmt == LH_FORMAT_CSV ? -1 : 0;
            goto out;
        }
        step(q);
        audit_flush(q);
    }
    rc = out_take(q, buf, cap);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

ssize_t lh_query_read_buffered(lh_query *q, char *buf, size_t cap)
{
    ssize_t rc;
    pthread_mutex_lock(&q->mu);
    if (q->out_pos < q->out.len)
        rc = out_take(q, buf, cap);
    else if (q->state == Q_DONE)
        rc = q->failed && q->fmt == LH_FORMAT_CSV ? -1 : 0;
    else
        rc = LH_QUERY_AGAIN;
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void lh_query_fill(lh_query *q)
{
    pthread_mutex_lock(&q->mu);
    if (q->out_pos == q->out.len)
        out_reset(q);
    /* Up to the budget, so a fast client needs one hand-off per LH_QUERY_OUT_BUDGET bytes;
     * step() still fetches a chunk only once the current one is rendered, so the memory
     * bound in this file's header holds. Bytes not read yet (the head a start rendered)
     * stay in front: the first fill after a start renders the first rows too. */
    while (q->state == Q_ROWS && q->out.len < LH_QUERY_OUT_BUDGET)
        step(q);
    audit_flush(q);
    pthread_mutex_unlock(&q->mu);
}

char *lh_query_take_whole(lh_query *q, size_t max, size_t *len)
{
    char *whole = NULL;
    pthread_mutex_lock(&q->mu);
    /* Like lh_query_read_buffered, hands out what is rendered: outside q->mu an audited
     * query's rendered rows were all reported to its sink (audit_flush). */
    if (q->state == Q_DONE && !q->failed && q->out_pos == 0 && q->out.len > 0 &&
        q->out.len <= max) {
        whole = q->out.data;
        *len = q->out.len;
        lh_buf_init(&q->out);
        q->out_mark = 0;
    }
    pthread_mutex_unlock(&q->mu);
    return whole;
}

/* The accessors lock: the watchdog's expiry may be finishing the query concurrently. Once
 * failed is set it stays set and err no longer changes, so the pointer lh_query_error
 * returns stays valid until lh_query_free. The lock is not part of the query's value, hence
 * the cast on these const accessors. */
static pthread_mutex_t *query_mu(const lh_query *q)
{
    return (pthread_mutex_t *)&q->mu;
}

int64_t lh_query_row_count(const lh_query *q)
{
    pthread_mutex_lock(query_mu(q));
    int64_t rows = q->rows;
    pthread_mutex_unlock(query_mu(q));
    return rows;
}

bool lh_query_truncated(const lh_query *q)
{
    pthread_mutex_lock(query_mu(q));
    bool t = q->truncated;
    pthread_mutex_unlock(query_mu(q));
    return t;
}

const lh_error *lh_query_error(const lh_query *q)
{
    pthread_mutex_lock(query_mu(q));
    const lh_error *e = q->failed ? &q->err : NULL;
    pthread_mutex_unlock(query_mu(q));
    return e;
}

size_t lh_query__buffered_bytes(const lh_query *q)
{
    return q->out.len;
}

size_t lh_query__buffer_capacity(const lh_query *q)
{
    return q->out.cap;
}

void lh_query_free(lh_query *q)
{
    if (!q)
        return;
    /* First, without q->mu: afterwards the watchdog's expiry can no longer run. */
    lh_watchdog_remove(q->eng->watchdog, &q->watch);
    pthread_mutex_lock(&q->mu);
    q->watching = false;
    release_duckdb(q);
    pthread_mutex_unlock(&q->mu);
    pthread_mutex_destroy(&q->mu);
    if (q->ndjson_keys)
        for (idx_t i = 0; i < q->ncols; i++)
            free(q->ndjson_keys[i]);
    free(q->ndjson_keys);
    lh_cols_free(q->cols, q->ncols);
    lh_buf_free(&q->out);
    keys_free(q);
    lh_lineage_clear(&q->lin);
    free(q);
}

const lh_subject_access *lh_query_access(const lh_query *q)
{
    return &q->access;
}
