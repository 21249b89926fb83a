/*
 * error.c: the one error type. A code says what a caller can do about it; the kind is
 * the stable string clients match on; the message says what was wrong and what to do.
 */
#include "core.h"

#include <stdio.h>
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

static int error_vset(lh_error *err, int code, const char *kind, const char *fmt, va_list ap)
{
    if (!err)
        return code;
    err->code = code;
    err->kind = kind;
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
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
    out[o] = '\0';
    memcpy(err->message, out, o + 1);
}
