/*
 * jcs.c: RFC 8785 JSON Canonicalization Scheme, over the raw JSON text.
 *
 * Working on the text (not on a parsed jansson value) lets us refuse what RFC 8785 and
 * I-JSON (RFC 7493) forbid and a parser would silently accept or repair: duplicate keys,
 * lone surrogates (\ud800 alone), invalid UTF-8, numbers outside the double range.
 * NaN and Infinity are not JSON tokens, so the grammar refuses them.
 *
 * Output rules (RFC 8785 §3.2):
 *   - no whitespace; object members sorted by their keys' UTF-16 code units;
 *   - strings: only '"', '\\' and U+0000..U+001F escaped; \b \t \n \f \r in short form,
 *     the other controls as \u00xx (lowercase hex); every other character as UTF-8
 *     (no escaping of '/', '<', '>', '&', U+007F or non-ASCII);
 *   - numbers as ECMAScript's Number.prototype.toString: the shortest digit string that
 *     round-trips to the same double (the closest one when several have that length),
 *     plain notation for decimal exponents in [-6, 21), else d.ddde±x; -0 is 0.
 *
 * Invariant: the output is produced only for input that is entirely valid; on any error
 * `out` is restored to its length at the call.
 */
#include "core.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JCS_MAX_DEPTH 512

typedef struct jcs_parser {
    const char *s;
    size_t len;
    size_t pos;
    lh_error *err;
} jcs_parser;

static int jcs_fail(jcs_parser *p, const char *what)
{
    return lh_error_setk(p->err, LH_EINVAL, "invalid_json",
                         "JSON cannot be canonicalised (RFC 8785): %s at byte %zu", what, p->pos);
}

static void skip_ws(jcs_parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

/* ---------------------------------------------------------------- strings */

static void put_utf8(lh_buf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    lh_buf_append(b, u, n);
}

static int hex4(jcs_parser *p, uint32_t *v)
{
    if (p->len - p->pos < 4)
        return jcs_fail(p, "truncated \\u escape");
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos + (size_t)i];
        int d = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0)
            return jcs_fail(p, "bad hex digit in \\u escape");
        x = x * 16 + (uint32_t)d;
    }
    p->pos += 4;
    *v = x;
    return 0;
}

/* Decodes the string literal at p->pos (on its opening quote) into raw UTF-8 `dec`. */
static int parse_string(jcs_parser *p, lh_buf *dec)
{
    p->pos++; /* opening quote */
    size_t run = p->pos;
    while (true) {
        if (p->pos >= p->len)
            return jcs_fail(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"')
            break;
        if (c < 0x20)
            return jcs_fail(p, "unescaped control character in a string");
        if (c != '\\') {
            p->pos++;
            continue;
        }
        lh_buf_append(dec, p->s + run, p->pos - run);
        p->pos++;
        if (p->pos >= p->len)
            return jcs_fail(p, "unterminated escape");
        char e = p->s[p->pos++];
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *hit = e ? strchr(from, e) : NULL;
        if (hit) {
            lh_buf_putc(dec, to[hit - from]);
        } else if (e == 'u') {
            uint32_t cp;
            if (hex4(p, &cp))
                return -1;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return jcs_fail(p, "lone low surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (p->len - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                    return jcs_fail(p, "lone high surrogate");
                p->pos += 2;
                if (hex4(p, &lo))
                    return -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return jcs_fail(p, "lone high surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            put_utf8(dec, cp);
        } else {
            return jcs_fail(p, "unknown escape in a string");
        }
        run = p->pos;
    }
    lh_buf_append(dec, p->s + run, p->pos - run);
    p->pos++; /* closing quote */
    if (!lh_utf8_valid(dec->data ? dec->data : "", dec->len))
        return jcs_fail(p, "invalid UTF-8 in a string");
    return 0;
}

void lh_jcs_put_string(lh_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    lh_buf_putc(out, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        lh_buf_append(out, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            lh_buf_puts(out, "\\\"");
            break;
        case '\\':
            lh_buf_puts(out, "\\\\");
            break;
        case '\b':
            lh_buf_puts(out, "\\b");
            break;
        case '\t':
            lh_buf_puts(out, "\\t");
            break;
        case '\n':
            lh_buf_puts(out, "\\n");
            break;
        case '\f':
            lh_buf_puts(out, "\\f");
            break;
        case '\r':
            lh_buf_puts(out, "\\r");
            break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            lh_buf_append(out, u, 6);
        }
        }
    }
    lh_buf_append(out, s + run, n - run);
    lh_buf_putc(out, '"');
}

/* ---------------------------------------------------------------- numbers */

int lh_jcs_format_number(double d, char *buf, size_t cap)
{
    if (!isfinite(d) || cap < 32)
        return -1;
    if (d == 0) {
        snprintf(buf, cap, "0"); /* -0 too */
        return 0;
    }
    double mag = fabs(d);
    if (mag <= 9007199254740992.0 && mag == floor(mag)) {
        /* An integer exact in a double (|d| <= 2^53, so below 1e21): ECMAScript writes its
         * digits, no exponent. Written here directly: the search below costs up to 17
         * snprintf/strtod rounds, and counts (row totals, sizes) are the common case. */
        char tmp[24], *p = tmp + sizeof(tmp);
        *--p = '\0';
        uint64_t v = (uint64_t)mag;
        do
            *--p = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        if (d < 0)
            *--p = '-';
        memcpy(buf, p, (size_t)(tmp + sizeof(tmp) - p));
        return 0;
    }
    char e[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec - 1, fabs(d));
        if (strtod(e, NULL) == fabs(d))
            break;
    }
    /* e is "D.DDDDe±XX" (or "De±XX"): the digits s and the decimal exponent n such that
     * value = 0.s × 10^n, as ECMA-262 Number::toString names them. */
    char digits[24];
    int k = 0;
    char *x = e;
    for (; *x && *x != 'e'; x++)
        if (*x >= '0' && *x <= '9')
            digits[k++] = *x;
    while (k > 1 && digits[k - 1] == '0')
        k--;
    digits[k] = '\0';
    int n = atoi(x + 1) + 1;
    lh_buf b;
    lh_buf_init(&b);
    if (d < 0)
        lh_buf_putc(&b, '-');
    if (k <= n && n <= 21) {
        lh_buf_append(&b, digits, (size_t)k);
        for (int i = 0; i < n - k; i++)
            lh_buf_putc(&b, '0');
    } else if (0 < n && n <= 21) {
        lh_buf_append(&b, digits, (size_t)n);
        lh_buf_putc(&b, '.');
        lh_buf_append(&b, digits + n, (size_t)(k - n));
    } else if (-6 < n && n <= 0) {
        lh_buf_puts(&b, "0.");
        for (int i = 0; i < -n; i++)
            lh_buf_putc(&b, '0');
        lh_buf_append(&b, digits, (size_t)k);
    } else {
        lh_buf_putc(&b, digits[0]);
        if (k > 1) {
            lh_buf_putc(&b, '.');
            lh_buf_append(&b, digits + 1, (size_t)(k - 1));
        }
        lh_buf_printf(&b, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
    int rc = b.len < cap ? 0 : -1;
    if (rc == 0)
        snprintf(buf, cap, "%.*s", (int)b.len, b.data);
    lh_buf_free(&b);
    return rc;
}

static int parse_number(jcs_parser *p, lh_buf *out)
{
    size_t start = p->pos;
    const char *s = p->s;
#define DIGIT(i) ((i) < p->len && s[i] >= '0' && s[i] <= '9')
    if (p->pos < p->len && s[p->pos] == '-')
        p->pos++;
    if (!DIGIT(p->pos))
        return jcs_fail(p, "bad number");
    if (s[p->pos] == '0')
        p->pos++;
    else
        while (DIGIT(p->pos))
            p->pos++;
    if (p->pos < p->len && s[p->pos] == '.') {
        p->pos++;
        if (!DIGIT(p->pos))
            return jcs_fail(p, "bad number: digits expected after '.'");
        while (DIGIT(p->pos))
            p->pos++;
    }
    if (p->pos < p->len && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (s[p->pos] == '+' || s[p->pos] == '-'))
            p->pos++;
        if (!DIGIT(p->pos))
            return jcs_fail(p, "bad number: digits expected in the exponent");
        while (DIGIT(p->pos))
            p->pos++;
    }
#undef DIGIT
    char *tmp = lh_xmalloc(p->pos - start + 1);
    memcpy(tmp, s + start, p->pos - start);
    tmp[p->pos - start] = '\0';
    errno = 0;
    double d = strtod(tmp, NULL);
    free(tmp);
    char num[64];
    if (!isfinite(d) || lh_jcs_format_number(d, num, sizeof(num)) != 0)
        return jcs_fail(p, "number out of the IEEE 754 double range");
    lh_buf_puts(out, num);
    return 0;
}

/* ---------------------------------------------------------------- structures */

static int parse_value(jcs_parser *p, lh_buf *out, int depth);

typedef struct member {
    uint16_t *key16; /* the key in UTF-16 code units: the sort order */
    size_t n16;
    lh_buf key;   /* decoded UTF-8 */
    lh_buf value; /* canonical text */
} member;

static uint16_t *utf16_of(const char *s, size_t n, size_t *n16)
{
    uint16_t *u = lh_xmalloc((n + 1) * sizeof(uint16_t) * 2);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
        for (size_t j = 1; j < len && i + j < n; j++)
            cp = (cp << 6) | ((unsigned char)s[i + j] & 0x3F);
        i += len;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            u[k++] = (uint16_t)(0xD800 + (cp >> 10));
            u[k++] = (uint16_t)(0xDC00 + (cp & 0x3FF));
        } else {
            u[k++] = (uint16_t)cp;
        }
    }
    *n16 = k;
    return u;
}

static int member_cmp(const void *a, const void *b)
{
    const member *x = a, *y = b;
    size_t n = x->n16 < y->n16 ? x->n16 : y->n16;
    for (size_t i = 0; i < n; i++)
        if (x->key16[i] != y->key16[i])
            return x->key16[i] < y->key16[i] ? -1 : 1;
    return x->n16 < y->n16 ? -1 : x->n16 > y->n16 ? 1 : 0;
}

static int parse_object(jcs_parser *p, lh_buf *out, int depth)
{
    member *m = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;
    p->pos++; /* '{' */
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        lh_buf_puts(out, "{}");
        return 0;
    }
    while (true) {
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != '"') {
            jcs_fail(p, "object key expected");
            goto out;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            m = lh_xrealloc(m, cap * sizeof(*m));
        }
        member *cur = &m[n++];
        memset(cur, 0, sizeof(*cur));
        lh_buf_init(&cur->key);
        lh_buf_init(&cur->value);
        if (parse_string(p, &cur->key))
            goto out;
        cur->key16 = utf16_of(cur->key.data ? cur->key.data : "", cur->key.len, &cur->n16);
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ':') {
            jcs_fail(p, "':' expected after an object key");
            goto out;
        }
        p->pos++;
        if (parse_value(p, &cur->value, depth + 1))
            goto out;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == '}') {
            p->pos++;
            break;
        }
        jcs_fail(p, "',' or '}' expected in an object");
        goto out;
    }
    qsort(m, n, sizeof(*m), member_cmp);
    for (size_t i = 0; i + 1 < n; i++)
        if (member_cmp(&m[i], &m[i + 1]) == 0) {
            lh_error_setk(p->err, LH_EINVAL, "invalid_json",
                          "JSON cannot be canonicalised (RFC 8785): duplicate object key");
            goto out;
        }
    lh_buf_putc(out, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            lh_buf_putc(out, ',');
        lh_jcs_put_string(out, m[i].key.data ? m[i].key.data : "", m[i].key.len);
        lh_buf_putc(out, ':');
        lh_buf_append(out, m[i].value.data, m[i].value.len);
    }
    lh_buf_putc(out, '}');
    rc = 0;
out:
    for (size_t i = 0; i < n; i++) {
        free(m[i].key16);
        lh_buf_free(&m[i].key);
        lh_buf_free(&m[i].value);
    }
    free(m);
    return rc;
}

static int parse_array(jcs_parser *p, lh_buf *out, int depth)
{
    p->pos++; /* '[' */
    lh_buf_putc(out, '[');
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        lh_buf_putc(out, ']');
        return 0;
    }
    for (bool first = true;; first = false) {
        if (!first)
            lh_buf_putc(out, ',');
        if (parse_value(p, out, depth + 1))
            return -1;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == ']') {
            p->pos++;
            lh_buf_putc(out, ']');
            return 0;
        }
        return jcs_fail(p, "',' or ']' expected in an array");
    }
}

static int parse_value(jcs_parser *p, lh_buf *out, int depth)
{
    static const char *const literals[] = {"true", "false", "null"};
    if (depth > JCS_MAX_DEPTH)
        return jcs_fail(p, "nesting too deep");
    skip_ws(p);
    if (p->pos >= p->len)
        return jcs_fail(p, "value expected");
    char c = p->s[p->pos];
    if (c == '{')
        return parse_object(p, out, depth);
    if (c == '[')
        return parse_array(p, out, depth);
    if (c == '"') {
        lh_buf dec;
        lh_buf_init(&dec);
        int rc = parse_string(p, &dec);
        if (rc == 0)
            lh_jcs_put_string(out, dec.data ? dec.data : "", dec.len);
        lh_buf_free(&dec);
        return rc;
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return parse_number(p, out);
    for (size_t i = 0; i < sizeof(literals) / sizeof(literals[0]); i++) {
        size_t n = strlen(literals[i]);
        if (p->len - p->pos >= n && memcmp(p->s + p->pos, literals[i], n) == 0) {
            p->pos += n;
            lh_buf_puts(out, literals[i]);
            return 0;
        }
    }
    return jcs_fail(p, "unexpected character (NaN, Infinity and comments are not JSON)");
}

int lh_jcs_canonicalize(const char *text, size_t len, lh_buf *out, lh_error *err)
{
    jcs_parser p = {.s = text ? text : "", .len = text ? len : 0, .err = err};
    size_t mark = out->len;
    int rc = parse_value(&p, out, 0);
    if (rc == 0) {
        skip_ws(&p);
        if (p.pos != p.len)
            rc = jcs_fail(&p, "trailing characters after the JSON value");
    }
    if (rc != 0) {
        out->len = mark;
        return LH_EINVAL;
    }
    return 0;
}

int lh_jcs_canonicalize_value(const json_t *v, lh_buf *out, lh_error *err)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    if (!text)
        return lh_error_set(err, LH_EINVAL, "value cannot be serialised as JSON");
    int rc = lh_jcs_canonicalize(text, strlen(text), out, err);
    free(text);
    return rc;
}
