/*
 * ann_internal.hpp: what the C++ files of src/vector/ share: ann.cpp (the FAISS shim,
 * which defines the distance kernels), hnsw_insert.cpp (our HNSW graph construction) and
 * pq8.cpp (our 8-bit product quantizer). Nothing outside them includes it.
 */
#ifndef LH_ANN_INTERNAL_HPP
#define LH_ANN_INTERNAL_HPP

#include <cstddef>
#include <cstdint>
#include <utility>

#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFPQ.h>

namespace lh_faiss
{

/* Whether the CPU has AVX2 and FMA: the kernels' choice, made once at load. */
bool have_avx2();

/* out[i] = the inner product of q and v[i] (d floats each) for four vectors at once: four
   independent memory streams, so the loads of one vector's cache misses overlap the others'. */
using dot4_fn = void (*)(const float *q, const float *const v[4], size_t d, float out[4]);
extern const dot4_fn dot4;

/* The same between int8 codes (the caller scales each result): a quarter of the bytes to
   bring from memory, and twice the products per instruction. */
using dot4_i8_fn = void (*)(const int8_t *q, const int8_t *const v[4], size_t d, int32_t out[4]);
extern const dot4_i8_fn dot4_i8;

/* Moves a uniform sample of k of a[0..n) to a[0..k), in random order: a partial
   Fisher-Yates over xorshift64, so the same seed gives the same sample. k = n shuffles. */
template <class T> void partial_shuffle(T *a, size_t n, size_t k, uint64_t seed)
{
    uint64_t s = seed | 1;
    for (size_t i = 0; i < k && i + 1 < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        std::swap(a[i], a[i + s % (n - i)]);
    }
}

/* Appends n vectors (x, n x h.d floats) to h's storage and links them into its graph on
   the calling thread's OpenMP thread count. Replaces IndexHNSW::add: the same levels
   (h.hnsw.rng), the same neighbour-selection heuristic, but neighbours' vectors are
   prefetched and scored four at a time (hnsw_insert.cpp). May throw std::bad_alloc. */
void hnsw_insert(faiss::IndexHNSWFlat &h, faiss::Index::idx_t n, const float *x);
/* On: a back link into a full level-0 list always reruns the heuristic over the whole list,
   as FAISS does, instead of hnsw_insert's shortcut for lists the heuristic left closed
   (the same graph, which the unit test checks; lh_ann_hnsw_reselect_all). */
void hnsw_reselect_all(bool on);

/* For an IVF-PQ structure with 8-bit codes of residuals (pq.nbits == 8, by_residual), in
   place of FAISS's train and add_with_ids (pq8.cpp). pq8_train: n >= 256 training
   vectors; trains the coarse quantizer (FAISS) and the product quantizer (ours). pq8_add:
   FAISS's coarse assignment and lists, our encoder. May throw as FAISS does. */
void pq8_train(faiss::IndexIVFPQ &ivf, faiss::Index::idx_t n, const float *x);
void pq8_add(faiss::IndexIVFPQ &ivf, faiss::Index::idx_t n, const float *x,
             const faiss::Index::idx_t *ids);

} // namespace lh_faiss

#endif
