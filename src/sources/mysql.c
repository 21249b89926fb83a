/*
 * mysql.c: the MySQL / MariaDB reader (libmariadb), one implementation of lh_db_reader.
 *
 * The stream: one connection, one statement sent with mysql_real_query and read with
 * mysql_use_result, so the server sends rows as we fetch them and the client holds one row
 * at a time (never mysql_store_result, never LIMIT/OFFSET paging). The result's field
 * metadata arrives before its first row: that is the describe. Each row's values come as
 * text (the text protocol) and are converted in C straight into the chunk's vectors by
 * mysql_types.c, which holds the mapping of docs/INGEST.md ("MySQL and MariaDB type
 * mapping").
 *
 * The session reads in UTC (time_zone '+00:00', so TIMESTAMP values are UTC instants) and
 * inside START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY at REPEATABLE READ, so a
 * table changing during a long read is seen as of one instant and the query cannot write.
 * LOAD DATA LOCAL is off: a hostile server cannot ask this process for its files.
 *
 * Interrupt and close: interrupt (any thread) sets a flag and shuts the socket down, so a
 * fetch blocked on the network returns at once; next() then reports LH_ECANCELLED. An
 * unfinished use_result would be drained by mysql_free_result (reading every remaining
 * row), so close shuts the socket down first whenever the result was not read to its end;
 * the drain then stops at the dead socket. The socket is only touched under `lock`, which
 * close takes before the connection goes away, so an interrupt racing close is harmless.
 *
 * Secrets: every message from libmariadb goes through lh_dsn_scrub before it leaves.
 */
#include "mysql_internal.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* libmariadb's client error numbers (errmsg.h) and the server's (mysqld_error.h) that get a
 * cause of their own in messages; the headers are not all installed everywhere. */
#define MY_CR_CONNECTION_ERROR 2002
#define MY_CR_CONN_HOST_ERROR 2003
#define MY_CR_UNKNOWN_HOST 2005
#define MY_CR_SERVER_GONE 2006
#define MY_CR_SERVER_LOST 2013
#define MY_CR_SSL_CONNECTION_ERROR 2026
#define MY_ER_DBACCESS_DENIED 1044
#define MY_ER_ACCESS_DENIED 1045
#define MY_ER_BAD_DB 1049
#define MY_ER_BAD_FIELD 1054
#define MY_ER_PARSE 1064
#define MY_ER_NO_SUCH_TABLE 1146
#define MY_ER_ACCESS_DENIED_NO_PASSWORD 1698

#define CONNECT_TIMEOUT_S 10u
/* The server drops a client that does not read for net_write_timeout seconds (60 by
 * default); the pipeline may pause on a Parquet row group, so allow longer. */
#define NET_WRITE_TIMEOUT_S "600"
#define MAX_PACKET (1024ul * 1024ul * 1024ul) /* the server's own ceiling: 1 GB */

typedef struct my_reader {
    lh_db_reader base; /* first: the interface sync.c drives */
    MYSQL *conn;
    MYSQL_RES *res;
    lh_mysql_col *cols;
    duckdb_vector *vecs; /* per next(): each column's vector in the output chunk */
    void **data;         /* per next(): each column's data array */
    lh_dsn dsn;
    char *raw_dsn; /* a secret: for lh_dsn_scrub only; wiped at close */
    char *location;
    bool done;   /* the result was read to its end */
    bool failed; /* an error ended the stream: the result is unfinished */
    atomic_bool interrupted;
    lh_db_cancel *cancel; /* the sync's cancellation point (sel->cancel), or NULL */
    pthread_mutex_t lock; /* guards fd against close while interrupt shuts it down */
    int fd;               /* the connection's socket, -1 once closed */
} my_reader;

/* Asked to stop: by interrupt() or through the sync's cancellation point. */
static bool my_stopped(my_reader *m)
{
    return atomic_load(&m->interrupted) || lh_db_cancel_fired(m->cancel);
}

/* ---------------------------------------------------------------- errors */

/* Sets err from libmariadb's last error on conn, prefixed with the location and `what`,
 * scrubbed of the DSN's secrets. Returns `code`. */
static int fail_conn(my_reader *m, int code, const char *what, lh_error *err)
{
    unsigned no = m->conn ? mysql_errno(m->conn) : 0;
    const char *msg = m->conn ? mysql_error(m->conn) : "";
    lh_error_set(err, code, "MySQL source %s: %s: %s (error %u)", m->location, what,
                 msg && *msg ? msg : "no detail", no);
    lh_dsn_scrub(err, &m->dsn, m->raw_dsn);
    return code;
}

/* The cause of a failed mysql_real_connect, for the message. */
static const char *connect_cause(unsigned no)
{
    switch (no) {
    case MY_CR_CONNECTION_ERROR:
    case MY_CR_CONN_HOST_ERROR:
    case MY_CR_UNKNOWN_HOST:
        return "cannot connect to the server";
    case MY_CR_SSL_CONNECTION_ERROR:
        return "TLS was required (sslmode) but could not be set up (the server may not offer "
               "it)";
    case MY_ER_ACCESS_DENIED:
    case MY_ER_ACCESS_DENIED_NO_PASSWORD:
        return "authentication failed (check the user and password)";
    case MY_ER_DBACCESS_DENIED:
        return "the user may not use this database";
    case MY_ER_BAD_DB:
        return "unknown database";
    default:
        return "connection failed";
    }
}

/* The cause of a statement the server rejected, for the message. */
static const char *query_cause(unsigned no)
{
    switch (no) {
    case MY_ER_NO_SUCH_TABLE:
        return "unknown table";
    case MY_ER_BAD_FIELD:
        return "unknown column";
    case MY_ER_PARSE:
        return "the query does not parse";
    case MY_CR_SERVER_GONE:
    case MY_CR_SERVER_LOST:
        return "the server went away";
    default:
        return "the server rejected the query";
    }
}

/* ---------------------------------------------------------------- the statement */

/* Appends `name` quoted as a MySQL identifier (backticks doubled). */

/* The query's length once trailing semicolons and spaces are stripped. */
static size_t query_len(const char *q)
{
    size_t n = strlen(q);
    while (n > 0 && (q[n - 1] == ';' || q[n - 1] == ' ' || q[n - 1] == '\t' || q[n - 1] == '\n' ||
                     q[n - 1] == '\r'))
        n--;
    return n;
}

/* The index of the first character of q[0..n) past spaces, opening parentheses and
 * comments (-- and # to the end of the line, C-style blocks). */
static size_t skip_preamble(const char *q, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (strchr(" \t\r\n(", q[i])) {
            i++;
        } else if (q[i] == '#' ||
                   (q[i] == '-' && i + 2 < n && q[i + 1] == '-' && strchr(" \t\r\n", q[i + 2]))) {
            while (i < n && q[i] != '\n')
                i++;
        } else if (q[i] == '/' && i + 1 < n && q[i + 1] == '*') {
            const char *end = NULL;
            for (size_t k = i + 2; k + 1 < n && !end; k++)
                if (q[k] == '*' && q[k + 1] == '/')
                    end = q + k + 2;
            i = end ? (size_t)(end - q) : n;
        } else {
            break;
        }
    }
    return i;
}

/* LH_EINVAL unless the query starts (past spaces, parentheses and comments) with the word
 * SELECT or WITH. The READ ONLY transaction is what keeps the source unchanged; this check
 * gives a clear message for the common mistake. */
static int check_query(const char *q, lh_error *err)
{
    size_t n = query_len(q), i = skip_preamble(q, n);
    if (i == n)
        return lh_error_set(err, LH_EINVAL, "the query is empty");
    static const char *const starts[] = {"select", "with"};
    for (size_t k = 0; k < sizeof starts / sizeof starts[0]; k++) {
        size_t l = strlen(starts[k]);
        if (n - i > l && strncasecmp(q + i, starts[k], l) == 0 &&
            !(isalnum((unsigned char)q[i + l]) || q[i + l] == '_' || q[i + l] == '$'))
            return 0;
    }
    return lh_error_set(err, LH_EINVAL, "the query must be one SELECT (or WITH ... SELECT)");
}

/* Appends what sel reads from: the quoted table, or the query as a derived table. */
static int put_source(lh_buf *b, const lh_db_select *sel, lh_error *err)
{
    if (sel->table)
        return lh_db_put_table(b, '`', "database", sel->table, err);
    lh_buf_putc(b, '(');
    lh_buf_append(b, sel->query, query_len(sel->query));
    lh_buf_puts(b, "\n) AS lh_query");
    return 0;
}

/* FLOAT columns: the text protocol prints a FLOAT with six significant digits (MariaDB's
 * %g: 123456789 as "123457000"), but CAST(f AS DOUBLE) prints the float's exact value and
 * (float)strtod() of that text is the stored float bit for bit. So the source is described
 * first by preparing the statement (the server plans it, never runs it), and when it has
 * FLOAT columns the select list names every column, casting those. On return *float_cols
 * (caller frees; NULL when there are none) marks them and `list` holds the select list
 * (left empty for "*"). A server that refuses to prepare it (a proxy without prepared
 * statements, max_prepared_stmt_count = 0) leaves the reason in `unplanned`. */
static int plan_floats(my_reader *m, const lh_db_select *sel, lh_buf *list, bool **float_cols,
                       lh_error *unplanned, lh_error *err)
{
    int rc = 0;
    lh_buf probe;
    lh_buf_init(&probe);
    *float_cols = NULL;
    MYSQL_STMT *st = mysql_stmt_init(m->conn);
    MYSQL_RES *meta = NULL;
    if (!st) {
        rc =
            lh_error_set(err, LH_EINTERNAL, "MySQL source %s: mysql_stmt_init failed", m->location);
        goto out;
    }
    lh_buf_puts(&probe, "SELECT * FROM ");
    if ((rc = put_source(&probe, sel, err)) < 0)
        goto out;
    if (mysql_stmt_prepare(st, probe.data, probe.len) != 0) {
        /* Not an error yet: the statement itself reports a bad query with the server's
         * own message, and without FLOAT columns nothing was needed (see describe). */
        lh_error_set(unplanned, LH_EUPSTREAM, "%s (error %u)", mysql_stmt_error(st),
                     mysql_stmt_errno(st));
        lh_dsn_scrub(unplanned, &m->dsn, m->raw_dsn);
        goto out;
    }
    meta = mysql_stmt_result_metadata(st);
    if (!meta) /* not a result set: the real statement reports it */
        goto out;
    unsigned n = mysql_num_fields(meta);
    MYSQL_FIELD *fields = mysql_fetch_fields(meta);
    bool any = false;
    for (unsigned i = 0; i < n; i++)
        any |= fields[i].type == MYSQL_TYPE_FLOAT;
    if (!any)
        goto out;
    *float_cols = lh_xcalloc(n, sizeof **float_cols);
    for (unsigned i = 0; i < n; i++) {
        bool is_float = fields[i].type == MYSQL_TYPE_FLOAT;
        (*float_cols)[i] = is_float;
        if (i)
            lh_buf_puts(list, ", ");
        if (is_float)
            lh_buf_puts(list, "CAST(");
        lh_db_put_ident(list, '`', fields[i].name, fields[i].name_length);
        if (is_float) {
            lh_buf_puts(list, " AS DOUBLE) AS ");
            lh_db_put_ident(list, '`', fields[i].name, fields[i].name_length);
        }
    }
out:
    if (meta)
        mysql_free_result(meta);
    if (st)
        mysql_stmt_close(st);
    lh_buf_free(&probe);
    return rc;
}

/* Builds the statement of sel into b: `list` (or *), the source, and the watermark's
 * condition (escaped by the connection). */
static int build_statement(my_reader *m, const lh_db_select *sel, const lh_buf *list, lh_buf *b,
                           lh_error *err)
{
    lh_buf_puts(b, "SELECT ");
    if (list->len)
        lh_buf_append(b, list->data, list->len);
    else
        lh_buf_putc(b, '*');
    lh_buf_puts(b, " FROM ");
    int rc = put_source(b, sel, err);
    if (rc < 0)
        return rc;
    if (sel->incremental_column && sel->watermark) {
        lh_buf_puts(b, " WHERE ");
        lh_db_put_ident(b, '`', sel->incremental_column, strlen(sel->incremental_column));
        lh_buf_puts(b, " > '");
        size_t wn = strlen(sel->watermark);
        char *esc = lh_xmalloc(wn * 2 + 1);
        unsigned long en = mysql_real_escape_string(m->conn, esc, sel->watermark, wn);
        lh_buf_append(b, esc, en);
        free(esc);
        lh_buf_putc(b, '\'');
    }
    return 0;
}

/* Fills the reader's columns from the result's fields; LH_EINVAL on a duplicate name.
 * float_cols (or NULL) marks the FLOAT columns plan_floats read as DOUBLE; when plan_floats
 * could not look (`unplanned` set), a FLOAT column is refused rather than read with six
 * digits. */
static int describe(my_reader *m, const bool *float_cols, const lh_error *unplanned, lh_error *err)
{
    lh_db_reader *r = &m->base;
    unsigned n = mysql_num_fields(m->res);
    MYSQL_FIELD *fields = mysql_fetch_fields(m->res);
    r->names = lh_xcalloc(n ? n : 1, sizeof *r->names);
    r->types = lh_xcalloc(n ? n : 1, sizeof *r->types);
    r->source_types = lh_xcalloc(n ? n : 1, sizeof *r->source_types);
    m->cols = lh_xcalloc(n ? n : 1, sizeof *m->cols);
    m->vecs = lh_xcalloc(n ? n : 1, sizeof *m->vecs);
    m->data = lh_xcalloc(n ? n : 1, sizeof *m->data);
    r->ncols = n;
    for (unsigned i = 0; i < n; i++) {
        r->names[i] = lh_xmalloc(fields[i].name_length + 1);
        memcpy(r->names[i], fields[i].name, fields[i].name_length);
        r->names[i][fields[i].name_length] = '\0';
        if (fields[i].type == MYSQL_TYPE_FLOAT && unplanned->code != 0) {
            lh_buf quoted;
            lh_buf_init(&quoted);
            lh_db_put_ident(&quoted, '`', fields[i].name, fields[i].name_length);
            int rc = lh_error_set(
                err, LH_EUPSTREAM,
                "MySQL source %s: column '%s' is a FLOAT, which the text protocol "
                "prints with six digits; reading it exactly needs the statement "
                "prepared, which the server refused: %s. Read it as CAST(%.*s AS "
                "DOUBLE) in a query",
                m->location, r->names[i], unplanned->message, (int)quoted.len, quoted.data);
            lh_buf_free(&quoted);
            return rc;
        }
        if (float_cols && float_cols[i] && fields[i].type == MYSQL_TYPE_DOUBLE) {
            MYSQL_FIELD as_float = fields[i];
            as_float.type = MYSQL_TYPE_FLOAT;
            lh_mysql_map_field(&as_float, &m->cols[i], &r->types[i], &r->source_types[i]);
        } else {
            lh_mysql_map_field(&fields[i], &m->cols[i], &r->types[i], &r->source_types[i]);
        }
        m->cols[i].type = r->types[i];
        for (unsigned j = 0; j < i; j++)
            if (strcmp(r->names[i], r->names[j]) == 0)
                return lh_error_set(err, LH_EINVAL,
                                    "MySQL source %s: the result has two columns named '%s': "
                                    "rename one (AS) in the query",
                                    m->location, r->names[i]);
    }
    if (n == 0)
        return lh_error_set(err, LH_EINVAL, "MySQL source %s: the result has no columns",
                            m->location);
    return 0;
}

/* ---------------------------------------------------------------- the reader */

static int my_next(lh_db_reader *r, duckdb_data_chunk out, lh_error *err)
{
    my_reader *m = (my_reader *)r;
    int rc = 0;
    idx_t row = 0;
    duckdb_data_chunk_reset(out);
    if (m->done)
        goto out;
    if (my_stopped(m)) {
        rc = lh_error_set(err, LH_ECANCELLED,
                          "MySQL source %s: the read was cancelled after %lld rows", m->location,
                          (long long)r->rows);
        goto out;
    }
    if (m->failed) {
        rc = lh_error_set(err, LH_EUPSTREAM, "MySQL source %s: the read already failed",
                          m->location);
        goto out;
    }
    for (size_t c = 0; c < r->ncols; c++) {
        m->vecs[c] = duckdb_data_chunk_get_vector(out, c);
        m->data[c] = duckdb_vector_get_data(m->vecs[c]);
        m->cols[c].list_size = 0;
    }
    idx_t cap = duckdb_vector_size();
    for (; row < cap; row++) {
        MYSQL_ROW values = mysql_fetch_row(m->res);
        if (!values) {
            if (my_stopped(m)) {
                rc = lh_error_set(err, LH_ECANCELLED,
                                  "MySQL source %s: the read was cancelled after %lld rows",
                                  m->location, (long long)(r->rows + (int64_t)row));
            } else if (mysql_errno(m->conn) != 0) {
                char what[96];
                snprintf(what, sizeof what, "the read failed after %lld rows",
                         (long long)(r->rows + (int64_t)row));
                rc = fail_conn(m, LH_EUPSTREAM, what, err);
            } else {
                m->done = true;
            }
            break;
        }
        unsigned long *lengths = mysql_fetch_lengths(m->res);
        for (size_t c = 0; c < r->ncols; c++) {
            if (!values[c]) {
                lh_vec_set_null(m->vecs[c], row);
                continue;
            }
            if (lh_mysql_put_value(&m->cols[c], m->vecs[c], m->data[c], row, values[c],
                                   lengths[c]) < 0) {
                rc = lh_error_setk(err, LH_EINVAL, "unmappable_value",
                                   "MySQL source %s: row %lld, column '%s' (%s): the value "
                                   "cannot be held by the column's mapped type (see "
                                   "docs/INGEST.md, MySQL and MariaDB type mapping)",
                                   m->location, (long long)(r->rows + (int64_t)row + 1),
                                   r->names[c], r->source_types[c]);
                goto out;
            }
        }
    }
out:
    if (rc < 0) {
        m->failed = true;
        row = 0;
    }
    duckdb_data_chunk_set_size(out, row);
    r->rows += (int64_t)row;
    return rc;
}

static void my_interrupt(lh_db_reader *r)
{
    my_reader *m = (my_reader *)r;
    atomic_store(&m->interrupted, true);
    pthread_mutex_lock(&m->lock);
    if (m->fd >= 0)
        shutdown(m->fd, SHUT_RDWR);
    pthread_mutex_unlock(&m->lock);
}

static void my_close(lh_db_reader *r)
{
    if (!r)
        return;
    my_reader *m = (my_reader *)r;
    pthread_mutex_lock(&m->lock);
    /* An unfinished result would be drained row by row by mysql_free_result: end the
     * connection under it first. */
    if (m->res && !m->done && m->fd >= 0)
        shutdown(m->fd, SHUT_RDWR);
    m->fd = -1;
    pthread_mutex_unlock(&m->lock);
    lh_db_cancel_detach(m->cancel); /* before the socket closes and its number is reused */
    if (m->res)
        mysql_free_result(m->res);
    if (m->conn)
        mysql_close(m->conn);
    lh_db_reader_free_columns(r);
    free(m->cols);
    free(m->vecs);
    free(m->data);
    free(m->location);
    lh_dsn_free(&m->dsn);
    lh_secret_free(m->raw_dsn);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Connects with the DSN's options; fills err (LH_EUPSTREAM) on failure. */
static int connect_server(my_reader *m, lh_error *err)
{
    const lh_dsn *d = &m->dsn;
    unsigned timeout = CONNECT_TIMEOUT_S;
    unsigned long max_packet = MAX_PACKET;
    unsigned int no_local_infile = 0;
    m->conn = mysql_init(NULL);
    if (!m->conn)
        return lh_error_set(err, LH_EINTERNAL, "MySQL source %s: mysql_init failed", m->location);
    mysql_options(m->conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_options(m->conn, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(m->conn, MYSQL_OPT_LOCAL_INFILE, &no_local_infile);
    mysql_options(m->conn, MYSQL_OPT_MAX_ALLOWED_PACKET, &max_packet);
    bool tls_required =
        d->sslmode && strcmp(d->sslmode, "disable") != 0 && strcmp(d->sslmode, "prefer") != 0;
    if (d->sslmode && strcmp(d->sslmode, "disable") != 0) {
        /* prefer: TLS when the server offers it; require: TLS or no read; verify-*: the
         * server's certificate (and name) checked too. libmariadb 3.3 refuses a server
         * without TLS before authenticating only when it verifies the certificate
         * (MYSQL_OPT_SSL_ENFORCE alone falls back to plain text), so `require` is also
         * checked once connected, below. */
        my_bool yes = 1;
        mysql_options(m->conn, MYSQL_OPT_SSL_ENFORCE, &yes);
        if (strncmp(d->sslmode, "verify-", 7) == 0)
            mysql_options(m->conn, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &yes);
    }
    if (!mysql_real_connect(m->conn, d->host, d->user, d->password, d->database, (unsigned)d->port,
                            d->socket, 0))
        return fail_conn(m, LH_EUPSTREAM, connect_cause(mysql_errno(m->conn)), err);
    m->fd = (int)mysql_get_socket(m->conn);
    if (lh_db_cancel_attach(m->cancel, m->fd) != 0)
        return lh_error_set(err, LH_ECANCELLED, "the read was cancelled while connecting");
    if (tls_required && !mysql_get_ssl_cipher(m->conn))
        return lh_error_set(err, LH_EUPSTREAM,
                            "MySQL source %s: TLS was required (sslmode=%s) but the server "
                            "does not offer it",
                            m->location, d->sslmode);
    return 0;
}

/* The session every read runs in (see the file comment). */
static const char *const session_statements[] = {
    ("SET time_zone = '+00:00', SESSION net_write_timeout = " NET_WRITE_TIMEOUT_S),
    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
};

lh_db_reader *lh_mysql_reader_open(const char *dsn, const lh_db_select *sel, lh_error *err)
{
    my_reader *m = NULL;
    bool *float_cols = NULL;
    lh_error unplanned = {0};
    lh_buf stmt, list;
    lh_buf_init(&stmt);
    lh_buf_init(&list);
    if (!sel || !!sel->table == !!sel->query) {
        lh_error_set(err, LH_EINVAL, "name exactly one of a table and a query");
        goto fail;
    }
    if (sel->query && check_query(sel->query, err) < 0)
        goto fail;
    if (sel->incremental_column && !*sel->incremental_column) {
        lh_error_set(err, LH_EINVAL, "the incremental column is empty");
        goto fail;
    }
    m = lh_xcalloc(1, sizeof *m);
    m->fd = -1;
    pthread_mutex_init(&m->lock, NULL);
    atomic_init(&m->interrupted, false);
    m->cancel = sel->cancel;
    m->base.next = my_next;
    m->base.interrupt = my_interrupt;
    m->base.close = my_close;
    if (lh_dsn_parse(LH_SOURCE_MYSQL, dsn, &m->dsn, err) < 0)
        goto fail;
    m->raw_dsn = lh_xstrdup(dsn);
    m->location = lh_dsn_location(&m->dsn);
    if (sel->table) {
        lh_buf probe; /* the table's name is checked before connecting */
        lh_buf_init(&probe);
        int rc = lh_db_put_table(&probe, '`', "database", sel->table, err);
        lh_buf_free(&probe);
        if (rc < 0)
            goto fail;
    }
    if (connect_server(m, err) < 0)
        goto fail;
    for (size_t i = 0; i < sizeof session_statements / sizeof session_statements[0]; i++) {
        if (mysql_query(m->conn, session_statements[i]) != 0) {
            fail_conn(m, LH_EUPSTREAM, "the session could not be set up", err);
            goto fail;
        }
    }
    if (plan_floats(m, sel, &list, &float_cols, &unplanned, err) < 0 ||
        build_statement(m, sel, &list, &stmt, err) < 0)
        goto fail;
    if (mysql_real_query(m->conn, stmt.data, stmt.len) != 0) {
        fail_conn(m, LH_EUPSTREAM, query_cause(mysql_errno(m->conn)), err);
        goto fail;
    }
    m->res = mysql_use_result(m->conn);
    if (!m->res) {
        if (mysql_field_count(m->conn) == 0)
            lh_error_set(err, LH_EINVAL,
                         "MySQL source %s: the statement returned no rows "
                         "(use one SELECT)",
                         m->location);
        else
            fail_conn(m, LH_EUPSTREAM, "the result could not be read", err);
        goto fail;
    }
    if (describe(m, float_cols, &unplanned, err) < 0)
        goto fail;
    lh_buf_free(&stmt);
    lh_buf_free(&list);
    free(float_cols);
    return &m->base;
fail:
    lh_buf_free(&stmt);
    lh_buf_free(&list);
    free(float_cols);
    /* A statement that failed because the sync was cancelled (its socket shut down under
     * it) reports the cancel, not a broken connection. */
    if (m && my_stopped(m) && (!err || err->code != LH_ECANCELLED))
        lh_error_set(err, LH_ECANCELLED,
                     "the read was cancelled while the source prepared its first rows");
    if (m)
        my_close(&m->base);
    return NULL;
}
