/*
 * test_jobs.c: cancelling the job pool's work (core/jobs.c, lh_jobs_cancel): a queued job
 * never runs, a running one has its hook called once and ends "cancelled", a cleared hook
 * never runs, a running hook is waited out by the thread that clears it, and a finished
 * job cannot be cancelled. (The pool's other behaviour is tested in test_core.c.)
 */
#include "testutil.h"

#include "core/core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

typedef struct probe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started;      /* the job is running (and set its hook, when it sets one) */
    bool release;      /* the job may go on */
    bool hook_cleared; /* the job cleared its hook */
    int ran;           /* runs that reached their end */
    int done_calls, done_rc;
    atomic_int hooks;            /* hook calls */
    atomic_bool hook_running;    /* a slow hook is inside */
    atomic_bool hook_finished;   /* a slow hook returned */
    bool hook_done_before_clear; /* the clearing thread saw the slow hook finish first */
    pthread_t done_thread;       /* where done() ran */
} probe;

#define PROBE_INIT                                                                                 \
    {                                                                                              \
        .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER                            \
    }

static void wait_for(probe *p, bool *flag)
{
    pthread_mutex_lock(&p->mu);
    while (!*flag)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

static void set_flag(probe *p, bool *flag)
{
    pthread_mutex_lock(&p->mu);
    *flag = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void on_done(void *ctx, int rc)
{
    probe *p = ctx;
    pthread_mutex_lock(&p->mu);
    p->done_calls++;
    p->done_rc = rc;
    p->done_thread = pthread_self();
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void wait_done(probe *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->done_calls == 0)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* The hook of a job blocked on p->cv: what a reader's interrupt does to a socket wait. */
static void hook_release(void *ctx)
{
    probe *p = ctx;
    atomic_fetch_add(&p->hooks, 1);
    set_flag(p, &p->release);
}

static void hook_count(void *ctx)
{
    probe *p = ctx;
    atomic_fetch_add(&p->hooks, 1);
}

/* Runs until released (by the hook or the test); LH_ECANCELLED when asked to stop. */
static int job_blocking(lh_job *job, void *ctx, lh_error *err)
{
    probe *p = ctx;
    lh_job_set_cancel_hook(job, hook_release, p);
    set_flag(p, &p->started);
    wait_for(p, &p->release);
    lh_job_set_cancel_hook(job, NULL, NULL);
    pthread_mutex_lock(&p->mu);
    p->ran++;
    pthread_mutex_unlock(&p->mu);
    if (lh_job_cancelled(job))
        return lh_error_setk(err, LH_ECANCELLED, "cancelled", "the test job stopped");
    return 0;
}

/* Like job_blocking with no hook: the test releases it. */
static int job_plain(lh_job *job, void *ctx, lh_error *err)
{
    probe *p = ctx;
    set_flag(p, &p->started);
    wait_for(p, &p->release);
    pthread_mutex_lock(&p->mu);
    p->ran++;
    pthread_mutex_unlock(&p->mu);
    if (lh_job_cancelled(job))
        return lh_error_setk(err, LH_ECANCELLED, "cancelled", "the test job stopped");
    return 0;
}

static int job_count(lh_job *job, void *ctx, lh_error *err)
{
    (void)job;
    (void)err;
    probe *p = ctx;
    pthread_mutex_lock(&p->mu);
    p->ran++;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static json_t *get_job(lh_jobs *jobs, const char *id)
{
    lh_error err;
    json_t *j = lh_jobs_get(jobs, id, &err);
    assert_non_null(j);
    return j;
}

/* Waits until the job's record shows a finished state (done() may run just after). */
static json_t *wait_finished(lh_jobs *jobs, const char *id)
{
    for (int i = 0; i < 5000; i++) {
        json_t *j = get_job(jobs, id);
        const char *s = lh_json_str(j, "state");
        if (strcmp(s, "queued") != 0 && strcmp(s, "running") != 0)
            return j;
        json_decref(j);
        usleep(1000);
    }
    fail_msg("job %s never finished", id);
    return NULL;
}

/* A queued job never runs: it leaves the queue, its done() runs at once with LH_ECANCELLED
 * on the cancelling thread, and its record says who cancelled it. */
static void test_cancel_queued(void **state)
{
    (void)state;
    lh_error err;
    lh_jobs *jobs = lh_jobs_open(1, &err);
    assert_non_null(jobs);
    probe blocker = PROBE_INIT, queued = PROBE_INIT, after = PROBE_INIT;
    char bid[LH_JOB_ID_LEN + 1], qid[LH_JOB_ID_LEN + 1], aid[LH_JOB_ID_LEN + 1];
    assert_int_equal(
        lh_jobs_submit(jobs, "ingest", "alice", job_plain, on_done, &blocker, bid, &err), 0);
    wait_for(&blocker, &blocker.started);
    assert_int_equal(
        lh_jobs_submit(jobs, "compact", "alice", job_count, on_done, &queued, qid, &err), 0);
    assert_int_equal(lh_jobs_submit(jobs, "compact", "bob", job_count, on_done, &after, aid, &err),
                     0);

    assert_int_equal(lh_jobs_cancel(jobs, qid, "carol", &err), 0);
    /* done() ran before lh_jobs_cancel returned, on this thread. */
    assert_int_equal(queued.done_calls, 1);
    assert_int_equal(queued.done_rc, LH_ECANCELLED);
    assert_true(pthread_equal(queued.done_thread, pthread_self()));
    json_t *j = get_job(jobs, qid);
    assert_string_equal(lh_json_str(j, "state"), "cancelled");
    assert_string_equal(lh_json_str(j, "cancelled_by"), "carol");
    assert_non_null(strstr(lh_json_str(j, "error"), "before it started"));
    assert_non_null(lh_json_str(j, "finished_at"));
    assert_true(json_is_null(json_object_get(j, "started_at")));
    json_decref(j);
    /* Cancelling it again: it has finished. */
    assert_int_equal(lh_jobs_cancel(jobs, qid, "carol", &err), LH_ECONFLICT);
    assert_string_equal(lh_error_kind(&err), "job_finished");

    /* The queue still holds the job behind it, which runs once the blocker ends. */
    set_flag(&blocker, &blocker.release);
    wait_done(&after);
    assert_int_equal(after.ran, 1);
    assert_int_equal(after.done_rc, 0);
    lh_jobs_close(jobs);
    assert_int_equal(queued.ran, 0);
    assert_int_equal(queued.done_calls, 1);
    assert_int_equal(blocker.done_rc, 0);
}

/* A running job's hook is called once and unblocks it; the job ends "cancelled" with the
 * run's error, done() gets LH_ECANCELLED, and a second cancel of the finished job is a
 * conflict. */
static void test_cancel_running_calls_hook_once(void **state)
{
    (void)state;
    lh_error err;
    lh_jobs *jobs = lh_jobs_open(2, &err);
    probe p = PROBE_INIT;
    char id[LH_JOB_ID_LEN + 1];
    assert_int_equal(lh_jobs_submit(jobs, "sync", "alice", job_blocking, on_done, &p, id, &err), 0);
    wait_for(&p, &p.started);
    json_t *j = get_job(jobs, id);
    assert_string_equal(lh_json_str(j, "state"), "running");
    assert_true(json_is_null(json_object_get(j, "cancelled_by")));
    json_decref(j);

    assert_int_equal(lh_jobs_cancel(jobs, id, "admin-key", &err), 0);
    wait_done(&p);
    assert_int_equal(atomic_load(&p.hooks), 1);
    assert_int_equal(p.done_rc, LH_ECANCELLED);
    j = get_job(jobs, id);
    assert_string_equal(lh_json_str(j, "state"), "cancelled");
    assert_string_equal(lh_json_str(j, "cancelled_by"), "admin-key");
    assert_string_equal(lh_json_str(j, "error"), "the test job stopped");
    json_decref(j);

    assert_int_equal(lh_jobs_cancel(jobs, id, "admin-key", &err), LH_ECONFLICT);
    assert_string_equal(lh_error_kind(&err), "job_finished");
    assert_int_equal(atomic_load(&p.hooks), 1);
    assert_int_equal(lh_jobs_cancel(jobs, "0123456789abcdef", "admin-key", &err), LH_ENOTFOUND);
    assert_int_equal(lh_jobs_cancel(jobs, NULL, "admin-key", &err), LH_ENOTFOUND);
    lh_jobs_close(jobs);
}

/* What a shutdown does: every unfinished job of one kind is cancelled (the running one
 * through its hook, the queued one before it starts); jobs of other kinds are untouched. */
static void test_cancel_kind(void **state)
{
    (void)state;
    lh_error err;
    lh_jobs *jobs = lh_jobs_open(2, &err);
    probe sync_running = PROBE_INIT, other = PROBE_INIT, sync_queued = PROBE_INIT;
    char id1[LH_JOB_ID_LEN + 1], id2[LH_JOB_ID_LEN + 1], id3[LH_JOB_ID_LEN + 1];
    assert_int_equal(
        lh_jobs_submit(jobs, "sync", "alice", job_blocking, on_done, &sync_running, id1, &err), 0);
    assert_int_equal(
        lh_jobs_submit(jobs, "compaction", "bob", job_plain, on_done, &other, id2, &err), 0);
    wait_for(&sync_running, &sync_running.started);
    wait_for(&other, &other.started);
    /* both threads busy: this one waits in the queue */
    assert_int_equal(
        lh_jobs_submit(jobs, "sync", "carol", job_count, on_done, &sync_queued, id3, &err), 0);

    assert_int_equal(lh_jobs_cancel_kind(jobs, "sync", "shutdown"), 2);
    wait_done(&sync_running);
    wait_done(&sync_queued);
    assert_int_equal(sync_running.done_rc, LH_ECANCELLED);
    assert_int_equal(sync_queued.done_rc, LH_ECANCELLED);
    assert_int_equal(sync_queued.ran, 0);
    json_t *j = get_job(jobs, id1);
    assert_string_equal(lh_json_str(j, "cancelled_by"), "shutdown");
    json_decref(j);
    j = get_job(jobs, id2);
    assert_string_equal(lh_json_str(j, "state"), "running");
    json_decref(j);
    assert_int_equal(lh_jobs_cancel_kind(jobs, "sync", "shutdown"), 0);
    set_flag(&other, &other.release);
    wait_done(&other);
    assert_int_equal(other.done_rc, 0);
    lh_jobs_close(jobs);
}

/* A job that cleared its hook never has it called; asking twice is a no-op; the job sees
 * lh_job_cancelled() and stops by itself. */
static int job_clears_hook(lh_job *job, void *ctx, lh_error *err)
{
    probe *p = ctx;
    lh_job_set_cancel_hook(job, hook_count, p);
    lh_job_set_cancel_hook(job, NULL, NULL);
    set_flag(p, &p->hook_cleared);
    set_flag(p, &p->started);
    wait_for(p, &p->release);
    return lh_job_cancelled(job) ? lh_error_setk(err, LH_ECANCELLED, "cancelled", "stopped") : 0;
}

static void test_cleared_hook_never_runs(void **state)
{
    (void)state;
    lh_error err;
    lh_jobs *jobs = lh_jobs_open(1, &err);
    probe p = PROBE_INIT;
    char id[LH_JOB_ID_LEN + 1];
    assert_int_equal(lh_jobs_submit(jobs, "sync", "alice", job_clears_hook, on_done, &p, id, &err),
                     0);
    wait_for(&p, &p.started);
    assert_int_equal(lh_jobs_cancel(jobs, id, "alice", &err), 0);
    assert_int_equal(lh_jobs_cancel(jobs, id, "bob", &err), 0); /* still running: no-op */
    json_t *j = get_job(jobs, id);
    assert_string_equal(lh_json_str(j, "state"), "running");
    assert_string_equal(lh_json_str(j, "cancelled_by"), "alice"); /* the first one asked */
    json_decref(j);
    set_flag(&p, &p.release);
    wait_done(&p);
    assert_int_equal(atomic_load(&p.hooks), 0);
    assert_int_equal(p.done_rc, LH_ECANCELLED);
    j = wait_finished(jobs, id);
    assert_string_equal(lh_json_str(j, "state"), "cancelled");
    json_decref(j);
    lh_jobs_close(jobs);
}

/* A hook set after the cancel runs at once, on the job's thread (the canceller found none);
 * a job that finishes its work anyway ends "succeeded", with cancelled_by recorded. */
static int job_late_hook(lh_job *job, void *ctx, lh_error *err)
{
    (void)err;
    probe *p = ctx;
    set_flag(p, &p->started);
    while (!lh_job_cancelled(job))
        usleep(1000);
    lh_job_set_cancel_hook(job, hook_count, p);
    int calls = atomic_load(&p->hooks);
    lh_job_set_cancel_hook(job, NULL, NULL);
    pthread_mutex_lock(&p->mu);
    p->ran = calls;
    pthread_mutex_unlock(&p->mu);
    return 0; /* finished anyway */
}

static void test_hook_set_after_cancel_runs_at_once(void **state)
{
    (void)state;
    lh_error err;
    lh_jobs *jobs = lh_jobs_open(1, &err);
    probe p = PROBE_INIT;
    char id[LH_JOB_ID_LEN + 1];
    assert_int_equal(lh_jobs_submit(jobs, "sync", "alice", job_late_hook, on_done, &p, id, &err),
                     0);
    wait_for(&p, &p.started);
    assert_int_equal(lh_jobs_cancel(jobs, id, "alice", &err), 0);
    wait_done(&p);
    assert_int_equal(p.ran, 1); /* the hook had run when set_cancel_hook returned */
    assert_int_equal(atomic_load(&p.hooks), 1);
    assert_int_equal(p.done_rc, 0);
    json_t *j = wait_finished(jobs, id);
    assert_string_equal(lh_json_str(j, "state"), "succeeded");
    assert_string_equal(lh_json_str(j, "cancelled_by"), "alice");
    assert_true(json_is_null(json_object_get(j, "error")));
    json_decref(j);
    lh_jobs_close(jobs);
}

/* Clearing the hook waits out a hook that is running: after the clear returns, the hook
 * has finished (so the job may free what it used). */
static void hook_slow(void *ctx)
{
    probe *p = ctx;
    atomic_fetch_add(&p->hooks, 1);
    atomic_store(&p->hook_running, true);
    usleep(200 * 1000);
    atomic_store(&p->hook_finished, true);
}

static int job_clears_during_hook(lh_job *job, void *ctx, lh_error *err)
{
    probe *p = ctx;
    lh_job_set_cancel_hook(job, hook_slow, p);
    set_flag(p, &p->started);
    while (!atomic_load(&p->hook_running))
        usleep(1000);
    lh_job_set_cancel_hook(job, NULL, NULL);
    p->hook_done_before_clear = atomic_load(&p->hook_finished);
    return lh_error_setk(err, LH_ECANCELLED, "cancelled", "stopped");
}

static void *cancel_thread(void *arg)
{
    void **a = arg;
    lh_error err;
    intptr_t rc = lh_jobs_cancel(a[0], a[1], "alice", &err);
    return (void *)rc;
}

static void test_clearing_waits_out_a_running_hook(void **state)
{
    (void)state;
    lh_error err;
    lh_jobs *jobs = lh_jobs_open(1, &err);
    probe p = PROBE_INIT;
    char id[LH_JOB_ID_LEN + 1];
    assert_int_equal(
        lh_jobs_submit(jobs, "sync", "alice", job_clears_during_hook, on_done, &p, id, &err), 0);
    wait_for(&p, &p.started);
    void *args[2] = {jobs, id};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cancel_thread, args), 0);
    /* While the slow hook runs, the pool's lock is free: the record can be read. */
    while (!atomic_load(&p.hook_running))
        usleep(1000);
    json_t *j = get_job(jobs, id);
    assert_non_null(j);
    json_decref(j);
    void *rc;
    pthread_join(t, &rc);
    assert_int_equal((intptr_t)rc, 0);
    wait_done(&p);
    assert_true(p.hook_done_before_clear);
    assert_int_equal(atomic_load(&p.hooks), 1);
    assert_int_equal(p.done_rc, LH_ECANCELLED);
    lh_jobs_close(jobs);
}

/* A non-admin stops only its own jobs; the refusal changes nothing. */
static void test_cancel_own_only(void **state)
{
    (void)state;
    lh_error err;
    lh_jobs *jobs = lh_jobs_open(1, &err);
    probe p = PROBE_INIT;
    char id[LH_JOB_ID_LEN + 1];
    assert_int_equal(lh_jobs_submit(jobs, "sync", "alice", job_blocking, on_done, &p, id, &err), 0);
    wait_for(&p, &p.started);
    assert_int_equal(lh_jobs_cancel_own(jobs, id, "mallory", &err), LH_EFORBIDDEN);
    assert_null(strstr(err.message, "alice")); /* the owner is not told to others */
    json_t *j = get_job(jobs, id);
    assert_string_equal(lh_json_str(j, "state"), "running");
    assert_true(json_is_null(json_object_get(j, "cancelled_by")));
    json_decref(j);
    assert_int_equal(atomic_load(&p.hooks), 0);
    assert_int_equal(lh_jobs_cancel_own(jobs, "0123456789abcdef", "mallory", &err), LH_ENOTFOUND);
    assert_int_equal(lh_jobs_cancel_own(jobs, id, "alice", &err), 0);
    wait_done(&p);
    assert_int_equal(p.done_rc, LH_ECANCELLED);
    assert_int_equal(atomic_load(&p.hooks), 1);
    lh_jobs_close(jobs);
}

/* Cancelled records are finished ones: the registry still forgets the oldest beyond
 * LH_JOBS_KEEP, so cancelling never grows it without bound. */
static void test_cancelled_records_are_pruned(void **state)
{
    (void)state;
    lh_error err;
    lh_jobs *jobs = lh_jobs_open(1, &err);
    probe blocker = PROBE_INIT, q = PROBE_INIT;
    char bid[LH_JOB_ID_LEN + 1], first[LH_JOB_ID_LEN + 1], id[LH_JOB_ID_LEN + 1];
    assert_int_equal(lh_jobs_submit(jobs, "x", "a", job_plain, on_done, &blocker, bid, &err), 0);
    wait_for(&blocker, &blocker.started);
    for (int i = 0; i < LH_JOBS_KEEP + 3; i++) {
        assert_int_equal(lh_jobs_submit(jobs, "x", "a", job_count, on_done, &q, id, &err), 0);
        if (i == 0)
            memcpy(first, id, sizeof(id));
        assert_int_equal(lh_jobs_cancel(jobs, id, "a", &err), 0);
    }
    assert_null(lh_jobs_get(jobs, first, &err));
    json_t *j = get_job(jobs, id);
    assert_string_equal(lh_json_str(j, "state"), "cancelled");
    json_decref(j);
    j = get_job(jobs, bid); /* the running one is never forgotten */
    json_decref(j);
    assert_int_equal(q.done_calls, LH_JOBS_KEEP + 3);
    assert_int_equal(q.ran, 0);
    set_flag(&blocker, &blocker.release);
    lh_jobs_close(jobs);
}

/* Cancels racing jobs that finish on their own, with the registry pruning meanwhile: every
 * job's done() runs exactly once, every record ends finished, and (under ASan) no record
 * is used after the pool freed it. */
typedef struct race_probe {
    atomic_int done_calls, hook_calls, runs;
} race_probe;

static void race_hook(void *ctx)
{
    race_probe *p = ctx;
    atomic_fetch_add(&p->hook_calls, 1);
}

static int race_job(lh_job *job, void *ctx, lh_error *err)
{
    race_probe *p = ctx;
    atomic_fetch_add(&p->runs, 1);
    lh_job_set_cancel_hook(job, race_hook, p);
    for (int i = 0; i < 50 && !lh_job_cancelled(job); i++)
        usleep(20);
    lh_job_set_cancel_hook(job, NULL, NULL);
    return lh_job_cancelled(job) ? lh_error_setk(err, LH_ECANCELLED, "cancelled", "stopped") : 0;
}

static void race_done(void *ctx, int rc)
{
    (void)rc;
    race_probe *p = ctx;
    atomic_fetch_add(&p->done_calls, 1);
}

static void test_cancel_races_finishing_jobs(void **state)
{
    (void)state;
    enum { N = LH_JOBS_KEEP + 64 };
    lh_error err;
    lh_jobs *jobs = lh_jobs_open(2, &err);
    race_probe p = {0};
    static char ids[N][LH_JOB_ID_LEN + 1];
    for (int i = 0; i < N; i++) {
        assert_int_equal(lh_jobs_submit(jobs, "race", "a", race_job, race_done, &p, ids[i], &err),
                         0);
        if (i >= 2) {
            usleep((useconds_t)(i % 7) * 150);
            int rc = lh_jobs_cancel(jobs, ids[i - 2], "a", &err);
            /* queued, running, finished or already forgotten: all fine, nothing else */
            if (rc != 0 && rc != LH_ECONFLICT && rc != LH_ENOTFOUND)
                fail_msg("cancel of job %d: %d (%s)", i - 2, rc, err.message);
        }
    }
    lh_jobs_close(jobs);
    assert_int_equal(atomic_load(&p.done_calls), N);
    assert_true(atomic_load(&p.runs) <= N);
    assert_true(atomic_load(&p.hook_calls) <= atomic_load(&p.runs));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_queued),
        cmocka_unit_test(test_cancel_running_calls_hook_once),
        cmocka_unit_test(test_cancel_kind),
        cmocka_unit_test(test_cleared_hook_never_runs),
        cmocka_unit_test(test_hook_set_after_cancel_runs_at_once),
        cmocka_unit_test(test_clearing_waits_out_a_running_hook),
        cmocka_unit_test(test_cancel_own_only),
        cmocka_unit_test(test_cancelled_records_are_pruned),
        cmocka_unit_test(test_cancel_races_finishing_jobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
