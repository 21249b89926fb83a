/*
 * pg.c: the PostgreSQL reader (libpq). Streams a table or a query into DuckDB data chunks.
 *
 * One connection, one transaction: BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY, so the
 * describe, the type lookup and the COPY see one snapshot and the source cannot be written
 * through us. The result is described before any row is read (PQprepare +
 * PQdescribePrepared, then one pg_type query for every column's type), then streamed with
 * COPY (SELECT ...) TO STDOUT (FORMAT binary): the server sends one CopyData message per
 * row, libpq hands us one row at a time (its buffer holds one message), and next() decodes
 * the binary values straight into the chunk's vectors. Memory is one row from libpq plus
 * one chunk, whatever the table's size. Never LIMIT/OFFSET: one statement, one snapshot.
 *
 * Columns whose type has no binary decoder here (inet, money, ranges, numeric without a
 * precision, ...) are selected as `col::text` (`col::text[]` for arrays) and delivered as
 * VARCHAR; docs/INGEST.md ("PostgreSQL type mapping") is the table, pg_types.c its code
 * and the binary decoders.
 *
 * Secrets: the DSN and its password never enter a message. Every libpq or server message
 * goes through lh_error_scrub with the password as needle before it reaches err, and the
 * location in messages (host:port/db) comes from the parsed connection options.
 *
 * Threads: the reader is used by one thread at a time; interrupt() may be called from
 * another one until close() begins. It sets a flag and shuts the socket down (under
 * `lock`, which close() takes before PQfinish frees the socket), so a next() blocked in
 * libpq's poll wakes at once, sees the flag and returns LH_ECANCELLED. The session sets
 * client_connection_check_interval (PostgreSQL 14+) so the server also abandons the query
 * soon after we go away.
 */
#include "pg_internal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libpq-fe.h>
#include <sodium.h>

typedef struct pg_reader {
    lh_db_reader base; /* first: lh_db_reader * and pg_reader * are the same pointer */
    PGconn *conn;
    pg_col *cols;
    duckdb_vector *vecs;  /* the current chunk's vectors, fetched once per next() */
    char *location;       /* host:port/db, for messages */
    char *password;       /* the scrub needle (a secret: wiped at close), or NULL */
    pthread_mutex_t lock; /* guards sock between interrupt() and close() */
    int sock;             /* the connection's socket, -1 once close() began */
    atomic_bool interrupted;
    lh_db_cancel *cancel; /* the sync's cancellation point (sel->cancel), or NULL */
    bool header_seen;     /* the COPY's binary header has been read */
    bool at_end;          /* the COPY's trailer has been read */
    bool finished;        /* the COPY's result was a success: next() returns empty chunks */
    int failed;           /* the code of an error next() returned; it is returned again */
} pg_reader;

/* ---------------------------------------------------------------- messages */

/* libpq's messages span lines ("FATAL:  ...\n\tIs the server running ...?"): one line,
 * runs of white space collapsed, the severity prefix and trailing spaces dropped. Caller
 * frees. */
static char *one_line(const char *msg)
{
    if (!msg)
        msg = "";
    size_t n = strlen(msg);
    char *out = lh_xmalloc(n + 1);
    size_t o = 0;
    bool space = false;
    for (size_t i = 0; i < n; i++) {
        char c = msg[i];
        if (c == '\n' || c == '\t' || c == '\r' || c == ' ') {
            space = o > 0;
            continue;
        }
        if (space)
            out[o++] = ' ';
        space = false;
        out[o++] = c;
    }
    out[o] = '\0';
    static const char *prefixes[] = {"FATAL: ", "ERROR: ", "PANIC: "};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        size_t pl = strlen(prefixes[i]);
        if (strncmp(out, prefixes[i], pl) == 0)
            memmove(out, out + pl, strlen(out + pl) + 1);
    }
    return out;
}

/* Fills err with "<what> (PostgreSQL at <location>)[: <detail>]" and scrubs the password
 * out of it (detail comes from libpq or the server, which could echo anything). */
static int pg_error(const pg_reader *p, lh_error *err, int code, const char *kind,
                    const char *detail, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int pg_error(const pg_reader *p, lh_error *err, int code, const char *kind,
                    const char *detail, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char *line = detail ? one_line(detail) : NULL;
    if (line && *line)
        lh_error_setk(err, code, kind, "%s (PostgreSQL at %s): %s", what, p->location, line);
    else
        lh_error_setk(err, code, kind, "%s (PostgreSQL at %s)", what, p->location);
    free(line);
    if (err && p->password && *p->password)
        lh_error_scrub(err, p->password, "***");
    return code;
}

/* The server's message of an error result: its primary text and, when it has one, its hint
 * ("Perhaps you meant to reference the column ..."), never its DETAIL, which can quote row
 * values. libpq's own message when there is no result. Caller frees. */
static char *server_message(const pg_reader *p, const PGresult *res)
{
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
    if (!primary)
        return lh_xstrdup(PQerrorMessage(p->conn));
    if (hint)
        return lh_xasprintf("%s (hint: %s)", primary, hint);
    return lh_xstrdup(primary);
}

/* Causes a caller can act on, by SQLSTATE (statement errors) or by a fragment of libpq's
 * message (connection failures, which carry no SQLSTATE). First match wins. */
static const struct {
    const char *sqlstate, *cause;
} statement_causes[] = {
    {"42P01", "unknown table"},
    {"3F000", "unknown schema"},
    {"42703", "unknown column"},
    {"42501", "permission denied"},
    {"42601", "the server rejected the query's syntax"},
};

static const struct {
    const char *fragment, *cause;
} connect_causes[] = {
    {"Connection refused",
     "connection refused (is the server running and accepting TCP connections?)"},
    {"authentication", "authentication failed"}, /* "password authentication failed" */
    {"no password supplied", "authentication failed"},
    {"pg_hba.conf", "authentication failed"},   /* no entry for this host/user/TLS state */
    {"SSL", "TLS is required but unavailable"}, /* "server does not support SSL, but ..." */
    {"GSS", "TLS is required but unavailable"},
    {"does not exist", "unknown database or user"},
    {"timeout expired", "connection timed out"},
    {"could not translate host name", "unknown host"},
};

/* An error result of a statement (open time): the cause from the SQLSTATE. */
static int pg_result_error(const pg_reader *p, const PGresult *res, const lh_db_select *sel,
                           lh_error *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char *detail = server_message(p, res);
    const char *cause = "the server rejected the query";
    for (size_t i = 0; state && i < sizeof statement_causes / sizeof *statement_causes; i++)
        if (strcmp(state, statement_causes[i].sqlstate) == 0) {
            cause = statement_causes[i].cause;
            break;
        }
    int rc;
    if (PQstatus(p->conn) == CONNECTION_BAD)
        rc = pg_error(p, err, LH_EUPSTREAM, NULL, detail, "the server closed the connection");
    else if (state && strcmp(state, "42P01") == 0 && sel->table)
        rc = pg_error(p, err, LH_EUPSTREAM, NULL, detail, "%s \"%s\"", cause, sel->table);
    else
        rc = pg_error(p, err, LH_EUPSTREAM, NULL, detail, "%s", cause);
    free(detail);
    return rc;
}

/* A failed connection: which of the causes a caller can act on it was. */
static int pg_connect_error(const pg_reader *p, lh_error *err)
{
    const char *msg = PQerrorMessage(p->conn);
    const char *cause = "cannot connect";
    for (size_t i = 0; i < sizeof connect_causes / sizeof *connect_causes; i++)
        if (strstr(msg, connect_causes[i].fragment)) {
            cause = connect_causes[i].cause;
            break;
        }
    return pg_error(p, err, LH_EUPSTREAM, NULL, msg, "%s", cause);
}

/* ---------------------------------------------------------------- statement text */

/* Appends "ident" with embedded double quotes doubled. */

/* The query without trailing semicolons and white space, or NULL when nothing is left.
 * Caller frees. */
static char *strip_query(const char *q)
{
    size_t n = strlen(q);
    while (n > 0 && (q[n - 1] == ';' || q[n - 1] == ' ' || q[n - 1] == '\n' || q[n - 1] == '\t' ||
                     q[n - 1] == '\r'))
        n--;
    size_t start = 0;
    while (start < n &&
           (q[start] == ' ' || q[start] == '\n' || q[start] == '\t' || q[start] == '\r'))
        start++;
    if (start == n)
        return NULL;
    char *out = lh_xmalloc(n - start + 1);
    memcpy(out, q + start, n - start);
    out[n - start] = '\0';
    return out;
}

/* What pg_type says about one column's type. */
typedef struct pg_typeinfo {
    char typtype;      /* 'b' base, 'e' enum, 'd' domain, 'c' composite, 'r' range, ... */
    bool is_array;     /* typlen = -1 and typelem <> 0: a true array type */
    unsigned elem_oid; /* the element's type (a domain resolved one level to its base) */
    int elem_typmod;
    char elem_typtype;
    char *format; /* format_type(oid, typmod): "numeric(12,2)", "integer[]" */
} pg_typeinfo;

/* Looks up every column's type in one query (the RowDescription already resolved
 * top-level domains to their base type; arrays' elements and enums need pg_type). */
static int describe_types(pg_reader *p, const PGresult *desc, pg_typeinfo *ti, lh_error *err)
{
    int nf = PQnfields(desc);
    lh_buf oids, mods;
    lh_buf_init(&oids);
    lh_buf_init(&mods);
    lh_buf_putc(&oids, '{');
    lh_buf_putc(&mods, '{');
    for (int i = 0; i < nf; i++) {
        lh_buf_printf(&oids, "%s%u", i ? "," : "", (unsigned)PQftype(desc, i));
        lh_buf_printf(&mods, "%s%d", i ? "," : "", PQfmod(desc, i));
    }
    lh_buf_putc(&oids, '}');
    lh_buf_putc(&mods, '}');
    static const char sql[] =
        "SELECT c.i, format_type(c.o, c.m), t.typtype, t.typlen = -1 AND t.typelem <> 0, "
        "  CASE WHEN e.typtype = 'd' THEN e.typbasetype ELSE e.oid END, "
        "  CASE WHEN e.typtype = 'd' THEN e.typtypmod ELSE c.m END, "
        "  CASE WHEN e.typtype = 'd' THEN b.typtype ELSE e.typtype END "
        "FROM unnest($1::pg_catalog.oid[], $2::pg_catalog.int4[]) WITH ORDINALITY AS c(o, m, i) "
        "JOIN pg_catalog.pg_type t ON t.oid = c.o "
        "LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem "
        "LEFT JOIN pg_catalog.pg_type b ON b.oid = e.typbasetype "
        "ORDER BY c.i";
    const char *params[2] = {oids.data, mods.data};
    PGresult *res = PQexecParams(p->conn, sql, 2, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = pg_result_error(p, res, &(lh_db_select){0}, err);
        goto out;
    }
    if (PQntuples(res) != nf) {
        rc = pg_error(p, err, LH_EUPSTREAM, NULL, NULL,
                      "the server's catalog does not describe every column's type");
        goto out;
    }
    for (int i = 0; i < nf; i++) {
        ti[i].format = lh_xstrdup(PQgetvalue(res, i, 1));
        ti[i].typtype = PQgetvalue(res, i, 2)[0];
        ti[i].is_array = PQgetvalue(res, i, 3)[0] == 't';
        ti[i].elem_oid = (unsigned)strtoul(PQgetvalue(res, i, 4), NULL, 10);
        ti[i].elem_typmod = atoi(PQgetvalue(res, i, 5));
        ti[i].elem_typtype = PQgetvalue(res, i, 6)[0];
    }
out:
    PQclear(res);
    lh_buf_free(&oids);
    lh_buf_free(&mods);
    return rc;
}

/* Chooses each column's decoder and DuckDB type; fills p->cols and the base's arrays. */
static void map_columns(pg_reader *p, const PGresult *desc, const pg_typeinfo *ti)
{
    lh_db_reader *r = &p->base;
    for (size_t i = 0; i < r->ncols; i++) {
        pg_col *c = &p->cols[i];
        unsigned oid = (unsigned)PQftype(desc, (int)i);
        int typmod = PQfmod(desc, (int)i);
        c->cast = "";
        if (ti[i].is_array) {
            c->is_array = true;
            if (!lh_pg_scalar_kind(ti[i].elem_oid, ti[i].elem_typmod, ti[i].elem_typtype, c)) {
                c->kind = PGV_TEXT;
                c->cast = "::text[]";
            }
            c->vt = lh_pg_kind_type(c);
            r->types[i] = duckdb_create_list_type(c->vt);
        } else {
            if (!lh_pg_scalar_kind(oid, typmod, ti[i].typtype, c)) {
                c->kind = PGV_TEXT;
                c->cast = "::text";
            }
            c->vt = lh_pg_kind_type(c);
            r->types[i] = lh_pg_kind_type(c);
        }
        r->source_types[i] = lh_xstrdup(ti[i].format);
    }
}

/* ---------------------------------------------------------------- the stream */

/* Asked to stop: by interrupt() or through the sync's cancellation point. */
static bool pg_stopped(pg_reader *p)
{
    return atomic_load(&p->interrupted) || lh_db_cancel_fired(p->cancel);
}

static void pg_interrupt(lh_db_reader *r)
{
    pg_reader *p = (pg_reader *)r;
    atomic_store(&p->interrupted, true);
    pthread_mutex_lock(&p->lock);
    if (p->sock >= 0)
        shutdown(p->sock, SHUT_RDWR); /* wakes a recv/poll blocked in libpq */
    pthread_mutex_unlock(&p->lock);
}

/* The COPY's end when its result is not a success (res, which may be NULL, is that result;
 * the caller clears it): cancelled, the server gone, or the query failed. `rows` rows were
 * read before it. */
static int stream_failed(pg_reader *p, const PGresult *res, int64_t rows, lh_error *err)
{
    if (pg_stopped(p))
        return lh_error_set(err, LH_ECANCELLED, "the read was cancelled after %lld rows",
                            (long long)rows);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char *detail = server_message(p, res);
    /* class 57P: operator intervention (pg_terminate_backend, shutdown); 08: connection */
    bool gone = PQstatus(p->conn) == CONNECTION_BAD || !state || strncmp(state, "57P", 3) == 0 ||
                strncmp(state, "08", 2) == 0;
    int rc;
    if (gone)
        rc = pg_error(p, err, LH_EUPSTREAM, NULL, detail,
                      "the server closed the connection after %lld rows", (long long)rows);
    else if (strcmp(state, "22021") == 0)
        /* a SQL_ASCII database holding bytes that are not UTF-8: the server's conversion to
         * our client_encoding refuses the row */
        rc = pg_error(p, err, LH_EINVAL, "unmappable_value", detail,
                      "row %lld holds text that is not valid UTF-8", (long long)rows + 1);
    else
        rc = pg_error(p, err, LH_EUPSTREAM, NULL, detail, "the query failed after %lld rows",
                      (long long)rows);
    free(detail);
    return rc;
}

/* After PQgetCopyData said the COPY is over (-1) or failed (-2): reads the command's
 * result, which must be a success, and drains the connection. */
static int stream_finish(pg_reader *p, int64_t rows, lh_error *err)
{
    PGresult *res = PQgetResult(p->conn);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = stream_failed(p, res, rows, err);
    PQclear(res);
    if (rc == 0)
        while ((res = PQgetResult(p->conn)) != NULL)
            PQclear(res);
    return rc;
}

/* Decodes one CopyData message (the header may precede the first row) into row `row` of
 * p->vecs. *is_row tells whether it held a row (else the header alone or the trailer, which
 * sets at_end). */
static int decode_message(pg_reader *p, idx_t row, const char *buf, int n, bool *is_row,
                          lh_error *err)
{
    static const char sig[11] = "PGCOPY\n\377\r\n\0";
    lh_db_reader *r = &p->base;
    const char *s = buf, *end = buf + n;
    int64_t rowno = r->rows + (int64_t)row + 1;
    *is_row = false;
    if (!p->header_seen) {
        if (end - s < 19 || memcmp(s, sig, 11) != 0)
            goto malformed;
        uint32_t ext = rd32(s + 15);
        s += 19;
        if ((uint64_t)(end - s) < ext)
            goto malformed;
        s += ext;
        p->header_seen = true;
        if (s == end)
            return 0;
    }
    if (end - s < 2)
        goto malformed;
    int16_t nf = (int16_t)rd16(s);
    s += 2;
    if (nf == -1) {
        p->at_end = true;
        return 0;
    }
    if (nf != (int16_t)r->ncols)
        goto malformed;
    for (size_t i = 0; i < r->ncols; i++) {
        if (end - s < 4)
            goto malformed;
        int32_t len = (int32_t)rd32(s);
        s += 4;
        duckdb_vector v = p->vecs[i];
        if (len == -1) {
            lh_vec_set_null(v, row);
            continue;
        }
        if (len < 0 || end - s < len)
            goto malformed;
        const pg_col *c = &p->cols[i];
        int rc = c->is_array ? lh_pg_decode_array(c, v, row, s, len)
                             : lh_pg_decode_value(c, v, row, s, len);
        if (rc != DEC_OK && rc != DEC_MALFORMED)
            return lh_error_setk(err, LH_EINVAL, "unmappable_value",
                                 "column \"%s\" (%s) of row %lld holds a value that cannot be "
                                 "loaded: %s",
                                 r->names[i], r->source_types[i], (long long)rowno,
                                 lh_pg_unmappable_why[rc]);
        if (rc != DEC_OK)
            goto malformed;
        s += len;
    }
    if (s != end)
        goto malformed;
    *is_row = true;
    return 0;
malformed:
    return pg_error(p, err, LH_EUPSTREAM, NULL, NULL,
                    "the server sent a malformed binary COPY row (row %lld)", (long long)rowno);
}

static int pg_next(lh_db_reader *r, duckdb_data_chunk out, lh_error *err)
{
    pg_reader *p = (pg_reader *)r;
    idx_t cap = duckdb_vector_size(), row = 0;
    int rc = 0;
    if (p->failed)
        return lh_error_set(err, p->failed, "the read already failed: open a new one");
    duckdb_data_chunk_reset(out);
    for (size_t i = 0; i < r->ncols; i++)
        p->vecs[i] = duckdb_data_chunk_get_vector(out, i);
    while (row < cap && !p->finished) {
        if (pg_stopped(p)) {
            rc = lh_error_set(err, LH_ECANCELLED, "the read was cancelled after %lld rows",
                              (long long)(r->rows + (int64_t)row));
            goto out;
        }
        char *buf = NULL;
        int n = PQgetCopyData(p->conn, &buf, 0);
        if (n < 0) {
            /* -1: the COPY is over, -2: it failed; the result says which and why */
            rc = stream_finish(p, r->rows + (int64_t)row, err);
            if (rc == 0 && !p->at_end)
                rc = pg_error(p, err, LH_EUPSTREAM, NULL, NULL,
                              "the COPY ended without its trailer after %lld rows",
                              (long long)(r->rows + (int64_t)row));
            if (rc != 0)
                goto out;
            p->finished = true;
            break;
        }
        if (p->at_end) {
            PQfreemem(buf);
            rc = pg_error(p, err, LH_EUPSTREAM, NULL, NULL,
                          "the server sent data after the COPY's trailer");
            goto out;
        }
        bool is_row;
        rc = decode_message(p, row, buf, n, &is_row, err);
        PQfreemem(buf);
        if (rc != 0)
            goto out;
        if (is_row)
            row++;
    }
    duckdb_data_chunk_set_size(out, row);
    r->rows += (int64_t)row;
out:
    if (rc != 0) {
        p->failed = rc;
        duckdb_data_chunk_set_size(out, 0);
    }
    return rc;
}

static void pg_close(lh_db_reader *r)
{
    if (!r)
        return;
    pg_reader *p = (pg_reader *)r;
    pthread_mutex_lock(&p->lock);
    p->sock = -1;
    pthread_mutex_unlock(&p->lock);
    lh_db_cancel_detach(p->cancel); /* before the socket closes and its number is reused */
    if (p->conn)
        PQfinish(p->conn); /* the server rolls the read-only transaction back */
    if (p->cols)
        for (size_t i = 0; i < r->ncols; i++)
            if (p->cols[i].vt)
                duckdb_destroy_logical_type(&p->cols[i].vt);
    free(p->cols);
    free(p->vecs);
    lh_db_reader_free_columns(r);
    free(p->location);
    lh_secret_free(p->password);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* ---------------------------------------------------------------- open */

/* The parsed DSN's password (a copy, or NULL) and its host:port/db. LH_EINVAL when libpq cannot
 * parse it; libpq's message is not passed on, since it quotes the part it could not parse, which
 * may be the password. */
static int parse_dsn(pg_reader *p, const char *dsn, lh_error *err)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &perr);
    if (!opts) {
        if (perr)
            PQfreemem(perr);
        return lh_error_set(err, LH_EINVAL,
                            "the PostgreSQL DSN does not parse: use "
                            "postgresql://user:password@host:port/db or key=value pairs "
                            "(host=... port=... dbname=... user=... password=...)");
    }
    const char *host = NULL, *hostaddr = NULL, *port = NULL, *db = NULL, *user = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (strcmp(o->keyword, "password") == 0)
            p->password = lh_xstrdup(o->val);
        else if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
        else if (strcmp(o->keyword, "user") == 0)
            user = o->val;
    }
    p->location = lh_xasprintf("%s:%s/%s",
                               host       ? host
                               : hostaddr ? hostaddr
                                          : "localhost",
                               port ? port : "5432",
                               db     ? db
                               : user ? user
                                      : "(default)");
    for (PQconninfoOption *o = opts; o->keyword; o++) /* libpq frees without wiping */
        if (o->val && strcmp(o->keyword, "password") == 0)
            sodium_memzero(o->val, strlen(o->val));
    PQconninfoFree(opts);
    return 0;
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Runs a command that returns no rows. */
static int pg_command(pg_reader *p, const char *sql, lh_error *err)
{
    PGresult *res = PQexec(p->conn, sql);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_result_error(p, res, &(lh_db_select){0}, err);
    PQclear(res);
    return rc;
}

/* Builds the inner statement: the table or the wrapped query, with the watermark filter.
 * For a query, first prepares it alone: a multi-statement text or one that returns no
 * rows is the caller's mistake (LH_EINVAL), said plainly. */
static int build_select(pg_reader *p, const lh_db_select *sel, lh_buf *sql, lh_error *err)
{
    char *q = NULL;
    PGresult *res = NULL;
    int rc = 0;
    if (sel->table) {
        lh_buf_puts(sql, "SELECT * FROM ");
        rc = lh_db_put_table(sql, '"', "schema", sel->table, err);
        if (rc != 0)
            goto out;
    } else {
        q = strip_query(sel->query);
        res = PQprepare(p->conn, "", q, 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
            if (primary && strstr(primary, "multiple commands"))
                rc = pg_error(p, err, LH_EINVAL, NULL, NULL,
                              "the query must be one SELECT statement: the server refuses "
                              "several statements in one query");
            else
                rc = pg_result_error(p, res, sel, err);
            goto out;
        }
        PQclear(res);
        res = PQdescribePrepared(p->conn, "");
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            rc = pg_result_error(p, res, sel, err);
            goto out;
        }
        if (PQnfields(res) == 0) {
            rc = pg_error(p, err, LH_EINVAL, NULL, NULL,
                          "the statement returns no columns: the query must be one SELECT of at "
                          "least one column");
            goto out;
        }
        /* the newline keeps a trailing -- comment from swallowing the parenthesis */
        lh_buf_printf(sql, "SELECT * FROM (\n%s\n) q", q);
    }
    if (sel->incremental_column && sel->watermark) {
        lh_buf_puts(sql, " WHERE ");
        lh_db_put_ident(sql, '"', sel->incremental_column, strlen(sel->incremental_column));
        {
            char *lit = PQescapeLiteral(p->conn, sel->watermark, strlen(sel->watermark));
            if (!lit) {
                rc = pg_error(p, err, LH_EINVAL, NULL, PQerrorMessage(p->conn),
                              "the watermark cannot be quoted");
                goto out;
            }
            lh_buf_printf(sql, " > %s", lit); /* untyped: the server casts to the column's */
            PQfreemem(lit);
        }
    }
out:
    PQclear(res);
    free(q);
    return rc;
}

lh_db_reader *lh_pg_reader_open(const char *dsn, const lh_db_select *sel, lh_error *err)
{
    pg_reader *p = lh_xcalloc(1, sizeof *p);
    lh_db_reader *r = &p->base;
    pg_typeinfo *ti = NULL;
    PGresult *desc = NULL, *res = NULL;
    lh_buf sql, copy;
    lh_buf_init(&sql);
    lh_buf_init(&copy);
    pthread_mutex_init(&p->lock, NULL);
    p->sock = -1;
    atomic_init(&p->interrupted, false);
    p->cancel = sel ? sel->cancel : NULL;
    r->next = pg_next;
    r->interrupt = pg_interrupt;
    r->close = pg_close;
    int rc = 0, nf = 0;

    if (!dsn) {
        rc = lh_error_set(err, LH_EINVAL, "no PostgreSQL DSN given");
        goto out;
    }
    if (!sel || (!sel->table) == (!sel->query)) {
        rc = lh_error_set(err, LH_EINVAL, "give exactly one of a table and a query");
        goto out;
    }
    if (sel->query) {
        char *q = strip_query(sel->query);
        if (!q) {
            rc = lh_error_set(err, LH_EINVAL, "the query is empty");
            goto out;
        }
        free(q);
    } else {
        lh_buf probe;
        lh_buf_init(&probe);
        rc = lh_db_put_table(&probe, '"', "schema", sel->table, err);
        lh_buf_free(&probe);
        if (rc != 0)
            goto out;
    }
    if (sel->incremental_column && !*sel->incremental_column) {
        rc = lh_error_set(err, LH_EINVAL, "the incremental column's name is empty");
        goto out;
    }
    rc = parse_dsn(p, dsn, err);
    if (rc != 0)
        goto out;

    /* Keywords before dbname are defaults the expanded DSN overrides; those after it win.
     * The keepalives make a server that vanished without a FIN (power loss, a partition)
     * fail the read in about two minutes instead of the kernel's two hours. */
    const char *keys[] = {
        "connect_timeout",  "application_name", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "dbname",           "client_encoding", NULL};
    const char *vals[] = {"10", "lakehouse", "60", "10", "6", dsn, "UTF8", NULL};
    p->conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(p->conn) != CONNECTION_OK) {
        rc = pg_connect_error(p, err);
        goto out;
    }
    const char *h = PQhost(p->conn), *pt = PQport(p->conn), *db = PQdb(p->conn);
    if (h && *h && pt && *pt && db && *db) {
        free(p->location);
        p->location = lh_xasprintf("%s:%s/%s", h, pt, db);
    }
    p->sock = PQsocket(p->conn);
    if (lh_db_cancel_attach(p->cancel, p->sock) != 0) {
        rc = lh_error_set(err, LH_ECANCELLED, "the read was cancelled while connecting");
        goto out;
    }
    /* libpq prints NOTICEs (RAISE NOTICE in a function, ...) to stderr by default: they
     * may carry data, and our logs are structured */
    PQsetNoticeProcessor(p->conn, ignore_notice, NULL);

    /* Session settings: instants in UTC for ::text forms, ISO dates, round-trip floats;
     * then the one read-only snapshot. */
    rc = pg_command(p,
                    "SET TimeZone TO 'UTC'; SET DateStyle TO 'ISO, YMD'; "
                    "SET IntervalStyle TO 'postgres'; SET extra_float_digits TO 3",
                    err);
    if (rc == 0 && PQserverVersion(p->conn) >= 140000)
        rc = pg_command(p, "SET client_connection_check_interval TO 1000", err);
    if (rc == 0)
        rc = pg_command(p, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
    if (rc != 0)
        goto out;

    rc = build_select(p, sel, &sql, err);
    if (rc != 0)
        goto out;
    res = PQprepare(p->conn, "", sql.data, 0, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        /* the query parsed alone (build_select prepared it), so it is the wrapping the server
         * refuses: say what cannot be wrapped */
        if (sel->query && state && (strcmp(state, "42601") == 0 || strcmp(state, "0A000") == 0)) {
            char *detail = server_message(p, res);
            rc = pg_error(p, err, LH_EUPSTREAM, NULL, detail,
                          "the query is valid alone but not as a subquery (a ';' followed by "
                          "a comment, or a WITH that modifies data, cannot be wrapped)");
            free(detail);
        } else {
            rc = pg_result_error(p, res, sel, err);
        }
        goto out;
    }
    desc = PQdescribePrepared(p->conn, "");
    if (PQresultStatus(desc) != PGRES_COMMAND_OK) {
        rc = pg_result_error(p, desc, sel, err);
        goto out;
    }
    nf = PQnfields(desc);
    if (nf == 0) {
        rc = pg_error(p, err, LH_EINVAL, NULL, NULL, "the result has no columns");
        goto out;
    }
    for (int i = 0; i < nf; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(PQfname(desc, i), PQfname(desc, j)) == 0) {
                rc = lh_error_set(err, LH_EINVAL,
                                  "the result has two columns named \"%s\": give them "
                                  "distinct aliases in the query (SELECT a.%s AS a_%s, ...)",
                                  PQfname(desc, i), PQfname(desc, i), PQfname(desc, i));
                goto out;
            }
    if (sel->incremental_column) {
        int i = 0;
        while (i < nf && strcmp(PQfname(desc, i), sel->incremental_column) != 0)
            i++;
        if (i == nf) {
            rc = pg_error(p, err, LH_EUPSTREAM, NULL, NULL,
                          "unknown column \"%s\": the incremental column must be one of the "
                          "result's columns",
                          sel->incremental_column);
            goto out;
        }
    }
    ti = lh_xcalloc((size_t)nf, sizeof *ti);
    rc = describe_types(p, desc, ti, err);
    if (rc != 0)
        goto out;
    r->ncols = (size_t)nf;
    r->names = lh_xcalloc(r->ncols, sizeof *r->names);
    r->types = lh_xcalloc(r->ncols, sizeof *r->types);
    r->source_types = lh_xcalloc(r->ncols, sizeof *r->source_types);
    p->cols = lh_xcalloc(r->ncols, sizeof *p->cols);
    p->vecs = lh_xcalloc(r->ncols, sizeof *p->vecs);
    for (int i = 0; i < nf; i++)
        r->names[i] = lh_xstrdup(PQfname(desc, i));
    map_columns(p, desc, ti);

    lh_buf_puts(&copy, "COPY (SELECT ");
    for (size_t i = 0; i < r->ncols; i++) {
        lh_buf_puts(&copy, i ? ", s." : "s.");
        lh_db_put_ident(&copy, '"', r->names[i], strlen(r->names[i]));
        lh_buf_puts(&copy, p->cols[i].cast);
    }
    lh_buf_printf(&copy, " FROM (\n%s\n) s) TO STDOUT (FORMAT binary)", sql.data);
    PQclear(res);
    res = PQexec(p->conn, copy.data);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        rc = pg_result_error(p, res, sel, err);
        goto out;
    }

out:
    PQclear(res);
    PQclear(desc);
    if (ti)
        for (int i = 0; i < nf; i++)
            free(ti[i].format);
    free(ti);
    lh_buf_free(&sql);
    lh_buf_free(&copy);
    /* A statement that failed because the sync was cancelled (its socket shut down under
     * it) reports the cancel, not a broken connection. */
    if (rc != 0 && rc != LH_ECANCELLED && pg_stopped(p))
        rc = lh_error_set(err, LH_ECANCELLED,
                          "the read was cancelled while the source prepared its first rows");
    if (rc != 0) {
        pg_close(r);
        return NULL;
    }
    return r;
}
