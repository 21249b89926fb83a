/*
 * server.c: libmicrohttpd glue. Owns the request lifecycle, body limits, replies, the
 * error-code → status table, request logs and graceful shutdown.
 *
 * Threads: MHD's internal thread pool (cfg->http_threads) runs the handlers. Each pool
 * thread serves many connections (keep-alive ones stay with the thread that accepted
 * them), so a handler must never block its thread for long: long work (an ingest's COPY)
 * goes to our job pool (core's lh_jobs, cfg->job_threads) through lh_req_run_job, which
 * suspends the connection (MHD_suspend_connection) and returns at once. The job runs the
 * work on a pool thread; the work's reply is built there but kept in the request
 * (`deferred`), the job resumes the connection, and the next access-handler call, back on
 * MHD's thread, queues it. While a connection is suspended MHD never calls back for it,
 * so the job owns the lh_req until it resumes it and must not touch it afterwards.
 * Queries use the same mechanism on a pool of their own (app->queries, one thread per
 * query slot, lh_req_run_query: a task without a job record), and their result streams go
 * further (lh_reply_stream_pooled): when the reader has nothing rendered it suspends the
 * connection from inside MHD's content-reader callback (allowed there, see
 * MHD_suspend_connection), posts the stream's fill to the pool and answers 0; the task
 * resumes the connection and MHD calls the reader again. While a fill runs the connection
 * is suspended, so MHD cannot end the response and free the stream under it.
 *
 * Request lifecycle (MHD calls the access handler several times per request):
 *   1st call: match the route, check Content-Length against the route's cap, run the
 *             route's precheck; any failure is answered at once, before the body is read
 *             (MHD then closes the connection instead of reading the body).
 *   next:     body bytes → JSON buffer (capped) or the upload file (capped); past a cap
 *             the rest is discarded and 413 is answered at the end (a client that keeps
 *             sending far beyond it is disconnected).
 *   last:     the handler runs and queues exactly one reply.
 * The completion callback logs the request and frees its state; the shutdown path waits
 * for the count of live requests to reach zero, so in-flight requests finish, then closes
 * the job and query pools (which let running work finish and resume its connections)
 * before MHD is stopped: MHD must not be stopped with a connection still suspended.
 *
 * Paths are not unescaped by MHD (identity unescape callback): we split the raw path on
 * '/' and percent-decode each segment, so "by-name/a%2Fb" is the name "a/b" (refused as
 * invalid) rather than a different path.
 */
#include "http.h"
#include "http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#define VERSION "0.1.0"
/* A client that keeps sending this much past a body cap is disconnected, not drained. */
#define DRAIN_SLACK (16LL << 20)
#define SHUTDOWN_GRACE_MS 30000

struct lh_req {
    lh_app *app;
    struct MHD_Connection *conn;
    const lh_route *route;
    char *params[LH_ROUTE_MAX_PARAMS];
    char *path;      /* the raw path, escaped (lh_escape): for messages and logs only */
    char method[16]; /* escaped too, cut between code points */
    int64_t started_ms;
    int64_t body_bytes;
    lh_buf body;
    json_t *json;
    lh_upload *upload;
    lh_sink_write sink_write; /* LH_BODY_SINK: where the body goes (lh_req_begin_sink) */
    void (*sink_discard)(void *ctx);
    void *sink_ctx;
    int64_t sink_cap;
    lh_principal *who; /* NULL on public routes */
    bool failed;       /* err holds the reply to send once the body is drained */
    bool replied;
    int status;
    lh_error err;
    char *extra_name[4];
    char *extra_value[4];
    int n_extra;
    void *state;
    void (*state_free)(void *);
    char *decoded_query; /* scratch for lh_req_query's last value */
    /* Long work (lh_req_run_job). job_work is set on MHD's thread before the job is
     * submitted and never changed, so that thread can test it without racing the job. */
    lh_handler job_work;
    lh_job *job;                   /* the running job, for lh_req_job */
    bool deferring;                /* replies are kept in `deferred`, not queued */
    bool job_done;                 /* written by the job before it resumes the connection */
    struct MHD_Response *deferred; /* the job's reply, queued on the resumed call */
    int deferred_status;
    char *deferred_type;
};

/* Requests in flight, and finished request records kept for reuse. A record is ~1.3 KB
 * (its lh_error), above glibc's per-thread cache, so each fresh one took the arena's
 * large-chunk path, which first merges every small chunk freed into the arena since
 * (malloc_consolidate): 1.7% of the server's CPU in bench/http_load at 16 clients. */
#define REQ_SPARE 64
/* A kept record is poisoned for AddressSanitizer while it waits, so a stale touch of a
 * finished request is still reported, as it was when the record was freed. */
#if defined(__SANITIZE_ADDRESS__)
#define REQ_POISON(r) ASAN_POISON_MEMORY_REGION((r), sizeof(lh_req))
#define REQ_UNPOISON(r) ASAN_UNPOISON_MEMORY_REGION((r), sizeof(lh_req))
#else
#define REQ_POISON(r) ((void)(r))
#define REQ_UNPOISON(r) ((void)(r))
#endif
static struct {
    pthread_mutex_t mu;
    pthread_cond_t idle;
    int active;
    lh_req *spare[REQ_SPARE];
    int nspare;
} live = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {NULL}, 0};

static int64_t started_at_ms;

/* ---------------------------------------------------------------- status table */

static const struct {
    int code;
    int status;
} status_table[] = {
    {LH_OK, 200},         {LH_EINVAL, 400},       {LH_ENOTFOUND, 404},    {LH_EEXISTS, 409},
    {LH_EFORBIDDEN, 403}, {LH_EUNAUTH, 401},      {LH_ETOOLARGE, 413},    {LH_ECONFLICT, 409},
    {LH_EIO, 500},        {LH_EINTERNAL, 500},    {LH_EUNSUPPORTED, 415}, {LH_EBUSY, 429},
    {LH_ETIMEOUT, 408},   {LH_EUNAVAILABLE, 503}, {LH_EMETHOD, 405},      {LH_EUPSTREAM, 502},
    {LH_ECANCELLED, 409},
};

int lh_http_status(int code)
{
    for (size_t i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++)
        if (status_table[i].code == code)
            return status_table[i].status;
    return 500;
}

/* ---------------------------------------------------------------- accessors */

lh_app *lh_req_app(lh_req *r)
{
    return r->app;
}

const char *lh_req_param(lh_req *r, int i)
{
    return i >= 0 && i < LH_ROUTE_MAX_PARAMS ? r->params[i] : NULL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) ('+' → ' ' when plus_is_space). A decoded NUL makes it return
 * NULL, so "%00" can never silently truncate a name. Caller frees. */
static char *pct_decode(const char *s, size_t n, bool plus_is_space)
{
    char *out = lh_xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
            if (c == '\0') {
                free(out);
                return NULL;
            }
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

const char *lh_req_query(lh_req *r, const char *name)
{
    const char *raw = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!raw)
        return NULL;
    free(r->decoded_query);
    r->decoded_query = NULL;
    /* MHD keeps arguments raw because our unescape callback is the identity; decode here.
     * The returned pointer stays valid until the next lh_req_query call, so callers that
     * need two values copy the first. */
    r->decoded_query = pct_decode(raw, strlen(raw), true);
    return r->decoded_query ? r->decoded_query : "";
}

const char *lh_req_header(lh_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

json_t *lh_req_json(lh_req *r, lh_error *err)
{
    if (r->json)
        return r->json;
    r->json = lh_json_parse_object(r->body.data, r->body.len, err);
    return r->json;
}

/* issue 15: /mcp parses its own body (a JSON-RPC parse error is an answer, not a 400 of
 * ours). */
const char *lh_req_body(lh_req *r, size_t *len)
{
    *len = r->body.len;
    return r->body.data;
}

lh_upload *lh_req_upload(lh_req *r)
{
    return r->upload;
}

int lh_req_begin_upload(lh_req *r, lh_file_format format, lh_error *err)
{
    r->upload = lh_upload_open(r->app->ing, format, err);
    return r->upload ? 0 : (err ? err->code : LH_EIO);
}

int lh_req_begin_sink(lh_req *r, lh_sink_write write, void (*discard)(void *ctx), void *ctx,
                      int64_t max_bytes, lh_error *err)
{
    (void)err;
    r->sink_cap = max_bytes;
    r->sink_write = write;
    r->sink_discard = discard;
    r->sink_ctx = ctx;
    return 0;
}

/* A refused body: whatever the sink wrote goes before the error reply. */
static void sink_discard(lh_req *r)
{
    if (r->sink_discard)
        r->sink_discard(r->sink_ctx);
}

const char *lh_req_actor(lh_req *r)
{
    return r->who ? r->who->name : "anonymous";
}

const lh_principal *lh_req_principal(lh_req *r)
{
    return r->who;
}

void lh_req_set_state(lh_req *r, void *state, void (*free_fn)(void *))
{
    if (r->state && r->state_free)
        r->state_free(r->state);
    r->state = state;
    r->state_free = free_fn;
}

void *lh_req_state(lh_req *r)
{
    return r->state;
}

/* ---------------------------------------------------------------- replies */

void lh_reply_header(lh_req *r, const char *name, const char *value)
{
    if (r->n_extra >= 4)
        return;
    r->extra_name[r->n_extra] = lh_xstrdup(name);
    r->extra_value[r->n_extra] = lh_xstrdup(value);
    r->n_extra++;
}

static void queue(lh_req *r, int status, struct MHD_Response *resp, const char *content_type)
{
    if (r->deferring) {
        /* On a job thread: keep the reply for the resumed access-handler call. A second
         * reply replaces the first, as MHD would refuse it. */
        if (r->deferred)
            MHD_destroy_response(r->deferred);
        free(r->deferred_type);
        r->deferred = resp;
        r->deferred_status = status;
        r->deferred_type = lh_xstrdup(content_type);
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    for (int i = 0; i < r->n_extra; i++)
        MHD_add_response_header(resp, r->extra_name[i], r->extra_value[i]);
    if (MHD_queue_response(r->conn, (unsigned)status, resp) != MHD_YES)
        lh_log(LH_LOG_WARN, "http.queue_failed", "{s:s,s:i}", "path", r->path, "status", status);
    MHD_destroy_response(resp);
    r->replied = true;
    r->status = status;
}

void lh_reply_json(lh_req *r, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (!text)
        text = lh_xstrdup("{\"error\":\"internal_error\",\"message\":\"cannot render\"}");
    size_t n = strlen(text);
    text = lh_xrealloc(text, n + 2);
    text[n++] = '\n';
    text[n] = '\0';
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, text, MHD_RESPMEM_MUST_FREE);
    queue(r, status, resp, "application/json");
}

/* queue() for a response just created, which libmicrohttpd may have failed to create
 * (out of memory): then 500 instead. The caller has released what resp would have owned. */
static void queue_created(lh_req *r, int status, struct MHD_Response *resp,
                          const char *content_type)
{
    if (!resp) {
        lh_error e;
        lh_error_set(&e, LH_EINTERNAL, "cannot create a response");
        lh_reply_error(r, &e);
        return;
    }
    queue(r, status, resp, content_type);
}

void lh_reply_bytes(lh_req *r, int status, const char *content_type, char *data, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(data);
    queue_created(r, status, resp, content_type);
}

void lh_reply_no_content(lh_req *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    queue(r, 204, resp, "application/json");
}

void lh_reply_empty(lh_req *r, int status)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    queue(r, status, resp, "application/json");
}

json_t *lh_http_error_body(const lh_error *err)
{
    /* Messages are valid UTF-8 by construction (error.c); escaping again here means a
     * message filled some other way still renders instead of becoming "cannot render". */
    json_t *body = json_object();
    json_object_set_new(body, "error", json_string(lh_error_kind(err)));
    const char *msg = err->message;
    size_t n = strnlen(msg, sizeof(err->message));
    if (lh_utf8_valid(msg, n)) {
        json_object_set_new(body, "message", json_stringn(msg, n));
    } else {
        char *esc = lh_escape(msg, n, false);
        json_object_set_new(body, "message", json_string(esc));
        free(esc);
    }
    return body;
}

void lh_reply_error(lh_req *r, const lh_error *err)
{
    int status = lh_http_status(err->code);
    if (r->deferring && err != &r->err)
        r->err = *err; /* the job's outcome (GET /jobs/{id} shows its message) */
    if (status >= 500)
        lh_log(LH_LOG_ERROR, "http.error", "{s:s,s:s,s:s,s:s}", "method", r->method, "path",
               r->path, "error", lh_error_kind(err), "message", err->message);
    lh_reply_json(r, status, lh_http_error_body(err));
}

typedef struct stream_ctx {
    lh_stream_read read;
    void (*fill)(void *ctx); /* NULL: read never answers LH_STREAM_AGAIN */
    void *ctx;
    void (*done)(void *);
    struct MHD_Connection *conn;
    lh_jobs *pool; /* where fill runs */
} stream_ctx;

/* On a query-pool thread, the connection suspended: MHD calls no callback for it, so the
 * stream and its ctx stay alive. Resuming is the last touch; MHD then calls the reader
 * again, which finds the bytes fill rendered. */
static void stream_fill_task(void *cls)
{
    stream_ctx *s = cls;
    struct MHD_Connection *conn = s->conn;
    s->fill(s->ctx);
    MHD_resume_connection(conn);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_ctx *s = cls;
    ssize_t n = s->read(s->ctx, buf, max);
    if (n == LH_STREAM_AGAIN && s->fill) {
        /* The next bytes need slow work (a DuckDB fetch): never on this worker. Suspend
         * first, so the task's resume cannot precede it, and answer 0 ("nothing yet"),
         * which MHD allows from a reader that suspended its connection. */
        lh_error e;
        MHD_suspend_connection(s->conn);
        if (lh_jobs_post(s->pool, stream_fill_task, s, &e) == 0)
            return 0;
        /* The pool is closing (shutdown): the rest is produced here, as before. */
        MHD_resume_connection(s->conn);
        s->fill(s->ctx);
        n = s->read(s->ctx, buf, max);
    }
    if (n > 0)
        return n;
    return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
    stream_ctx *s = cls;
    if (s->done)
        s->done(s->ctx);
    free(s);
}

static void reply_stream(lh_req *r, int status, const char *content_type, lh_stream_read read,
                         void (*fill)(void *ctx), void *ctx, void (*done)(void *ctx))
{
    stream_ctx *s = lh_xcalloc(1, sizeof(*s));
    s->read = read;
    s->fill = fill;
    s->ctx = ctx;
    s->done = done;
    s->conn = r->conn;
    s->pool = r->app->queries;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, LH_STREAM_BLOCK,
                                                                  stream_reader, s, stream_free);
    if (!resp)
        stream_free(s);
    queue_created(r, status, resp, content_type);
}

void lh_reply_stream(lh_req *r, int status, const char *content_type, lh_stream_read read,
                     void *ctx, void (*done)(void *ctx))
{
    reply_stream(r, status, content_type, read, NULL, ctx, done);
}

void lh_reply_stream_pooled(lh_req *r, int status, const char *content_type, lh_stream_read read,
                            void (*fill)(void *ctx), void *ctx, void (*done)(void *ctx))
{
    reply_stream(r, status, content_type, read, fill, ctx, done);
}

/* ---------------------------------------------------------------- lifecycle */

/* Frees what r holds; r itself goes back to live.spare or to free(). */
static void req_empty(lh_req *r)
{
    for (int i = 0; i < LH_ROUTE_MAX_PARAMS; i++)
        free(r->params[i]);
    for (int i = 0; i < r->n_extra; i++) {
        free(r->extra_name[i]);
        free(r->extra_value[i]);
    }
    if (r->state && r->state_free)
        r->state_free(r->state);
    lh_principal_free(r->who);
    free(r->path);
    free(r->decoded_query);
    lh_buf_free(&r->body);
    json_decref(r->json);
    lh_upload_free(r->upload);
    if (r->deferred)
        MHD_destroy_response(r->deferred);
    free(r->deferred_type);
}

/* ---------------------------------------------------------------- long work */

/* On a pool thread: the work replies like a handler; the upload goes before the reply is
 * sent, as on_access does for ordinary handlers. */
static void req_work(lh_req *r)
{
    r->deferring = true;
    r->job_work(r);
    lh_upload_free(r->upload);
    r->upload = NULL;
    if (!r->deferred) {
        lh_error e;
        lh_error_set(&e, LH_EINTERNAL, "the job for %s %s produced no reply", r->method, r->path);
        lh_reply_error(r, &e);
    }
}

static int req_job_run(lh_job *job, void *ctx, lh_error *err)
{
    lh_req *r = ctx;
    r->job = job;
    lh_reply_header(r, "X-Lakehouse-Job", lh_job_id(job));
    req_work(r);
    if (r->deferred_status < 400)
        return 0;
    *err = r->err;
    return r->err.code ? r->err.code : LH_EINTERNAL;
}

/* Last touch of r by the job: after MHD_resume_connection, MHD's thread owns it again and
 * may free it at any moment. */
static void req_job_done(void *ctx, int rc)
{
    lh_req *r = ctx;
    struct MHD_Connection *conn = r->conn;
    if (rc != 0 && !r->deferred) {
        /* Cancelled while queued (POST /jobs/{id}/cancel): work never ran, so nothing
         * replied; this runs on the cancelling thread. */
        lh_error e;
        lh_error_set(&e, rc, "the job was cancelled before it started");
        r->deferring = true;
        lh_reply_error(r, &e);
    }
    r->job = NULL;
    r->deferring = false;
    r->job_done = true;
    MHD_resume_connection(conn);
}

/* A task on a pool (queries, or jobs for lh_req_run_task): like a job, without a record. */
static void req_task_run(void *ctx)
{
    lh_req *r = ctx;
    req_work(r);
    req_job_done(r, 0);
}

/* The pool refused the work (it is closing): the reply waits for the resumed call all the
 * same. */
static void req_work_refused(lh_req *r, const lh_error *e)
{
    r->deferring = true;
    lh_reply_error(r, e);
    r->deferring = false;
    r->job_done = true;
    MHD_resume_connection(r->conn);
}

void lh_req_run_job(lh_req *r, const char *kind, lh_handler work)
{
    lh_error e;
    lh_error_clear(&r->err);
    r->job_work = work;
    /* Suspend before the job can exist, so its resume never precedes our suspend. */
    MHD_suspend_connection(r->conn);
    char id[LH_JOB_ID_LEN + 1];
    if (lh_jobs_submit(r->app->jobs, kind, lh_req_actor(r), req_job_run, req_job_done, r, id, &e) ==
        0)
        return;
    req_work_refused(r, &e);
}

void lh_req_run_query(lh_req *r, lh_handler work)
{
    lh_error e;
    lh_error_clear(&r->err);
    r->job_work = work;
    MHD_suspend_connection(r->conn);
    if (lh_jobs_post(r->app->queries, req_task_run, r, &e) == 0)
        return;
    req_work_refused(r, &e);
}

void lh_req_run_task(lh_req *r, lh_handler work)
{
    lh_error e;
    lh_error_clear(&r->err);
    r->job_work = work;
    MHD_suspend_connection(r->conn);
    if (lh_jobs_post(r->app->jobs, req_task_run, r, &e) == 0)
        return;
    req_work_refused(r, &e);
}

lh_job *lh_req_job(lh_req *r)
{
    return r->job;
}

/* The resumed call: MHD's thread queues what the job built. */
static void req_job_reply(lh_req *r)
{
    lh_upload_free(r->upload);
    r->upload = NULL;
    struct MHD_Response *resp = r->deferred;
    char *type = r->deferred_type;
    r->deferred = NULL;
    r->deferred_type = NULL;
    queue(r, r->deferred_status, resp, type);
    free(type);
}

static void fail(lh_req *r, int code, const char *kind, const char *fmt, const char *arg)
{
    r->failed = true;
    lh_error_setk(&r->err, code, kind, fmt, arg);
}

static int64_t body_cap(const lh_req *r)
{
    const lh_config *cfg = r->app->cfg;
    if (r->route && r->route->body == LH_BODY_SINK && r->sink_cap > 0)
        return r->sink_cap;
    if (r->route && (r->route->body == LH_BODY_UPLOAD || r->route->body == LH_BODY_SINK))
        return cfg->max_upload_bytes;
    if (r->route && r->route->body == LH_BODY_JSON)
        return cfg->max_json_body;
    return 0;
}

/* Bearer key → principal, then the route's role check. Runs before any body is read.
 * A public route (roles 0) answers anyone; a valid key sent with it only adds what that
 * key may see (GET /health: the dataset count), and an invalid one is ignored, so a
 * health probe never fails on a stale key. */
static int authenticate(lh_req *r)
{
    const char *h = lh_req_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    bool is_public = r->route->roles == 0;
    if (is_public && !h)
        return 0;
    const char *key = NULL;
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        key = h + 7;
        while (*key == ' ')
            key++;
    }
    if ((!key || !*key) && is_public)
        return 0;
    if (!key || !*key) {
        lh_reply_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        return lh_error_set(&r->err, LH_EUNAUTH,
                            "missing API key: send 'Authorization: Bearer <key>'");
    }
    r->who = lh_auth_check(r->app->auth, key, &r->err);
    if (!r->who && is_public) {
        lh_error_clear(&r->err);
        return 0;
    }
    if (!r->who) {
        lh_reply_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"");
        return r->err.code;
    }
    if (!is_public && !(r->route->roles & LH_ROLE_BIT(r->who->role)))
        return lh_error_set(&r->err, LH_EFORBIDDEN, "role '%s' may not call %s %s",
                            lh_role_name(r->who->role), r->method, r->route->pattern);
    return 0;
}

/* First call: route, key and role, limits, precheck. */
static void req_begin(lh_req *r, const char *method, const char *url)
{
    /* Raw bytes from the request line reach messages and logs only escaped: invalid UTF-8
     * and control characters as \xHH. Routing below uses the raw url. */
    char *m = lh_escape(method, strlen(method), true);
    size_t ml = lh_utf8_cut(m, strnlen(m, sizeof(r->method) - 1));
    memcpy(r->method, m, ml);
    r->method[ml] = '\0';
    free(m);
    r->path = lh_escape(url, strlen(url), true);
    bool path_matched = false;
    r->route = lh_route_match(method, url, r->params, &path_matched);
    if (!r->route) {
        if (path_matched)
            fail(r, LH_EMETHOD, NULL, "method %s is not allowed on this path", r->method);
        else
            fail(r, LH_ENOTFOUND, "not_found", "no endpoint at %s (see docs/API.md)", r->path);
        return;
    }
    if (authenticate(r) != 0) {
        r->failed = true;
        return;
    }
    const char *cl = lh_req_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        long long n = strtoll(cl, NULL, 10);
        if (n > body_cap(r)) {
            char msg[160];
            snprintf(msg, sizeof(msg), "%lld bytes; the limit for this endpoint is %lld bytes", n,
                     (long long)body_cap(r));
            fail(r, LH_ETOOLARGE, NULL, "the request body is %s", msg);
            return;
        }
    }
    if (r->route->precheck && r->route->precheck(r, &r->err) != 0) {
        r->failed = true;
        return;
    }
    if (r->route->body == LH_BODY_UPLOAD && !r->upload) {
        fail(r, LH_EINTERNAL, NULL, "%s", "the upload route opened no upload file");
        return;
    }
    if (r->route->body == LH_BODY_SINK && !r->sink_write) {
        fail(r, LH_EINTERNAL, NULL, "%s", "the streaming route opened no sink");
        return;
    }
}

static void req_body(lh_req *r, const char *data, size_t len)
{
    r->body_bytes += (int64_t)len;
    if (r->failed)
        return;
    if (r->body_bytes > body_cap(r)) {
        char msg[64];
        snprintf(msg, sizeof(msg), "%lld", (long long)body_cap(r));
        fail(r, LH_ETOOLARGE, NULL, "the request body is over the limit of %s bytes", msg);
        lh_upload_free(r->upload);
        r->upload = NULL;
        lh_buf_free(&r->body);
        sink_discard(r);
        return;
    }
    if (r->route->body == LH_BODY_UPLOAD) {
        if (lh_upload_write(r->upload, data, len, &r->err) != 0)
            r->failed = true;
    } else if (r->route->body == LH_BODY_SINK) {
        if (r->sink_write(r->sink_ctx, data, len, &r->err) != 0) {
            r->failed = true;
            sink_discard(r);
        }
    } else if (r->route->body == LH_BODY_JSON) {
        lh_buf_append(&r->body, data, len);
    }
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)version;
    lh_app *app = cls;
    lh_req *r = *con_cls;
    if (!r) {
        pthread_mutex_lock(&live.mu);
        live.active++;
        r = live.nspare > 0 ? live.spare[--live.nspare] : NULL;
        pthread_mutex_unlock(&live.mu);
        if (r) {
            REQ_UNPOISON(r);
            memset(r, 0, sizeof(*r));
        } else
            r = lh_xcalloc(1, sizeof(*r));
        r->app = app;
        r->conn = conn;
        r->started_ms = lh_now_ms();
        lh_buf_init(&r->body);
        *con_cls = r;
        req_begin(r, method, url);
        if (r->failed) {
            /* Answer before the body arrives; MHD closes the connection afterwards
             * rather than reading a body nobody wants. */
            sink_discard(r);
            lh_reply_error(r, &r->err);
        }
        return MHD_YES;
    }
    if (r->job_work) {
        /* Only reached once the job resumed the connection. */
        if (r->job_done && r->deferred)
            req_job_reply(r);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->replied) {
        /* Early reply already queued: swallow whatever MHD still hands us. */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        req_body(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        if (r->failed && r->body_bytes > body_cap(r) + DRAIN_SLACK)
            return MHD_NO; /* abusive sender: drop the connection */
        return MHD_YES;
    }
    if (r->failed) {
        /* The upload goes before the reply, so a client that sees the error never sees
         * the scratch file. */
        lh_upload_free(r->upload);
        r->upload = NULL;
        sink_discard(r);
        lh_reply_error(r, &r->err);
        return MHD_YES;
    }
    if (r->route->body == LH_BODY_NONE && r->body_bytes > 0) {
        lh_error e;
        lh_error_set(&e, LH_EINVAL, "%s %s takes no request body", r->method, r->path);
        lh_reply_error(r, &e);
        return MHD_YES;
    }
    r->route->handler(r);
    if (r->job_work)
        return MHD_YES; /* suspended: the job owns the request until it resumes it */
    /* The reply is only queued; free the upload now, before MHD sends it. */
    lh_upload_free(r->upload);
    r->upload = NULL;
    if (!r->replied) {
        lh_error e;
        lh_error_set(&e, LH_EINTERNAL, "the handler for %s %s produced no reply", r->method,
                     r->path);
        lh_reply_error(r, &e);
    }
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    lh_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    lh_log(r->status >= 500 ? LH_LOG_WARN : LH_LOG_INFO, "http.request",
           "{s:s,s:s,s:s,s:i,s:I,s:I,s:b}", "method", r->method, "path", r->path ? r->path : "",
           "actor", lh_req_actor(r), "status", r->status, "ms",
           (json_int_t)(lh_now_ms() - r->started_ms), "bytes_in", (json_int_t)r->body_bytes,
           "completed", toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    req_empty(r);
    pthread_mutex_lock(&live.mu);
    live.active--;
    if (live.active == 0)
        pthread_cond_broadcast(&live.idle);
    if (live.nspare < REQ_SPARE) {
        REQ_POISON(r);
        live.spare[live.nspare++] = r;
        r = NULL;
    }
    pthread_mutex_unlock(&live.mu);
    free(r);
}

/* Identity unescape: paths and query arguments stay raw; we decode per segment. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    lh_log(LH_LOG_DEBUG, "http.mhd", "{s:s}", "message", msg);
}

/* ---------------------------------------------------------------- routes helpers */

/* Splits a raw path into percent-decoded segments. Returns the count, or -1 when the path
 * is malformed (a decoded NUL) or has too many segments. */
static int split_path(const char *path, char **segs, int max)
{
    int n = 0;
    const char *p = path;
    if (*p != '/')
        return -1;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        if (n == max)
            goto fail;
        segs[n] = pct_decode(s, (size_t)(p - s), false);
        if (!segs[n])
            goto fail;
        n++;
    }
    return n;
fail:
    for (int i = 0; i < n; i++)
        free(segs[i]);
    return -1;
}

const lh_route *lh_route_match(const char *method, const char *path,
                               char *params[LH_ROUTE_MAX_PARAMS], bool *path_matched)
{
    enum { MAX_SEGS = 12 };
    char *segs[MAX_SEGS];
    *path_matched = false;
    for (int i = 0; i < LH_ROUTE_MAX_PARAMS; i++)
        params[i] = NULL;
    int n = split_path(path, segs, MAX_SEGS);
    if (n < 0)
        return NULL;
    const lh_route *found = NULL;
    for (size_t ri = 0; ri < lh_routes_count && !found; ri++) {
        const lh_route *rt = &lh_routes[ri];
        char *psegs[MAX_SEGS];
        int pn = split_path(rt->pattern, psegs, MAX_SEGS);
        bool ok = pn == n;
        int np = 0;
        for (int i = 0; ok && i < n; i++) {
            if (psegs[i][0] == '{')
                np++;
            else if (strcmp(psegs[i], segs[i]) != 0)
                ok = false;
        }
        if (ok && np <= LH_ROUTE_MAX_PARAMS) {
            if (strcmp(rt->method, method) == 0) {
                found = rt;
                int k = 0;
                for (int i = 0; i < n; i++)
                    if (psegs[i][0] == '{')
                        params[k++] = lh_xstrdup(segs[i]);
            } else {
                *path_matched = true;
            }
        }
        for (int i = 0; i < pn; i++)
            free(psegs[i]);
    }
    for (int i = 0; i < n; i++)
        free(segs[i]);
    return found;
}

/* ---------------------------------------------------------------- health */

/* Anyone may ask whether the server is up; how many datasets exist is for key holders
 * only, and an agent counts only the datasets it is granted (what GET /catalog/datasets
 * shows it). */
void lh_h_health(lh_req *r)
{
    json_t *out = json_pack("{s:s,s:s,s:I}", "status", "ok", "version", VERSION, "uptime_s",
                            (json_int_t)((lh_now_ms() - started_at_ms) / 1000));
    const lh_principal *who = lh_req_principal(r);
    if (who) {
        json_t *list = lh_catalog_list(r->app->cat);
        lh_sql_policy *policy = lh_sql_policy_for(r->app->cat, who);
        json_int_t n = 0;
        size_t i;
        json_t *m;
        json_array_foreach(list, i, m)
        {
            if (who->role != LH_ROLE_AGENT ||
                policy->may_read(policy->ctx, lh_json_str(m, "name")) == LH_REL_ALLOW)
                n++;
        }
        lh_sql_policy_free(policy);
        json_decref(list);
        json_object_set_new(out, "datasets", json_integer(n));
    }
    lh_reply_json(r, 200, out);
}

/* ---------------------------------------------------------------- serve */

static int resolve_listen(const lh_config *cfg, struct sockaddr_storage *ss, lh_error *err)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof(port), "%d", cfg->listen_port);
    int rc = getaddrinfo(cfg->listen_host, port, &hints, &res);
    if (rc != 0 || !res)
        return lh_error_set(err, LH_EINVAL, "cannot resolve listen host '%s': %s", cfg->listen_host,
                            gai_strerror(rc));
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* SIGINT/SIGTERM go to the main thread's sigwait. Every thread we start inherits the
 * blocked mask, but a library may have started threads before (OpenBLAS starts its pool
 * in a constructor, before main), with nothing blocked: the kernel hands a process-wide
 * signal to such a thread when the main thread blocks it and is not yet in sigwait, and
 * the default action then ended the process (exit -15, in an e2e test's stop right after
 * start). With this handler that thread passes the signal on to the main thread, where it
 * stays pending until sigwait takes it. Async-signal-safe: pthread_kill, saved errno. */
static pthread_t main_thread;

static void forward_to_main(int sig)
{
    int saved = errno;
    pthread_kill(main_thread, sig);
    errno = saved;
}

int lh_serve(lh_config *cfg)
{
    lh_error err;
    lh_error_clear(&err);
    lh_app app = {.cfg = cfg};
    struct MHD_Daemon *d = NULL;
    int status = 1;
    started_at_ms = lh_now_ms();

    /* Signals are taken synchronously with sigwait below; every thread started from here
     * on (DuckDB's, MHD's) inherits the blocked mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    /* installed after the block, so it never runs on this thread */
    main_thread = pthread_self();
    struct sigaction fwd = {.sa_handler = forward_to_main, .sa_flags = SA_RESTART};
    sigfillset(&fwd.sa_mask);
    sigaction(SIGINT, &fwd, NULL);
    sigaction(SIGTERM, &fwd, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Backstop for item 8 (owner-only data): every file we create gets an explicit mode,
     * but DuckDB creates its own files (COPY's temp file, spill files) with the process
     * umask; 077 makes those owner-only too. */
    umask(077);
    if (lh_fs_mkdirs(cfg->data_dir, LH_DIR_MODE, &err) != 0 ||
        !(app.jobs = lh_jobs_open(cfg->job_threads, &err)) ||
        !(app.queries = lh_jobs_open(cfg->max_concurrent_queries, &err)) ||
        !(app.st = lh_storage_open(cfg->data_dir, &err)) ||
        !(app.auth = lh_auth_open(cfg->data_dir, cfg->admin_key, &err)) ||
        !(app.cat = lh_catalog_open(app.st, &err)) ||
        !(app.eng = lh_engine_open(cfg, app.st, app.cat, &err)) ||
        !(app.ing = lh_ingest_open(app.st, app.cat, app.eng, &err)) ||
        !(app.subjects = lh_subjects_open(app.st, app.cat, &err)) ||
        !(app.sources = lh_sources_open(cfg->data_dir, &err))) {
        lh_log(LH_LOG_ERROR, "server.start_failed", "{s:s,s:s}", "error", lh_error_kind(&err),
               "message", err.message);
        goto out;
    }
    lh_sources_set_journal(app.sources, app.cat); /* issue 13: source.created|deleted */
    /* A profile that keys are bound to cannot be deleted (keys live in auth/). */
    lh_catalog_set_profile_guard(app.cat, lh_keys_bound_to_profile, app.auth);
    /* issue 13: database syncs; named sources resolved through app.sources */
    if (!(app.db_ingest = lh_db_ingest_open(app.ing, app.cat, app.eng, app.sources, &err))) {
        lh_log(LH_LOG_ERROR, "server.start_failed", "{s:s,s:s}", "error", lh_error_kind(&err),
               "message", err.message);
        goto out;
    }
    /* Subject auditing (issue 11): on when LH_SUBJECT_AUDIT_KEY names a key file. A key
     * file that is set but unusable stops the start (a deployment that asked for auditing
     * must not run without it); the message names the file, never its bytes. */
    if (cfg->audit_key_file) {
        if (!(app.audit = lh_audit_open(cfg->data_dir, cfg->audit_key_file, &err))) {
            lh_log(LH_LOG_ERROR, "server.start_failed", "{s:s,s:s}", "error", lh_error_kind(&err),
                   "message", err.message);
            goto out;
        }
        lh_log(LH_LOG_INFO, "audit.enabled", NULL);
        /* Issue 12: the verifiable log of chain tips, caught up from the logs, then fed by
         * every durable append. */
        if (!(app.merkle = lh_merkle_open(cfg->data_dir, &err)) ||
            lh_merkle_attach(app.merkle, app.audit, &err) != 0) {
            lh_log(LH_LOG_ERROR, "server.start_failed", "{s:s,s:s}", "error", lh_error_kind(&err),
                   "message", err.message);
            goto out;
        }
    } else {
        lh_log(LH_LOG_INFO, "audit.disabled", "{s:s}", "reason",
               "LH_SUBJECT_AUDIT_KEY is not set; subject audit endpoints answer 503");
    }

    /* issue 11: each append's new chain tip is mirrored into the subject's manifest */
    lh_subjects_attach_audit(app.subjects, app.audit);
    /* Issue 12: the signing key; set but unusable stops the start (the message names the
     * file, never its bytes). */
    if (cfg->audit_signing_key) {
        if (!(app.signer = lh_signer_load(cfg->audit_signing_key, cfg->audit_origin, &err))) {
            lh_log(LH_LOG_ERROR, "server.start_failed", "{s:s,s:s}", "error", lh_error_kind(&err),
                   "message", err.message);
            goto out;
        }
        lh_log(LH_LOG_INFO, "audit.signing", "{s:s}", "signer", lh_signer_name(app.signer));
    } else {
        lh_log(LH_LOG_INFO, "audit.unsigned", "{s:s}", "reason",
               "LH_AUDIT_SIGNING_KEY_FILE is not set; legal responses are unsigned and "
               "/audit/checkpoint, /audit/consistency, /audit/pubkey answer 503");
    }
    /* The legal endpoint reads the token file per request; it only needs the parts. */
    app.legal = lh_legal_open(app.subjects, app.cat, app.audit, cfg->legal_token_file);
    /* issue 12: biometric photos, outside the data folder; a root that is set but unusable
     * (inside the lake, open to others) stops the start, as an unusable audit key does */
    if (!(app.biometric =
              lh_biometric_open(cfg->biometric_root, app.st, app.subjects, app.audit, &err))) {
        lh_log(LH_LOG_ERROR, "server.start_failed", "{s:s,s:s}", "error", lh_error_kind(&err),
               "message", err.message);
        goto out;
    }
    if (!cfg->biometric_root)
        lh_log(LH_LOG_INFO, "biometric.disabled", "{s:s}", "reason",
               "LH_BIOMETRIC_STORAGE_ROOT is not set; the biometric endpoints answer 503");
    lh_legal_attach_log(app.legal, app.merkle, app.signer);
    /* issue 14: vector indexes (definitions loaded, files swept, the event tap set) */
    lh_vectors_config vc = {
        .cfg = cfg, .st = app.st, .cat = app.cat, .eng = app.eng, .jobs = app.jobs};
    if (!(app.vectors = lh_vectors_open(&vc, &err))) {
        lh_log(LH_LOG_ERROR, "server.start_failed", "{s:s,s:s}", "error", lh_error_kind(&err),
               "message", err.message);
        goto out;
    }
    /* issue 15: agents over MCP (src/agents/); after the vectors its search tool uses */
    lh_mcp_config mcp_cfg = {
        .cfg = cfg, .cat = app.cat, .eng = app.eng, .audit = app.audit, .vectors = app.vectors};
    if (!(app.mcp = lh_mcp_open(&mcp_cfg, &err))) {
        lh_log(LH_LOG_ERROR, "server.start_failed", "{s:s}", "message", err.message);
        goto out;
    }

    struct sockaddr_storage ss;
    if (resolve_listen(cfg, &ss, &err) != 0) {
        lh_log(LH_LOG_ERROR, "server.start_failed", "{s:s}", "message", err.message);
        goto out;
    }
#ifdef LH_FAULT_INJECTION
    lh_fault_arm_from_env(); /* test builds: LH_FAULT counts from here (see core.h) */
#endif
    /* poll(), not epoll: MHD 0.9.75's MHD_quiesce_daemon removes the listen socket from
     * each worker's epoll set while the worker may be removing it too, and the loser of
     * that race aborts the process ("Failed to remove listen FD from epoll set"; seen once
     * in six test runs at SIGTERM). With poll() quiescing is a flag and a wake-up. Each
     * worker polls only its own connections, so poll's O(n) per wake-up stays small. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    d = MHD_start_daemon(flags, (uint16_t)cfg->listen_port, NULL, NULL, on_access, &app,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
                         (unsigned)cfg->http_threads, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned)cfg->connection_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                         (size_t)(256 * 1024), MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                         MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
                         MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_END);
    if (!d) {
        lh_log(LH_LOG_ERROR, "server.start_failed", "{s:s,s:s,s:i}", "message",
               "cannot listen (address in use or not permitted?)", "host", cfg->listen_host, "port",
               cfg->listen_port);
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    lh_log(LH_LOG_INFO, "server.listening", "{s:s,s:i,s:s,s:i}", "host", cfg->listen_host, "port",
           info ? (int)info->port : cfg->listen_port, "data", cfg->data_dir, "threads",
           cfg->http_threads);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    lh_log(LH_LOG_INFO, "server.stopping", "{s:s}", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* Stop accepting, then let in-flight requests finish before tearing down. */
    MHD_socket lsock = MHD_quiesce_daemon(d);
    if (lsock != MHD_INVALID_SOCKET)
        close(lsock);
    int64_t deadline = lh_now_ms() + SHUTDOWN_GRACE_MS;
    pthread_mutex_lock(&live.mu);
    while (live.active > 0 && lh_now_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&live.idle, &live.mu, &ts);
    }
    int left = live.active;
    pthread_mutex_unlock(&live.mu);
    if (left > 0)
        lh_log(LH_LOG_WARN, "server.shutdown_grace_expired", "{s:i}", "requests", left);
    status = 0;
out:
    /* Jobs first: each one finishes and resumes its connection, and MHD must not be
     * stopped while a connection is suspended. A database sync can wait on its source for
     * as long as the source takes: it is cancelled (it leaves nothing behind), the rest
     * (ingests, compactions) run to their end. */
    if (app.jobs) {
        int n = lh_jobs_cancel_kind(app.jobs, "sync", "shutdown");
        if (n > 0)
            lh_log(LH_LOG_INFO, "server.syncs_cancelled", "{s:i}", "syncs", n);
    }
    lh_vectors_stop(app.vectors); /* issue 14: no refresh is submitted past this point */
    lh_jobs_close(app.jobs);
    lh_jobs_close(app.queries);
    if (d)
        MHD_stop_daemon(d);
    pthread_mutex_lock(&live.mu);
    while (live.nspare > 0) {
        lh_req *r = live.spare[--live.nspare];
        REQ_UNPOISON(r);
        free(r);
    }
    pthread_mutex_unlock(&live.mu);
    lh_mcp_close(app.mcp);         /* issue 15: before the vectors it borrows */
    lh_vectors_close(app.vectors); /* issue 14: after its jobs, before the engine */
    lh_biometric_close(app.biometric);
    lh_legal_close(app.legal);
    lh_merkle_close(app.merkle); /* before the audit it is attached to */
    lh_audit_close(app.audit);
    lh_signer_free(app.signer);
    lh_sources_close(app.sources); /* issue 13 */
    lh_subjects_close(app.subjects);
    lh_db_ingest_close(app.db_ingest); /* issue 13: before the ingest it uses */
    lh_ingest_close(app.ing);
    lh_engine_close(app.eng);
    lh_catalog_close(app.cat);
    lh_auth_close(app.auth);
    lh_storage_close(app.st);
    if (status == 0)
        lh_log(LH_LOG_INFO, "server.stopped", NULL);
    return status;
}
