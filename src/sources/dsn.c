/*
 * dsn.c: connection strings of database sources — parsing (URIs and libpq's key=value
 * form) and redaction, so that no message, log line, manifest or response ever carries a
 * password. Messages about a DSN never quote it: they name the part that is wrong.
 */
#include "sources_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define UNPARSABLE "<unparsable DSN>"

void lh_dsn_free(lh_dsn *d)
{
    if (!d)
        return;
    free(d->host);
    free(d->user);
    lh_secret_free(d->password);
    free(d->database);
    free(d->sslmode);
    free(d->socket);
    memset(d, 0, sizeof(*d));
}

static char *xstrndup(const char *s, size_t n)
{
    char *out = lh_xmalloc(n + 1);
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n). NULL when an escape is malformed or decodes to NUL. Caller
 * frees. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = lh_xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            sodium_memzero(out, n + 1);
            free(out);
            return NULL;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

/* The canonical sslmode of a spelling (libpq's, or MySQL's ssl-mode), or NULL. */
static const char *ssl_mode(const char *v)
{
    static const struct {
        const char *spelling, *mode;
    } modes[] = {
        {"disable", "disable"},
        {"disabled", "disable"},
        {"allow", "prefer"},
        {"prefer", "prefer"},
        {"preferred", "prefer"},
        {"require", "require"},
        {"required", "require"},
        {"verify-ca", "verify-ca"},
        {"verify_ca", "verify-ca"},
        {"verify-full", "verify-full"},
        {"verify_identity", "verify-full"},
    };
    for (size_t i = 0; v && i < sizeof(modes) / sizeof(modes[0]); i++)
        if (strcasecmp(v, modes[i].spelling) == 0)
            return modes[i].mode;
    return NULL;
}

/* Sets one parameter of the DSN from a key and its (decoded) value; takes value. */
static int set_param(lh_dsn *d, const char *key, char *value, lh_error *err)
{
    char **slot = NULL;
    if (strcmp(key, "host") == 0 || strcmp(key, "hostaddr") == 0)
        slot = &d->host;
    else if (strcmp(key, "user") == 0)
        slot = &d->user;
    else if (strcmp(key, "password") == 0)
        slot = &d->password;
    else if (strcmp(key, "dbname") == 0 || strcmp(key, "database") == 0)
        slot = &d->database;
    else if (strcmp(key, "unix_socket") == 0 || strcmp(key, "socket") == 0)
        slot = &d->socket;
    if (slot) {
        if (slot == &d->password)
            lh_secret_free(*slot);
        else
            free(*slot);
        *slot = value;
        return 0;
    }
    if (strcmp(key, "port") == 0) {
        char *end;
        long p = strtol(value, &end, 10);
        bool ok = *value && !*end && p > 0 && p < 65536;
        free(value);
        if (!ok)
            return lh_error_set(err, LH_EINVAL, "the DSN's port is not a number from 1 to 65535");
        d->port = (int)p;
        return 0;
    }
    if (strcmp(key, "sslmode") == 0 || strcmp(key, "ssl-mode") == 0 ||
        strcmp(key, "ssl_mode") == 0) {
        const char *mode = ssl_mode(value);
        free(value);
        if (!mode)
            return lh_error_set(err, LH_EINVAL,
                                "the DSN's sslmode is not one of disable, prefer, require, "
                                "verify-ca, verify-full");
        free(d->sslmode);
        d->sslmode = lh_xstrdup(mode);
        return 0;
    }
    free(value);
    if (d->kind == LH_SOURCE_POSTGRES)
        return 0; /* libpq has many more (connect_timeout, options, ...): it checks them */
    return lh_error_set(err, LH_EINVAL,
                        "the DSN has a parameter this server kind does not take ('%s'); use "
                        "host, port, user, password, dbname, sslmode, unix_socket",
                        key);
}

/* A token of the key=value form: a key, '=', then a value that is either single-quoted
 * (\' and \\ escapes) or a run of non-space characters (backslash escapes too). *p
 * advances past it. Returns 0 with *key and *value (caller frees), 1 at the end, -1 when
 * malformed. */
static int next_pair(const char **p, char **key, char **value)
{
    const char *s = *p;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s) {
        *p = s;
        return 1;
    }
    const char *k = s;
    while (*s && (isalnum((unsigned char)*s) || *s == '_' || *s == '-'))
        s++;
    size_t klen = (size_t)(s - k);
    while (isspace((unsigned char)*s))
        s++;
    if (klen == 0 || *s != '=')
        return -1;
    s++;
    while (isspace((unsigned char)*s))
        s++;
    lh_buf v;
    lh_buf_init(&v);
    if (*s == '\'') {
        s++;
        for (;; s++) {
            if (!*s) {
                if (v.data)
                    sodium_memzero(v.data, v.len);
                lh_buf_free(&v);
                return -1;
            }
            if (*s == '\'')
                break;
            if (*s == '\\' && s[1])
                s++;
            lh_buf_putc(&v, *s);
        }
        s++;
    } else {
        for (; *s && !isspace((unsigned char)*s); s++) {
            if (*s == '\\' && s[1])
                s++;
            lh_buf_putc(&v, *s);
        }
    }
    *key = xstrndup(k, klen);
    for (char *c = *key; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    *value = v.data ? v.data : lh_xstrdup("");
    *p = s;
    return 0;
}

static bool scheme_ok(lh_source_kind kind, const char *s, size_t n)
{
    static const char *const pg[] = {"postgresql", "postgres"};
    static const char *const my[] = {"mysql", "mariadb"};
    const char *const *names = kind == LH_SOURCE_POSTGRES ? pg : my;
    for (size_t i = 0; i < 2; i++)
        if (strlen(names[i]) == n && strncasecmp(s, names[i], n) == 0)
            return true;
    return false;
}

/* scheme://[user[:password]@][host][:port][/db][?k=v&...] */
static int parse_uri(lh_dsn *d, const char *dsn, const char *sep, lh_error *err)
{
    if (!scheme_ok(d->kind, dsn, (size_t)(sep - dsn)))
        return lh_error_set(err, LH_EINVAL, "the DSN's scheme is not %s",
                            d->kind == LH_SOURCE_POSTGRES ? "postgresql:// or postgres://"
                                                          : "mysql:// or mariadb://");
    const char *rest = sep + 3;
    const char *q = strchr(rest, '?');
    const char *end = q ? q : rest + strlen(rest);
    /* The user part ends at the last '@' before the query: a password may hold '@'. */
    const char *at = NULL;
    for (const char *c = rest; c < end; c++)
        if (*c == '@')
            at = c;
    const char *hostpart = rest;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        size_t ulen = (size_t)((colon ? colon : at) - rest);
        if (ulen && !(d->user = pct_decode(rest, ulen)))
            return lh_error_set(err, LH_EINVAL, "the DSN's user name has a bad %% escape");
        if (colon && !(d->password = pct_decode(colon + 1, (size_t)(at - colon - 1))))
            return lh_error_set(err, LH_EINVAL, "the DSN's password has a bad %% escape");
        hostpart = at + 1;
    }
    const char *slash = memchr(hostpart, '/', (size_t)(end - hostpart));
    const char *hend = slash ? slash : end;
    const char *portsep = NULL;
    if (*hostpart == '[') { /* [IPv6] */
        const char *close = memchr(hostpart, ']', (size_t)(hend - hostpart));
        if (!close)
            return lh_error_set(err, LH_EINVAL, "the DSN's host has an unclosed '['");
        if (close > hostpart + 1)
            d->host = xstrndup(hostpart + 1, (size_t)(close - hostpart - 1));
        if (close + 1 < hend && close[1] == ':')
            portsep = close + 1;
        else if (close + 1 != hend)
            return lh_error_set(err, LH_EINVAL, "the DSN's host is malformed after ']'");
    } else {
        /* A PostgreSQL URI may list hosts (h1:p1,h2:p2): keep the list whole for libpq. */
        portsep = strchr(hostpart, ',') && strchr(hostpart, ',') < hend
                      ? NULL
                      : memchr(hostpart, ':', (size_t)(hend - hostpart));
        size_t hlen = (size_t)((portsep ? portsep : hend) - hostpart);
        if (hlen && !(d->host = pct_decode(hostpart, hlen)))
            return lh_error_set(err, LH_EINVAL, "the DSN's host has a bad %% escape");
    }
    if (portsep) {
        char *port = xstrndup(portsep + 1, (size_t)(hend - portsep - 1));
        int rc = set_param(d, "port", port, err);
        if (rc)
            return rc;
    }
    if (slash && slash + 1 < end &&
        !(d->database = pct_decode(slash + 1, (size_t)(end - slash - 1))))
        return lh_error_set(err, LH_EINVAL, "the DSN's database name has a bad %% escape");
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        const char *amp = strchr(p, '&');
        const char *pend = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(pend - p));
        if (!eq || eq == p)
            return lh_error_set(err, LH_EINVAL, "the DSN's query string is not key=value&...");
        char *key = pct_decode(p, (size_t)(eq - p));
        char *value = pct_decode(eq + 1, (size_t)(pend - eq - 1));
        int rc = key && value ? set_param(d, key, value, err)
                              : lh_error_set(err, LH_EINVAL,
                                             "the DSN's query string has a bad "
                                             "%% escape");
        if (!(key && value))
            lh_secret_free(value);
        free(key);
        if (rc)
            return rc;
        p = amp ? amp + 1 : pend;
    }
    return 0;
}

static int parse_pairs(lh_dsn *d, const char *dsn, lh_error *err)
{
    const char *p = dsn;
    int n = 0;
    for (;;) {
        char *key = NULL, *value = NULL;
        int r = next_pair(&p, &key, &value);
        if (r == 1)
            break;
        if (r < 0)
            return lh_error_set(err, LH_EINVAL,
                                "the DSN is neither a URI (%s://...) nor key=value pairs "
                                "(an unterminated quote, or a word without '=')",
                                d->kind == LH_SOURCE_POSTGRES ? "postgresql" : "mysql");
        int rc = set_param(d, key, value, err);
        free(key);
        if (rc)
            return rc;
        n++;
    }
    if (n == 0)
        return lh_error_set(err, LH_EINVAL, "the DSN is empty");
    return 0;
}

int lh_dsn_parse(lh_source_kind kind, const char *dsn, lh_dsn *out, lh_error *err)
{
    memset(out, 0, sizeof(*out));
    out->kind = kind;
    if (!dsn || !*dsn)
        return lh_error_set(err, LH_EINVAL, "the DSN is empty");
    if (strlen(dsn) > 4096)
        return lh_error_set(err, LH_EINVAL, "the DSN is longer than 4096 bytes");
    for (const char *c = dsn; *c; c++)
        if ((unsigned char)*c < 0x20 && *c != '\t')
            return lh_error_set(err, LH_EINVAL, "the DSN holds a control character");
    const char *sep = strstr(dsn, "://");
    const char *first_eq = strchr(dsn, '=');
    int rc = sep && (!first_eq || sep < first_eq) ? parse_uri(out, dsn, sep, err)
                                                  : parse_pairs(out, dsn, err);
    if (rc)
        lh_dsn_free(out);
    return rc;
}

char *lh_dsn_redact(const char *dsn)
{
    if (!dsn)
        return lh_xstrdup(UNPARSABLE);
    lh_buf b;
    lh_buf_init(&b);
    const char *sep = strstr(dsn, "://");
    const char *first_eq = strchr(dsn, '=');
    if (sep && (!first_eq || sep < first_eq)) {
        /* Only a URI that parses is redacted piecewise: in one that does not (a raw '?' in
         * the password ends the authority early), the password is not where the cuts
         * below look for it, and would be copied out whole. */
        lh_source_kind kind = scheme_ok(LH_SOURCE_POSTGRES, dsn, (size_t)(sep - dsn))
                                  ? LH_SOURCE_POSTGRES
                                  : LH_SOURCE_MYSQL;
        lh_dsn parsed;
        lh_error ignored;
        if (lh_dsn_parse(kind, dsn, &parsed, &ignored) != 0)
            return lh_xstrdup(UNPARSABLE);
        lh_dsn_free(&parsed);
        const char *rest = sep + 3;
        const char *q = strchr(rest, '?');
        const char *end = q ? q : rest + strlen(rest);
        const char *at = NULL;
        for (const char *c = rest; c < end; c++)
            if (*c == '@')
                at = c;
        lh_buf_printf(&b, "%.*s", (int)(rest - dsn), dsn);
        const char *tail = rest;
        if (at) {
            const char *colon = memchr(rest, ':', (size_t)(at - rest));
            if (colon)
                lh_buf_printf(&b, "%.*s:***@", (int)(colon - rest), rest);
            else
                lh_buf_printf(&b, "%.*s@", (int)(at - rest), rest);
            tail = at + 1;
        }
        lh_buf_printf(&b, "%.*s", (int)(end - tail), tail);
        for (const char *p = q; p && *p;) { /* the query: password=*** */
            const char *amp = strchr(p + 1, '&');
            const char *pend = amp ? amp : p + strlen(p);
            const char *eq = memchr(p + 1, '=', (size_t)(pend - p - 1));
            if (eq && (size_t)(eq - p - 1) == 8 && strncasecmp(p + 1, "password", 8) == 0)
                lh_buf_printf(&b, "%cpassword=***", *p);
            else
                lh_buf_printf(&b, "%.*s", (int)(pend - p), p);
            p = amp;
        }
        return b.data ? b.data : lh_xstrdup("");
    }
    const char *p = dsn;
    for (bool first = true;; first = false) {
        char *key = NULL, *value = NULL;
        int r = next_pair(&p, &key, &value);
        if (r == 1)
            break;
        if (r < 0) {
            if (b.data)
                sodium_memzero(b.data, b.len);
            lh_buf_free(&b);
            return lh_xstrdup(UNPARSABLE);
        }
        if (!first)
            lh_buf_putc(&b, ' ');
        if (strcmp(key, "password") == 0) {
            lh_buf_puts(&b, "password=***");
        } else {
            lh_buf_printf(&b, "%s='", key);
            for (const char *c = value; *c; c++) {
                if (*c == '\'' || *c == '\\')
                    lh_buf_putc(&b, '\\');
                lh_buf_putc(&b, *c);
            }
            lh_buf_putc(&b, '\'');
        }
        free(key);
        lh_secret_free(value);
    }
    return b.data ? b.data : lh_xstrdup(UNPARSABLE);
}

char *lh_dsn_location(const lh_dsn *d)
{
    int port = d->port ? d->port : d->kind == LH_SOURCE_POSTGRES ? 5432 : 3306;
    const char *host = d->host ? d->host : d->socket ? d->socket : "localhost";
    bool v6 = strchr(host, ':') && !strchr(host, '/');
    return lh_xasprintf("%s%s%s:%d/%s", v6 ? "[" : "", host, v6 ? "]" : "", port,
                        d->database ? d->database : "");
}

void lh_dsn_scrub(lh_error *err, const lh_dsn *d, const char *raw_dsn)
{
    if (!err)
        return;
    if (raw_dsn && *raw_dsn)
        lh_error_scrub(err, raw_dsn, "***");
    if (d && d->password && *d->password)
        lh_error_scrub(err, d->password, "***");
}
