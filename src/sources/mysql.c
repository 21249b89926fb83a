/*
 * mysql.c: the MySQL / MariaDB reader (libmariadb), one implementation of lh_db_reader.
 *
 * The stream: one connection, one statement sent with mysql_real_query and read with
 * mysql_use_result, so the server sends rows as we fetch them and the client holds one row
 * at a time (never mysql_store_result, never LIMIT/OFFSET paging). The result's field
 * metadata arrives before its first row: that is the describe. Each row's values come as
 * text (the text protocol) and are converted here, in C, straight into the chunk's vectors;
 * the mapping is the table of docs/INGEST.md ("MySQL and MariaDB type mapping").
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
#include "sources_internal.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <mysql.h>

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
#define MY_BINARY_CHARSET 63 /* charsetnr of binary strings: BLOB, not VARCHAR */

#define CONNECT_TIMEOUT_S 10u
/* The server drops a client that does not read for net_write_timeout seconds (60 by
 * default); the pipeline may pause on a Parquet row group, so allow longer. */
#define NET_WRITE_TIMEOUT_S "600"
#define MAX_PACKET (1024ul * 1024ul * 1024ul) /* the server's own ceiling: 1 GB */

/* How a column's text becomes a vector value. */
typedef enum {
    COL_BOOL,
    COL_INT8,
    COL_INT16,
    COL_INT32,
    COL_INT64,
    COL_UINT8,
    COL_UINT16,
    COL_UINT32,
    COL_UINT64,
    COL_DECIMAL,
    COL_FLOAT,
    COL_DOUBLE,
    COL_DATE,
    COL_TIMESTAMP, /* datetime and timestamp: the same text, the same microseconds */
    COL_TIME,      /* a duration: INTERVAL */
    COL_YEAR,
    COL_BIT,
    COL_TEXT, /* checked to be UTF-8 */
    COL_BLOB,
    COL_SET,
} col_kind;

typedef struct my_col {
    col_kind kind;
    int precision, scale; /* COL_DECIMAL */
} my_col;

typedef struct my_reader {
    lh_db_reader base; /* first: the interface sync.c drives */
    MYSQL *conn;
    MYSQL_RES *res;
    my_col *cols;
    duckdb_vector *vecs; /* per next(): each column's vector in the output chunk */
    void **data;         /* per next(): each column's data array */
    idx_t *list_sizes;   /* per next(): COL_SET child vector sizes */
    lh_dsn dsn;
    char *raw_dsn; /* a secret: for lh_dsn_scrub only; wiped at close */
    char *location;
    bool done;   /* the result was read to its end */
    bool failed; /* an error ended the stream: the result is unfinished */
    atomic_bool interrupted;
    pthread_mutex_t lock; /* guards fd against close while interrupt shuts it down */
    int fd;               /* the connection's socket, -1 once closed */
} my_reader;

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
static void put_ident(lh_buf *b, const char *name, size_t n)
{
    lh_buf_putc(b, '`');
    for (size_t i = 0; i < n; i++) {
        if (name[i] == '`')
            lh_buf_putc(b, '`');
        lh_buf_putc(b, name[i]);
    }
    lh_buf_putc(b, '`');
}

/* Appends the quoted table name: "table" or "db.table"; LH_EINVAL for an empty part or more
 * than two. */
static int put_table(lh_buf *b, const char *table, lh_error *err)
{
    const char *dot = strchr(table, '.');
    if (dot && strchr(dot + 1, '.'))
        return lh_error_set(err, LH_EINVAL,
                            "table '%s' has more than two parts: use table or database.table",
                            table);
    if (!*table || dot == table || (dot && !dot[1]))
        return lh_error_set(err, LH_EINVAL,
                            "table '%s' has an empty part: use table or database.table", table);
    if (dot) {
        put_ident(b, table, (size_t)(dot - table));
        lh_buf_putc(b, '.');
        put_ident(b, dot + 1, strlen(dot + 1));
    } else {
        put_ident(b, table, strlen(table));
    }
    return 0;
}

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

/* Builds the statement of sel into b (the connection escapes the watermark). */
static int build_statement(my_reader *m, const lh_db_select *sel, lh_buf *b, lh_error *err)
{
    lh_buf_puts(b, "SELECT * FROM ");
    if (sel->table) {
        if (put_table(b, sel->table, err) < 0)
            return err->code;
    } else {
        lh_buf_putc(b, '(');
        lh_buf_append(b, sel->query, query_len(sel->query));
        lh_buf_puts(b, "\n) AS lh_query");
    }
    if (sel->incremental_column && sel->watermark) {
        lh_buf_puts(b, " WHERE ");
        put_ident(b, sel->incremental_column, strlen(sel->incremental_column));
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

/* ---------------------------------------------------------------- the describe */

/* A static table of the integer types: their names and the DuckDB types they become. */
static const struct {
    enum enum_field_types type;
    const char *name;
    col_kind is_signed, is_unsigned;
    duckdb_type duck_signed, duck_unsigned;
} int_types[] = {
    {MYSQL_TYPE_TINY, "tinyint", COL_INT8, COL_UINT8, DUCKDB_TYPE_TINYINT, DUCKDB_TYPE_UTINYINT},
    {MYSQL_TYPE_SHORT, "smallint", COL_INT16, COL_UINT16, DUCKDB_TYPE_SMALLINT,
     DUCKDB_TYPE_USMALLINT},
    {MYSQL_TYPE_INT24, "mediumint", COL_INT32, COL_UINT32, DUCKDB_TYPE_INTEGER,
     DUCKDB_TYPE_UINTEGER},
    {MYSQL_TYPE_LONG, "int", COL_INT32, COL_UINT32, DUCKDB_TYPE_INTEGER, DUCKDB_TYPE_UINTEGER},
    {MYSQL_TYPE_LONGLONG, "bigint", COL_INT64, COL_UINT64, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_UBIGINT},
};

/* True when the field's extended metadata (MariaDB 10.5+) has attribute `attr` equal to
 * `want`; when it has one at all, *name (if not NULL) gets a copy (caller frees). */
static bool field_attr_is(const MYSQL_FIELD *f, enum mariadb_field_attr_t attr, const char *want,
                          char **name)
{
    MARIADB_CONST_STRING s = {0};
    if (mariadb_field_attr(&s, f, attr) != 0 || !s.str || s.length == 0)
        return false;
    if (name) {
        *name = lh_xmalloc(s.length + 1);
        memcpy(*name, s.str, s.length);
        (*name)[s.length] = '\0';
    }
    return want && s.length == strlen(want) && strncasecmp(s.str, want, s.length) == 0;
}

/* Maps one field: sets *col, *type (caller destroys) and *source_type (caller frees). */
static void map_field(const MYSQL_FIELD *f, my_col *col, duckdb_logical_type *type,
                      char **source_type)
{
    bool is_unsigned = (f->flags & UNSIGNED_FLAG) != 0;
    bool is_binary = f->charsetnr == MY_BINARY_CHARSET;
    const char *uns = is_unsigned ? " unsigned" : "";
    memset(col, 0, sizeof *col);

    /* tinyint(1) is how MySQL spells BOOLEAN (bool and boolean are its aliases). */
    if (f->type == MYSQL_TYPE_TINY && f->length == 1) {
        col->kind = COL_BOOL;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_BOOLEAN);
        *source_type = lh_xasprintf("tinyint(1)%s", uns);
        return;
    }
    for (size_t i = 0; i < sizeof int_types / sizeof int_types[0]; i++) {
        if (int_types[i].type != f->type)
            continue;
        col->kind = is_unsigned ? int_types[i].is_unsigned : int_types[i].is_signed;
        *type = duckdb_create_logical_type(is_unsigned ? int_types[i].duck_unsigned
                                                       : int_types[i].duck_signed);
        *source_type = lh_xasprintf("%s%s", int_types[i].name, uns);
        return;
    }
    switch (f->type) {
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL: {
        /* The display length counts the digits, the point (when scale > 0) and the sign
         * (unless unsigned). */
        int scale = (int)f->decimals;
        int precision = (int)f->length - (scale > 0 ? 1 : 0) - (is_unsigned ? 0 : 1);
        if (precision < scale)
            precision = scale;
        if (precision < 1)
            precision = 1;
        *source_type = lh_xasprintf("decimal(%d,%d)%s", precision, scale, uns);
        if (precision <= 38) {
            col->kind = COL_DECIMAL;
            col->precision = precision;
            col->scale = scale;
            *type = duckdb_create_decimal_type((uint8_t)precision, (uint8_t)scale);
        } else {
            col->kind = COL_TEXT; /* the exact text: DuckDB's DECIMAL stops at 38 digits */
            *type = duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
        }
        return;
    }
    case MYSQL_TYPE_FLOAT:
        col->kind = COL_FLOAT;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_FLOAT);
        *source_type = lh_xasprintf("float%s", uns);
        return;
    case MYSQL_TYPE_DOUBLE:
        col->kind = COL_DOUBLE;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_DOUBLE);
        *source_type = lh_xasprintf("double%s", uns);
        return;
    case MYSQL_TYPE_DATE:
    case MYSQL_TYPE_NEWDATE:
        col->kind = COL_DATE;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_DATE);
        *source_type = lh_xstrdup("date");
        return;
    case MYSQL_TYPE_DATETIME:
    case MYSQL_TYPE_DATETIME2:
    case MYSQL_TYPE_TIMESTAMP:
    case MYSQL_TYPE_TIMESTAMP2: {
        bool tz = f->type == MYSQL_TYPE_TIMESTAMP || f->type == MYSQL_TYPE_TIMESTAMP2;
        col->kind = COL_TIMESTAMP;
        *type = duckdb_create_logical_type(tz ? DUCKDB_TYPE_TIMESTAMP_TZ : DUCKDB_TYPE_TIMESTAMP);
        *source_type = f->decimals > 0 && f->decimals <= 6
                           ? lh_xasprintf("%s(%u)", tz ? "timestamp" : "datetime", f->decimals)
                           : lh_xstrdup(tz ? "timestamp" : "datetime");
        return;
    }
    case MYSQL_TYPE_TIME:
    case MYSQL_TYPE_TIME2:
        col->kind = COL_TIME;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_INTERVAL);
        *source_type = f->decimals > 0 && f->decimals <= 6 ? lh_xasprintf("time(%u)", f->decimals)
                                                           : lh_xstrdup("time");
        return;
    case MYSQL_TYPE_YEAR:
        col->kind = COL_YEAR;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_SMALLINT);
        *source_type = lh_xstrdup("year");
        return;
    case MYSQL_TYPE_BIT:
        col->kind = COL_BIT;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_UBIGINT);
        *source_type = lh_xasprintf("bit(%lu)", f->length);
        return;
    case MYSQL_TYPE_JSON: /* MySQL 8's own type; MariaDB's json is a checked longtext */
        col->kind = COL_TEXT;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
        *source_type = lh_xstrdup("json");
        return;
    default:
        break;
    }
    /* The string family: char, varchar, text, binary, varbinary, blob, enum, set, json,
     * and MariaDB's types sent as strings (uuid, inet6, ...), whose name the extended
     * metadata carries. */
    char *type_name = NULL;
    bool is_json = field_attr_is(f, MARIADB_FIELD_ATTR_FORMAT_NAME, "json", NULL);
    field_attr_is(f, MARIADB_FIELD_ATTR_DATA_TYPE_NAME, NULL, &type_name);
    if (f->flags & SET_FLAG) {
        col->kind = COL_SET;
        duckdb_logical_type child = duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
        *type = duckdb_create_list_type(child);
        duckdb_destroy_logical_type(&child);
        *source_type = lh_xstrdup("set");
    } else if (is_json || (f->flags & ENUM_FLAG) || !is_binary) {
        col->kind = COL_TEXT;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
        if (is_json)
            *source_type = lh_xstrdup("json");
        else if (f->flags & ENUM_FLAG)
            *source_type = lh_xstrdup("enum");
        else if (type_name)
            *source_type = lh_xstrdup(type_name);
        else
            *source_type = lh_xstrdup(
                f->type == MYSQL_TYPE_STRING                                    ? "char"
                : f->type == MYSQL_TYPE_VAR_STRING                              ? "varchar"
                : f->type == MYSQL_TYPE_NULL                                    ? "null"
                : f->type == MYSQL_TYPE_GEOMETRY                                ? "geometry"
                : f->type >= MYSQL_TYPE_TINY_BLOB && f->type <= MYSQL_TYPE_BLOB ? "text"
                                                                                : "unknown");
    } else {
        col->kind = COL_BLOB;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_BLOB);
        *source_type = type_name ? lh_xstrdup(type_name)
                                 : lh_xstrdup(f->type == MYSQL_TYPE_STRING       ? "binary"
                                              : f->type == MYSQL_TYPE_VAR_STRING ? "varbinary"
                                              : f->type == MYSQL_TYPE_GEOMETRY   ? "geometry"
                                                                                 : "blob");
    }
    free(type_name);
}

/* Fills the reader's columns from the result's fields; LH_EINVAL on a duplicate name. */
static int describe(my_reader *m, lh_error *err)
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
    m->list_sizes = lh_xcalloc(n ? n : 1, sizeof *m->list_sizes);
    r->ncols = n;
    for (unsigned i = 0; i < n; i++) {
        r->names[i] = lh_xmalloc(fields[i].name_length + 1);
        memcpy(r->names[i], fields[i].name, fields[i].name_length);
        r->names[i][fields[i].name_length] = '\0';
        map_field(&fields[i], &m->cols[i], &r->types[i], &r->source_types[i]);
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

/* ---------------------------------------------------------------- text → values */

/* Accumulates the digits of s[i..n) into *v, failing past `limit`. */
static int accumulate(const char *s, size_t n, size_t i, uint64_t limit, uint64_t *v)
{
    if (i == n)
        return -1;
    *v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (*v > limit / 10 || (*v == limit / 10 && d > limit % 10))
            return -1;
        *v = *v * 10 + d;
    }
    return 0;
}

/* Parses an optionally signed decimal integer within [min, max]; -1 on anything else. */
static int parse_i64(const char *s, size_t n, int64_t min, int64_t max, int64_t *out)
{
    bool neg = n > 0 && s[0] == '-';
    size_t i = n > 0 && (s[0] == '-' || s[0] == '+') ? 1 : 0;
    uint64_t v, limit = neg ? (uint64_t)(-(min + 1)) + 1 : (uint64_t)max;
    if (accumulate(s, n, i, limit, &v) < 0)
        return -1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* Parses an unsigned decimal integer up to max; -1 on anything else. */
static int parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    return accumulate(s, n, n > 0 && s[0] == '+' ? 1 : 0, max, out);
}

/* Reads exactly `width` digits at s[*i]. */
static int digits(const char *s, size_t n, size_t *i, int width, int *out)
{
    int v = 0;
    for (int k = 0; k < width; k++, (*i)++) {
        if (*i >= n || s[*i] < '0' || s[*i] > '9')
            return -1;
        v = v * 10 + (s[*i] - '0');
    }
    *out = v;
    return 0;
}

/* Reads ".ffffff" (1 to 6 digits) as microseconds, if present. */
static int fraction(const char *s, size_t n, size_t *i, int64_t *micros)
{
    *micros = 0;
    if (*i == n || s[*i] != '.')
        return 0;
    (*i)++;
    int k = 0;
    for (; *i < n && s[*i] >= '0' && s[*i] <= '9'; (*i)++, k++) {
        if (k >= 6)
            return -1;
        *micros = *micros * 10 + (s[*i] - '0');
    }
    if (k == 0)
        return -1;
    for (; k < 6; k++)
        *micros *= 10;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* "YYYY-MM-DD" at s[*i]: 1 for a zero date (a zero month or day: MySQL's "no date", which
 * becomes NULL), 0 with *days set, -1 for text that is not a date. */
static int parse_date(const char *s, size_t n, size_t *i, int64_t *days)
{
    int y, mo, d;
    if (digits(s, n, i, 4, &y) < 0 || *i >= n || s[(*i)++] != '-' || digits(s, n, i, 2, &mo) < 0 ||
        *i >= n || s[(*i)++] != '-' || digits(s, n, i, 2, &d) < 0)
        return -1;
    if (mo == 0 || d == 0)
        return 1;
    if (mo > 12 || d > days_in_month(y, mo))
        return -1;
    *days = days_from_civil(y, mo, d);
    return 0;
}

/* "YYYY-MM-DD HH:MM:SS[.ffffff]": as parse_date, *micros since the epoch. */
static int parse_datetime(const char *s, size_t n, int64_t *micros)
{
    size_t i = 0;
    int64_t days = 0, frac;
    int h, mi, sec;
    int rc = parse_date(s, n, &i, &days);
    if (rc < 0 || i >= n || s[i++] != ' ' || digits(s, n, &i, 2, &h) < 0 || i >= n ||
        s[i++] != ':' || digits(s, n, &i, 2, &mi) < 0 || i >= n || s[i++] != ':' ||
        digits(s, n, &i, 2, &sec) < 0 || fraction(s, n, &i, &frac) < 0 || i != n || h > 23 ||
        mi > 59 || sec > 59)
        return -1;
    if (rc == 1)
        return 1;
    *micros = ((days * 24 + h) * 60 + mi) * 60 * INT64_C(1000000) + sec * INT64_C(1000000) + frac;
    return 0;
}

/* "[-]H{1,3}:MM:SS[.ffffff]" (MySQL's TIME, a duration) as microseconds. */
static int parse_time(const char *s, size_t n, int64_t *micros)
{
    size_t i = 0;
    bool neg = n > 0 && s[0] == '-';
    if (neg)
        i++;
    int64_t h = 0, frac;
    int mi, sec, k = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9' && k < 4; i++, k++)
        h = h * 10 + (s[i] - '0');
    if (k == 0 || i >= n || s[i++] != ':' || digits(s, n, &i, 2, &mi) < 0 || i >= n ||
        s[i++] != ':' || digits(s, n, &i, 2, &sec) < 0 || fraction(s, n, &i, &frac) < 0 || i != n ||
        mi > 59 || sec > 59)
        return -1;
    int64_t v = ((h * 60 + mi) * 60 + sec) * INT64_C(1000000) + frac;
    *micros = neg ? -v : v;
    return 0;
}

/* Floats and doubles: the server prints them with %g-like text ("-1.5e-7"). */
static int parse_double(const char *s, size_t n, double *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + n || (errno == ERANGE && isinf(v)))
        return -1;
    *out = v;
    return 0;
}

/* Stores row value s[0..n) of column c into row `row` of its vector. -1 when the text
 * cannot be held by the column's type (an unmappable value). */
static int put_value(my_reader *m, size_t c, idx_t row, const char *s, size_t n)
{
    const my_col *col = &m->cols[c];
    duckdb_vector v = m->vecs[c];
    void *data = m->data[c];
    int64_t i64;
    uint64_t u64;
    double dbl;
    int rc;
    switch (col->kind) {
    case COL_BOOL:
        /* tinyint(1) may hold -128..127: only 0 and 1 are booleans; anything else would be
         * silently flattened, so it is refused (a query with `col + 0` keeps the number). */
        if (parse_i64(s, n, 0, 1, &i64) < 0)
            return -1;
        ((bool *)data)[row] = i64 == 1;
        return 0;
    case COL_INT8:
        if (parse_i64(s, n, INT8_MIN, INT8_MAX, &i64) < 0)
            return -1;
        ((int8_t *)data)[row] = (int8_t)i64;
        return 0;
    case COL_INT16:
    case COL_YEAR:
        if (parse_i64(s, n, INT16_MIN, INT16_MAX, &i64) < 0)
            return -1;
        ((int16_t *)data)[row] = (int16_t)i64;
        return 0;
    case COL_INT32:
        if (parse_i64(s, n, INT32_MIN, INT32_MAX, &i64) < 0)
            return -1;
        ((int32_t *)data)[row] = (int32_t)i64;
        return 0;
    case COL_INT64:
        if (parse_i64(s, n, INT64_MIN, INT64_MAX, &i64) < 0)
            return -1;
        ((int64_t *)data)[row] = i64;
        return 0;
    case COL_UINT8:
        if (parse_u64(s, n, UINT8_MAX, &u64) < 0)
            return -1;
        ((uint8_t *)data)[row] = (uint8_t)u64;
        return 0;
    case COL_UINT16:
        if (parse_u64(s, n, UINT16_MAX, &u64) < 0)
            return -1;
        ((uint16_t *)data)[row] = (uint16_t)u64;
        return 0;
    case COL_UINT32:
        if (parse_u64(s, n, UINT32_MAX, &u64) < 0)
            return -1;
        ((uint32_t *)data)[row] = (uint32_t)u64;
        return 0;
    case COL_UINT64:
        if (parse_u64(s, n, UINT64_MAX, &u64) < 0)
            return -1;
        ((uint64_t *)data)[row] = u64;
        return 0;
    case COL_DECIMAL: {
        __int128 unscaled;
        if (lh_decimal_parse(s, n, col->precision, col->scale, &unscaled) < 0 ||
            lh_vec_put_decimal(v, m->base.types[c], row, unscaled) < 0)
            return -1;
        return 0;
    }
    case COL_FLOAT:
        /* the server prints a float with six digits, so its text never rounds past FLT_MAX */
        if (parse_double(s, n, &dbl) < 0 || fabs(dbl) > FLT_MAX)
            return -1;
        ((float *)data)[row] = (float)dbl;
        return 0;
    case COL_DOUBLE:
        if (parse_double(s, n, &dbl) < 0)
            return -1;
        ((double *)data)[row] = dbl;
        return 0;
    case COL_DATE: {
        size_t i = 0;
        rc = parse_date(s, n, &i, &i64);
        if (rc < 0 || i != n || (rc == 0 && (i64 < INT32_MIN || i64 > INT32_MAX)))
            return -1;
        if (rc == 1)
            lh_vec_set_null(v, row);
        else
            ((duckdb_date *)data)[row].days = (int32_t)i64;
        return 0;
    }
    case COL_TIMESTAMP:
        rc = parse_datetime(s, n, &i64);
        if (rc < 0)
            return -1;
        if (rc == 1)
            lh_vec_set_null(v, row);
        else
            ((duckdb_timestamp *)data)[row].micros = i64;
        return 0;
    case COL_TIME:
        if (parse_time(s, n, &i64) < 0)
            return -1;
        ((duckdb_interval *)data)[row] = (duckdb_interval){.months = 0, .days = 0, .micros = i64};
        return 0;
    case COL_BIT:
        /* The text protocol sends bit(n) as its (n + 7) / 8 bytes, most significant first. */
        if (n > 8)
            return -1;
        u64 = 0;
        for (size_t i = 0; i < n; i++)
            u64 = (u64 << 8) | (unsigned char)s[i];
        ((uint64_t *)data)[row] = u64;
        return 0;
    case COL_TEXT:
        if (!lh_utf8_valid(s, n))
            return -1;
        duckdb_vector_assign_string_element_len(v, row, s, n);
        return 0;
    case COL_BLOB:
        duckdb_vector_assign_string_element_len(v, row, s, n);
        return 0;
    case COL_SET: {
        /* The members, comma-separated (a member cannot contain a comma); '' is the empty
         * set. */
        if (!lh_utf8_valid(s, n))
            return -1;
        idx_t count = 0;
        if (n > 0) {
            count = 1;
            for (size_t i = 0; i < n; i++)
                count += s[i] == ',';
        }
        idx_t offset = m->list_sizes[c];
        if (duckdb_list_vector_reserve(v, offset + count) != DuckDBSuccess)
            return -1;
        duckdb_vector child = duckdb_list_vector_get_child(v);
        size_t start = 0;
        for (idx_t k = 0; k < count; k++) {
            size_t end = start;
            while (end < n && s[end] != ',')
                end++;
            duckdb_vector_assign_string_element_len(child, offset + k, s + start, end - start);
            start = end + 1;
        }
        m->list_sizes[c] = offset + count;
        if (duckdb_list_vector_set_size(v, offset + count) != DuckDBSuccess)
            return -1;
        ((duckdb_list_entry *)data)[row] = (duckdb_list_entry){.offset = offset, .length = count};
        return 0;
    }
    }
    return -1;
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
    if (atomic_load(&m->interrupted)) {
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
        m->list_sizes[c] = 0;
    }
    idx_t cap = duckdb_vector_size();
    for (; row < cap; row++) {
        MYSQL_ROW values = mysql_fetch_row(m->res);
        if (!values) {
            if (atomic_load(&m->interrupted)) {
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
            if (put_value(m, c, row, values[c], lengths[c]) < 0) {
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
    if (m->res)
        mysql_free_result(m->res);
    if (m->conn)
        mysql_close(m->conn);
    lh_db_reader_free_columns(r);
    free(m->cols);
    free(m->vecs);
    free(m->data);
    free(m->list_sizes);
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
    if (tls_required && !mysql_get_ssl_cipher(m->conn))
        return lh_error_set(err, LH_EUPSTREAM,
                            "MySQL source %s: TLS was required (sslmode=%s) but the server "
                            "does not offer it",
                            m->location, d->sslmode);
    return 0;
}

/* The session every read runs in (see the file comment). */
static const char *const session_statements[] = {
    "SET time_zone = '+00:00', SESSION net_write_timeout = " NET_WRITE_TIMEOUT_S,
    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
};

lh_db_reader *lh_mysql_reader_open(const char *dsn, const lh_db_select *sel, lh_error *err)
{
    my_reader *m = NULL;
    lh_buf stmt;
    lh_buf_init(&stmt);
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
        int rc = put_table(&probe, sel->table, err);
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
    if (build_statement(m, sel, &stmt, err) < 0)
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
    if (describe(m, err) < 0)
        goto fail;
    lh_buf_free(&stmt);
    return &m->base;
fail:
    lh_buf_free(&stmt);
    if (m)
        my_close(&m->base);
    return NULL;
}
