/*
 * retire.c: superseded Parquet parts are deleted only when no query can still read them.
 *
 * A replace or delete commits the new manifest and swaps the DuckDB views first; a query
 * that started a moment earlier is bound to the old files and DuckDB opens a dataset's
 * later parts only when its scan reaches them. Deleting the old parts at once made such a
 * query fail half-way ("Cannot open file"). So the catalog hands superseded parts to
 * lh_retirer_retire, which stamps them with a new epoch and deletes them once every user
 * query that started before that epoch has ended. A crash before that leaves them
 * unreferenced by any manifest: the catalog's orphan sweep removes them at the next start.
 *
 * Invariants (under mu): retired is in epoch order; a part of epoch e waits while some
 * reader's start epoch is < e. mu is a leaf lock; lh_storage_delete runs after it is
 * released.
 */
#include "retire.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct retired {
    char *bucket, *key;
    uint64_t epoch;
    struct retired *next;
} retired;

struct lh_retirer {
    lh_storage *st;
    pthread_mutex_t mu;
    uint64_t epoch;
    uint64_t *reader_epochs; /* start epochs of running user queries (a multiset) */
    size_t nreaders, cap_readers;
    retired *waiting; /* oldest first */
};

lh_retirer *lh_retirer_new(lh_storage *st)
{
    lh_retirer *r = lh_xcalloc(1, sizeof(*r));
    r->st = st;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void delete_list(lh_retirer *r, retired *list)
{
    while (list) {
        retired *next = list->next;
        lh_error err;
        if (lh_storage_delete(r->st, list->bucket, list->key, &err) != 0)
            lh_log(LH_LOG_WARN, "query.retired_delete_failed", "{s:s,s:s,s:s}", "bucket",
                   list->bucket, "key", list->key, "error", err.message);
        free(list->bucket);
        free(list->key);
        free(list);
        list = next;
    }
}

void lh_retirer_free(lh_retirer *r)
{
    if (!r)
        return;
    delete_list(r, r->waiting);
    free(r->reader_epochs);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

uint64_t lh_retirer_enter(lh_retirer *r)
{
    pthread_mutex_lock(&r->mu);
    if (r->nreaders == r->cap_readers) {
        r->cap_readers = r->cap_readers ? r->cap_readers * 2 : 16;
        r->reader_epochs = lh_xrealloc(r->reader_epochs, r->cap_readers * sizeof(uint64_t));
    }
    r->reader_epochs[r->nreaders++] = r->epoch;
    uint64_t e = r->epoch;
    pthread_mutex_unlock(&r->mu);
    return e;
}

void lh_retirer_exit(lh_retirer *r, uint64_t start_epoch)
{
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nreaders; i++) {
        if (r->reader_epochs[i] == start_epoch) {
            r->reader_epochs[i] = r->reader_epochs[--r->nreaders];
            break;
        }
    }
    uint64_t oldest = UINT64_MAX;
    for (size_t i = 0; i < r->nreaders; i++)
        if (r->reader_epochs[i] < oldest)
            oldest = r->reader_epochs[i];
    /* Entries are in epoch order: free every one no remaining reader predates. */
    retired *free_list = NULL, **tail = &free_list;
    while (r->waiting && r->waiting->epoch <= oldest) {
        retired *x = r->waiting;
        r->waiting = x->next;
        x->next = NULL;
        *tail = x;
        tail = &x->next;
    }
    pthread_mutex_unlock(&r->mu);
    delete_list(r, free_list); /* parts only this reader could still have read */
}

void lh_retirer_retire(void *ctx, const char *bucket, char *const *keys, size_t n)
{
    lh_retirer *r = ctx;
    retired *now = NULL, **tail_now = &now;
    pthread_mutex_lock(&r->mu);
    uint64_t e = ++r->epoch;
    bool readers = r->nreaders > 0;
    retired **tail = &r->waiting;
    while (*tail)
        tail = &(*tail)->next;
    for (size_t i = 0; i < n; i++) {
        retired *x = lh_xcalloc(1, sizeof(*x));
        x->bucket = lh_xstrdup(bucket);
        x->key = lh_xstrdup(keys[i]);
        x->epoch = e;
        if (readers) {
            *tail = x;
            tail = &x->next;
        } else {
            *tail_now = x;
            tail_now = &x->next;
        }
    }
    pthread_mutex_unlock(&r->mu);
    delete_list(r, now);
}
