/*
 * watchdog.c: one thread that stops queries past their deadline.
 *
 * Queries register (connection, deadline) entries; the thread sleeps on a condition
 * variable (monotonic clock) until the earliest deadline, calls duckdb_interrupt on every
 * entry that is due and marks it fired, so the query reports a timeout instead of DuckDB's
 * "Interrupted". An entry is interrupted at most once.
 *
 * Expiry. Interrupting is not enough for a query whose client reads slowly or not at all:
 * it is not running in DuckDB, it waits for the socket, and libmicrohttpd calls its reader
 * only when the socket is writable, so nothing on the request's side would ever notice the
 * deadline. An entry with an expire callback therefore also gets that callback once it has
 * fired: it runs on this thread, without the watchdog mutex, and gives back the query's
 * DuckDB state, slot and generation at the deadline. The callback must not block on the
 * query (it try-locks it); when it reports "busy" (false) the query's own thread is inside
 * it and the callback is retried EXPIRE_RETRY_MS later. After it reports done (true) the
 * entry is unlinked here.
 *
 * Invariants: duckdb_interrupt is only called under the watchdog mutex, and a query removes
 * its entry (under the same mutex) before it disconnects, so the connection is alive for
 * every interrupt. lh_watchdog_remove also waits while the entry's expire callback runs, so
 * once it returns the watchdog never touches the entry again (the query may be freed). The
 * list is short (at most max_concurrent_queries entries), so a linear scan for the
 * earliest deadline is cheaper than keeping it sorted.
 *
 * Wake-ups. Adding an entry wakes the thread only when the new deadline is earlier than
 * the time it sleeps until (wake_ms): with one time limit for every query, a new deadline
 * is never the earliest while another query runs, and waking the thread at each query
 * (to find nothing due) cost two context switches and a contended mutex per query at 16
 * concurrent clients. While the thread is awake (scanning, or in an expire callback)
 * wake_ms is INT64_MIN: it scans again before it sleeps, so it cannot miss an entry. A
 * removed entry never wakes it; it may wake once for a deadline no longer listed.
 */
#include "query_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How soon an expire callback that found its query busy is tried again. */
#define EXPIRE_RETRY_MS 10

struct lh_watchdog {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t done_cv; /* signalled when an expire callback returns */
    pthread_t thread;
    lh_watch *head;
    lh_watch *running; /* the entry whose expire callback runs now, or NULL */
    int64_t wake_ms;   /* when the sleeping thread wakes (INT64_MAX: when signalled);
                        * INT64_MIN while it is awake and will scan again */
    bool stop;
};

static void unlink_locked(lh_watchdog *wd, lh_watch *w)
{
    for (lh_watch **p = &wd->head; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    w->next = NULL;
}

/* Runs the expire callback of a due, fired entry. Called and returns with wd->mu held,
 * which it drops around the callback. */
static void expire_locked(lh_watchdog *wd, lh_watch *w)
{
    wd->running = w;
    pthread_mutex_unlock(&wd->mu);
    bool done = w->expire(w);
    pthread_mutex_lock(&wd->mu);
    wd->running = NULL;
    if (done)
        unlink_locked(wd, w);
    else
        w->expire_at_ms = lh_now_ms() + EXPIRE_RETRY_MS;
    pthread_cond_broadcast(&wd->done_cv);
}

static void *watchdog_main(void *arg)
{
    lh_watchdog *wd = arg;
    pthread_mutex_lock(&wd->mu);
    while (!wd->stop) {
        int64_t now = lh_now_ms(), next = INT64_MAX;
        lh_watch *due = NULL;
        for (lh_watch *w = wd->head; w; w = w->next) {
            if (!atomic_load(&w->fired)) {
                if (w->deadline_ms <= now) {
                    duckdb_interrupt(w->conn);
                    atomic_store(&w->fired, true);
                    w->expire_at_ms = now;
                } else if (w->deadline_ms < next) {
                    next = w->deadline_ms;
                    continue;
                } else {
                    continue;
                }
            }
            if (!w->expire)
                continue;
            if (w->expire_at_ms <= now)
                due = due ? due : w;
            else if (w->expire_at_ms < next)
                next = w->expire_at_ms;
        }
        if (due) {
            /* The list may change while the callback runs: scan again afterwards. */
            expire_locked(wd, due);
            continue;
        }
        wd->wake_ms = next;
        if (next == INT64_MAX) {
            pthread_cond_wait(&wd->cv, &wd->mu);
            wd->wake_ms = INT64_MIN;
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t wait_ms = next - now;
        ts.tv_sec += (time_t)(wait_ms / 1000);
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&wd->cv, &wd->mu, &ts);
        wd->wake_ms = INT64_MIN;
    }
    pthread_mutex_unlock(&wd->mu);
    return NULL;
}

lh_watchdog *lh_watchdog_start(lh_error *err)
{
    lh_watchdog *wd = lh_xcalloc(1, sizeof(*wd));
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* lh_now_ms's clock */
    pthread_cond_init(&wd->cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&wd->done_cv, NULL);
    pthread_mutex_init(&wd->mu, NULL);
    wd->wake_ms = INT64_MIN; /* the thread scans before it first sleeps */
    int rc = pthread_create(&wd->thread, NULL, watchdog_main, wd);
    if (rc != 0) {
        lh_error_set(err, LH_EINTERNAL, "cannot start the query watchdog: %s", strerror(rc));
        pthread_cond_destroy(&wd->done_cv);
        pthread_cond_destroy(&wd->cv);
        pthread_mutex_destroy(&wd->mu);
        free(wd);
        return NULL;
    }
    return wd;
}

void lh_watchdog_stop(lh_watchdog *wd)
{
    if (!wd)
        return;
    pthread_mutex_lock(&wd->mu);
    wd->stop = true;
    pthread_cond_signal(&wd->cv);
    pthread_mutex_unlock(&wd->mu);
    pthread_join(wd->thread, NULL);
    pthread_cond_destroy(&wd->done_cv);
    pthread_cond_destroy(&wd->cv);
    pthread_mutex_destroy(&wd->mu);
    free(wd);
}

void lh_watchdog_add(lh_watchdog *wd, lh_watch *w)
{
    atomic_store(&w->fired, false);
    pthread_mutex_lock(&wd->mu);
    w->next = wd->head;
    wd->head = w;
    if (w->deadline_ms < wd->wake_ms) /* the new deadline is the earliest */
        pthread_cond_signal(&wd->cv);
    pthread_mutex_unlock(&wd->mu);
}

void lh_watchdog_remove(lh_watchdog *wd, lh_watch *w)
{
    pthread_mutex_lock(&wd->mu);
    while (wd->running == w) /* its expire callback never blocks, so this is short */
        pthread_cond_wait(&wd->done_cv, &wd->mu);
    unlink_locked(wd, w);
    pthread_mutex_unlock(&wd->mu);
}
