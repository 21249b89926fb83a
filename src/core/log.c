/*
 * log.c: structured logs, one JSON object per line on stderr. Each line is built in
 * memory and written with a single write(2) so lines from different threads never
 * interleave. Callers must never pass secrets (keys, tokens, DSN passwords) as fields.
 *
 * A line is never lost to one bad field. Fields are built one by one from the flat formats
 * every caller uses ("{s:s,s:i,s:I,s:b,...}"): a string that is not valid UTF-8 (a raw
 * path, a file name from disk) is logged with its bad bytes as \xHH, a NULL string as
 * null; the other fields are kept. jansson's json_pack would refuse the whole object. A
 * format this walker does not know (nested objects) still goes to json_pack.
 */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lh_log_level min_level = LH_LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};
static lh_log_sink sink_fn;
static void *sink_ctx;

void lh_log_set_level(lh_log_level level)
{
    min_level = level;
}

void lh_log_set_sink(lh_log_sink sink, void *ctx)
{
    sink_fn = sink;
    sink_ctx = ctx;
}

/* A string field: escaped when it is not valid UTF-8, null when NULL. */
static json_t *text_value(const char *s)
{
    if (!s)
        return json_null();
    size_t n = strlen(s);
    if (lh_utf8_valid(s, n))
        return json_stringn(s, n);
    char *esc = lh_escape(s, n, false);
    json_t *v = json_string(esc);
    free(esc);
    return v;
}

/* True when fmt is "{s:X,s:X,...}" with every X one of s i I b f (the walker's formats). */
static bool flat_format(const char *fmt)
{
    const char *p = fmt;
    if (*p++ != '{')
        return false;
    if (*p == '}')
        return p[1] == '\0';
    for (;;) {
        if (p[0] != 's' || p[1] != ':' || !p[2] || !strchr("siIbf", p[2]))
            return false;
        p += 3;
        if (*p == '}')
            return p[1] == '\0';
        if (*p++ != ',')
            return false;
    }
}

/* Builds the fields of a flat format (flat_format(fmt) is true) into obj, one by one. */
static void walk_fields(json_t *obj, const char *fmt, va_list ap)
{
    for (const char *p = fmt + 1; *p != '}'; p += p[3] == ',' ? 4 : 3) {
        const char *key = va_arg(ap, const char *);
        json_t *v = NULL;
        switch (p[2]) {
        case 's':
            v = text_value(va_arg(ap, const char *));
            break;
        case 'i':
            v = json_integer(va_arg(ap, int));
            break;
        case 'I':
            v = json_integer(va_arg(ap, json_int_t));
            break;
        case 'b':
            v = json_boolean(va_arg(ap, int));
            break;
        case 'f':
            v = json_real(va_arg(ap, double));
            break;
        }
        if (!key)
            key = "?";
        if (lh_utf8_valid(key, strlen(key))) {
            json_object_set_new(obj, key, v);
        } else {
            char *esc = lh_escape(key, strlen(key), false);
            json_object_set_new(obj, esc, v);
            free(esc);
        }
    }
}

void lh_log(lh_log_level level, const char *event, const char *fields_fmt, ...)
{
    if (level < min_level)
        return;
    char ts[LH_TS_MAX];
    /* ts, level and event first: jansson keeps insertion order when dumping with
     * JSON_PRESERVE_ORDER. */
    json_t *out = json_object();
    json_object_set_new(out, "ts", json_string(lh_time_rfc3339(ts)));
    json_object_set_new(out, "level", json_string(level_names[level]));
    json_object_set_new(out, "event", text_value(event));
    if (fields_fmt) {
        va_list ap;
        va_start(ap, fields_fmt);
        if (flat_format(fields_fmt)) {
            walk_fields(out, fields_fmt, ap);
        } else {
            json_error_t jerr;
            json_t *line = json_vpack_ex(&jerr, 0, fields_fmt, ap);
            if (json_is_object(line))
                json_object_update(out, line);
            else
                json_object_set_new(out, "log_error", json_string(jerr.text));
            json_decref(line);
        }
        va_end(ap);
    }
    char *text = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    json_decref(out);
    if (!text)
        return;
    size_t n = strlen(text);
    if (sink_fn) {
        sink_fn(text, n, sink_ctx);
        free(text);
        return;
    }
    char *buf = lh_xmalloc(n + 2);
    memcpy(buf, text, n);
    buf[n] = '\n';
    free(text);
    ssize_t w = write(STDERR_FILENO, buf, n + 1);
    (void)w; /* nowhere left to report a failed log write */
    free(buf);
}
