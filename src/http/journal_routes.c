/*
 * journal_routes.c: HTTP glue for the catalog's event journal (GET /catalog/events).
 * Admin and legal roles only (the route table says so); events never hold secrets.
 */
#include "http_internal.h"

#include <errno.h>
#include <stdlib.h>

#define EVENTS_DEFAULT_LIMIT 100
#define EVENTS_MAX_LIMIT 1000

/* A query parameter that must be a whole number in [lo, hi]; absent: dflt. */
static int int_param(lh_req *r, const char *name, long long lo, long long hi, long long dflt,
                     long long *out, lh_error *err)
{
    const char *s = lh_req_query(r, name);
    if (!s) {
        *out = dflt;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return lh_error_set(err, LH_EINVAL, "'%s' must be a whole number from %lld to %lld", name,
                            lo, hi);
    *out = v;
    return 0;
}

void lh_h_events_list(lh_req *r)
{
    lh_error err;
    long long since = 0, limit = EVENTS_DEFAULT_LIMIT; /* set by int_param; -O2 cannot tell */
    if (int_param(r, "since", 0, INT64_MAX, 0, &since, &err) != 0 ||
        int_param(r, "limit", 1, EVENTS_MAX_LIMIT, EVENTS_DEFAULT_LIMIT, &limit, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    int64_t next = 0;
    json_t *events = lh_catalog_events(lh_req_app(r)->cat, since, (size_t)limit, &next);
    lh_reply_json(r, 200, json_pack("{s:o,s:I}", "events", events, "next_since", (json_int_t)next));
}
