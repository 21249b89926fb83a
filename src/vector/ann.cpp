/*
 * ann.cpp: the FAISS shim (its C face is ann.h). HNSW graphs are linked by our own
 * hnsw_insert.cpp and 8-bit IVF-PQ codes trained and computed by pq8.cpp
 * (ann_internal.hpp): with this file, the tree's only C++.
 *
 * FAISS 1.7.3 (Debian's static libfaiss.a) has no C API, so this file wraps the few calls
 * we need. Every entry point catches every exception: none crosses the C boundary.
 *
 * Structures (all METRIC_INNER_PRODUCT over L2-normalised vectors = cosine):
 *   flat   IndexIDMap2 over IndexFlatIP
 *   hnsw   IndexIDMap2 over IndexHNSWFlat
 *   ivfpq  IndexIVFPQ (quantizer IndexFlatIP) holding our labels itself. Not IndexIDMap2:
 *          IVF's remove_ids keeps its internal ids while IndexIDMap2 compacts its id map,
 *          so the two disagree after the first removal; IVF stores arbitrary ids natively.
 *
 * Search parameters are per call (SearchParametersHNSW / SearchParametersIVF on the stack),
 * so concurrent searches never write to the index. FAISS 1.7.3's IndexIDMap refuses
 * search parameters, so flat and HNSW are searched through their inner index and the
 * labels translated here (id_map), with the allowed-id selector translated the same way.
 * 1.7.3's HNSW sizes its candidate heap by max(index efSearch, k): a per-call efSearch
 * above the index's own behaves like the index's own.
 *
 * The allowed-id filter: flat honours the selector exactly. HNSW honours it only among
 * the nodes its graph walk visits and IVF only within the nprobe probed lists, so both may
 * return fewer than k allowed hits when k exist. Then: HNSW scores a small allowed set
 * (<= LH_ANN_EXACT_MAX present ids) exactly from its stored vectors, and otherwise
 * searches again with k and efSearch doubled until k are found or it has asked for every
 * vector, then scores exactly; IVF doubles nprobe until k are found or every list was
 * probed (then the selector saw every stored vector).
 *
 * IVF-PQ training with few vectors (document in docs/VECTORS.md §ANN): nlist is clamped
 * to max(1, n_train / 39) and pq nbits to the largest b <= nbits with 39 * 2^b <=
 * n_train (at least 1), FAISS's own "39 points per centroid" floor, so k-means never
 * refuses or warns; fewer than 2 training vectors is LH_EINVAL. m must divide dim.
 *
 * Threads: build, add and train run on `threads` OpenMP threads (omp_set_num_threads on
 * the calling thread, restored on return); a search runs on the calling thread alone.
 */
extern "C" {
#include "core/core.h"
}
#include "vector/ann.h"
#include "vector/ann_internal.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <new>
#include <vector>

#include <immintrin.h>
#include <omp.h>
#include <sodium.h>

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

#define LH_ANN_EXACT_MAX 4096
#define LH_ANN_MAGIC "LHANNv1\n"
#define LH_ANN_FOOTER 32

/* lh_ann_faiss_construction (bench and unit tests only) */
static std::atomic<bool> faiss_construction{false};

using idx_t = faiss::Index::idx_t; /* int64_t in FAISS 1.7.3 */

struct lh_ann {
    lh_ann_kind kind;
    int dim;
    int threads;               /* for add (0: all cores) */
    faiss::Index *idx;         /* owns everything below */
    faiss::IndexIDMap2 *idmap; /* flat, hnsw */
    faiss::IndexFlat *flat;    /* flat: the inner index */
    faiss::IndexHNSWFlat *hnsw;
    faiss::IndexIVFPQ *ivf;
};

namespace lh_faiss
{

/* Inner products for HNSW's graph walks. Debian's libfaiss.a is built for baseline x86-64
 * and its fvec_inner_product is the scalar reference loop (96% of an HNSW build's time in
 * a profile), so HNSW's flat storage computes distances here instead: AVX2+FMA when the
 * CPU has them (chosen once at run time), else eight independent partial sums that the
 * compiler vectorises with SSE without -ffast-math. */
__attribute__((target("avx2,fma"))) static float hsum_avx2(__m256 s)
{
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b, size_t d)
{
    /* four independent chains: FMA's latency, not its throughput, bounds one chain */
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),
           s3 = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 32 <= d; j += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(b + j + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 16), _mm256_loadu_ps(b + j + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 24), _mm256_loadu_ps(b + j + 24), s3);
    }
    for (; j + 8 <= d; j += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
    float s = hsum_avx2(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; j < d; j++)
        s += a[j] * b[j];
    return s;
}

/* One query against four vectors: the query's loads are shared, and the four vectors'
   misses are in flight together. */
__attribute__((target("avx2,fma"))) static void dot4_avx2(const float *q, const float *const v[4],
                                                          size_t d, float out[4])
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),
           s3 = _mm256_setzero_ps();
    const float *a = v[0], *b = v[1], *c = v[2], *e = v[3];
    size_t j = 0;
    for (; j + 8 <= d; j += 8) {
        __m256 x = _mm256_loadu_ps(q + j);
        s0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(a + j), s0);
        s1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b + j), s1);
        s2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(c + j), s2);
        s3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(e + j), s3);
    }
    out[0] = hsum_avx2(s0);
    out[1] = hsum_avx2(s1);
    out[2] = hsum_avx2(s2);
    out[3] = hsum_avx2(s3);
    for (; j < d; j++) {
        out[0] += q[j] * a[j];
        out[1] += q[j] * b[j];
        out[2] += q[j] * c[j];
        out[3] += q[j] * e[j];
    }
}

/* Four int8 dot products: sixteen bytes at a time widened to int16 and multiplied in
   pairs into int32 (vpmaddwd: no saturation; |sum| <= d * 127 * 127 fits for any d we
   allow). */
__attribute__((target("avx2,fma"))) static void
dot4_i8_avx2(const int8_t *q, const int8_t *const v[4], size_t d, int32_t out[4])
{
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256(), s2 = _mm256_setzero_si256(),
            s3 = _mm256_setzero_si256();
    size_t j = 0;
    for (; j + 16 <= d; j += 16) {
        __m256i x = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(q + j)));
#define LH_MADD(acc, p)                                                                            \
    acc = _mm256_add_epi32(                                                                        \
        acc, _mm256_madd_epi16(x, _mm256_cvtepi8_epi16(                                            \
                                      _mm_loadu_si128(reinterpret_cast<const __m128i *>(p + j)))))
        LH_MADD(s0, v[0]);
        LH_MADD(s1, v[1]);
        LH_MADD(s2, v[2]);
        LH_MADD(s3, v[3]);
#undef LH_MADD
    }
    __m256i acc[4] = {s0, s1, s2, s3};
    for (int i = 0; i < 4; i++) {
        __m128i h =
            _mm_add_epi32(_mm256_castsi256_si128(acc[i]), _mm256_extracti128_si256(acc[i], 1));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
        int32_t t = _mm_cvtsi128_si32(h);
        for (size_t r = j; r < d; r++)
            t += (int32_t)q[r] * (int32_t)v[i][r];
        out[i] = t;
    }
}

static void dot4_i8_generic(const int8_t *q, const int8_t *const v[4], size_t d, int32_t out[4])
{
    for (int i = 0; i < 4; i++) {
        int32_t t = 0;
        for (size_t j = 0; j < d; j++)
            t += (int32_t)q[j] * (int32_t)v[i][j];
        out[i] = t;
    }
}

static float dot_generic(const float *a, const float *b, size_t d)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t j = 0;
    for (; j + 8 <= d; j += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[j + l] * b[j + l];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; j < d; j++)
        s += a[j] * b[j];
    return s;
}

static void dot4_generic(const float *q, const float *const v[4], size_t d, float out[4])
{
    for (int i = 0; i < 4; i++)
        out[i] = dot_generic(q, v[i], d);
}

bool have_avx2()
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* Inner product of two d-float vectors (HNSW's distance computer, the flat search). */
using dot_fn = float (*)(const float *a, const float *b, size_t d);
static const dot_fn dot = have_avx2() ? dot_avx2 : dot_generic;
const dot4_fn dot4 = have_avx2() ? dot4_avx2 : dot4_generic;
const dot4_i8_fn dot4_i8 = have_avx2() ? dot4_i8_avx2 : dot4_i8_generic;

} // namespace lh_faiss

namespace
{

/* Sets the calling thread's OpenMP team size for the scope (libgomp keeps the setting per
 * thread, so other threads' searches are unaffected). */
struct omp_scope {
    int saved;
    explicit omp_scope(int n)
    {
        saved = omp_get_max_threads();
        omp_set_num_threads(n > 0 ? n : omp_get_num_procs());
    }
    ~omp_scope()
    {
        omp_set_num_threads(saved);
    }
};

using lh_faiss::dot;

struct fast_ip_dis : faiss::FlatCodesDistanceComputer {
    const float *xb;
    size_t d;
    const float *q = nullptr;
    fast_ip_dis(const float *xb_, size_t d_)
        : faiss::FlatCodesDistanceComputer(reinterpret_cast<const uint8_t *>(xb_),
                                           d_ * sizeof(float)),
          xb(xb_), d(d_)
    {
    }
    void set_query(const float *x) override
    {
        q = x;
    }
    float distance_to_code(const uint8_t *code) override
    {
        return dot(q, reinterpret_cast<const float *>(code), d);
    }
    float symmetric_dis(idx_t i, idx_t j) override
    {
        return dot(xb + i * d, xb + j * d, d);
    }
};

/* IndexFlatIP with our distance computer; FAISS writes it as a plain IndexFlatIP (it is
 * one), and reading turns the plain one back into this (adopt_storage). */
struct fast_flat_ip : faiss::IndexFlat {
    explicit fast_flat_ip(idx_t d_) : faiss::IndexFlat(d_, faiss::METRIC_INNER_PRODUCT) {}
    faiss::FlatCodesDistanceComputer *get_FlatCodesDistanceComputer() const override
    {
        return new fast_ip_dis(get_xb(), (size_t)d);
    }
    /* Few queries: one pass with our dot and a k-heap (FAISS's path for fewer than 20
       queries is the scalar loop); many: FAISS's BLAS path. */
    void search(idx_t n, const float *x, idx_t k, float *distances, idx_t *labels,
                const faiss::SearchParameters *params = nullptr) const override
    {
        const faiss::IDSelector *sel = params ? params->sel : nullptr;
        if (n >= 20 && sel == nullptr) {
            faiss::IndexFlat::search(n, x, k, distances, labels, params);
            return;
        }
        using hit = std::pair<float, idx_t>;
        /* heap order: the worst hit (lowest score, then highest id) on top */
        auto worse = [](const hit &p, const hit &q) {
            return p.first > q.first || (p.first == q.first && p.second < q.second);
        };
        std::vector<hit> heap;
        const float *xb = get_xb();
        for (idx_t i = 0; i < n; i++) {
            heap.clear();
            const float *q = x + i * d;
            for (idx_t j = 0; j < ntotal; j++) {
                if (sel && !sel->is_member(j))
                    continue;
                hit h(dot(q, xb + j * d, (size_t)d), j);
                if ((idx_t)heap.size() < k) {
                    heap.push_back(h);
                    std::push_heap(heap.begin(), heap.end(), worse);
                } else if (worse(h, heap.front())) {
                    std::pop_heap(heap.begin(), heap.end(), worse);
                    heap.back() = h;
                    std::push_heap(heap.begin(), heap.end(), worse);
                }
            }
            std::sort_heap(heap.begin(), heap.end(), worse);
            for (idx_t j = 0; j < k; j++) {
                distances[i * k + j] = j < (idx_t)heap.size() ? heap[j].first : -INFINITY;
                labels[i * k + j] = j < (idx_t)heap.size() ? heap[j].second : -1;
            }
        }
    }
};

/* Swaps a plain IndexFlat (as read from a file) for ours, moving the vectors over. Caller
 * deletes the old one when it owned it. */
fast_flat_ip *adopt_flat(faiss::IndexFlat *old, idx_t d)
{
    auto *mine = new fast_flat_ip(d);
    if (old) {
        mine->codes.swap(old->codes);
        mine->ntotal = old->ntotal;
    }
    return mine;
}

/* Gives an HNSW structure our flat storage, moving the vectors over. */
void adopt_storage(faiss::IndexHNSWFlat *h)
{
    fast_flat_ip *mine = adopt_flat(dynamic_cast<faiss::IndexFlat *>(h->storage), h->d);
    if (h->own_fields)
        delete h->storage;
    h->storage = mine;
    h->own_fields = true;
}

/* Counts what write_index would write: lh_ann_memory. */
struct counting_writer : faiss::IOWriter {
    size_t bytes = 0;
    size_t operator()(const void *, size_t size, size_t nitems) override
    {
        bytes += size * nitems;
        return nitems;
    }
};

/* The file: FAISS's serialisation, then a footer of ours (LH_ANN_MAGIC, the payload length
 * as 8 bytes little-endian, a 16-byte BLAKE2b of the payload). lh_ann_read checks it
 * before FAISS sees a byte: FAISS 1.7.3's reader leaks what it built when a truncated or
 * garbled file makes it throw, and may allocate what a corrupt count asks for. */
struct hashing_writer : faiss::IOWriter {
    FILE *f;
    crypto_generichash_state st;
    uint64_t bytes = 0;
    explicit hashing_writer(FILE *f_) : f(f_)
    {
        crypto_generichash_init(&st, nullptr, 0, 16);
    }
    size_t operator()(const void *ptr, size_t size, size_t nitems) override
    {
        if (size * nitems == 0)
            return nitems; /* FAISS writes empty vectors with a null data() */
        size_t got = fwrite(ptr, size, nitems, f);
        crypto_generichash_update(&st, static_cast<const unsigned char *>(ptr), got * size);
        bytes += got * size;
        return got;
    }
};

int check_footer(FILE *f, lh_error *err)
{
    unsigned char footer[LH_ANN_FOOTER], buf[1 << 16], want[16];
    if (fseeko(f, 0, SEEK_END) != 0)
        return lh_error_set(err, LH_EIO, "reading the ANN structure: %s", strerror(errno));
    off_t size = ftello(f);
    if (size < (off_t)LH_ANN_FOOTER || fseeko(f, size - LH_ANN_FOOTER, SEEK_SET) != 0 ||
        fread(footer, 1, sizeof footer, f) != sizeof footer || memcmp(footer, LH_ANN_MAGIC, 8) != 0)
        return lh_error_setk(err, LH_EIO, "ann_error",
                             "the ANN file is not one this server wrote (or it is truncated)");
    uint64_t len = 0;
    for (int i = 0; i < 8; i++)
        len |= (uint64_t)footer[8 + i] << (8 * i);
    if (len != (uint64_t)(size - LH_ANN_FOOTER))
        return lh_error_setk(err, LH_EIO, "ann_error",
                             "the ANN file is truncated (%lld of %llu bytes)",
                             (long long)(size - LH_ANN_FOOTER), (unsigned long long)len);
    crypto_generichash_state st;
    crypto_generichash_init(&st, nullptr, 0, 16);
    rewind(f);
    for (uint64_t left = len; left > 0;) {
        size_t want_n = (size_t)std::min<uint64_t>(left, sizeof buf);
        if (fread(buf, 1, want_n, f) != want_n)
            return lh_error_set(err, LH_EIO, "reading the ANN structure: %s", strerror(errno));
        crypto_generichash_update(&st, buf, want_n);
        left -= want_n;
    }
    crypto_generichash_final(&st, want, sizeof want);
    if (sodium_memcmp(want, footer + 16, 16) != 0)
        return lh_error_setk(err, LH_EIO, "ann_error", "the ANN file is corrupt (checksum)");
    rewind(f);
    return 0;
}

/* Membership in a sorted array of our labels, through an optional internal → label map. */
struct allowed_selector : faiss::IDSelector {
    const int64_t *ids;
    size_t n;
    const idx_t *map; /* NULL: the stored ids are our labels (IVF) */
    allowed_selector(const int64_t *ids_, size_t n_, const idx_t *map_)
        : ids(ids_), n(n_), map(map_)
    {
    }
    bool is_member(idx_t i) const override
    {
        int64_t label = map ? map[i] : i;
        return std::binary_search(ids, ids + n, label);
    }
};

/* Runs f, turning any exception into an lh_error. */
template <typename F> int guarded(lh_error *err, const char *what, F f)
{
    try {
        return f();
    } catch (const std::bad_alloc &) {
        return lh_error_setk(err, LH_EINTERNAL, "ann_error", "%s: out of memory", what);
    } catch (const faiss::FaissException &e) {
        return lh_error_setk(err, LH_EINTERNAL, "ann_error", "%s: %s", what, e.msg.c_str());
    } catch (const std::exception &e) {
        return lh_error_setk(err, LH_EINTERNAL, "ann_error", "%s: %s", what, e.what());
    } catch (...) {
        return lh_error_setk(err, LH_EINTERNAL, "ann_error", "%s: unknown failure", what);
    }
}

struct param_spec {
    const char *key;
    lh_ann_kind kind;
    size_t offset;
    int min, max;
};

const param_spec PARAMS[] = {
    {"M", LH_ANN_HNSW, offsetof(lh_ann_params, hnsw_m), 2, 256},
    {"efConstruction", LH_ANN_HNSW, offsetof(lh_ann_params, hnsw_ef_construction), 1, 4096},
    {"efSearch", LH_ANN_HNSW, offsetof(lh_ann_params, hnsw_ef_search), 1, 4096},
    {"nlist", LH_ANN_IVFPQ, offsetof(lh_ann_params, ivf_nlist), 1, 65536},
    {"m", LH_ANN_IVFPQ, offsetof(lh_ann_params, pq_m), 1, 4096},
    {"nbits", LH_ANN_IVFPQ, offsetof(lh_ann_params, pq_nbits), 1, 16},
    {"nprobe", LH_ANN_IVFPQ, offsetof(lh_ann_params, ivf_nprobe), 1, 65536},
};

int *param_field(lh_ann_params *p, const param_spec &s)
{
    return reinterpret_cast<int *>(reinterpret_cast<char *>(p) + s.offset);
}

const int *param_field(const lh_ann_params *p, const param_spec &s)
{
    return reinterpret_cast<const int *>(reinterpret_cast<const char *>(p) + s.offset);
}

/* The divisor of dim nearest to want (ties: the smaller). */
int nearest_divisor(int dim, int want)
{
    int best = 1;
    for (int d = 1; d <= dim; d++) {
        if (dim % d == 0 && std::abs(d - want) < std::abs(best - want))
            best = d;
    }
    return best;
}

int check_params(lh_ann_kind kind, int dim, const lh_ann_params *p, lh_error *err)
{
    for (const param_spec &s : PARAMS) {
        if (s.kind != kind)
            continue;
        int v = *param_field(p, s);
        if (v < s.min || v > s.max)
            return lh_error_set(err, LH_EINVAL, "%s parameter '%s' = %d is out of range [%d, %d]",
                                lh_ann_kind_name(kind), s.key, v, s.min, s.max);
    }
    if (kind == LH_ANN_IVFPQ && dim % p->pq_m != 0)
        return lh_error_set(err, LH_EINVAL,
                            "ivfpq parameter 'm' = %d must divide the dimension %d (try %d)",
                            p->pq_m, dim, nearest_divisor(dim, p->pq_m));
    return 0;
}

/* Fills kind and the inner pointers from a FAISS index we wrote (or LH_EINVAL). */
int classify(lh_ann *a, faiss::Index *idx, lh_error *err)
{
    a->idx = idx;
    a->dim = (int)idx->d;
    if (idx->metric_type != faiss::METRIC_INNER_PRODUCT)
        return lh_error_set(err, LH_EINVAL, "ANN file: not an inner-product index");
    if (auto *m = dynamic_cast<faiss::IndexIDMap2 *>(idx)) {
        a->idmap = m;
        if ((a->hnsw = dynamic_cast<faiss::IndexHNSWFlat *>(m->index)) != nullptr) {
            adopt_storage(a->hnsw);
            a->kind = LH_ANN_HNSW;
            return 0;
        }
        if (auto *plain = dynamic_cast<faiss::IndexFlat *>(m->index)) {
            a->flat = adopt_flat(plain, plain->d);
            if (m->own_fields)
                delete plain;
            m->index = a->flat;
            m->own_fields = true;
            a->kind = LH_ANN_FLAT;
            return 0;
        }
    } else if ((a->ivf = dynamic_cast<faiss::IndexIVFPQ *>(idx)) != nullptr) {
        if (auto *plain = dynamic_cast<faiss::IndexFlat *>(a->ivf->quantizer)) {
            fast_flat_ip *mine = adopt_flat(plain, plain->d);
            if (a->ivf->own_fields)
                delete plain;
            a->ivf->quantizer = mine;
            a->ivf->own_fields = true;
        }
        a->kind = LH_ANN_IVFPQ;
        return 0;
    }
    return lh_error_set(err, LH_EINVAL, "ANN file: not a structure this server writes");
}

/* Exact inner products of q against the stored vectors of `internal` ids (flat storage of
 * HNSW); keeps the k best as (score, label), descending. */
void exact_topk(const lh_ann *a, const float *q,
                const std::vector<std::pair<int64_t, int64_t>> &cand, size_t k, float *scores,
                int64_t *ids)
{
    const faiss::IndexFlat *store = dynamic_cast<const faiss::IndexFlat *>(a->hnsw->storage);
    const float *xb = store->get_xb();
    std::vector<std::pair<float, int64_t>> best;
    best.reserve(cand.size());
    for (const auto &c : cand) {
        best.emplace_back(dot(q, xb + (size_t)c.second * a->dim, (size_t)a->dim), c.first);
    }
    size_t take = std::min(k, best.size());
    std::partial_sort(best.begin(), best.begin() + take, best.end(),
                      [](const std::pair<float, int64_t> &x, const std::pair<float, int64_t> &y) {
                          return x.first > y.first || (x.first == y.first && x.second < y.second);
                      });
    for (size_t j = 0; j < k; j++) {
        scores[j] = j < take ? best[j].first : 0.0f;
        ids[j] = j < take ? best[j].second : -1;
    }
}

size_t found_count(const idx_t *lab, size_t k)
{
    size_t n = 0;
    for (size_t j = 0; j < k; j++)
        n += lab[j] >= 0;
    return n;
}

/* One query through an IndexIDMap2's inner index (flat or HNSW), labels translated. */
void idmap_search_one(const lh_ann *a, const float *q, size_t k, int ef,
                      const faiss::IDSelector *sel, float *scores, int64_t *ids)
{
    std::vector<float> d(k);
    std::vector<idx_t> l(k);
    if (a->kind == LH_ANN_HNSW) {
        faiss::SearchParametersHNSW sp;
        sp.efSearch = std::max(ef, (int)k);
        sp.sel = const_cast<faiss::IDSelector *>(sel);
        a->hnsw->search(1, q, (idx_t)k, d.data(), l.data(), &sp);
    } else {
        faiss::SearchParameters sp;
        sp.sel = const_cast<faiss::IDSelector *>(sel);
        a->flat->search(1, q, (idx_t)k, d.data(), l.data(), &sp);
    }
    for (size_t j = 0; j < k; j++) {
        ids[j] = l[j] >= 0 ? a->idmap->id_map[(size_t)l[j]] : -1;
        scores[j] = l[j] >= 0 ? d[j] : 0.0f;
    }
}

void hnsw_filtered_one(const lh_ann *a, const float *q, size_t k, int ef,
                       const lh_ann_search_params *sp, float *scores, int64_t *ids)
{
    /* The allowed ids the index holds, with their internal ids. */
    std::vector<std::pair<int64_t, int64_t>> present;
    for (size_t i = 0; i < sp->n_allowed; i++) {
        auto it = a->idmap->rev_map.find(sp->allowed[i]);
        if (it != a->idmap->rev_map.end())
            present.emplace_back(it->first, it->second);
    }
    size_t want = std::min(k, present.size());
    if (present.size() <= LH_ANN_EXACT_MAX) {
        exact_topk(a, q, present, k, scores, ids);
        return;
    }
    allowed_selector sel(sp->allowed, sp->n_allowed, a->idmap->id_map.data());
    size_t ntotal = (size_t)a->idx->ntotal;
    for (size_t kk = k;; kk *= 2) {
        size_t ask = std::min(kk, ntotal);
        std::vector<float> s(ask);
        std::vector<int64_t> l(ask);
        idmap_search_one(a, q, ask, (int)std::min<size_t>((size_t)ef * (kk / k), 1u << 20), &sel,
                         s.data(), l.data());
        if (found_count(l.data(), ask) >= want) {
            for (size_t j = 0; j < k; j++) {
                scores[j] = j < ask ? s[j] : 0.0f;
                ids[j] = j < ask ? l[j] : -1;
            }
            return;
        }
        if (ask == ntotal)
            break;
    }
    exact_topk(a, q, present, k, scores, ids);
}

void ivf_search_one(const lh_ann *a, const float *q, size_t k, int nprobe,
                    const lh_ann_search_params *sp, float *scores, int64_t *ids)
{
    allowed_selector sel(sp && sp->allowed ? sp->allowed : nullptr, sp ? sp->n_allowed : 0,
                         nullptr);
    faiss::SearchParametersIVF p;
    p.sel = sp && sp->allowed ? &sel : nullptr;
    size_t nlist = a->ivf->nlist;
    for (size_t np = (size_t)nprobe;; np *= 2) {
        p.nprobe = std::min(np, nlist);
        a->ivf->search(1, q, (idx_t)k, scores, ids, &p);
        for (size_t j = 0; j < k; j++)
            if (ids[j] < 0)
                scores[j] = 0.0f;
        if (!p.sel || found_count(ids, k) >= k || p.nprobe >= nlist)
            return;
    }
}

} // namespace

extern "C" {

const char *lh_ann_kind_name(lh_ann_kind kind)
{
    switch (kind) {
    case LH_ANN_FLAT:
        return "flat";
    case LH_ANN_HNSW:
        return "hnsw";
    case LH_ANN_IVFPQ:
        return "ivfpq";
    }
    return "?";
}

int lh_ann_kind_parse(const char *s, lh_ann_kind *out, lh_error *err)
{
    static const lh_ann_kind kinds[] = {LH_ANN_FLAT, LH_ANN_HNSW, LH_ANN_IVFPQ};
    for (lh_ann_kind k : kinds) {
        if (s && strcmp(s, lh_ann_kind_name(k)) == 0) {
            *out = k;
            return 0;
        }
    }
    return lh_error_set(err, LH_EINVAL, "unknown index kind '%s' (kinds: hnsw, ivfpq, flat)",
                        s ? s : "(null)");
}

void lh_ann_params_default(lh_ann_kind kind, int dim, size_t n, lh_ann_params *p)
{
    (void)kind;
    memset(p, 0, sizeof *p);
    p->hnsw_m = 32;
    p->hnsw_ef_construction = 200;
    p->hnsw_ef_search = 64;
    long nlist = lround(4.0 * sqrt((double)n));
    long cap = (long)(n / 39);
    nlist = std::max(1L, std::min(nlist, cap));
    p->ivf_nlist = (int)std::min(nlist, 65536L);
    p->pq_m = dim > 0 ? nearest_divisor(dim, std::max(1, dim / 8)) : 1;
    p->pq_nbits = 8;
    p->ivf_nprobe = 16;
}

json_t *lh_ann_params_json(lh_ann_kind kind, const lh_ann_params *p)
{
    json_t *o = json_object();
    for (const param_spec &s : PARAMS) {
        if (s.kind == kind)
            json_object_set_new(o, s.key, json_integer(*param_field(p, s)));
    }
    return o;
}

int lh_ann_params_from_json(lh_ann_kind kind, const json_t *j, lh_ann_params *p, lh_error *err)
{
    if (j == nullptr || json_is_null(j))
        return 0;
    if (!json_is_object(j))
        return lh_error_set(err, LH_EINVAL, "params must be an object");
    lh_ann_params next = *p;
    const char *key;
    json_t *val;
    json_object_foreach(const_cast<json_t *>(j), key, val)
    {
        const param_spec *found = nullptr;
        for (const param_spec &s : PARAMS) {
            if (s.kind == kind && strcmp(s.key, key) == 0)
                found = &s;
        }
        if (!found) {
            const char *names = kind == LH_ANN_HNSW    ? "M, efConstruction, efSearch"
                                : kind == LH_ANN_IVFPQ ? "nlist, m, nbits, nprobe"
                                                       : "none";
            return lh_error_set(err, LH_EINVAL, "unknown %s parameter '%s' (parameters: %s)",
                                lh_ann_kind_name(kind), key, names);
        }
        if (!json_is_integer(val) || json_integer_value(val) < found->min ||
            json_integer_value(val) > found->max)
            return lh_error_set(err, LH_EINVAL, "%s parameter '%s' must be an integer in [%d, %d]",
                                lh_ann_kind_name(kind), key, found->min, found->max);
        *param_field(&next, *found) = (int)json_integer_value(val);
    }
    *p = next;
    return 0;
}

lh_ann *lh_ann_new(lh_ann_kind kind, int dim, const lh_ann_params *p, const float *train,
                   size_t n_train, int threads, lh_error *err)
{
    if (dim < 1 || dim > 65536) {
        lh_error_set(err, LH_EINVAL, "ANN dimension %d is out of range [1, 65536]", dim);
        return nullptr;
    }
    if (check_params(kind, dim, p, err) != 0)
        return nullptr;
    if (kind == LH_ANN_IVFPQ && n_train < 2) {
        lh_error_set(err, LH_EINVAL, "an ivfpq index needs at least 2 training vectors (got %zu)",
                     n_train);
        return nullptr;
    }
    lh_ann *a = new (std::nothrow) lh_ann();
    if (a == nullptr)
        abort(); /* as lh_xmalloc: OOM aborts */
    a->kind = kind;
    a->dim = dim;
    a->threads = threads;
    int rc = guarded(err, "building the ANN structure", [&]() -> int {
        omp_scope omp(threads);
        if (kind == LH_ANN_IVFPQ) {
            int nlist =
                std::max(1, std::min(p->ivf_nlist, (int)std::min<size_t>(n_train / 39, 65536)));
            int nbits = p->pq_nbits;
            while (nbits > 1 && ((size_t)39 << nbits) > n_train)
                nbits--;
            auto *q = new fast_flat_ip(dim); /* a search's nprobe lists, found fast */
            auto *ivf = new faiss::IndexIVFPQ(q, dim, (size_t)nlist, (size_t)p->pq_m, (size_t)nbits,
                                              faiss::METRIC_INNER_PRODUCT);
            ivf->own_fields = true;
            ivf->nprobe = (size_t)p->ivf_nprobe;
            /* Training budget (docs/VECTORS.md §ANN): FAISS's defaults (25 k-means
               iterations, up to 256 points per centroid, for the coarse quantizer and for
               each of the m sub-quantizers) made a 100k x 768 build take minutes on two
               cores; 10 iterations, 40 points per coarse centroid (FAISS warns below 39) and 64 per
               sub-quantizer centroid cut it by an order of magnitude. */
            ivf->cp.niter = 10;
            ivf->cp.max_points_per_centroid = 40;
            ivf->pq.cp.niter = 10;
            ivf->pq.cp.max_points_per_centroid = 64;
            a->idx = a->ivf = ivf;
            if (nbits == 8 && !faiss_construction.load(std::memory_order_relaxed))
                lh_faiss::pq8_train(*ivf, (idx_t)n_train, train);
            else
                ivf->train((idx_t)n_train, train);
        } else {
            faiss::Index *inner;
            if (kind == LH_ANN_HNSW) {
                a->hnsw = new faiss::IndexHNSWFlat(dim, p->hnsw_m, faiss::METRIC_INNER_PRODUCT);
                adopt_storage(a->hnsw);
                a->hnsw->hnsw.efConstruction = p->hnsw_ef_construction;
                a->hnsw->hnsw.efSearch = p->hnsw_ef_search;
                inner = a->hnsw;
            } else {
                a->flat = new fast_flat_ip(dim);
                inner = a->flat;
            }
            a->idx = a->idmap = new faiss::IndexIDMap2(inner);
            a->idmap->own_fields = true;
        }
        return 0;
    });
    if (rc != 0) {
        lh_ann_free(a);
        return nullptr;
    }
    return a;
}

int lh_ann_add(lh_ann *a, const float *vecs, const int64_t *ids, size_t n, lh_error *err)
{
    if (n == 0)
        return 0;
    if (a->idmap) {
        for (size_t i = 0; i < n; i++) {
            if (a->idmap->rev_map.count(ids[i]))
                return lh_error_set(err, LH_EINVAL, "label %lld is already in the ANN structure",
                                    (long long)ids[i]);
        }
    }
    return guarded(err, "adding to the ANN structure", [&]() -> int {
        omp_scope omp(a->threads);
        bool ours = !faiss_construction.load(std::memory_order_relaxed);
        if (a->kind == LH_ANN_HNSW && ours) {
            /* our graph construction (hnsw_insert.cpp), then IndexIDMap2's bookkeeping */
            idx_t base = a->idmap->ntotal;
            lh_faiss::hnsw_insert(*a->hnsw, (idx_t)n, vecs);
            for (size_t i = 0; i < n; i++) {
                a->idmap->id_map.push_back(ids[i]);
                a->idmap->rev_map[ids[i]] = base + (idx_t)i;
            }
            a->idmap->ntotal = a->hnsw->ntotal;
            return 0;
        }
        if (a->kind == LH_ANN_IVFPQ && ours && a->ivf->pq.nbits == 8 && a->ivf->by_residual) {
            lh_faiss::pq8_add(*a->ivf, (idx_t)n, vecs, ids);
            return 0;
        }
        a->idx->add_with_ids((idx_t)n, vecs, ids);
        return 0;
    });
}

void lh_ann_faiss_construction(int on)
{
    faiss_construction.store(on != 0, std::memory_order_relaxed);
}

void lh_ann_hnsw_reselect_all(int on)
{
    lh_faiss::hnsw_reselect_all(on != 0);
}

int lh_ann_remove(lh_ann *a, const int64_t *ids, size_t n, size_t *removed, lh_error *err)
{
    *removed = 0;
    if (a->kind == LH_ANN_HNSW)
        return lh_error_set(err, LH_EUNSUPPORTED,
                            "an hnsw structure cannot remove vectors: rebuild it");
    if (n == 0)
        return 0;
    return guarded(err, "removing from the ANN structure", [&]() -> int {
        faiss::IDSelectorBatch sel(n, ids);
        *removed = a->idx->remove_ids(sel);
        return 0;
    });
}

int lh_ann_search(const lh_ann *a, const float *queries, size_t nq, size_t k,
                  const lh_ann_search_params *sp, float *scores, int64_t *ids, lh_error *err)
{
    if (k == 0 || nq == 0)
        return 0;
    if (sp && sp->allowed) {
        for (size_t i = 1; i < sp->n_allowed; i++) {
            if (sp->allowed[i - 1] >= sp->allowed[i])
                return lh_error_set(err, LH_EINVAL,
                                    "allowed ids must be sorted ascending without duplicates");
        }
    }
    return guarded(err, "searching the ANN structure", [&]() -> int {
        omp_scope omp(1);
        if (a->idx->ntotal == 0 || (sp && sp->allowed && sp->n_allowed == 0)) {
            for (size_t i = 0; i < nq * k; i++) {
                scores[i] = 0.0f;
                ids[i] = -1;
            }
            return 0;
        }
        for (size_t i = 0; i < nq; i++) {
            const float *q = queries + i * (size_t)a->dim;
            float *s = scores + i * k;
            int64_t *l = ids + i * k;
            switch (a->kind) {
            case LH_ANN_IVFPQ:
                ivf_search_one(a, q, k, sp && sp->nprobe > 0 ? sp->nprobe : (int)a->ivf->nprobe, sp,
                               s, l);
                break;
            case LH_ANN_HNSW: {
                int ef = sp && sp->ef_search > 0 ? sp->ef_search : a->hnsw->hnsw.efSearch;
                if (sp && sp->allowed)
                    hnsw_filtered_one(a, q, k, ef, sp, s, l);
                else
                    idmap_search_one(a, q, k, ef, nullptr, s, l);
                break;
            }
            case LH_ANN_FLAT: {
                allowed_selector sel(sp ? sp->allowed : nullptr, sp ? sp->n_allowed : 0,
                                     a->idmap->id_map.data());
                idmap_search_one(a, q, k, 0, sp && sp->allowed ? &sel : nullptr, s, l);
                break;
            }
            }
        }
        return 0;
    });
}

int lh_ann_set_search_defaults(lh_ann *a, int ef_search, int nprobe, lh_error *err)
{
    if (ef_search < 0 || ef_search > 4096 || nprobe < 0 || nprobe > 65536)
        return lh_error_set(err, LH_EINVAL, "efSearch must be in [1, 4096], nprobe in [1, 65536]");
    if (a->hnsw && ef_search > 0)
        a->hnsw->hnsw.efSearch = ef_search;
    if (a->ivf && nprobe > 0)
        a->ivf->nprobe = (size_t)nprobe;
    return 0;
}

size_t lh_ann_count(const lh_ann *a)
{
    return (size_t)a->idx->ntotal;
}

int lh_ann_dim(const lh_ann *a)
{
    return a->dim;
}

lh_ann_kind lh_ann_get_kind(const lh_ann *a)
{
    return a->kind;
}

void lh_ann_get_params(const lh_ann *a, lh_ann_params *p)
{
    lh_ann_params_default(a->kind, a->dim, (size_t)a->idx->ntotal, p);
    if (a->kind == LH_ANN_HNSW) {
        p->hnsw_m = a->hnsw->hnsw.nb_neighbors(1);
        p->hnsw_ef_construction = a->hnsw->hnsw.efConstruction;
        p->hnsw_ef_search = a->hnsw->hnsw.efSearch;
    } else if (a->kind == LH_ANN_IVFPQ) {
        p->ivf_nlist = (int)a->ivf->nlist;
        p->pq_m = (int)a->ivf->pq.M;
        p->pq_nbits = (int)a->ivf->pq.nbits;
        p->ivf_nprobe = (int)a->ivf->nprobe;
    }
}

size_t lh_ann_memory(const lh_ann *a)
{
    counting_writer w;
    try {
        faiss::write_index(a->idx, &w);
    } catch (...) {
        return 0; /* the counting writer cannot fail; nothing else can throw but OOM */
    }
    return w.bytes + LH_ANN_FOOTER;
}

int lh_ann_write(const lh_ann *a, FILE *f, lh_error *err)
{
    hashing_writer w(f);
    int rc = guarded(err, "writing the ANN structure", [&]() -> int {
        faiss::write_index(a->idx, &w);
        return 0;
    });
    if (rc != 0) {
        err->code = LH_EIO; /* FAISS throws on a short fwrite */
        return rc;
    }
    unsigned char footer[LH_ANN_FOOTER];
    memcpy(footer, LH_ANN_MAGIC, 8);
    for (int i = 0; i < 8; i++)
        footer[8 + i] = (unsigned char)(w.bytes >> (8 * i));
    crypto_generichash_final(&w.st, footer + 16, 16);
    if (fwrite(footer, 1, sizeof footer, f) != sizeof footer || fflush(f) != 0 || ferror(f))
        return lh_error_set(err, LH_EIO, "writing the ANN structure: %s", strerror(errno));
    return 0;
}

lh_ann *lh_ann_read(FILE *f, lh_error *err)
{
    lh_ann *a = nullptr;
    if (check_footer(f, err) != 0)
        return nullptr;
    a = new (std::nothrow) lh_ann();
    if (a == nullptr)
        abort();
    int rc = guarded(err, "reading the ANN structure", [&]() -> int {
        faiss::Index *idx = faiss::read_index(f);
        return classify(a, idx, err);
    });
    if (rc != 0) {
        lh_ann_free(a);
        return nullptr;
    }
    return a;
}

void lh_ann_free(lh_ann *a)
{
    if (a == nullptr)
        return;
    delete a->idx;
    delete a;
}

} // extern "C"
