/*
 * retire.c: superseded Parquet parts are deleted only when no query can still read them.
 *
 * A replace or delete commits the new manifest and swaps the DuckDB views first; a query
 * that started a moment earlier is bound to the old files and DuckDB opens a dataset's
 * later parts only when its scan reaches them. Deleting the old parts at once made such a
 * query fail half-way ("Cannot open file"). So the catalog hands superseded parts to
 * lh_engine_retire, which stamps them with a new epoch and deletes them once every user
 * query that started before that epoch has ended. A crash before that leaves them
 * unreferenced by any manifest: the catalog's orphan sweep removes them at the next start.
 */
#include "query_internal.h"

#include <stdlib.h>

uint64_t lh_readers_enter_locked(lh_engine *eng)
{
    if (eng->nreaders == eng->cap_readers) {
        eng->cap_readers = eng->cap_readers ? eng->cap_readers * 2 : 16;
        eng->reader_epochs =
            lh_xrealloc(eng->reader_epochs, eng->cap_readers * sizeof(*eng->reader_epochs));
    }
    eng->reader_epochs[eng->nreaders++] = eng->epoch;
    return eng->epoch;
}

lh_retired *lh_readers_exit_locked(lh_engine *eng, uint64_t start_epoch)
{
    for (size_t i = 0; i < eng->nreaders; i++) {
        if (eng->reader_epochs[i] == start_epoch) {
            eng->reader_epochs[i] = eng->reader_epochs[--eng->nreaders];
            break;
        }
    }
    uint64_t oldest = UINT64_MAX;
    for (size_t i = 0; i < eng->nreaders; i++)
        if (eng->reader_epochs[i] < oldest)
            oldest = eng->reader_epochs[i];
    /* Entries are in epoch order: free every one no remaining reader predates. */
    lh_retired *free_list = NULL, **tail = &free_list;
    while (eng->retired && eng->retired->epoch <= oldest) {
        lh_retired *r = eng->retired;
        eng->retired = r->next;
        r->next = NULL;
        *tail = r;
        tail = &r->next;
    }
    return free_list;
}

void lh_retired_delete(lh_engine *eng, lh_retired *list)
{
    while (list) {
        lh_retired *next = list->next;
        lh_error err;
        if (lh_storage_delete(eng->st, list->bucket, list->key, &err) != 0)
            lh_log(LH_LOG_WARN, "query.retired_delete_failed", "{s:s,s:s,s:s}", "bucket",
                   list->bucket, "key", list->key, "error", err.message);
        free(list->bucket);
        free(list->key);
        free(list);
        list = next;
    }
}

void lh_engine_retire(void *ctx, const char *bucket, char *const *keys, size_t n)
{
    lh_engine *eng = ctx;
    lh_retired *now = NULL, **tail_now = &now;
    pthread_mutex_lock(&eng->gen_mu);
    uint64_t e = ++eng->epoch;
    bool readers = eng->nreaders > 0;
    lh_retired **tail = &eng->retired;
    while (*tail)
        tail = &(*tail)->next;
    for (size_t i = 0; i < n; i++) {
        lh_retired *r = lh_xcalloc(1, sizeof(*r));
        r->bucket = lh_xstrdup(bucket);
        r->key = lh_xstrdup(keys[i]);
        r->epoch = e;
        if (readers) {
            *tail = r;
            tail = &r->next;
        } else {
            *tail_now = r;
            tail_now = &r->next;
        }
    }
    pthread_mutex_unlock(&eng->gen_mu);
    lh_retired_delete(eng, now);
}
