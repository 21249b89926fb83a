/*
 * common.c: the small things every file of src/sources/ shares: source kinds, the
 * reader's column arrays (secret strings are wiped by core's lh_secret_free).
 */
#include "sources_internal.h"

#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

const char *lh_source_kind_name(lh_source_kind kind)
{
    return kind == LH_SOURCE_MYSQL ? "mysql" : "postgres";
}

int lh_source_kind_parse(const char *s, lh_source_kind *out, lh_error *err)
{
    if (s && (strcmp(s, "postgres") == 0 || strcmp(s, "postgresql") == 0)) {
        *out = LH_SOURCE_POSTGRES;
        return 0;
    }
    if (s && (strcmp(s, "mysql") == 0 || strcmp(s, "mariadb") == 0)) {
        *out = LH_SOURCE_MYSQL;
        return 0;
    }
    return lh_error_setk(err, LH_EINVAL, "invalid_source_kind",
                         "unknown source kind '%s': use postgres or mysql", s ? s : "(none)");
}

void lh_db_reader_free_columns(lh_db_reader *r)
{
    for (size_t i = 0; i < r->ncols; i++) {
        if (r->names)
            free(r->names[i]);
        if (r->types && r->types[i])
            duckdb_destroy_logical_type(&r->types[i]);
        if (r->source_types)
            free(r->source_types[i]);
    }
    free(r->names);
    free(r->types);
    free(r->source_types);
    r->names = NULL;
    r->types = NULL;
    r->source_types = NULL;
    r->ncols = 0;
}

/* ---------------------------------------------------------------- SQL text */

void lh_db_put_ident(lh_buf *b, char quote, const char *s, size_t n)
{
    lh_buf_putc(b, quote);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == quote)
            lh_buf_putc(b, quote);
        lh_buf_putc(b, s[i]);
    }
    lh_buf_putc(b, quote);
}

int lh_db_put_table(lh_buf *b, char quote, const char *container, const char *table, lh_error *err)
{
    const char *dot = strchr(table, '.');
    if (!*table || (dot && (dot == table || !dot[1] || strchr(dot + 1, '.'))))
        return lh_error_set(err, LH_EINVAL,
                            "table \"%s\" is not a name: use table or %s.table (one dot, no "
                            "empty part)",
                            table, container);
    if (dot) {
        lh_db_put_ident(b, quote, table, (size_t)(dot - table));
        lh_buf_putc(b, '.');
        lh_db_put_ident(b, quote, dot + 1, strlen(dot + 1));
    } else {
        lh_db_put_ident(b, quote, table, strlen(table));
    }
    return 0;
}

/* ---------------------------------------------------------------- cancellation */

void lh_db_cancel_init(lh_db_cancel *c)
{
    pthread_mutex_init(&c->mu, NULL);
    c->fd = -1;
    atomic_init(&c->fired, false);
}

void lh_db_cancel_destroy(lh_db_cancel *c)
{
    pthread_mutex_destroy(&c->mu);
}

void lh_db_cancel_fire(void *ctx)
{
    lh_db_cancel *c = ctx;
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->fired, true);
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_unlock(&c->mu);
}

int lh_db_cancel_attach(lh_db_cancel *c, int fd)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->mu);
    bool fired = atomic_load(&c->fired);
    if (!fired)
        c->fd = fd;
    pthread_mutex_unlock(&c->mu);
    return fired ? -1 : 0;
}

void lh_db_cancel_detach(lh_db_cancel *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->fd = -1;
    pthread_mutex_unlock(&c->mu);
}

bool lh_db_cancel_fired(lh_db_cancel *c)
{
    return c && atomic_load(&c->fired);
}

/* ---------------------------------------------------------------- vector writing */

void lh_vec_set_null(duckdb_vector v, idx_t row)
{
    duckdb_vector_ensure_validity_writable(v);
    duckdb_validity_set_row_invalid(duckdb_vector_get_validity(v), row);
}

/* 10^n for n <= 38. */
static __int128 pow10_i128(int n)
{
    __int128 p = 1;
    for (int i = 0; i < n; i++)
        p *= 10;
    return p;
}

int lh_vec_put_decimal(duckdb_vector v, duckdb_logical_type type, idx_t row, __int128 unscaled)
{
    int width = duckdb_decimal_width(type);
    __int128 limit = pow10_i128(width > 38 ? 38 : width);
    if (unscaled >= limit || unscaled <= -limit)
        return -1;
    void *data = duckdb_vector_get_data(v);
    switch (duckdb_decimal_internal_type(type)) {
    case DUCKDB_TYPE_SMALLINT:
        ((int16_t *)data)[row] = (int16_t)unscaled;
        break;
    case DUCKDB_TYPE_INTEGER:
        ((int32_t *)data)[row] = (int32_t)unscaled;
        break;
    case DUCKDB_TYPE_BIGINT:
        ((int64_t *)data)[row] = (int64_t)unscaled;
        break;
    default: {
        duckdb_hugeint h;
        h.lower = (uint64_t)(unsigned __int128)unscaled;
        h.upper = (int64_t)(unscaled >> 64);
        ((duckdb_hugeint *)data)[row] = h;
        break;
    }
    }
    return 0;
}

int lh_decimal_parse(const char *s, size_t n, int precision, int scale, __int128 *out)
{
    if (precision < 1 || precision > 38 || scale < 0 || scale > precision)
        return -1;
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    __int128 limit = pow10_i128(precision), u = 0;
    int digits = 0, frac = 0;
    bool point = false;
    for (; i < n; i++) {
        char c = s[i];
        if (c == '.' && !point) {
            point = true;
            continue;
        }
        if (c < '0' || c > '9')
            return -1;
        digits++;
        if (point && frac >= scale) {
            if (c != '0') /* a digit past the scale: not exact */
                return -1;
            continue;
        }
        if (point)
            frac++;
        if (u > (limit - 1 - (c - '0')) / 10) /* u * 10 + digit would reach the limit */
            return -1;
        u = u * 10 + (c - '0');
    }
    if (digits == 0)
        return -1;
    for (; frac < scale; frac++) {
        if (u > (limit - 1) / 10)
            return -1;
        u *= 10;
    }
    *out = neg ? -u : u;
    return 0;
}
