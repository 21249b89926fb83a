/*
 * retire.h: superseded Parquet parts wait until no query that could still read them runs.
 *
 * A retirer knows the start epochs of the running user queries and the parts waiting to be
 * deleted; it knows nothing of the engine, generations or slots. Its mutex is a leaf: it
 * may be taken under any engine lock, and no other lock is taken while it is held
 * (deleting happens after it is released).
 */
#ifndef LH_QUERY_RETIRE_H
#define LH_QUERY_RETIRE_H

#include "storage/storage.h"

typedef struct lh_retirer lh_retirer;

/* st must outlive the retirer. Caller frees with lh_retirer_free. */
lh_retirer *lh_retirer_new(lh_storage *st);
/* Deletes the parts still waiting (call once no query runs). Accepts NULL. */
void lh_retirer_free(lh_retirer *r);

/* A reader (user query) starts: returns its start epoch, to hand back to lh_retirer_exit. */
uint64_t lh_retirer_enter(lh_retirer *r);
/* The reader that started at start_epoch ended: deletes the parts no remaining reader can
 * still be using. */
void lh_retirer_exit(lh_retirer *r, uint64_t start_epoch);

/* The catalog's retirer (lh_catalog_set_retirer, ctx = the lh_retirer): the parts are
 * deleted now when no reader runs, else once every reader running now has ended. */
void lh_retirer_retire(void *ctx, const char *bucket, char *const *keys, size_t n);

#endif
