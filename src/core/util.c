/*
 * util.c: names, time, random ids, JSON helpers, memory and the growable buffer.
 */
#include "core.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

/* ---------------------------------------------------------------- memory */

static void oom(void)
{
    static const char msg[] = "{\"level\":\"error\",\"event\":\"out_of_memory\"}\n";
    fwrite(msg, 1, sizeof(msg) - 1, stderr);
    abort();
}

void *lh_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *lh_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *lh_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom();
    return q;
}

char *lh_xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        oom();
    return p;
}

char *lh_xasprintf(const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom();
    char *s = lh_xmalloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return s;
}

void lh_secret_free(char *secret)
{
    if (!secret)
        return;
    sodium_memzero(secret, strlen(secret));
    free(secret);
}

/* ---------------------------------------------------------------- buffer */

void lh_buf_init(lh_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void lh_buf_free(lh_buf *b)
{
    free(b->data);
    lh_buf_init(b);
}

static void buf_reserve(lh_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = lh_xrealloc(b->data, cap);
    b->cap = cap;
}

void lh_buf_append(lh_buf *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void lh_buf_puts(lh_buf *b, const char *s)
{
    lh_buf_append(b, s, strlen(s));
}

void lh_buf_putc(lh_buf *b, char c)
{
    buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void lh_buf_printf(lh_buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void lh_buf_consume(lh_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        if (b->data)
            b->data[0] = '\0';
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
        n = 2;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n > left)
        return 0;
    unsigned cp = c & (0xFF >> (n + 1));
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

void lh_buf_put_escaped(lh_buf *b, const char *s, size_t len, bool controls)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq_len(p + i, len - i);
        bool bad = n == 0 || (controls && n == 1 && (p[i] < 0x20 || p[i] == 0x7f));
        if (!bad) {
            lh_buf_append(b, p + i, n);
            i += n;
            continue;
        }
        char esc[4] = {'\\', 'x', hex[p[i] >> 4], hex[p[i] & 15]};
        lh_buf_append(b, esc, sizeof(esc));
        i++;
    }
}

char *lh_escape(const char *s, size_t len, bool controls)
{
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_put_escaped(&b, s, len, controls);
    return b.data ? b.data : lh_xstrdup("");
}

bool lh_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq_len(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

size_t lh_utf8_cut(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    /* Back up over at most three continuation bytes to the lead byte of the last sequence;
     * drop it if the sequence does not fit in len. */
    size_t i = len, back = 0;
    while (i > 0 && back < 3 && (p[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0 || p[i - 1] < 0x80)
        return len; /* ends in ASCII (or only continuation bytes: nothing to repair) */
    unsigned c = p[i - 1];
    size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return back + 1 >= need ? len : i - 1;
}

void lh_buf_json_string(lh_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    buf_reserve(b, len + 2);
    lh_buf_putc(b, '"');
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            run++;
            i++;
            continue;
        }
        if (run) {
            lh_buf_append(b, p + i - run, run);
            run = 0;
        }
        if (c >= 0x80) {
            size_t n = utf8_seq_len(p + i, len - i);
            if (n == 0) {
                lh_buf_puts(b, "\\ufffd");
                i++;
            } else {
                lh_buf_append(b, p + i, n);
                i += n;
            }
            continue;
        }
        switch (c) {
        case '"':
            lh_buf_puts(b, "\\\"");
            break;
        case '\\':
            lh_buf_puts(b, "\\\\");
            break;
        case '\n':
            lh_buf_puts(b, "\\n");
            break;
        case '\r':
            lh_buf_puts(b, "\\r");
            break;
        case '\t':
            lh_buf_puts(b, "\\t");
            break;
        default: {
            char esc[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
            lh_buf_puts(b, esc);
        }
        }
        i++;
    }
    if (run)
        lh_buf_append(b, p + i - run, run);
    lh_buf_putc(b, '"');
}

/* ---------------------------------------------------------------- names */

int lh_name_validate(const char *name, const char *what, lh_error *err)
{
    if (!name || !*name)
        return lh_error_set(err, LH_EINVAL, "%s is empty", what);
    size_t n = strlen(name);
    if (n > 128)
        return lh_error_set(err, LH_EINVAL, "%s is %zu bytes long; the limit is 128", what, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) {
            if (c < 0x20 || c == 0x7f)
                return lh_error_set(err, LH_EINVAL,
                                    "%s contains a control character (byte 0x%02x at %zu); use "
                                    "letters, digits and '_'",
                                    what, c, i);
            return lh_error_set(err, LH_EINVAL,
                                "%s '%s' is not valid: use letters, digits and '_', starting "
                                "with a letter or '_'",
                                what, name);
        }
    }
    if (n >= 2 && name[0] == '_' && name[1] == '_')
        return lh_error_set(err, LH_EINVAL, "%s '%s' starts with '__', which is reserved", what,
                            name);
    /* DuckDB's built-in views live under these prefixes; a dataset named like one would
     * shadow it or be confused with it. */
    static const char *const reserved[] = {"duckdb_", "sqlite_", "pragma_", "pg_"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strncasecmp(name, reserved[i], strlen(reserved[i])) == 0)
            return lh_error_set(err, LH_EINVAL,
                                "%s '%s' starts with '%s', which is reserved for DuckDB", what,
                                name, reserved[i]);
    if (strcasecmp(name, "information_schema") == 0)
        return lh_error_set(err, LH_EINVAL, "%s 'information_schema' is reserved", what);
    return 0;
}

int lh_bucket_name_validate(const char *name, lh_error *err)
{
    if (!name || !*name)
        return lh_error_set(err, LH_EINVAL, "bucket name is empty");
    size_t n = strlen(name);
    if (n > 63)
        return lh_error_set(err, LH_EINVAL, "bucket name is %zu bytes long; the limit is 63", n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '-'));
        if (!ok)
            return lh_error_set(err, LH_EINVAL,
                                "bucket name is not valid: use lowercase letters, digits, '_' "
                                "and '-', starting with a letter or digit");
    }
    return 0;
}

/* ---------------------------------------------------------------- time, ids */

char *lh_time_rfc3339(char *buf)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, LH_TS_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, LH_TS_MAX - n, ".%03dZ", (int)(ts.tv_nsec / 1000000L) % 1000);
    return buf;
}

int64_t lh_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lh_random_hex(char *buf, size_t hex_chars)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    size_t need = (hex_chars + 1) / 2;
    if (need > sizeof(raw))
        need = sizeof(raw);
    size_t got = 0;
    while (got < need) {
        ssize_t r = getrandom(raw + got, need - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            abort(); /* the kernel's RNG does not fail on Linux >= 3.17 */
        got += (size_t)r;
    }
    size_t i;
    for (i = 0; i < hex_chars && i / 2 < need; i++)
        buf[i] = hex[(i & 1) ? (raw[i / 2] & 15) : (raw[i / 2] >> 4)];
    buf[i] = '\0';
}

/* ---------------------------------------------------------------- JSON */

const char *lh_json_str(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

json_int_t lh_json_int(const json_t *obj, const char *key, json_int_t dflt)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

char *lh_json_dumps(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (!s)
        oom();
    return s;
}

json_t *lh_json_parse_object(const char *text, size_t len, lh_error *err)
{
    if (!text || len == 0) {
        lh_error_set(err, LH_EINVAL, "the request body is empty; a JSON object was expected");
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        lh_error_setk(err, LH_EINVAL, "invalid_json", "invalid JSON at line %d column %d: %s",
                      jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        lh_error_setk(err, LH_EINVAL, "invalid_json", "a JSON object was expected");
        return NULL;
    }
    return v;
}
