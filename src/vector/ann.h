/*
 * ann: the C face of the FAISS shim (ann.cpp, the only C++ file in the tree). Internal to
 * src/vector/ (and its unit tests and bench/vectors).
 *
 * Vectors are L2-normalised by the caller, so inner product = cosine similarity; flat and
 * HNSW are an IndexIDMap2 over FAISS's IndexFlatIP / IndexHNSWFlat, IVF-PQ an IndexIVFPQ
 * that stores the ids itself (IndexIDMap2 over IVF breaks on remove), all with
 * METRIC_INNER_PRODUCT; labels are the caller's int64 ids, unique per structure. No C++ exception
 * crosses this header: each is caught and turned into an lh_error (LH_EINTERNAL kind "ann_error"
 * with FAISS's message, or LH_EINVAL for bad parameters).
 */
#ifndef LH_VECTOR_ANN_H
#define LH_VECTOR_ANN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LH_ANN_FLAT, LH_ANN_HNSW, LH_ANN_IVFPQ } lh_ann_kind;

/* "flat" | "hnsw" | "ivfpq". */
const char *lh_ann_kind_name(lh_ann_kind kind);
int lh_ann_kind_parse(const char *s, lh_ann_kind *out, lh_error *err);

typedef struct lh_ann_params {
    /* HNSW (defaults 32 / 200 / 64) */
    int hnsw_m, hnsw_ef_construction, hnsw_ef_search;
    /* IVF-PQ (defaults: nlist ≈ 4·sqrt(n) clamped to [1, n/39], m = dim/8 rounded to a
       divisor of dim, nbits 8, nprobe 16) */
    int ivf_nlist, pq_m, pq_nbits, ivf_nprobe;
} lh_ann_params;

/* Fills p with the defaults above for n vectors of dimension dim. */
void lh_ann_params_default(lh_ann_kind kind, int dim, size_t n, lh_ann_params *p);
/* p as JSON ({"M","efConstruction","efSearch"} | {"nlist","m","nbits","nprobe"} | {}),
 * and back (unknown keys and out-of-range values: LH_EINVAL naming them; missing keys keep
 * p's values). Caller decrefs. */
json_t *lh_ann_params_json(lh_ann_kind kind, const lh_ann_params *p);
int lh_ann_params_from_json(lh_ann_kind kind, const json_t *j, lh_ann_params *p, lh_error *err);

typedef struct lh_ann lh_ann;

/* Creates an empty index and, for IVF-PQ, trains it on the n training vectors (row-major
 * n × dim; may be the vectors that will be added). FAISS runs on up to `threads` OpenMP
 * threads (0: all cores). Caller frees with lh_ann_free. */
lh_ann *lh_ann_new(lh_ann_kind kind, int dim, const lh_ann_params *p, const float *train,
                   size_t n_train, int threads, lh_error *err);
int lh_ann_add(lh_ann *a, const float *vecs, const int64_t *ids, size_t n, lh_error *err);
/* HNSW graphs are linked, and 8-bit IVF-PQ codes trained and computed, by our own code
 * (docs/VECTORS.md §ANN). On, structures created and added to afterwards (process-wide)
 * use FAISS's own IndexHNSW::add, IndexIVFPQ::train and add_with_ids instead. For
 * bench/vectors, which measures the two in one run, and the unit tests, which compare
 * them; the server never turns it on. */
void lh_ann_faiss_construction(int on);
/* Unit tests only: on, our HNSW construction reruns the neighbour heuristic over the whole
 * list at every back link into a full list, as FAISS does, instead of its shortcut for
 * lists the heuristic itself produced; the test checks both build the same graph. */
void lh_ann_hnsw_reselect_all(int on);
/* Removes ids (those absent are ignored); *removed gets the count. HNSW cannot remove in
 * FAISS: LH_EUNSUPPORTED, and the caller rebuilds. */
int lh_ann_remove(lh_ann *a, const int64_t *ids, size_t n, size_t *removed, lh_error *err);

typedef struct lh_ann_search_params {
    int ef_search; /* 0: the index's */
    int nprobe;    /* 0: the index's */
    /* Only these ids may be returned (sorted ascending, borrowed), or NULL for all. */
    const int64_t *allowed;
    size_t n_allowed;
} lh_ann_search_params;

/* k nearest of each of nq queries: scores[i*k+j] (inner product, descending) and
 * ids[i*k+j] (-1 past the end of what was found). sp may be NULL. Safe to call from many
 * threads at once on the same index (no add/remove meanwhile). */
int lh_ann_search(const lh_ann *a, const float *queries, size_t nq, size_t k,
                  const lh_ann_search_params *sp, float *scores, int64_t *ids, lh_error *err);

/* Changes the structure's own efSearch (HNSW) / nprobe (IVF-PQ), the values a search
 * without per-call parameters uses and that are written to its file; 0 leaves one as it
 * is; ignored for the kinds without it. Not while searches run (the bench's curve, a
 * trial). LH_EINVAL when out of range. */
int lh_ann_set_search_defaults(lh_ann *a, int ef_search, int nprobe, lh_error *err);
size_t lh_ann_count(const lh_ann *a);
/* The parameters in effect (IVF-PQ's nlist and nbits after the training clamps of
 * docs/VECTORS.md §ANN; a read structure's from its file). */
void lh_ann_get_params(const lh_ann *a, lh_ann_params *p);
int lh_ann_dim(const lh_ann *a);
lh_ann_kind lh_ann_get_kind(const lh_ann *a);
/* Bytes the structure holds: its file's size (codes, graph, id map, footer). */
size_t lh_ann_memory(const lh_ann *a);

/* Serialises into f (the caller opened it, fsyncs and renames it: crash safety stays in
 * C): FAISS's format followed by a 32-byte footer (magic, length, BLAKE2b). Loads from f,
 * a seekable file holding only the structure: the footer is checked before FAISS reads
 * (a truncated or corrupt file is LH_EIO kind "ann_error"); the kind and dimension come
 * from the file. */
int lh_ann_write(const lh_ann *a, FILE *f, lh_error *err);
lh_ann *lh_ann_read(FILE *f, lh_error *err);
void lh_ann_free(lh_ann *a);

#ifdef __cplusplus
}
#endif

#endif
