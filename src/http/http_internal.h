/*
 * http_internal.h: what the server core (server.c) shares with the route table
 * (routes.c) and the per-domain handler files (*_routes.c). Only src/http includes it.
 *
 * A handler receives a parsed request (route parameters, query string, headers, a JSON
 * body or a finished upload) and answers with exactly one lh_reply_* call. Handlers never
 * see libmicrohttpd.
 */
#ifndef LH_HTTP_INTERNAL_H
#define LH_HTTP_INTERNAL_H

#include "agents/agents.h"
#include "auth/auth.h"
#include "catalog/catalog.h"
#include "compliance/compliance.h"
#include "core/core.h"
#include "compliance/compliance.h"
#include "ingest/ingest.h"
#include "query/query.h"
#include "sources/sources.h"
#include "storage/storage.h"
#include "vector/vector.h"

#include <sys/types.h>

/* Everything a handler may call into. Owned by lh_serve. */
typedef struct lh_app {
    lh_config *cfg;
    lh_storage *st;
    lh_catalog *cat;
    lh_engine *eng;
    lh_ingest *ing;
    lh_db_ingest *db_ingest; /* issue 13: database syncs (sources/sync.c) */
    lh_auth *auth;
    lh_jobs *jobs;    /* long work runs here, never on an HTTP worker */
    lh_jobs *queries; /* query starts and chunk fetches: one thread per query slot */
    /* issue 11: subject manifests (compliance/subjects.c) */
    lh_subjects *subjects;
    lh_legal *legal; /* the legal audit endpoint (compliance/legal.c) */
    lh_audit *audit; /* the audit chains (compliance/audit.c); NULL without a key */
    /* issue 12: biometric photos (compliance/biometric.c) */
    lh_biometric *biometric;
    lh_merkle *merkle; /* issue 12: the verifiable log of chain tips; NULL without audit */
    lh_signer *signer; /* issue 12: LH_AUDIT_SIGNING_KEY_FILE's key; NULL: unsigned */
    /* issue 13: named database sources, their DSNs kept as secrets (sources/store.c) */
    lh_sources *sources;
    /* issue 14: vector indexes (src/vector/) */
    lh_vectors *vectors;
    /* issue 15: agents over MCP (agents/mcp.c): sessions, rate buckets */
    lh_mcp *mcp;
} lh_app;

typedef enum {
    LH_BODY_NONE,   /* any body is refused (413 when non-empty) */
    LH_BODY_JSON,   /* buffered up to cfg->max_json_body */
    LH_BODY_UPLOAD, /* streamed to an lh_upload up to cfg->max_upload_bytes */
    LH_BODY_SINK,   /* streamed to the sink the precheck opened (lh_req_begin_sink), up to
                       the sink's cap */
} lh_body_kind;

typedef struct lh_req lh_req;
typedef void (*lh_handler)(lh_req *r);

/* Called once, before the body is read, for LH_BODY_UPLOAD routes: validates the request
 * (query string, headers) so a bad request is refused before gigabytes arrive, then calls
 * lh_req_begin_upload. Returns 0 or an LH_E* code with err filled. */
typedef int (*lh_precheck)(lh_req *r, lh_error *err);

typedef struct lh_route {
    const char *method;
    const char *pattern; /* "/catalog/datasets/by-name/{name}/metadata" */
    lh_body_kind body;
    lh_handler handler;
    lh_precheck precheck; /* NULL for none */
    unsigned roles;       /* LH_ROLE_BIT()s allowed; 0 = public (no key needed) */
} lh_route;

#define LH_ROUTE_MAX_PARAMS 4

/* The route table (routes.c). */
extern const lh_route lh_routes[];
extern const size_t lh_routes_count;

/* Matches method + path against the table. Returns the route and fills params (copies
 * the caller frees with free(), percent-decoded) or NULL; *path_matched is true when the
 * path matched some route with another method (→ 405). Exposed for unit tests. */
const lh_route *lh_route_match(const char *method, const char *path,
                               char *params[LH_ROUTE_MAX_PARAMS], bool *path_matched);

/* HTTP status of an error code (the one table). */
int lh_http_status(int code);
/* The body of an error reply, {"error": kind, "message": message}; never NULL, whatever
 * bytes the message holds (invalid UTF-8 is escaped as \xHH). Caller decrefs. */
json_t *lh_http_error_body(const lh_error *err);

/* ---------------------------------------------------------------- request accessors */

lh_app *lh_req_app(lh_req *r);
/* Route parameter i (0-based, in pattern order). Borrowed; valid during the request. */
const char *lh_req_param(lh_req *r, int i);
/* Query-string argument (percent-decoded) or NULL. Borrowed. */
const char *lh_req_query(lh_req *r, const char *name);
/* Header value (case-insensitive name) or NULL. Borrowed. */
const char *lh_req_header(lh_req *r, const char *name);
/* Parsed JSON object body (LH_BODY_JSON routes); NULL + err when empty or invalid.
 * Borrowed: freed with the request. */
json_t *lh_req_json(lh_req *r, lh_error *err);
/* Opens the upload file of an LH_BODY_UPLOAD route; its precheck calls this once the
 * request is known to be valid (the format picks the file's extension for DuckDB). */
int lh_req_begin_upload(lh_req *r, lh_file_format format, lh_error *err);
/* For LH_BODY_SINK routes, from the precheck: every piece of the body goes to write(ctx)
 * as it arrives (an error fails the request with that error; the rest of the body is
 * drained); a body over max_bytes is refused with 413 (the precheck checks a declared
 * Content-Length itself: until the sink is open the cap is cfg->max_upload_bytes);
 * discard(ctx) runs before any error reply (over the cap, a failed write), so a refused
 * body leaves nothing behind by the time the client reads the answer. ctx stays the
 * caller's (usually the request state). */
typedef int (*lh_sink_write)(void *ctx, const void *data, size_t len, lh_error *err);
int lh_req_begin_sink(lh_req *r, lh_sink_write write, void (*discard)(void *ctx), void *ctx,
                      int64_t max_bytes, lh_error *err);
/* The raw body bytes of an LH_BODY_JSON route (not parsed; may be NULL when empty).
 * Borrowed: freed with the request. */
const char *lh_req_body(lh_req *r, size_t *len);
/* The finished upload (LH_BODY_UPLOAD routes). Borrowed. */
lh_upload *lh_req_upload(lh_req *r);
/* Who is calling (key name; "anonymous" on public routes), for lineage and journals.
 * Borrowed. */
const char *lh_req_actor(lh_req *r);
/* The authenticated caller, or NULL on public routes. Borrowed. */
const lh_principal *lh_req_principal(lh_req *r);
/* Per-request scratch pointer for prechecks to hand state to handlers (freed with
 * free_fn at request end). */
void lh_req_set_state(lh_req *r, void *state, void (*free_fn)(void *));
void *lh_req_state(lh_req *r);

/* ---------------------------------------------------------------- replies */

/* Sends `body` (stolen: the reply decrefs it) as JSON with `status`. */
void lh_reply_json(lh_req *r, int status, json_t *body);
/* Sends len bytes of data (taken: freed with the response, or at once on failure) as
 * content_type with status and a Content-Length: MHD sends the head and a small body in
 * one write. */
void lh_reply_bytes(lh_req *r, int status, const char *content_type, char *data, size_t len);
/* Sends status with an empty body (202 Accepted of a notification). */
void lh_reply_empty(lh_req *r, int status);
/* Sends 204 No Content (a DELETE that has nothing to say). */
void lh_reply_no_content(lh_req *r);
/* Sends {"error": kind, "message": message} with the code's status. */
void lh_reply_error(lh_req *r, const lh_error *err);
/* Streams a body produced by `read` (same contract as lh_query_read: >0 bytes, 0 at
 * end, -1 to abort the response); `done` frees ctx when the response ends (also when
 * the client goes away). */
typedef ssize_t (*lh_stream_read)(void *ctx, char *buf, size_t cap);
void lh_reply_stream(lh_req *r, int status, const char *content_type, lh_stream_read read,
                     void *ctx, void (*done)(void *ctx));
/* Like lh_reply_stream, for a body whose next bytes may take long to produce: read answers
 * LH_STREAM_AGAIN instead of blocking, and then fill(ctx) runs on the query pool
 * (app->queries) with the connection suspended, after which read is called again and must
 * make progress. read never runs concurrently with fill. */
#define LH_STREAM_AGAIN (-2)
/* The buffer MHD allocates for each streamed response. */
#define LH_STREAM_BLOCK (64 * 1024)
void lh_reply_stream_pooled(lh_req *r, int status, const char *content_type, lh_stream_read read,
                            void (*fill)(void *ctx), void *ctx, void (*done)(void *ctx));
/* Sets an extra response header on the next reply (e.g. Retry-After). */
void lh_reply_header(lh_req *r, const char *name, const char *value);

/* ---------------------------------------------------------------- long work */

/* For a handler whose work may take long (an ingest's COPY; later compaction, backfill,
 * index builds): runs work(r) on the job pool (app->jobs) instead of this HTTP worker,
 * which goes on serving its other connections. The connection is suspended until the
 * work has replied; work answers with exactly one lh_reply_* call, as a handler does, and
 * may use every lh_req accessor. The reply carries X-Lakehouse-Job: <id> (GET /jobs/{id}).
 * The calling handler returns at once and replies nothing itself; when the pool is
 * closing the request gets 503. */
void lh_req_run_job(lh_req *r, const char *kind, lh_handler work);
/* lh_req_run_job for a query: work runs on the query pool (app->queries), never queued
 * behind ingests, and leaves no job record (no X-Lakehouse-Job, nothing in GET /jobs):
 * one hand-off each way. The caller takes the query's slot first, so a busy server still
 * answers 429 at once and the pool (one thread per slot) never queues a query. */
void lh_req_run_query(lh_req *r, lh_handler work);
/* lh_req_run_job for short work that must not block a worker but is too frequent to keep
 * a record of (a vector search: an embedding server, engine queries, an audit write): a
 * task on the job pool, with no job record (so a burst of them never pushes the records of
 * builds and ingests out of GET /jobs) and no X-Lakehouse-Job header. */
void lh_req_run_task(lh_req *r, lh_handler work);
/* Inside work: its job, for lh_job_progress (NULL in lh_req_run_query's work). */
lh_job *lh_req_job(lh_req *r);

/* ---------------------------------------------------------------- handlers */

void lh_h_health(lh_req *r);
void lh_h_buckets_list(lh_req *r);
void lh_h_buckets_add(lh_req *r);
void lh_h_buckets_remove(lh_req *r);
void lh_h_datasets_list(lh_req *r);
void lh_h_dataset_get(lh_req *r);
void lh_h_dataset_delete(lh_req *r);
void lh_h_dataset_patch(lh_req *r);
int lh_pre_ingest_file(lh_req *r, lh_error *err);
void lh_h_ingest_file(lh_req *r);
/* issue 13: database syncs (db_ingest_routes.c) */
void lh_h_ingest_postgres(lh_req *r);
void lh_h_ingest_mysql(lh_req *r);
void lh_h_query_sql(lh_req *r);
void lh_h_keys_list(lh_req *r);
void lh_h_keys_create(lh_req *r);
void lh_h_keys_revoke(lh_req *r);
void lh_h_job_get(lh_req *r);
void lh_h_job_cancel(lh_req *r); /* issue 13 */
/* issue 13: named database sources (source_routes.c) */
void lh_h_sources_create(lh_req *r);
void lh_h_sources_list(lh_req *r);
void lh_h_source_get(lh_req *r);
void lh_h_source_delete(lh_req *r);
/* AI-safe views and caller attributes */
void lh_h_views_create(lh_req *r);
void lh_h_views_list(lh_req *r);
void lh_h_view_get(lh_req *r);
void lh_h_view_delete(lh_req *r);
void lh_h_keys_patch(lh_req *r);
/* erasure (governance_routes.c) */
void lh_h_tombstone_add(lh_req *r);
void lh_h_tombstone_list(lh_req *r);
void lh_h_tombstone_remove(lh_req *r);
void lh_h_compact(lh_req *r);
/* journal_routes.c */
void lh_h_events_list(lh_req *r);
/* profile_routes.c */
void lh_h_profiles_list(lh_req *r);
void lh_h_profile_create(lh_req *r);
void lh_h_profile_get(lh_req *r);
void lh_h_profile_delete(lh_req *r);
/* lh_catalog_profile_guard over the auth store (ctx: lh_auth *). */
size_t lh_keys_bound_to_profile(void *ctx, const char *id, lh_buf *holders);
void lh_h_migrate_buckets(lh_req *r);
/* subject_routes.c (issue 11) */
void lh_h_subject_put(lh_req *r);
void lh_h_subject_get(lh_req *r);
void lh_h_subjects_list(lh_req *r);
void lh_h_subjects_backfill(lh_req *r);
/* legal_routes.c (issue 11) */
void lh_h_audit_subject(lh_req *r);
void lh_h_audit_health(lh_req *r);
/* biometric_routes.c (issue 12) */
int lh_pre_biometric_photo(lh_req *r, lh_error *err);
void lh_h_biometric_photo(lh_req *r);
void lh_h_biometric_health(lh_req *r);
/* legal_routes.c (issue 12: the signed log) */
void lh_h_audit_checkpoint(lh_req *r);
void lh_h_audit_consistency(lh_req *r);
void lh_h_audit_pubkey(lh_req *r);
/* vector_routes.c (issue 14): indexes, refresh, stale */
void lh_h_vector_index_create(lh_req *r);
void lh_h_vector_indexes_list(lh_req *r);
void lh_h_vector_index_get(lh_req *r);
void lh_h_vector_index_delete(lh_req *r);
void lh_h_vectors_refresh(lh_req *r);
void lh_h_vectors_stale(lh_req *r);
/* vector_search_routes.c (issue 14: search and model profiles) */
void lh_h_vector_search(lh_req *r);
void lh_h_vector_profile_search(lh_req *r);
void lh_h_vector_profile_activate(lh_req *r);
void lh_h_vector_profile_deactivate(lh_req *r);
void lh_h_vector_profile_active(lh_req *r);
/* vector_tune_routes.c (issue 14): autotune, the trial journal */
void lh_h_vector_autotune(lh_req *r);
void lh_h_vector_trials(lh_req *r);
/* mcp_routes.c (issue 15) */
void lh_h_mcp_post(lh_req *r);
void lh_h_mcp_delete(lh_req *r);

#endif
