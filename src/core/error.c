/*
 * error.c: the one error type. A code says what a caller can do about it; the kind is
 * the stable string clients match on; the message says what was wrong and what to do.
 *
 * Invariant: a message is always valid UTF-8. Messages quote what callers sent (names,
 * query arguments, DuckDB's echo of SQL), so bytes that are not UTF-8 are written as \xHH,
 * and a message cut at LH_ERROR_MSG_MAX is cut between code points. Every reply and log
 * line that carries a message can therefore render it (jansson refuses invalid UTF-8).
 */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    int code;
    const char *name;
} code_names[] = {
    {LH_OK, "ok"},
    {LH_EINVAL, "invalid_request"},
    {LH_ENOTFOUND, "not_found"},
    {LH_EEXISTS, "already_exists"},
    {LH_EFORBIDDEN, "forbidden"},
    {LH_EUNAUTH, "unauthorized"},
    {LH_ETOOLARGE, "payload_too_large"},
    {LH_ECONFLICT, "conflict"},
    {LH_EIO, "io_error"},
    {LH_EINTERNAL, "internal_error"},
    {LH_EUNSUPPORTED, "unsupported_media_type"},
    {LH_EBUSY, "too_many_requests"},
    {LH_ETIMEOUT, "query_timeout"},
    {LH_EUNAVAILABLE, "unavailable"},
    {LH_EMETHOD, "method_not_allowed"},
    {LH_EUPSTREAM, "source_error"},
    {LH_ECANCELLED, "cancelled"},
};

const char *lh_code_name(int code)
{
    for (size_t i = 0; i < sizeof(code_names) / sizeof(code_names[0]); i++)
        if (code_names[i].code == code)
            return code_names[i].name;
    return "internal_error";
}

const char *lh_error_kind(const lh_error *err)
{
    if (err->kind)
        return err->kind;
    return lh_code_name(err->code);
}

/* Copies text[0..len) into err->message, cut between code points to fit. */
static void message_set(lh_error *err, const char *text, size_t len)
{
    if (len > sizeof(err->message) - 1)
        len = lh_utf8_cut(text, sizeof(err->message) - 1);
    memcpy(err->message, text, len);
    err->message[len] = '\0';
}

static int error_vset(lh_error *err, int code, const char *kind, const char *fmt, va_list ap)
{
    if (!err)
        return code;
    err->code = code;
    err->kind = kind;
    char first[LH_ERROR_MSG_MAX];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(first, sizeof(first), fmt, ap);
    if (n < 0)
        n = 0;
    char *full = first;
    /* Formatted whole before it is escaped and cut: a byte cut from the end of a sequence
     * would otherwise become an escape instead of being dropped. */
    if ((size_t)n >= sizeof(first)) {
        full = lh_xmalloc((size_t)n + 1);
        vsnprintf(full, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    if (lh_utf8_valid(full, (size_t)n)) {
        message_set(err, full, (size_t)n);
    } else {
        char *esc = lh_escape(full, (size_t)n, false);
        message_set(err, esc, strlen(esc));
        free(esc);
    }
    if (full != first)
        free(full);
    return code;
}

int lh_error_set(lh_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, code, NULL, fmt, ap);
    va_end(ap);
    return code;
}

int lh_error_setk(lh_error *err, int code, const char *kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, code, kind, fmt, ap);
    va_end(ap);
    return code;
}

void lh_error_clear(lh_error *err)
{
    if (!err)
        return;
    err->code = LH_OK;
    err->kind = NULL;
    err->message[0] = '\0';
}

void lh_error_scrub(lh_error *err, const char *needle, const char *with)
{
    size_t nl = needle ? strlen(needle) : 0;
    if (!err || nl == 0 || !strstr(err->message, needle))
        return;
    char out[LH_ERROR_MSG_MAX];
    size_t o = 0, wl = strlen(with);
    for (const char *p = err->message; *p && o + 1 < sizeof(out);) {
        if (strncmp(p, needle, nl) == 0) {
            size_t n = wl < sizeof(out) - 1 - o ? wl : sizeof(out) - 1 - o;
            memcpy(out + o, with, n);
            o += n;
            p += nl;
        } else {
            out[o++] = *p++;
        }
    }
    o = lh_utf8_cut(out, o); /* a cut at the capacity may have split a sequence */
    out[o] = '\0';
    memcpy(err->message, out, o + 1);
}
