/*
 * biometric_routes.c: HTTP glue for the biometric photo upload (issue 12; docs/AUDIT.md
 * "Biometric upload"). The routes are public in the route table, like the legal ones:
 * the caller proves itself with X-Lakehouse-Legal-Token or a legal/admin key, decided by
 * lh_legal_authorize before anything is read. Every rule (consent, status, media type,
 * size, where and how the photo is stored, rollback) is compliance/biometric.c's.
 *
 * The body never touches the data folder: the precheck opens the photo's partial file
 * under the storage root (lh_biometric_begin) and the body streams into it
 * (LH_BODY_SINK), so a request the subject's consent forbids is refused before a byte of
 * it is read.
 */
#include "http_internal.h"

#include <stdlib.h>

#define LEGAL_TOKEN_HEADER "X-Lakehouse-Legal-Token"
#define TRACE_HEADER "X-Lakehouse-Trace-Id"

static int authorize(lh_req *r, lh_error *err)
{
    return lh_legal_authorize(lh_req_app(r)->legal, lh_req_header(r, LEGAL_TOKEN_HEADER),
                              lh_req_principal(r), err);
}

static int sink_write(void *ctx, const void *data, size_t len, lh_error *err)
{
    return lh_biometric_write(ctx, data, len, err);
}

static void sink_discard(void *ctx)
{
    lh_biometric_discard(ctx);
}

static void upload_free(void *ctx)
{
    lh_biometric_upload_free(ctx);
}

int lh_pre_biometric_photo(lh_req *r, lh_error *err)
{
    int rc = authorize(r, err);
    if (rc)
        return rc;
    const char *cl = lh_req_header(r, "Content-Length");
    int64_t declared = cl ? strtoll(cl, NULL, 10) : -1;
    const lh_principal *who = lh_req_principal(r);
    lh_biometric_upload *up = lh_biometric_begin(
        lh_req_app(r)->biometric, lh_req_param(r, 0), lh_req_header(r, "Content-Type"), declared,
        who ? who->name : NULL, lh_req_header(r, TRACE_HEADER), err);
    if (!up)
        return err->code ? err->code : LH_EINTERNAL;
    lh_req_set_state(r, up, upload_free);
    return lh_req_begin_sink(r, sink_write, sink_discard, up, LH_BIOMETRIC_MAX_BYTES, err);
}

void lh_h_biometric_photo(lh_req *r)
{
    lh_error err;
    json_t *doc = lh_biometric_commit(lh_req_state(r), &err);
    if (!doc) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 201, doc);
}

void lh_h_biometric_health(lh_req *r)
{
    lh_error err;
    if (authorize(r, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, lh_biometric_health(lh_req_app(r)->biometric));
}
