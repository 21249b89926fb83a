/*
 * pq8.cpp: 8-bit product quantization for FAISS IVF-PQ structures, in place of FAISS's
 * residual training and IndexIVFPQ::add_with_ids (ann_internal.hpp).
 *
 * Why our own: with 8-dimensional sub-vectors (the default m = dim / 8), Debian's
 * baseline-x86-64 FAISS is at its worst. Encoding calls its scalar fvec_L2sqr once per
 * centroid: 100,000 x 768-dim vectors with 96 sub-quantizers are 2.5 billion calls of an
 * 8-float distance, 10 of a build's 28 s. Training runs a k-means per sub-quantizer
 * whose assignment is a BLAS product with an inner dimension of 8: 0.13 s per
 * sub-quantizer, 13 s of the build. Here each sub-quantizer's 256 centroids are laid out
 * by dimension, and a sub-vector's nearest centroid is found eight centroids per AVX2
 * instruction as argmin(|c|^2 - 2 r.c), which orders centroids as |r - c|^2 does; the
 * k-means of training uses the same search.
 *
 * What stays FAISS's: the coarse quantizer's training (train_q1) and assignment, the
 * residuals (compute_residual_n), the inverted lists (add_entry) and the direct map. The
 * training follows FAISS's recipe: a sample of 64 x 256 residuals (pq.cp's budget),
 * k-means per sub-quantizer from 256 distinct sampled points, pq.cp.niter iterations,
 * an empty cluster re-seeded by splitting the largest one. The codes are the bytes FAISS
 * would write for the same centroids, up to rounding in a near tie.
 */
#include "vector/ann_internal.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include <immintrin.h>

#include <faiss/invlists/InvertedLists.h>

namespace lh_faiss
{
namespace
{

using idx_t = faiss::Index::idx_t;

constexpr size_t KSUB = 256; /* 8-bit codes */

/* One sub-quantizer's centroids by dimension (ct[j * KSUB + c]) and their squared norms. */
struct codebook {
    size_t dsub;
    std::vector<float> ct, norms;
};

__attribute__((target("avx2,fma"))) uint8_t nearest_avx2(const codebook &b, const float *r)
{
    __m256 best = _mm256_set1_ps(std::numeric_limits<float>::infinity());
    __m256i best_i = _mm256_setzero_si256(), idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i eight = _mm256_set1_epi32(8);
    for (size_t g = 0; g < KSUB; g += 8) {
        __m256 acc = _mm256_loadu_ps(&b.norms[g]);
        for (size_t j = 0; j < b.dsub; j++)
            acc = _mm256_fnmadd_ps(_mm256_set1_ps(2.0f * r[j]),
                                   _mm256_loadu_ps(&b.ct[j * KSUB + g]), acc);
        __m256 lt = _mm256_cmp_ps(acc, best, _CMP_LT_OQ); /* strict: the first minimum stays */
        best = _mm256_blendv_ps(best, acc, lt);
        best_i = _mm256_castps_si256(
            _mm256_blendv_ps(_mm256_castsi256_ps(best_i), _mm256_castsi256_ps(idx), lt));
        idx = _mm256_add_epi32(idx, eight);
    }
    float v[8];
    int32_t i[8];
    _mm256_storeu_ps(v, best);
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(i), best_i);
    int pick = 0;
    for (int l = 1; l < 8; l++) {
        if (v[l] < v[pick] || (v[l] == v[pick] && i[l] < i[pick]))
            pick = l;
    }
    return (uint8_t)i[pick];
}

uint8_t nearest_generic(const codebook &b, const float *r)
{
    float best = std::numeric_limits<float>::infinity();
    size_t best_c = 0;
    for (size_t c = 0; c < KSUB; c++) {
        float s = b.norms[c];
        for (size_t j = 0; j < b.dsub; j++)
            s -= 2.0f * r[j] * b.ct[j * KSUB + c];
        if (s < best) {
            best = s;
            best_c = c;
        }
    }
    return (uint8_t)best_c;
}

uint8_t (*const nearest)(const codebook &, const float *) = have_avx2() ? nearest_avx2
                                                                        : nearest_generic;

/* Lays out k x dsub centroids (row-major) as a codebook. */
void set_codebook(codebook &b, const float *cent, size_t dsub)
{
    b.dsub = dsub;
    b.ct.assign(dsub * KSUB, 0.0f);
    b.norms.assign(KSUB, 0.0f);
    for (size_t c = 0; c < KSUB; c++) {
        for (size_t j = 0; j < dsub; j++) {
            b.ct[j * KSUB + c] = cent[c * dsub + j];
            b.norms[c] += cent[c * dsub + j] * cent[c * dsub + j];
        }
    }
}

/* k-means of n sub-vectors (stride apart in x, dsub floats each) into KSUB centroids
   (cent, KSUB x dsub), seeded from KSUB distinct sampled points; n >= KSUB. */
void kmeans(const float *x, size_t stride, size_t n, size_t dsub, int niter, uint64_t seed,
            float *cent)
{
    std::vector<size_t> perm(n);
    std::iota(perm.begin(), perm.end(), (size_t)0);
    partial_shuffle(perm.data(), n, KSUB, seed); /* KSUB distinct points */
    for (size_t i = 0; i < KSUB; i++)
        std::memcpy(cent + i * dsub, x + perm[i] * stride, dsub * sizeof(float));
    codebook b;
    std::vector<uint8_t> assign(n);
    std::vector<double> sum(KSUB * dsub);
    std::vector<size_t> count(KSUB);
    for (int it = 0; it < niter; it++) {
        set_codebook(b, cent, dsub);
        for (size_t i = 0; i < n; i++)
            assign[i] = nearest(b, x + i * stride);
        std::fill(sum.begin(), sum.end(), 0.0);
        std::fill(count.begin(), count.end(), 0);
        for (size_t i = 0; i < n; i++) {
            count[assign[i]]++;
            for (size_t j = 0; j < dsub; j++)
                sum[assign[i] * dsub + j] += x[i * stride + j];
        }
        for (size_t c = 0; c < KSUB; c++) {
            if (count[c] == 0)
                continue;
            for (size_t j = 0; j < dsub; j++)
                cent[c * dsub + j] = (float)(sum[c * dsub + j] / (double)count[c]);
        }
        /* An empty cluster takes half of the largest: both move a hair apart from its
           centroid, as FAISS's split does. */
        for (size_t c = 0; c < KSUB; c++) {
            if (count[c] != 0)
                continue;
            size_t big = (size_t)(std::max_element(count.begin(), count.end()) - count.begin());
            const float eps = 1.0f / 1024.0f;
            for (size_t j = 0; j < dsub; j++) {
                float v = cent[big * dsub + j];
                cent[c * dsub + j] = j % 2 ? v * (1 + eps) : v * (1 - eps);
                cent[big * dsub + j] = j % 2 ? v * (1 - eps) : v * (1 + eps);
            }
            count[c] = count[big] / 2;
            count[big] -= count[c];
        }
    }
}

} // namespace

void pq8_train(faiss::IndexIVFPQ &ivf, idx_t n, const float *x)
{
    const size_t d = (size_t)ivf.d;
    ivf.train_q1((size_t)n, x, false, ivf.metric_type);
    faiss::ProductQuantizer &pq = ivf.pq;
    /* FAISS's budget: max_points_per_centroid x 256 residuals, sampled without repeats. */
    size_t ns = std::min((size_t)n, (size_t)pq.cp.max_points_per_centroid * KSUB);
    std::vector<size_t> pick((size_t)n);
    std::iota(pick.begin(), pick.end(), (size_t)0);
    partial_shuffle(pick.data(), (size_t)n, ns, 0x51ed270b27a3c5f1ULL);
    std::sort(pick.begin(), pick.begin() + (long)ns); /* reads in memory order */
    std::vector<float> xs(ns * d), res(ns * d);
    for (size_t i = 0; i < ns; i++)
        std::memcpy(&xs[i * d], x + pick[i] * d, d * sizeof(float));
    std::vector<idx_t> lists(ns);
    ivf.quantizer->assign((idx_t)ns, xs.data(), lists.data());
    ivf.quantizer->compute_residual_n((idx_t)ns, xs.data(), res.data(), lists.data());
    pq.centroids.resize(pq.M * KSUB * pq.dsub);
#pragma omp parallel for schedule(dynamic)
    for (long m = 0; m < (long)pq.M; m++)
        kmeans(res.data() + (size_t)m * pq.dsub, d, ns, pq.dsub, pq.cp.niter,
               0x9e3779b97f4a7c15ULL * (uint64_t)(m + 1), pq.get_centroids((size_t)m, 0));
    ivf.precompute_table();
    ivf.is_trained = true;
}

void pq8_add(faiss::IndexIVFPQ &ivf, idx_t n, const float *x, const idx_t *ids)
{
    if (n <= 0)
        return;
    const faiss::ProductQuantizer &pq = ivf.pq;
    const size_t d = (size_t)ivf.d;
    std::vector<codebook> books(pq.M);
    for (size_t m = 0; m < pq.M; m++)
        set_codebook(books[m], pq.get_centroids(m, 0), pq.dsub);
    /* In blocks, so the residuals stay a bounded buffer. */
    const idx_t block = 8192;
    std::vector<idx_t> lists((size_t)std::min(n, block));
    std::vector<float> res((size_t)std::min(n, block) * d);
    std::vector<uint8_t> codes((size_t)std::min(n, block) * pq.code_size);
    for (idx_t b0 = 0; b0 < n; b0 += block) {
        idx_t bn = std::min(block, n - b0);
        const float *xb = x + (size_t)b0 * d;
        ivf.quantizer->assign(bn, xb, lists.data());
        ivf.quantizer->compute_residual_n(bn, xb, res.data(), lists.data());
#pragma omp parallel for schedule(static)
        for (idx_t i = 0; i < bn; i++) {
            const float *r = res.data() + (size_t)i * d;
            uint8_t *code = codes.data() + (size_t)i * pq.code_size;
            for (size_t m = 0; m < pq.M; m++)
                code[m] = nearest(books[m], r + m * pq.dsub);
        }
        for (idx_t i = 0; i < bn; i++) {
            idx_t list = lists[(size_t)i];
            idx_t id = ids[b0 + i];
            if (list < 0) { /* what the quantizer could not place (NaN): skipped, as FAISS does */
                ivf.direct_map.add_single_id(id, -1, 0);
                continue;
            }
            size_t offset =
                ivf.invlists->add_entry((size_t)list, id, codes.data() + (size_t)i * pq.code_size);
            ivf.direct_map.add_single_id(id, list, offset);
        }
    }
    ivf.ntotal += n;
}

} // namespace lh_faiss
