/*
 * registry_internal.h: what the index lifecycle's three files share (vectors.c the
 * registry, store.c the private DuckDB, build.c build / refresh / purge / promotion). Only
 * those files and tests/unit/test_vectors.c include it; the rest of src/vector/ goes
 * through vector_internal.h.
 *
 * Locks, in the order they may be taken (never the other way):
 *   vindex.work_mu   serialises the long work on one index (build, refresh, purge,
 *                    promotion); held for the whole work, never by a search
 *   vindex.load_mu   one load of the warm structure at a time (a cold search waits for the
 *                    load, never for work_mu)
 *   v->def_mu        one definition write at a time (file + memory swap), so a stale mark
 *                    and a refresh's commit never lose each other's change
 *   v->mu            the in-memory registry: items, each vindex's def / warm / problem /
 *                    refs; held for copies and swaps only, never across I/O
 *   v->ev_mu         the event queue the catalog's tap fills (the tap runs under the
 *                    journal's lock, so it takes nothing but ev_mu)
 *   v->db_mu         the private DuckDB instance (store.c)
 */
#ifndef LH_VECTOR_REGISTRY_INTERNAL_H
#define LH_VECTOR_REGISTRY_INTERNAL_H

#include "vector/vector_internal.h"

/* Documents read from the engine per page; chunks embedded per embedder call (the embedder
 * batches again for its server); chunks per Parquet part. */
#define LH_VECTOR_PAGE 1000
#define LH_VECTOR_EMBED_BATCH 256
#define LH_VECTOR_PART_ROWS 65536
/* The private DuckDB's own limits (it holds one part or one scan at a time). */
#define LH_VECTOR_DUCKDB_MEMORY_MB 512
#define LH_VECTOR_DUCKDB_THREADS 2

typedef struct vindex {
    int refs;      /* v->mu; the registry's own reference counts as one while listed */
    bool listed;   /* v->mu; false once deleted (or abandoned) */
    bool building; /* v->mu; registered by prepare, not yet committed */
    char *name;
    json_t *def;         /* v->mu; replaced whole on every commit, never edited in place */
    char *problem;       /* v->mu; "dataset gone" and the like, or NULL */
    char *stale_pending; /* v->mu; a stale mark that arrived while building */
    bool refresh_queued; /* v->mu; an on_append refresh job is queued */
    int64_t since_seq;   /* journal events up to this seq predate the index: ignored */
    lh_vwarm *warm;      /* v->mu; the published warm structure (one reference), or NULL */
    lh_embedder *emb;    /* emb_mu; opened on first use */
    pthread_mutex_t emb_mu;
    pthread_mutex_t work_mu;
    pthread_mutex_t load_mu;
} vindex;

struct lh_vectors {
    lh_vectors_config vc;
    char *tmp_dir; /* <data>/_tmp/vectors-<pid>: the private DuckDB's spill folder */

    pthread_mutex_t mu;
    vindex **items; /* sorted by name (case-insensitive) */
    size_t n, cap;
    lh_embedder **dead_emb; /* embedders of deleted indexes: valid until close */
    size_t n_dead_emb;

    pthread_mutex_t def_mu;

    pthread_mutex_t db_mu;
    duckdb_database db;       /* the current private instance, NULL until first use */
    char *db_dirs;            /* the allowed_directories it was opened with */
    duckdb_database *old_dbs; /* instances of earlier bucket sets, closed at close */
    size_t n_old_dbs;

    pthread_mutex_t ev_mu;
    pthread_cond_t ev_cv;
    json_t *events;   /* [{seq, action, target, at}] from the tap, oldest first */
    int64_t last_seq; /* ev_mu; the seq of the last event the tap heard */
    bool stopping;
    bool bg_started;
    pthread_t bg;

    /* the active model profile (activate.c owns it; lh_vectors_active_slot) */
    lh_vactive *active;
    lh_vtune_agent *tune_agent; /* autotune.c's background agent, or NULL (not enabled) */

    /* counters for tests (and GET /vectors/indexes/{name} does not show them) */
    atomic_long embed_calls; /* lh_embedder_embed calls made by build and refresh */
};

/* ---------------------------------------------------------------- vectors.c */

/* The listed index `name` (case-insensitive) with a reference, or NULL + LH_ENOTFOUND.
 * Caller drops it with vindex_put. */
vindex *lh_vreg_get(lh_vectors *v, const char *name, lh_error *err);
void lh_vreg_put(lh_vectors *v, vindex *ix);
/* A copy of ix's definition (v->mu taken inside). Caller decrefs. */
json_t *lh_vreg_def_copy(lh_vectors *v, vindex *ix);
/* Writes def (stolen) as ix's definition and publishes it in memory (takes v->def_mu; the
 * caller must not hold it). A failure before the rename leaves the old definition; a
 * LH_KIND_NOT_DURABLE failure publishes the new one (rolled forward) and returns 0. */
int lh_vreg_commit(lh_vectors *v, vindex *ix, json_t *def, lh_error *err);
/* The same with v->def_mu already held by the caller. */
int lh_vreg_commit_locked(lh_vectors *v, vindex *ix, json_t *def, lh_error *err);
/* Registers a new index in state building; LH_EEXISTS when the name is taken. */
vindex *lh_vreg_add_building(lh_vectors *v, const char *name, lh_error *err);
/* Unlists ix (an abandoned or failed build, or a delete). */
void lh_vreg_unlist(lh_vectors *v, vindex *ix);
/* The data folder's key prefix of an index: datasets/<dataset>/_vectors/<index>/. Caller
 * frees. */
char *lh_vreg_prefix(const char *dataset, const char *index);
/* The absolute path of a file of an index's data folder (def holds bucket, dataset and
 * name). Caller frees; NULL + err for an unknown bucket. */
char *lh_vreg_path(lh_vectors *v, const json_t *def, const char *file, lh_error *err);
/* The absolute path of the index's data folder (not created). Caller frees; NULL + err. */
char *lh_vreg_dir(lh_vectors *v, const json_t *def, lh_error *err);
/* Publishes w (stolen; NULL cools) as ix's warm structure. */
void lh_vreg_set_warm(lh_vectors *v, vindex *ix, lh_vwarm *w);
/* ix's embedder, opened on first use from its definition. Borrowed until close. */
lh_embedder *lh_vreg_embedder(lh_vectors *v, vindex *ix, lh_error *err);
/* Loads a warm structure from def's files (no caching). Caller releases. */
lh_vwarm *lh_vreg_load_warm(lh_vectors *v, const json_t *def, lh_error *err);
/* Submits the background work of the event tap (kind "vector_refresh" or "vector_purge")
 * for dataset; only_on_append limits a refresh to the indexes whose policy is on_append. */
void lh_vreg_submit(lh_vectors *v, const char *dataset, bool purge);

/* ---------------------------------------------------------------- store.c */

/* Opens nothing: the private instance is opened on first connect. */
void lh_vstore_init(lh_vectors *v);
void lh_vstore_close(lh_vectors *v);

/* One row of a stored index as refresh and the warm load read it. */
typedef struct lh_vscan {
    size_t n;
    int dim;
    int64_t *labels; /* ascending */
    char **doc_ids;
    int32_t *chunks;
    char **texts; /* NULL when not asked for */
    char **doc_hashes;
    float *vecs; /* NULL when not asked for */
} lh_vscan;

/* Reads the rows of the parts (absolute paths, NULL-terminated) ordered by label; texts and
 * vectors only when asked. Caller frees with lh_vscan_free. */
int lh_vstore_scan(lh_vectors *v, char *const *paths, int dim, bool with_text, bool with_vecs,
                   lh_vscan *out, lh_error *err);
void lh_vscan_free(lh_vscan *s);
/* Rewrites the part `from` into `to` (crash-safe, as lh_vstore_write_part) without the rows
 * whose label is in drop (sorted ascending). *kept gets the rows written; when none is left
 * nothing is written. */
int lh_vstore_rewrite_part(lh_vectors *v, const char *from, const char *to, const int64_t *drop,
                           size_t n_drop, int64_t *kept, lh_error *err);

/* ---------------------------------------------------------------- build.c */

/* The purge after a compaction and the refresh of the tap's on_append indexes (vectors.c's
 * background jobs). */
int lh_vbuild_refresh(lh_vectors *v, const char *dataset, const char *actor, bool purge_only,
                      bool only_on_append, lh_job *job, json_t **out, lh_error *err);

#endif
