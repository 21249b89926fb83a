/*
 * journal.c: the catalog's event journal, the record of processing an auditor asks for.
 *
 * Every catalog mutation appends one event {seq, at, actor, action, target, details} as one
 * JSON line to `_catalog/events.jsonl` in the primary bucket. It is a single well-known
 * object, never Parquet: ids of erased people may remain here (the erasure itself is
 * recorded) and nowhere else.
 *
 * Invariants:
 *   - seq starts at 1 and grows by 1 per event, with no gaps and no duplicates; the
 *     journal's lock `mu` is held from choosing a seq to the durable append, so the order
 *     of seq is the order of appends. Callers record while they still hold the lock that
 *     serialised their mutation (the catalog's `mu`), so seq order is commit order.
 *     Lock order: the catalog's mu (or another module lock), then the journal's mu; the
 *     journal calls nothing that takes another lock.
 *   - An event is appended after its mutation is durable. If the append fails, the
 *     mutation has happened anyway: the event stays pending in memory with its seq, the
 *     failure is logged and returned (kind "event_not_recorded", so the request does not
 *     claim a clean success), and every pending event is appended again, in order, before
 *     the next one (and once more at close). lh_storage_append cuts whatever a failed
 *     append left past the last good byte (`size`) before writing, so a retry neither
 *     duplicates an event nor leaves a torn line in the middle of the file.
 *   - Readers (lh_catalog_events) see only durable events.
 *   - At open, a last line without its newline (a crash mid-append: that event was never
 *     acknowledged) is dropped and the file rewritten atomically without it; a complete
 *     line that does not parse (damage) is logged and skipped but kept on disk, never
 *     deleted. seq continues after the highest good event.
 *   - Details never hold secrets (callers pass names, counts and ids, never keys, hashes,
 *     DSNs or file contents).
 *
 * Memory: the durable events are kept in memory (a few hundred bytes each) so reads by
 * `since` cost a binary search and no I/O.
 */
#include "catalog_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define JOURNAL_KEY "_catalog/events.jsonl"
#define JOURNAL_MAX ((size_t)1 << 30)

struct lh_journal {
    lh_storage *st;
    pthread_mutex_t mu;
    json_t *events;   /* durable events, seq ascending (events[i].seq == i + 1 normally) */
    json_t *pending;  /* recorded, not yet durable, seq ascending */
    int64_t next_seq; /* seq of the next event */
    int64_t size;     /* bytes of the journal known to be good (the end of the last line) */
    /* issue 14: the event tap (lh_catalog_set_event_tap), called under mu */
    lh_catalog_event_tap tap;
    void *tap_ctx;
};

/* Parses the journal's text: complete lines into j->events; returns the length of the
 * text up to the end of its last complete line (what a torn tail is cut back to). */
static size_t parse_lines(lh_journal *j, const char *text, size_t len)
{
    size_t pos = 0, good = 0, line_no = 0;
    int64_t last = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        if (!nl)
            break; /* torn tail */
        size_t n = (size_t)(nl - (text + pos));
        line_no++;
        json_error_t jerr;
        json_t *e = n ? json_loadb(text + pos, n, 0, &jerr) : NULL;
        json_int_t seq = e ? lh_json_int(e, "seq", 0) : 0;
        if (!e || !json_is_object(e) || seq <= last || !lh_json_str(e, "action")) {
            lh_log(LH_LOG_ERROR, "journal_line_damaged", "{s:I,s:s}", "line", (json_int_t)line_no,
                   "reason", !e ? (n ? jerr.text : "empty line") : "not an event in seq order");
            json_decref(e);
        } else {
            json_array_append_new(j->events, e);
            last = seq;
        }
        pos += n + 1;
        good = pos;
    }
    j->next_seq = last + 1;
    return good;
}

lh_journal *lh_journal__open(lh_storage *st, lh_error *err)
{
    lh_journal *j = lh_xcalloc(1, sizeof(*j));
    j->st = st;
    pthread_mutex_init(&j->mu, NULL);
    j->events = json_array();
    j->pending = json_array();
    j->next_seq = 1;
    char *text = NULL;
    size_t len = 0;
    lh_error lerr;
    int rc = lh_storage_get(st, LH_BUCKET_PRIMARY, JOURNAL_KEY, JOURNAL_MAX, &text, &len, &lerr);
    if (rc == LH_ENOTFOUND)
        return j;
    if (rc) {
        lh_error_set(err, lerr.code, "cannot read the event journal: %s", lerr.message);
        lh_journal__close(j);
        return NULL;
    }
    size_t good = parse_lines(j, text, len);
    if (good < len) {
        lh_log(LH_LOG_WARN, "journal_torn_tail_dropped", "{s:I,s:I}", "bytes",
               (json_int_t)(len - good), "next_seq", (json_int_t)j->next_seq);
        /* If the rewrite fails, the next append cuts the tail anyway (it writes at `size`). */
        if (lh_storage_put(st, LH_BUCKET_PRIMARY, JOURNAL_KEY, text, good, &lerr) != 0)
            lh_log(LH_LOG_WARN, "journal_rewrite_failed", "{s:s}", "error", lerr.message);
    }
    j->size = (int64_t)good;
    free(text);
    return j;
}

/* Appends every pending event in one write. Caller holds mu. */
static int flush_pending(lh_journal *j, lh_error *err)
{
    size_t n = json_array_size(j->pending);
    if (n == 0)
        return 0;
    lh_buf buf;
    lh_buf_init(&buf);
    size_t i;
    json_t *e;
    json_array_foreach(j->pending, i, e)
    {
        char *line = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER);
        lh_buf_printf(&buf, "%s\n", line ? line : "");
        free(line);
    }
    int rc =
        lh_storage_append(j->st, LH_BUCKET_PRIMARY, JOURNAL_KEY, j->size, buf.data, buf.len, err);
    if (rc == 0) {
        /* Durable now: the tap (issue 14) hears each event in seq order, still under mu. */
        if (j->tap)
            json_array_foreach(j->pending, i, e) j->tap(j->tap_ctx, e);
        json_array_extend(j->events, j->pending);
        json_array_clear(j->pending);
        j->size += (int64_t)buf.len;
    }
    lh_buf_free(&buf);
    return rc;
}

int lh_journal__record(lh_journal *j, const char *actor, const char *action, const char *target,
                       json_t *details, lh_error *err)
{
    if (!action || !*action) {
        json_decref(details);
        return lh_error_set(err, LH_EINTERNAL, "an event needs an action");
    }
    if (details && !json_is_object(details)) {
        json_decref(details);
        return lh_error_set(err, LH_EINTERNAL, "the details of event '%s' must be an object",
                            action);
    }
    char now[LH_TS_MAX];
    lh_time_rfc3339(now);
    pthread_mutex_lock(&j->mu);
    int64_t seq = j->next_seq++;
    json_t *e = json_pack("{s:I,s:s,s:s,s:s,s:s,s:o}", "seq", (json_int_t)seq, "at", now, "actor",
                          actor && *actor ? actor : "anonymous", "action", action, "target",
                          target ? target : "", "details", details ? details : json_null());
    json_array_append_new(j->pending, e);
    lh_error lerr;
    int rc = flush_pending(j, &lerr);
    if (rc) {
        lh_log(LH_LOG_ERROR, "event_not_recorded", "{s:I,s:s,s:s,s:I,s:s}", "seq", (json_int_t)seq,
               "action", action, "target", target ? target : "", "pending",
               (json_int_t)json_array_size(j->pending), "error", lerr.message);
        rc = lh_error_setk(err, LH_EIO, LH_KIND_EVENT_NOT_RECORDED,
                           "the change was made, but its journal event #%lld (%s) could not be "
                           "written: %s; it is kept and written with the next change; check "
                           "the disk",
                           (long long)seq, action, lerr.message);
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

/* Index of the first event with seq > since. Caller holds mu. */
static size_t first_after(const lh_journal *j, int64_t since)
{
    size_t lo = 0, hi = json_array_size(j->events);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (lh_json_int(json_array_get(j->events, mid), "seq", 0) <= since)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

json_t *lh_journal__events(lh_journal *j, int64_t since, size_t limit, int64_t *next_since)
{
    json_t *out = json_array();
    int64_t last = since;
    pthread_mutex_lock(&j->mu);
    size_t n = json_array_size(j->events);
    for (size_t i = first_after(j, since); i < n && json_array_size(out) < limit; i++) {
        json_t *e = json_array_get(j->events, i);
        json_array_append_new(out, json_deep_copy(e));
        last = lh_json_int(e, "seq", last);
    }
    pthread_mutex_unlock(&j->mu);
    if (next_since)
        *next_since = last;
    return out;
}

void lh_journal__close(lh_journal *j)
{
    if (!j)
        return;
    lh_error err;
    if (json_array_size(j->pending) && flush_pending(j, &err) != 0)
        lh_log(LH_LOG_ERROR, "events_lost", "{s:I,s:I,s:s}", "first_seq",
               lh_json_int(json_array_get(j->pending, 0), "seq", 0), "count",
               (json_int_t)json_array_size(j->pending), "error", err.message);
    json_decref(j->events);
    json_decref(j->pending);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* ---------------------------------------------------------------- public calls */

int lh_catalog_record(lh_catalog *cat, const char *actor, const char *action, const char *target,
                      json_t *details, lh_error *err)
{
    return lh_journal__record(lh_catalog__journal(cat), actor, action, target, details, err);
}

json_t *lh_catalog_events(lh_catalog *cat, int64_t since, size_t limit, int64_t *next_since)
{
    return lh_journal__events(lh_catalog__journal(cat), since, limit, next_since);
}

void lh_catalog_set_event_tap(lh_catalog *cat, lh_catalog_event_tap fn, void *ctx)
{
    lh_journal *j = lh_catalog__journal(cat);
    pthread_mutex_lock(&j->mu); /* so after a clear returns, no tap call is running */
    j->tap = fn;
    j->tap_ctx = ctx;
    pthread_mutex_unlock(&j->mu);
}

bool lh_error_event_not_recorded(const lh_error *err)
{
    return err && err->code != 0 && err->kind && strcmp(err->kind, LH_KIND_EVENT_NOT_RECORDED) == 0;
}
