/*
 * log.c: structured logs, one JSON object per line on stderr. Each line is built in
 * memory and written with a single write(2) so lines from different threads never
 * interleave. Callers must never pass secrets (keys, tokens, DSN passwords) as fields.
 */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lh_log_level min_level = LH_LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void lh_log_set_level(lh_log_level level)
{
    min_level = level;
}

void lh_log(lh_log_level level, const char *event, const char *fields_fmt, ...)
{
    if (level < min_level)
        return;
    char ts[LH_TS_MAX];
    json_t *line = NULL;
    if (fields_fmt) {
        va_list ap;
        va_start(ap, fields_fmt);
        json_error_t jerr;
        line = json_vpack_ex(&jerr, 0, fields_fmt, ap);
        va_end(ap);
    }
    if (!json_is_object(line)) {
        json_decref(line);
        line = json_object();
    }
    /* ts, level and event first: jansson keeps insertion order when dumping with
     * JSON_PRESERVE_ORDER, so we rebuild the object in that order. */
    json_t *out = json_object();
    json_object_set_new(out, "ts", json_string(lh_time_rfc3339(ts)));
    json_object_set_new(out, "level", json_string(level_names[level]));
    json_object_set_new(out, "event", json_string(event));
    json_object_update(out, line);
    json_decref(line);
    char *text = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    json_decref(out);
    if (!text)
        return;
    size_t n = strlen(text);
    char *buf = lh_xmalloc(n + 2);
    memcpy(buf, text, n);
    buf[n] = '\n';
    free(text);
    ssize_t w = write(STDERR_FILENO, buf, n + 1);
    (void)w; /* nowhere left to report a failed log write */
    free(buf);
}
