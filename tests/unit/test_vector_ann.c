/*
 * test_vector_ann.c: the FAISS shim (src/vector/ann.cpp) against brute force: labels are
 * ours, the three kinds find what exact search finds (within their recall), the allowed-id
 * filter returns k allowed hits when k exist (also where FAISS's own selector falls
 * short), removal, IVF-PQ's training clamps, parameters as JSON, serialisation, and
 * concurrent searches with per-call parameters.
 */
#include "testutil.h"

#include "vector/ann.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- fixtures */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float rng_gauss(uint64_t *s)
{
    double u1 = ((double)(rng_next(s) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (double)(rng_next(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static void normalize(float *v, int dim)
{
    double s = 0;
    for (int j = 0; j < dim; j++)
        s += (double)v[j] * v[j];
    s = sqrt(s);
    for (int j = 0; j < dim; j++)
        v[j] = (float)(v[j] / s);
}

/* n random unit vectors; with `centre` (0/1/2), around +e0 / -e0 / anywhere. */
static float *random_vecs(size_t n, int dim, uint64_t seed, int centre)
{
    float *v = malloc(n * dim * sizeof *v);
    uint64_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < dim; j++)
            v[i * dim + j] = rng_gauss(&s) * (centre == 2 ? 1.0f : 0.3f);
        if (centre == 0)
            v[i * dim] += 1.0f;
        else if (centre == 1)
            v[i * dim] -= 1.0f;
        normalize(v + i * dim, dim);
    }
    return v;
}

/* Labels that are not positions: 1000 + 7 i. */
static int64_t *labels_for(size_t n)
{
    int64_t *l = malloc(n * sizeof *l);
    for (size_t i = 0; i < n; i++)
        l[i] = 1000 + 7 * (int64_t)i;
    return l;
}

/* Exact top-k by inner product among vectors whose label passes `allowed` (sorted, or
 * NULL for all). */
static void brute_topk(const float *vecs, const int64_t *labels, size_t n, int dim, const float *q,
                       size_t k, const int64_t *allowed, size_t n_allowed, int64_t *out)
{
    float *best = malloc(k * sizeof *best);
    for (size_t j = 0; j < k; j++) {
        best[j] = -INFINITY;
        out[j] = -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (allowed) {
            size_t lo = 0, hi = n_allowed;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (allowed[mid] < labels[i])
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo == n_allowed || allowed[lo] != labels[i])
                continue;
        }
        float s = 0;
        for (int j = 0; j < dim; j++)
            s += q[j] * vecs[i * dim + j];
        if (s <= best[k - 1])
            continue;
        size_t p = k - 1;
        while (p > 0 && best[p - 1] < s) {
            best[p] = best[p - 1];
            out[p] = out[p - 1];
            p--;
        }
        best[p] = s;
        out[p] = labels[i];
    }
    free(best);
}

static double overlap(const int64_t *a, const int64_t *b, size_t k)
{
    size_t hit = 0, want = 0;
    for (size_t i = 0; i < k; i++) {
        if (b[i] < 0)
            continue;
        want++;
        for (size_t j = 0; j < k; j++)
            if (a[j] == b[i]) {
                hit++;
                break;
            }
    }
    return want ? (double)hit / (double)want : 1.0;
}

/* Mean recall@k of the structure over nq queries (perturbed copies of stored vectors). */
static double recall_of(const lh_ann *a, const float *vecs, const int64_t *labels, size_t n,
                        int dim, size_t nq, size_t k, const lh_ann_search_params *sp)
{
    float *q = random_vecs(nq, dim, 99, 2);
    for (size_t i = 0; i < nq; i++) {
        for (int j = 0; j < dim; j++)
            q[i * dim + j] = vecs[(i * 37 % n) * dim + j] + 0.2f * q[i * dim + j];
        normalize(q + i * dim, dim);
    }
    float *scores = malloc(nq * k * sizeof *scores);
    int64_t *ids = malloc(nq * k * sizeof *ids), truth[64];
    lh_error err;
    assert_int_equal(lh_ann_search(a, q, nq, k, sp, scores, ids, &err), 0);
    double sum = 0;
    for (size_t i = 0; i < nq; i++) {
        brute_topk(vecs, labels, n, dim, q + i * dim, k, NULL, 0, truth);
        sum += overlap(ids + i * k, truth, k);
        for (size_t j = 1; j < k; j++)
            assert_true(ids[i * k + j] < 0 || scores[i * k + j] <= scores[i * k + j - 1] + 1e-5f);
    }
    free(q);
    free(scores);
    free(ids);
    return sum / (double)nq;
}

static lh_ann *build(lh_ann_kind kind, int dim, const lh_ann_params *p, const float *vecs,
                     const int64_t *labels, size_t n)
{
    lh_error err;
    lh_ann *a = lh_ann_new(kind, dim, p, vecs, n, 2, &err);
    if (a == NULL)
        fail_msg("lh_ann_new: %s", err.message);
    if (lh_ann_add(a, vecs, labels, n, &err) != 0)
        fail_msg("lh_ann_add: %s", err.message);
    assert_int_equal(lh_ann_count(a), n);
    return a;
}

/* ---------------------------------------------------------------- kinds and parameters */

static void test_kind_names_and_params_json(void **state)
{
    (void)state;
    lh_error err;
    lh_ann_kind k;
    const char *names[] = {"flat", "hnsw", "ivfpq"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(lh_ann_kind_parse(names[i], &k, &err), 0);
        assert_string_equal(lh_ann_kind_name(k), names[i]);
    }
    assert_int_equal(lh_ann_kind_parse("annoy", &k, &err), LH_EINVAL);
    assert_non_null(strstr(err.message, "hnsw, ivfpq, flat"));

    lh_ann_params p;
    lh_ann_params_default(LH_ANN_IVFPQ, 384, 10000, &p);
    assert_int_equal(p.ivf_nlist, 256); /* 4·sqrt(10000) = 400, clamped to 10000/39 */
    assert_int_equal(p.pq_m, 48);       /* 384 / 8 */
    assert_int_equal(p.pq_nbits, 8);
    assert_int_equal(p.ivf_nprobe, 16);
    lh_ann_params_default(LH_ANN_IVFPQ, 100, 1000000, &p);
    assert_int_equal(p.ivf_nlist, 4000);
    assert_int_equal(100 % p.pq_m, 0); /* 100/8 = 12 → the nearest divisor, 10 */
    assert_int_equal(p.pq_m, 10);
    lh_ann_params_default(LH_ANN_IVFPQ, 16, 5, &p);
    assert_int_equal(p.ivf_nlist, 1);
    lh_ann_params_default(LH_ANN_HNSW, 16, 5, &p);
    assert_int_equal(p.hnsw_m, 32);
    assert_int_equal(p.hnsw_ef_construction, 200);
    assert_int_equal(p.hnsw_ef_search, 64);

    /* JSON round trip, partial updates keep the rest. */
    json_t *j = lh_ann_params_json(LH_ANN_HNSW, &p);
    assert_int_equal(json_integer_value(json_object_get(j, "M")), 32);
    assert_int_equal(json_object_size(j), 3);
    json_decref(j);
    j = json_pack("{s:i}", "efSearch", 128);
    assert_int_equal(lh_ann_params_from_json(LH_ANN_HNSW, j, &p, &err), 0);
    assert_int_equal(p.hnsw_ef_search, 128);
    assert_int_equal(p.hnsw_m, 32);
    json_decref(j);
    j = lh_ann_params_json(LH_ANN_FLAT, &p);
    assert_int_equal(json_object_size(j), 0);
    json_decref(j);

    /* Unknown keys name the valid ones; bad values change nothing. */
    j = json_pack("{s:i}", "nprobe", 4);
    assert_int_equal(lh_ann_params_from_json(LH_ANN_HNSW, j, &p, &err), LH_EINVAL);
    assert_non_null(strstr(err.message, "'nprobe'"));
    assert_non_null(strstr(err.message, "efConstruction"));
    json_decref(j);
    j = json_pack("{s:i,s:i}", "efSearch", 16, "M", 1);
    assert_int_equal(lh_ann_params_from_json(LH_ANN_HNSW, j, &p, &err), LH_EINVAL);
    assert_non_null(strstr(err.message, "'M'"));
    assert_int_equal(p.hnsw_ef_search, 128);
    json_decref(j);
    j = json_pack("{s:s}", "nlist", "8");
    assert_int_equal(lh_ann_params_from_json(LH_ANN_IVFPQ, j, &p, &err), LH_EINVAL);
    json_decref(j);
}

/* ---------------------------------------------------------------- search vs brute force */

static void test_flat_is_exact_with_our_labels(void **state)
{
    (void)state;
    size_t n = 1500, k = 10;
    int dim = 24;
    float *v = random_vecs(n, dim, 1, 2);
    int64_t *l = labels_for(n);
    lh_ann_params p;
    lh_ann_params_default(LH_ANN_FLAT, dim, n, &p);
    lh_ann *a = build(LH_ANN_FLAT, dim, &p, v, l, n);
    assert_int_equal(lh_ann_get_kind(a), LH_ANN_FLAT);
    assert_int_equal(lh_ann_dim(a), dim);
    assert_true(recall_of(a, v, l, n, dim, 50, k, NULL) > 0.999);

    /* A stored vector finds itself first, under its label, score ~1. */
    float s[10];
    int64_t ids[10];
    lh_error err;
    assert_int_equal(lh_ann_search(a, v + 123 * dim, 1, k, NULL, s, ids, &err), 0);
    assert_int_equal(ids[0], l[123]);
    assert_true(fabsf(s[0] - 1.0f) < 1e-4f);

    /* Asking for more than there are: the rest is -1. */
    int64_t *many = malloc((n + 5) * sizeof *many);
    float *ms = malloc((n + 5) * sizeof *ms);
    assert_int_equal(lh_ann_search(a, v, 1, n + 5, NULL, ms, many, &err), 0);
    assert_true(many[n - 1] >= 0);
    for (size_t i = n; i < n + 5; i++)
        assert_int_equal(many[i], -1);
    free(many);
    free(ms);

    /* Duplicate labels are refused, nothing added. */
    assert_int_equal(lh_ann_add(a, v, l, 1, &err), LH_EINVAL);
    assert_int_equal(lh_ann_count(a), n);
    lh_ann_free(a);
    free(v);
    free(l);
}

static void test_hnsw_recall_and_no_remove(void **state)
{
    (void)state;
    size_t n = 3000, k = 10;
    int dim = 32;
    float *v = random_vecs(n, dim, 2, 2);
    int64_t *l = labels_for(n);
    lh_ann_params p;
    lh_ann_params_default(LH_ANN_HNSW, dim, n, &p);
    p.hnsw_m = 16;
    p.hnsw_ef_search = 128;
    lh_ann *a = build(LH_ANN_HNSW, dim, &p, v, l, n);
    double r = recall_of(a, v, l, n, dim, 100, k, NULL);
    assert_true(r >= 0.95);
    /* A lower per-call efSearch is honoured (recall may drop, never error). */
    lh_ann_search_params sp = {.ef_search = 10};
    double r10 = recall_of(a, v, l, n, dim, 100, k, &sp);
    assert_true(r10 > 0.3 && r10 <= r + 1e-9);

    /* The structure's own efSearch can be lowered (between searches), and back. */
    lh_error err;
    assert_int_equal(lh_ann_set_search_defaults(a, 10, 0, &err), 0);
    double own10 = recall_of(a, v, l, n, dim, 100, k, NULL);
    assert_true(own10 > 0.2 && own10 < r);
    assert_int_equal(lh_ann_set_search_defaults(a, 5000, 0, &err), LH_EINVAL);
    assert_int_equal(lh_ann_set_search_defaults(a, 128, 0, &err), 0);

    lh_ann_params got;
    lh_ann_get_params(a, &got);
    assert_int_equal(got.hnsw_m, 16);
    assert_int_equal(got.hnsw_ef_construction, 200);
    assert_int_equal(got.hnsw_ef_search, 128);

    size_t removed = 99;
    assert_int_equal(lh_ann_remove(a, l, 3, &removed, &err), LH_EUNSUPPORTED);
    assert_int_equal(removed, 0);
    assert_int_equal(lh_ann_count(a), n);
    lh_ann_free(a);
    free(v);
    free(l);
}

/* Our HNSW construction (hnsw_insert.cpp) links batches into one graph, including a batch
 * added to a structure read back from its file and a small append that takes the
 * float-vector path: every stored vector is found as its own nearest neighbour under its
 * own label, and recall over the whole set holds. */
static void test_hnsw_batches_and_append_after_read(void **state)
{
    (void)state;
    size_t n = 4000, batch = 1000, k = 10;
    int dim = 24;
    float *v = random_vecs(n, dim, 7, 2);
    int64_t *l = labels_for(n);
    lh_ann_params p;
    lh_ann_params_default(LH_ANN_HNSW, dim, n, &p);
    p.hnsw_m = 16;
    p.hnsw_ef_search = 128;
    lh_error err;
    lh_ann *a = lh_ann_new(LH_ANN_HNSW, dim, &p, NULL, 0, 2, &err);
    assert_non_null(a);
    for (size_t b = 0; b < n / batch; b++) {
        if (b == 2) { /* half way: through the file format and back */
            FILE *f = tmpfile();
            assert_int_equal(lh_ann_write(a, f, &err), 0);
            rewind(f);
            lh_ann_free(a);
            a = lh_ann_read(f, &err);
            assert_non_null(a);
            fclose(f);
        }
        assert_int_equal(lh_ann_add(a, v + b * batch * dim, l + b * batch, batch, &err), 0);
        assert_int_equal(lh_ann_count(a), (b + 1) * batch);
    }
    /* A small append (under an eighth of the graph) walks the float vectors rather than
       int8 codes: the other path of the construction. */
    size_t extra = 100;
    float *w = random_vecs(extra, dim, 8, 2);
    int64_t *lw = malloc(extra * sizeof *lw);
    for (size_t i = 0; i < extra; i++)
        lw[i] = 5 + 7 * (int64_t)i; /* below labels_for's */
    assert_int_equal(lh_ann_add(a, w, lw, extra, &err), 0);
    assert_int_equal(lh_ann_count(a), n + extra);
    size_t self = 0, self_w = 0;
    float s1;
    int64_t i1;
    for (size_t i = 0; i < extra; i++) {
        assert_int_equal(lh_ann_search(a, w + i * dim, 1, 1, NULL, &s1, &i1, &err), 0);
        self_w += i1 == lw[i];
    }
    assert_true(self_w >= extra - 1);
    free(w);
    free(lw);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(lh_ann_search(a, v + i * dim, 1, 1, NULL, &s1, &i1, &err), 0);
        self += i1 == l[i];
    }
    assert_true((double)self / (double)n >= 0.995);
    assert_true(recall_of(a, v, l, n, dim, 200, k, NULL) >= 0.95);
    lh_ann_free(a);
    free(v);
    free(l);
}

/* The serialised bytes of an HNSW structure over v built on one thread (deterministic):
   `first` vectors in one batch (int8 walks), the rest appended (float walks). */
static unsigned char *hnsw_bytes(const float *v, const int64_t *l, size_t n, size_t first, int dim,
                                 int reselect_all, long *len)
{
    lh_ann_hnsw_reselect_all(reselect_all);
    lh_ann_params p;
    lh_ann_params_default(LH_ANN_HNSW, dim, n, &p);
    p.hnsw_m = 8;
    lh_error err;
    lh_ann *a = lh_ann_new(LH_ANN_HNSW, dim, &p, NULL, 0, 1, &err);
    assert_non_null(a);
    assert_int_equal(lh_ann_add(a, v, l, first, &err), 0);
    assert_int_equal(lh_ann_add(a, v + first * dim, l + first, n - first, &err), 0);
    lh_ann_hnsw_reselect_all(0);
    FILE *f = tmpfile();
    assert_int_equal(lh_ann_write(a, f, &err), 0);
    lh_ann_free(a);
    *len = ftell(f);
    rewind(f);
    unsigned char *b = malloc((size_t)*len);
    assert_int_equal(fread(b, 1, (size_t)*len, f), (size_t)*len);
    fclose(f);
    return b;
}

/* A back link into a full list that the heuristic itself produced takes a shortcut
   (hnsw_insert.cpp, link_closed): it must give the very graph that rerunning the heuristic
   over the whole list gives, on both walks (int8 codes, then float vectors). */
static void test_hnsw_shortcut_builds_the_same_graph(void **state)
{
    (void)state;
    size_t n = 3000, first = 2700;
    int dim = 32;
    float *v = random_vecs(n, dim, 11, 2);
    int64_t *l = labels_for(n);
    long len_a, len_b;
    unsigned char *a = hnsw_bytes(v, l, n, first, dim, 0, &len_a);
    unsigned char *b = hnsw_bytes(v, l, n, first, dim, 1, &len_b);
    assert_int_equal(len_a, len_b);
    assert_memory_equal(a, b, (size_t)len_a);
    free(a);
    free(b);
    free(v);
    free(l);
}

static void test_ivfpq_recall_remove_and_clamps(void **state)
{
    (void)state;
    size_t n = 4000, k = 10;
    int dim = 32;
    float *v = random_vecs(n, dim, 3, 2);
    int64_t *l = labels_for(n);
    lh_ann_params p;
    lh_ann_params_default(LH_ANN_IVFPQ, dim, n, &p);
    p.pq_m = 16;
    lh_ann *a = build(LH_ANN_IVFPQ, dim, &p, v, l, n);
    lh_ann_params got;
    lh_ann_get_params(a, &got);
    assert_int_equal(got.ivf_nlist, 102); /* 4000/39 caps 4·sqrt(4000) = 253 */
    assert_int_equal(got.pq_nbits, 6);    /* 39·2^6 = 2496 <= 4000 < 39·2^7 */
    lh_ann_search_params all = {.nprobe = got.ivf_nlist};
    assert_true(recall_of(a, v, l, n, dim, 100, k, &all) >= 0.5);
    lh_ann_search_params one = {.nprobe = 1};
    assert_true(recall_of(a, v, l, n, dim, 100, k, &one) <
                recall_of(a, v, l, n, dim, 100, k, &all) + 1e-9);

    /* Removal: those labels never come back, the rest still do. */
    lh_error err;
    size_t removed = 0;
    int64_t gone[3] = {l[5], l[6], 424242};
    assert_int_equal(lh_ann_remove(a, gone, 3, &removed, &err), 0);
    assert_int_equal(removed, 2);
    assert_int_equal(lh_ann_count(a), n - 2);
    float s[10];
    int64_t ids[10];
    assert_int_equal(lh_ann_search(a, v + 5 * dim, 1, k, &all, s, ids, &err), 0);
    for (size_t j = 0; j < k; j++)
        assert_true(ids[j] != l[5] && ids[j] != l[6]);
    assert_int_equal(lh_ann_search(a, v + 7 * dim, 1, k, &all, s, ids, &err), 0);
    assert_int_equal(ids[0], l[7]);
    lh_ann_free(a);

    /* Few training vectors: nlist and nbits clamp, FAISS does not refuse. */
    lh_ann_params_default(LH_ANN_IVFPQ, dim, 100, &p);
    p.ivf_nlist = 64;
    p.pq_m = 8;
    a = build(LH_ANN_IVFPQ, dim, &p, v, l, 100);
    lh_ann_get_params(a, &got);
    assert_int_equal(got.ivf_nlist, 2);
    assert_int_equal(got.pq_nbits, 1);
    assert_int_equal(lh_ann_search(a, v, 1, k, NULL, s, ids, &err), 0);
    assert_true(ids[0] >= 0);
    lh_ann_free(a);

    /* Too few, and an m that does not divide the dimension. */
    assert_null(lh_ann_new(LH_ANN_IVFPQ, dim, &p, v, 1, 1, &err));
    assert_int_equal(err.code, LH_EINVAL);
    assert_non_null(strstr(err.message, "at least 2"));
    p.pq_m = 5;
    assert_null(lh_ann_new(LH_ANN_IVFPQ, dim, &p, v, 100, 1, &err));
    assert_int_equal(err.code, LH_EINVAL);
    assert_non_null(strstr(err.message, "must divide"));
    free(v);
    free(l);
}

/* ---------------------------------------------------------------- the allowed-id filter */

/* Two clusters: the first half around +e0, the second around -e0. Queries near +e0 that
 * allow only the far cluster: HNSW's walk and IVF's probed lists see no allowed vector, so
 * the shim's fallbacks must find them. */
static void check_filter(lh_ann_kind kind, size_t n_half, size_t n_allowed_from_far,
                         bool exact_expected)
{
    int dim = 16;
    size_t n = 2 * n_half, k = 10;
    float *a0 = random_vecs(n_half, dim, 10, 0), *a1 = random_vecs(n_half, dim, 11, 1);
    float *v = malloc(n * dim * sizeof *v);
    memcpy(v, a0, n_half * dim * sizeof *v);
    memcpy(v + n_half * dim, a1, n_half * dim * sizeof *v);
    free(a0);
    free(a1);
    int64_t *l = labels_for(n);
    lh_ann_params p;
    lh_ann_params_default(kind, dim, n, &p);
    p.hnsw_m = 16;
    p.hnsw_ef_search = 32;
    p.pq_m = 8;
    p.ivf_nprobe = 1;
    lh_ann *a = build(kind, dim, &p, v, l, n);

    /* Allowed: every other vector of the far cluster, plus a label not in the index. */
    int64_t *allowed = malloc((n_allowed_from_far + 1) * sizeof *allowed);
    size_t na = 0;
    for (size_t i = n_half; i < n && na < n_allowed_from_far; i += 2)
        allowed[na++] = l[i];
    allowed[na++] = l[n - 1] + 1000; /* absent: ignored */
    lh_ann_search_params sp = {.allowed = allowed, .n_allowed = na};

    float q[16] = {1.0f};
    float s[10];
    int64_t ids[10], truth[10];
    lh_error err;
    assert_int_equal(lh_ann_search(a, q, 1, k, &sp, s, ids, &err), 0);
    brute_topk(v, l, n, dim, q, k, allowed, na, truth);
    for (size_t j = 0; j < k; j++) {
        assert_true(ids[j] >= 0); /* k allowed exist: k come back */
        bool in = false;
        for (size_t t = 0; t < na; t++)
            in |= allowed[t] == ids[j];
        assert_true(in);
    }
    double r = overlap(ids, truth, k);
    if (exact_expected)
        assert_true(r > 0.999);
    else
        assert_true(r >= 0.5);

    /* Fewer allowed than k: exactly those, then -1. */
    int64_t three[3] = {l[1], l[n_half + 1], l[n - 2]};
    sp = (lh_ann_search_params){.allowed = three, .n_allowed = 3};
    assert_int_equal(lh_ann_search(a, q, 1, k, &sp, s, ids, &err), 0);
    for (size_t j = 0; j < 3; j++)
        assert_true(ids[j] == three[0] || ids[j] == three[1] || ids[j] == three[2]);
    assert_int_equal(ids[0], l[1]); /* the near one ranks first */
    for (size_t j = 3; j < k; j++)
        assert_int_equal(ids[j], -1);

    /* Nothing allowed: nothing back. Unsorted: refused. */
    sp = (lh_ann_search_params){.allowed = three, .n_allowed = 0};
    assert_int_equal(lh_ann_search(a, q, 1, k, &sp, s, ids, &err), 0);
    assert_int_equal(ids[0], -1);
    int64_t unsorted[2] = {l[9], l[2]};
    sp = (lh_ann_search_params){.allowed = unsorted, .n_allowed = 2};
    assert_int_equal(lh_ann_search(a, q, 1, k, &sp, s, ids, &err), LH_EINVAL);

    free(allowed);
    lh_ann_free(a);
    free(v);
    free(l);
}

/* 8-bit IVF-PQ structures are trained and filled by our product quantizer (pq8.cpp).
 * Two checks against FAISS's own construction (lh_ann_faiss_construction): one trained
 * structure, copied through its file, filled by ours and by FAISS's add, answers the same
 * searches with the same scores (the same codes up to a rare rounding tie); and a
 * structure trained by ours finds what exact search finds as well as FAISS's training. */
static void test_pq8_matches_faiss(void **state)
{
    (void)state;
    size_t n = 12000, nq = 200, k = 10;
    int dim = 48;
    float *v = random_vecs(n, dim, 11, 2);
    int64_t *l = labels_for(n);
    lh_ann_params p;
    lh_ann_params_default(LH_ANN_IVFPQ, dim, n, &p);
    p.pq_m = 6; /* 8-dim sub-vectors, as the default gives 768-dim vectors */
    lh_error err;
    lh_ann *t = lh_ann_new(LH_ANN_IVFPQ, dim, &p, v, n, 2, &err);
    assert_non_null(t);
    lh_ann_params got;
    lh_ann_get_params(t, &got);
    assert_int_equal(got.pq_nbits, 8); /* 39·256 <= 12000: our quantizer's case */
    FILE *f = tmpfile();
    assert_int_equal(lh_ann_write(t, f, &err), 0);
    lh_ann_free(t);
    rewind(f);
    lh_ann *ours = lh_ann_read(f, &err);
    rewind(f);
    lh_ann *theirs = lh_ann_read(f, &err);
    fclose(f);
    assert_non_null(ours);
    assert_non_null(theirs);
    /* two adds each, so the bookkeeping of a second add is covered */
    for (size_t half = 0; half < 2; half++) {
        size_t at = half * (n / 2);
        assert_int_equal(lh_ann_add(ours, v + at * dim, l + at, n / 2, &err), 0);
        lh_ann_faiss_construction(1);
        assert_int_equal(lh_ann_add(theirs, v + at * dim, l + at, n / 2, &err), 0);
        lh_ann_faiss_construction(0);
    }
    assert_int_equal(lh_ann_count(ours), n);
    assert_int_equal(lh_ann_count(theirs), n);
    float *q = random_vecs(nq, dim, 12, 2);
    float *so = malloc(nq * k * sizeof *so), *st = malloc(nq * k * sizeof *st);
    int64_t *io = malloc(nq * k * sizeof *io), *it = malloc(nq * k * sizeof *it);
    lh_ann_search_params all = {.nprobe = got.ivf_nlist};
    assert_int_equal(lh_ann_search(ours, q, nq, k, &all, so, io, &err), 0);
    assert_int_equal(lh_ann_search(theirs, q, nq, k, &all, st, it, &err), 0);
    size_t same = 0;
    for (size_t i = 0; i < nq * k; i++) {
        same += io[i] == it[i];
        assert_true(fabsf(so[i] - st[i]) < 1e-3f);
    }
    assert_true((double)same / (double)(nq * k) >= 0.99);
    lh_ann_free(ours);
    lh_ann_free(theirs);

    /* Training: ours against FAISS's, each structure trained and filled by its own. */
    lh_ann *mine = build(LH_ANN_IVFPQ, dim, &p, v, l, n);
    lh_ann_faiss_construction(1);
    lh_ann *faiss = build(LH_ANN_IVFPQ, dim, &p, v, l, n);
    lh_ann_faiss_construction(0);
    double r_mine = recall_of(mine, v, l, n, dim, 100, k, &all);
    double r_faiss = recall_of(faiss, v, l, n, dim, 100, k, &all);
    print_message("pq8 recall@10: ours %.3f, FAISS's %.3f\n", r_mine, r_faiss);
    assert_true(r_mine >= r_faiss - 0.03);
    lh_ann_free(mine);
    lh_ann_free(faiss);
    free(q);
    free(so);
    free(st);
    free(io);
    free(it);
    free(v);
    free(l);
}

static void test_filter_flat(void **state)
{
    (void)state;
    check_filter(LH_ANN_FLAT, 3000, 1000, true);
}

static void test_filter_hnsw_small_set_is_exact(void **state)
{
    (void)state;
    check_filter(LH_ANN_HNSW, 3000, 1000, true);
}

static void test_filter_hnsw_large_set_oversamples(void **state)
{
    (void)state;
    /* 4500 allowed > the exact-scoring limit: the doubling path. */
    check_filter(LH_ANN_HNSW, 9000, 4500, false);
}

static void test_filter_ivfpq_widens_nprobe(void **state)
{
    (void)state;
    check_filter(LH_ANN_IVFPQ, 3000, 1000, false);
}

/* ---------------------------------------------------------------- files */

static void test_write_read_round_trip(void **state)
{
    (void)state;
    lh_ann_kind kinds[] = {LH_ANN_FLAT, LH_ANN_HNSW, LH_ANN_IVFPQ};
    size_t n = 1200, k = 5;
    int dim = 16;
    float *v = random_vecs(n, dim, 4, 2);
    int64_t *l = labels_for(n);
    lh_error err;
    for (int i = 0; i < 3; i++) {
        lh_ann_params p;
        lh_ann_params_default(kinds[i], dim, n, &p);
        p.pq_m = 4;
        p.hnsw_ef_search = 40;
        lh_ann *a = build(kinds[i], dim, &p, v, l, n);
        FILE *f = tmpfile();
        assert_int_equal(lh_ann_write(a, f, &err), 0);
        long size = ftell(f);
        assert_int_equal((size_t)size, lh_ann_memory(a));
        rewind(f);
        lh_ann *b = lh_ann_read(f, &err);
        if (b == NULL)
            fail_msg("read %s: %s", lh_ann_kind_name(kinds[i]), err.message);
        fclose(f);
        assert_int_equal(lh_ann_get_kind(b), kinds[i]);
        assert_int_equal(lh_ann_dim(b), dim);
        assert_int_equal(lh_ann_count(b), n);
        lh_ann_params pa, pb;
        lh_ann_get_params(a, &pa);
        lh_ann_get_params(b, &pb);
        assert_memory_equal(&pa, &pb, sizeof pa);
        float sa[5], sb[5];
        int64_t ia[5], ib[5];
        assert_int_equal(lh_ann_search(a, v + 17 * dim, 1, k, NULL, sa, ia, &err), 0);
        assert_int_equal(lh_ann_search(b, v + 17 * dim, 1, k, NULL, sb, ib, &err), 0);
        assert_memory_equal(ia, ib, sizeof ia);
        if (kinds[i] != LH_ANN_IVFPQ) /* 4-bit PQ codes at this size: approximate */
            assert_int_equal(ia[0], l[17]);
        /* The id map survived: a further add of a present label is still refused. */
        if (kinds[i] != LH_ANN_IVFPQ)
            assert_int_equal(lh_ann_add(b, v, l, 1, &err), LH_EINVAL);
        lh_ann_free(a);
        lh_ann_free(b);
    }

    /* Garbage and a truncated file: errors, no crash. */
    FILE *f = tmpfile();
    fputs("this is not a faiss index at all", f);
    rewind(f);
    assert_null(lh_ann_read(f, &err));
    assert_string_equal(lh_error_kind(&err), "ann_error");
    fclose(f);
    lh_ann_params p;
    lh_ann_params_default(LH_ANN_FLAT, dim, n, &p);
    lh_ann *a = build(LH_ANN_FLAT, dim, &p, v, l, n);
    f = tmpfile();
    assert_int_equal(lh_ann_write(a, f, &err), 0);
    long full = ftell(f);
    assert_int_equal(ftruncate(fileno(f), 100), 0);
    rewind(f);
    assert_null(lh_ann_read(f, &err));
    assert_int_equal(err.code, LH_EIO);
    fclose(f);
    /* One flipped byte in the payload: the checksum refuses it before FAISS reads. */
    f = tmpfile();
    assert_int_equal(lh_ann_write(a, f, &err), 0);
    assert_int_equal(fseek(f, full / 2, SEEK_SET), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, full / 2, SEEK_SET), 0);
    fputc(c ^ 0x40, f);
    fflush(f);
    assert_null(lh_ann_read(f, &err));
    assert_non_null(strstr(err.message, "checksum"));
    fclose(f);
    lh_ann_free(a);

    /* An empty structure searches to nothing. */
    a = lh_ann_new(LH_ANN_HNSW, dim, &p, NULL, 0, 1, &err);
    assert_non_null(a);
    float s[5];
    int64_t ids[5];
    assert_int_equal(lh_ann_search(a, v, 1, k, NULL, s, ids, &err), 0);
    assert_int_equal(ids[0], -1);
    lh_ann_free(a);
    free(v);
    free(l);
}

/* ---------------------------------------------------------------- concurrency */

typedef struct {
    const lh_ann *a;
    const float *q;
    int ef;
    int64_t ids[20 * 10];
    int rc;
} search_job;

static void *search_thread(void *arg)
{
    search_job *j = arg;
    lh_error err;
    float s[20 * 10];
    lh_ann_search_params sp = {.ef_search = j->ef};
    for (int rep = 0; rep < 5 && j->rc == 0; rep++)
        j->rc = lh_ann_search(j->a, j->q, 20, 10, &sp, s, j->ids, &err);
    return NULL;
}

static void test_concurrent_searches_keep_their_parameters(void **state)
{
    (void)state;
    size_t n = 3000;
    int dim = 16;
    float *v = random_vecs(n, dim, 5, 2);
    int64_t *l = labels_for(n);
    lh_ann_params p;
    lh_ann_params_default(LH_ANN_HNSW, dim, n, &p);
    p.hnsw_m = 8;
    p.hnsw_ef_search = 128;
    lh_ann *a = build(LH_ANN_HNSW, dim, &p, v, l, n);
    float *q = random_vecs(20, dim, 6, 2);
    int efs[4] = {8, 128, 8, 128};
    search_job alone[4], together[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        alone[i] = (search_job){.a = a, .q = q, .ef = efs[i]};
        search_thread(&alone[i]);
        assert_int_equal(alone[i].rc, 0);
        together[i] = (search_job){.a = a, .q = q, .ef = efs[i]};
    }
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, search_thread, &together[i]);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(together[i].rc, 0);
        assert_memory_equal(alone[i].ids, together[i].ids, sizeof alone[i].ids);
    }
    /* The index's own efSearch was not touched by the calls. */
    lh_ann_params got;
    lh_ann_get_params(a, &got);
    assert_int_equal(got.hnsw_ef_search, 128);
    lh_ann_free(a);
    free(q);
    free(v);
    free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names_and_params_json),
        cmocka_unit_test(test_flat_is_exact_with_our_labels),
        cmocka_unit_test(test_hnsw_recall_and_no_remove),
        cmocka_unit_test(test_hnsw_batches_and_append_after_read),
        cmocka_unit_test(test_hnsw_shortcut_builds_the_same_graph),
        cmocka_unit_test(test_ivfpq_recall_remove_and_clamps),
        cmocka_unit_test(test_pq8_matches_faiss),
        cmocka_unit_test(test_filter_flat),
        cmocka_unit_test(test_filter_hnsw_small_set_is_exact),
        cmocka_unit_test(test_filter_hnsw_large_set_oversamples),
        cmocka_unit_test(test_filter_ivfpq_widens_nprobe),
        cmocka_unit_test(test_write_read_round_trip),
        cmocka_unit_test(test_concurrent_searches_keep_their_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
