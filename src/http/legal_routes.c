/*
 * legal_routes.c: HTTP glue for the legal audit endpoint (issue 11; docs/AUDIT.md "Legal
 * endpoint"). The routes are public in the route table because the caller may prove
 * itself with the X-Lakehouse-Legal-Token header instead of a key; lh_legal_authorize
 * (compliance/legal.c) decides, before anything is read.
 */
#include "http_internal.h"

#include <stdlib.h>

#define LEGAL_TOKEN_HEADER "X-Lakehouse-Legal-Token"

static bool legal_allowed(lh_req *r)
{
    lh_error err;
    if (lh_legal_authorize(lh_req_app(r)->legal, lh_req_header(r, LEGAL_TOKEN_HEADER),
                           lh_req_principal(r), &err) == 0)
        return true;
    lh_reply_error(r, &err);
    return false;
}

void lh_h_audit_subject(lh_req *r)
{
    if (!legal_allowed(r))
        return;
    lh_error err;
    /* lh_req_query's value lives until its next call: copy the first */
    const char *q = lh_req_query(r, "from");
    char *from = q ? lh_xstrdup(q) : NULL;
    json_t *doc = lh_legal_subject_response(lh_req_app(r)->legal, lh_req_param(r, 0), from,
                                            lh_req_query(r, "to"), &err);
    free(from);
    if (!doc) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, doc);
}

void lh_h_audit_health(lh_req *r)
{
    if (!legal_allowed(r))
        return;
    lh_reply_json(r, 200, lh_legal_health(lh_req_app(r)->legal));
}

/* Issue 12: the signed audit log. */

void lh_h_audit_checkpoint(lh_req *r)
{
    if (!legal_allowed(r))
        return;
    lh_error err;
    json_t *doc = lh_legal_checkpoint(lh_req_app(r)->legal, &err);
    if (!doc) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, doc);
}

void lh_h_audit_consistency(lh_req *r)
{
    if (!legal_allowed(r))
        return;
    lh_error err;
    /* lh_req_query's value lives until its next call: copy the first */
    const char *q = lh_req_query(r, "from");
    char *from = q ? lh_xstrdup(q) : NULL;
    json_t *doc = lh_legal_consistency(lh_req_app(r)->legal, from, lh_req_query(r, "to"), &err);
    free(from);
    if (!doc) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, doc);
}

void lh_h_audit_pubkey(lh_req *r)
{
    lh_error err;
    json_t *doc = lh_legal_pubkey(lh_req_app(r)->legal, &err);
    if (!doc) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, doc);
}
