/*
 * jobs.c: our own worker pool for long work, and the registry GET /jobs/{id} reads.
 *
 * Why: libmicrohttpd's pool threads each serve many connections; a handler that runs an
 * ingest's COPY on one of them stalls every other connection that thread holds (a
 * keep-alive /health waited seconds). Long work is submitted here instead and the HTTP
 * layer suspends the connection until the job's done callback resumes it.
 *
 * Invariants:
 *   - One mutex `mu` guards the queue, the registry and every job's mutable fields
 *     (state, times, progress, error); `work` wakes idle workers. run() and done() are
 *     called without it, so a job may take as long as it needs and report progress.
 *   - Jobs start in submission order. A job's record shows its outcome before done() runs,
 *     so whoever learns "finished" from done() and then asks the registry sees it too.
 *   - The registry holds every queued and running job and the last LH_JOBS_KEEP finished
 *     ones; the oldest finished record goes first.
 *   - Tasks (lh_jobs_post) share the queue and the threads but never enter the registry:
 *     the worker frees them right after they run.
 *   - lh_jobs_close refuses new jobs, then lets every queued and running one finish before
 *     joining: graceful shutdown never abandons work it accepted.
 *   - Cancellation (lh_jobs_cancel): a queued job leaves the queue at once and its done()
 *     runs on the cancelling thread with LH_ECANCELLED; a running job's `cancelled` flag
 *     turns true and its hook runs once, on the cancelling thread, under the job's own
 *     `hook_mu` (never under `mu`: a hook may block, PQcancel does a round trip). The
 *     worker takes `hook_mu` after run() returns and before done(), so a hook never runs
 *     on a context done() may free; `pins` keeps a record alive while a canceller holds
 *     it outside `mu`. Lock order: `mu` and `hook_mu` are never held together.
 */
#include "core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED } job_state;

static const char *const state_names[] = {"queued", "running", "succeeded", "failed", "cancelled"};

struct lh_job {
    lh_jobs *pool;
    char id[LH_JOB_ID_LEN + 1];
    char *kind, *actor;
    job_state state;
    char created_at[LH_TS_MAX], started_at[LH_TS_MAX], finished_at[LH_TS_MAX];
    int64_t started_ms;
    int64_t progress_done, progress_total;
    char *error;    /* the failure's message, or NULL */
    json_t *result; /* what the job reported (lh_job_set_result), or NULL */
    lh_job_fn run;
    lh_job_done_fn done;
    void (*task)(void *ctx); /* set for a task: run and done are unused */
    void *ctx;
    lh_job *qnext; /* queue link */
    /* Cancellation. `cancelled` is set under mu and read without it (lh_job_cancelled runs
     * per chunk); cancelled_by under mu; the hook under hook_mu. */
    atomic_bool cancelled;
    char *cancelled_by;
    pthread_mutex_t hook_mu;
    void (*hook)(void *ctx);
    void *hook_ctx;
    bool hook_called; /* this hook already ran: each installed hook runs at most once */
    int pins;         /* cancellers using the record outside mu (under mu): prune skips it */
};

struct lh_jobs {
    pthread_mutex_t mu;
    pthread_cond_t work;
    bool closing;
    lh_job *qhead, *qtail;
    lh_job **all; /* registry in submission order */
    size_t n_all, cap_all, n_finished;
    pthread_t *threads;
    int n_threads;
};

static void job_free(lh_job *j)
{
    if (!j)
        return;
    free(j->kind);
    free(j->actor);
    free(j->error);
    free(j->cancelled_by);
    json_decref(j->result);
    if (!j->task)
        pthread_mutex_destroy(&j->hook_mu);
    free(j);
}

static bool is_finished(job_state s)
{
    return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELLED;
}

/* Forgets the oldest finished jobs beyond LH_JOBS_KEEP. Under mu. */
static void prune(lh_jobs *p)
{
    size_t i = 0;
    while (p->n_finished > LH_JOBS_KEEP && i < p->n_all) {
        lh_job *j = p->all[i];
        if (is_finished(j->state) && j->pins == 0) {
            memmove(&p->all[i], &p->all[i + 1], (p->n_all - i - 1) * sizeof(*p->all));
            p->n_all--;
            p->n_finished--;
            job_free(j);
        } else {
            i++;
        }
    }
}

static void *worker(void *arg)
{
    lh_jobs *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->qhead && !p->closing)
            pthread_cond_wait(&p->work, &p->mu);
        lh_job *j = p->qhead;
        if (!j)
            break; /* closing and drained */
        p->qhead = j->qnext;
        if (!p->qhead)
            p->qtail = NULL;
        if (j->task) {
            pthread_mutex_unlock(&p->mu);
            j->task(j->ctx);
            job_free(j);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        j->state = JOB_RUNNING;
        lh_time_rfc3339(j->started_at);
        j->started_ms = lh_now_ms();
        pthread_mutex_unlock(&p->mu);

        lh_error err;
        lh_error_clear(&err);
        int rc = j->run(j, j->ctx, &err);
        /* Wait out a hook a canceller may be running on ctx, and let none start: done()
         * below may free what the hook uses. */
        pthread_mutex_lock(&j->hook_mu);
        j->hook = NULL;
        pthread_mutex_unlock(&j->hook_mu);

        pthread_mutex_lock(&p->mu);
        /* A job asked to stop that still failed (LH_ECANCELLED, or the error its interrupted
         * work raised) was cancelled; one that finished anyway succeeded. */
        j->state = rc == 0                                             ? JOB_SUCCEEDED
                   : atomic_load(&j->cancelled) || rc == LH_ECANCELLED ? JOB_CANCELLED
                                                                       : JOB_FAILED;
        lh_time_rfc3339(j->finished_at);
        if (rc != 0)
            j->error = lh_xstrdup(err.message[0] ? err.message : "the job failed");
        lh_log(rc == 0 ? LH_LOG_INFO : LH_LOG_WARN, "job.finished", "{s:s,s:s,s:s,s:I}", "job",
               j->id, "kind", j->kind, "state", state_names[j->state], "ms",
               (json_int_t)(lh_now_ms() - j->started_ms));
        lh_job_done_fn done = j->done;
        void *ctx = j->ctx;
        p->n_finished++;
        prune(p); /* may free j: nothing below reads it */
        pthread_mutex_unlock(&p->mu);
        if (done)
            done(ctx, rc);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

lh_jobs *lh_jobs_open(int threads, lh_error *err)
{
    if (threads < 1) {
        lh_error_set(err, LH_EINVAL, "a job pool needs at least one thread (got %d)", threads);
        return NULL;
    }
    lh_jobs *p = lh_xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    p->threads = lh_xcalloc((size_t)threads, sizeof(*p->threads));
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
            lh_error_set(err, LH_EINTERNAL, "cannot start job worker %d of %d", i + 1, threads);
            lh_jobs_close(p);
            return NULL;
        }
        p->n_threads++;
    }
    return p;
}

void lh_jobs_close(lh_jobs *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    for (size_t i = 0; i < p->n_all; i++)
        job_free(p->all[i]);
    free(p->all);
    free(p->threads);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Appends j to the queue. Under mu. */
static void enqueue(lh_jobs *p, lh_job *j)
{
    if (p->qtail)
        p->qtail->qnext = j;
    else
        p->qhead = j;
    p->qtail = j;
    pthread_cond_signal(&p->work);
}

int lh_jobs_submit(lh_jobs *p, const char *kind, const char *actor, lh_job_fn run,
                   lh_job_done_fn done, void *ctx, char *id_out, lh_error *err)
{
    lh_job *j = lh_xcalloc(1, sizeof(*j));
    j->pool = p;
    lh_random_hex(j->id, LH_JOB_ID_LEN);
    j->kind = lh_xstrdup(kind ? kind : "job");
    j->actor = lh_xstrdup(actor ? actor : "anonymous");
    j->state = JOB_QUEUED;
    lh_time_rfc3339(j->created_at);
    j->run = run;
    j->done = done;
    j->ctx = ctx;
    pthread_mutex_init(&j->hook_mu, NULL);
    pthread_mutex_lock(&p->mu);
    if (p->closing || p->n_threads == 0) {
        pthread_mutex_unlock(&p->mu);
        job_free(j);
        return lh_error_set(err, LH_EUNAVAILABLE,
                            "the server is shutting down and takes no new work; retry later");
    }
    if (p->n_all == p->cap_all) {
        p->cap_all = p->cap_all ? p->cap_all * 2 : 64;
        p->all = lh_xrealloc(p->all, p->cap_all * sizeof(*p->all));
    }
    p->all[p->n_all++] = j;
    enqueue(p, j);
    memcpy(id_out, j->id, LH_JOB_ID_LEN + 1);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int lh_jobs_post(lh_jobs *p, void (*fn)(void *ctx), void *ctx, lh_error *err)
{
    lh_job *j = lh_xcalloc(1, sizeof(*j));
    j->pool = p;
    j->task = fn;
    j->ctx = ctx;
    pthread_mutex_lock(&p->mu);
    if (p->closing || p->n_threads == 0) {
        pthread_mutex_unlock(&p->mu);
        free(j);
        return lh_error_set(err, LH_EUNAVAILABLE,
                            "the server is shutting down and takes no new work; retry later");
    }
    enqueue(p, j);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

const char *lh_job_id(const lh_job *j)
{
    return j->id;
}

void lh_job_progress(lh_job *j, int64_t done, int64_t total)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->pool->mu);
    j->progress_done = done;
    j->progress_total = total;
    pthread_mutex_unlock(&j->pool->mu);
}

void lh_job_set_result(lh_job *j, json_t *result)
{
    if (!j) {
        json_decref(result);
        return;
    }
    pthread_mutex_lock(&j->pool->mu);
    json_decref(j->result);
    j->result = result;
    pthread_mutex_unlock(&j->pool->mu);
}

static json_t *ts_or_null(const char *ts)
{
    return ts[0] ? json_string(ts) : json_null();
}

json_t *lh_jobs_get(lh_jobs *p, const char *id, lh_error *err)
{
    json_t *out = NULL;
    const lh_job *found = NULL;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; id && i < p->n_all && !out; i++) {
        const lh_job *j = p->all[i];
        if (strcmp(j->id, id) != 0)
            continue;
        found = j;
        out = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:{s:I,s:I},s:o}", "id", j->id, "kind",
                        j->kind, "actor", j->actor, "state", state_names[j->state], "created_at",
                        j->created_at, "started_at", ts_or_null(j->started_at), "finished_at",
                        ts_or_null(j->finished_at), "progress", "done",
                        (json_int_t)j->progress_done, "total", (json_int_t)j->progress_total,
                        "error", j->error ? json_string(j->error) : json_null());
    }
    if (found)
        json_object_set_new(out, "cancelled_by",
                            found->cancelled_by ? json_string(found->cancelled_by) : json_null());
    if (found && found->result)
        json_object_set_new(out, "result", json_deep_copy(found->result));
    pthread_mutex_unlock(&p->mu);
    if (!out)
        lh_error_set(err, LH_ENOTFOUND,
                     "no job with id '%s' (finished jobs are kept for the last %d jobs only)",
                     id ? id : "", LH_JOBS_KEEP);
    return out;
}

/* The record of job `id`, or NULL. Under mu. */
static lh_job *find(lh_jobs *p, const char *id)
{
    for (size_t i = 0; id && i < p->n_all; i++)
        if (strcmp(p->all[i]->id, id) == 0)
            return p->all[i];
    return NULL;
}

/* Takes a queued job out of the queue. Under mu. */
static void dequeue(lh_jobs *p, lh_job *j)
{
    lh_job *prev = NULL;
    for (lh_job *q = p->qhead; q; prev = q, q = q->qnext) {
        if (q != j)
            continue;
        if (prev)
            prev->qnext = q->qnext;
        else
            p->qhead = q->qnext;
        if (p->qtail == q)
            p->qtail = prev;
        q->qnext = NULL;
        return;
    }
}

static int cancel(lh_jobs *p, const char *id, const char *actor, const char *only_of, lh_error *err)
{
    const char *who = actor ? actor : "anonymous";
    pthread_mutex_lock(&p->mu);
    lh_job *j = find(p, id);
    if (!j) {
        pthread_mutex_unlock(&p->mu);
        return lh_error_set(
            err, LH_ENOTFOUND,
            "no job with id '%s' (finished jobs are kept for the last %d jobs only)", id ? id : "",
            LH_JOBS_KEEP);
    }
    if (only_of && strcmp(j->actor, only_of) != 0) {
        pthread_mutex_unlock(&p->mu);
        return lh_error_set(err, LH_EFORBIDDEN,
                            "job '%s' was started by another key: only its own key or an admin "
                            "may cancel it",
                            id);
    }
    if (is_finished(j->state)) {
        const char *state = state_names[j->state];
        pthread_mutex_unlock(&p->mu);
        return lh_error_setk(err, LH_ECONFLICT, "job_finished",
                             "job '%s' has already finished (%s): there is nothing to cancel", id,
                             state);
    }
    if (atomic_load(&j->cancelled)) { /* asked before: the first request does the work */
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    atomic_store(&j->cancelled, true);
    j->cancelled_by = lh_xstrdup(who);
    if (j->state == JOB_QUEUED) {
        dequeue(p, j);
        j->state = JOB_CANCELLED;
        lh_time_rfc3339(j->finished_at);
        j->error = lh_xasprintf("cancelled by '%s' before it started", who);
        lh_log(LH_LOG_INFO, "job.finished", "{s:s,s:s,s:s,s:s}", "job", j->id, "kind", j->kind,
               "state", state_names[j->state], "cancelled_by", who);
        lh_job_done_fn done = j->done;
        void *ctx = j->ctx;
        p->n_finished++;
        prune(p); /* may free j */
        pthread_mutex_unlock(&p->mu);
        if (done)
            done(ctx, LH_ECANCELLED);
        return 0;
    }
    /* Running: interrupt its blocking work through the hook, outside mu. */
    lh_log(LH_LOG_INFO, "job.cancel", "{s:s,s:s,s:s}", "job", j->id, "kind", j->kind,
           "cancelled_by", who);
    j->pins++;
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_lock(&j->hook_mu);
    if (j->hook && !j->hook_called) {
        j->hook_called = true;
        j->hook(j->hook_ctx);
    }
    pthread_mutex_unlock(&j->hook_mu);
    pthread_mutex_lock(&p->mu);
    j->pins--;
    prune(p);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int lh_jobs_cancel(lh_jobs *p, const char *id, const char *actor, lh_error *err)
{
    return cancel(p, id, actor, NULL, err);
}

int lh_jobs_cancel_own(lh_jobs *p, const char *id, const char *actor, lh_error *err)
{
    return cancel(p, id, actor, actor ? actor : "anonymous", err);
}

int lh_jobs_cancel_kind(lh_jobs *p, const char *kind, const char *actor)
{
    if (!p || !kind)
        return 0;
    /* Ids first, under mu; then each cancel takes mu itself (a hook may block). A job that
     * finishes in between answers LH_ECONFLICT, which is fine here. Queued jobs go first:
     * a running job cancelled first could free its thread for a queued one of the same
     * kind, which would then run (and maybe finish) before its own cancel. */
    pthread_mutex_lock(&p->mu);
    char(*ids)[LH_JOB_ID_LEN + 1] = lh_xcalloc(p->n_all + 1, sizeof(*ids));
    size_t n = 0;
    for (int running = 0; running <= 1; running++)
        for (size_t i = 0; i < p->n_all; i++)
            if ((p->all[i]->state == (running ? JOB_RUNNING : JOB_QUEUED)) &&
                strcmp(p->all[i]->kind, kind) == 0)
                memcpy(ids[n++], p->all[i]->id, LH_JOB_ID_LEN + 1);
    pthread_mutex_unlock(&p->mu);
    int asked = 0;
    for (size_t i = 0; i < n; i++)
        if (cancel(p, ids[i], actor, NULL, NULL) == 0)
            asked++;
    free(ids);
    return asked;
}

bool lh_job_cancelled(const lh_job *j)
{
    return j && atomic_load(&j->cancelled);
}

void lh_job_set_cancel_hook(lh_job *j, void (*fn)(void *ctx), void *ctx)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->hook_mu);
    j->hook = fn;
    j->hook_ctx = fn ? ctx : NULL;
    j->hook_called = false;
    /* Cancelled before this hook existed: a canceller that comes later finds it called. */
    if (fn && atomic_load(&j->cancelled)) {
        j->hook_called = true;
        fn(ctx);
    }
    pthread_mutex_unlock(&j->hook_mu);
}
