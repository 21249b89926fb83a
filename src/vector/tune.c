/*
 * tune.c: the pure part of tuning (docs/VECTORS.md §Tuning). Eval sets, trials, the
 * champion and the proposer work on matrices and JSON journals only; autotune.c owns the
 * files, the promotion and the background agent.
 *
 * Determinism is the invariant: an eval set is a function of (matrix, n_queries, k, seed);
 * a proposal is a function of (journal, kind, dim, n), its random choices seeded by the
 * journal's length, so replaying a journal replays the agent. Latency and build times are
 * measured, so trials themselves are not reproducible, only their configs.
 */
#include "vector/vector_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LH_TUNE_EPSILON 0.2
#define LH_TUNE_NOISE 0.1          /* norm of the perturbation of a sampled query */
#define LH_TUNE_RECALL_CENTRE 0.95 /* the proposer's centre: champion at this target */
#define LH_TUNE_RECALL_K 10

/* ---------------------------------------------------------------- small helpers */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) / 9007199254740992.0;
}

static double gauss(uint64_t *s)
{
    double u1 = uniform01(s), u2 = uniform01(s);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static float dot(const float *a, const float *b, int dim)
{
    float s = 0;
    for (int j = 0; j < dim; j++)
        s += a[j] * b[j];
    return s;
}

/* ---------------------------------------------------------------- eval sets */

/* Exact top-k of q over m by inner product (ties: lower label first) into labels[k]
 * (-1 past n). */
static void exact_topk(const lh_tune_matrix *m, const float *q, size_t k, int64_t *labels,
                       float *best)
{
    for (size_t j = 0; j < k; j++) {
        best[j] = -INFINITY;
        labels[j] = -1;
    }
    for (size_t i = 0; i < m->n; i++) {
        float s = dot(q, m->vecs + i * (size_t)m->dim, m->dim);
        int64_t l = m->labels[i];
        if (s < best[k - 1] || (s == best[k - 1] && labels[k - 1] >= 0 && l > labels[k - 1]))
            continue;
        size_t p = k - 1;
        while (p > 0 && (best[p - 1] < s || (best[p - 1] == s && labels[p - 1] > l))) {
            best[p] = best[p - 1];
            labels[p] = labels[p - 1];
            p--;
        }
        best[p] = s;
        labels[p] = l;
    }
}

json_t *lh_tune_evalset(const lh_tune_matrix *m, size_t n_queries, size_t k, uint64_t seed,
                        lh_error *err)
{
    json_t *out = NULL, *queries = NULL, *truth = NULL;
    float *q = NULL, *best = NULL;
    int64_t *top = NULL;
    if (m->n == 0 || m->dim < 1 || n_queries == 0 || k == 0) {
        lh_error_set(err, LH_EINVAL,
                     "an eval set needs vectors, queries and k (n=%zu, queries=%zu, k=%zu)", m->n,
                     n_queries, k);
        goto out;
    }
    q = lh_xmalloc((size_t)m->dim * sizeof *q);
    best = lh_xmalloc(k * sizeof *best);
    top = lh_xmalloc(k * sizeof *top);
    queries = json_array();
    truth = json_array();
    uint64_t s = seed;
    double sigma = LH_TUNE_NOISE / sqrt((double)m->dim);
    for (size_t i = 0; i < n_queries; i++) {
        size_t row = (size_t)(splitmix64(&s) % m->n);
        const float *v = m->vecs + row * (size_t)m->dim;
        double norm = 0;
        for (int j = 0; j < m->dim; j++) {
            q[j] = v[j] + (float)(sigma * gauss(&s));
            norm += (double)q[j] * q[j];
        }
        norm = sqrt(norm);
        json_t *jq = json_array();
        for (int j = 0; j < m->dim; j++) {
            q[j] = norm > 0 ? (float)(q[j] / norm) : 0.0f;
            json_array_append_new(jq, json_real(q[j]));
        }
        json_array_append_new(queries, jq);
        exact_topk(m, q, k, top, best);
        json_t *jt = json_array();
        for (size_t j = 0; j < k && top[j] >= 0; j++)
            json_array_append_new(jt, json_integer(top[j]));
        json_array_append_new(truth, jt);
    }
    out = json_pack("{s:I,s:I,s:I,s:i,s:o,s:o}", "seed", (json_int_t)seed, "k", (json_int_t)k, "n",
                    (json_int_t)m->n, "dim", m->dim, "queries", queries, "truth", truth);
    queries = truth = NULL;
out:
    json_decref(queries);
    json_decref(truth);
    free(q);
    free(best);
    free(top);
    return out;
}

/* ---------------------------------------------------------------- trials */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[n]. */
static int64_t percentile(const int64_t *v, size_t n, double p)
{
    size_t r = (size_t)ceil(p * (double)n);
    return v[r == 0 ? 0 : r - 1];
}

/* Reads query i of an eval set into q (dim floats); LH_EINVAL on a malformed set. */
static int evalset_query(const json_t *qs, size_t i, int dim, float *q, lh_error *err)
{
    const json_t *row = json_array_get(qs, i);
    if (!json_is_array(row) || json_array_size(row) != (size_t)dim)
        return lh_error_set(err, LH_EINVAL, "eval set query %zu is not %d numbers", i, dim);
    for (int j = 0; j < dim; j++) {
        const json_t *x = json_array_get(row, (size_t)j);
        if (!json_is_number(x))
            return lh_error_set(err, LH_EINVAL, "eval set query %zu is not %d numbers", i, dim);
        q[j] = (float)json_number_value(x);
    }
    return 0;
}

json_t *lh_tune_trial(const lh_tune_matrix *m, const json_t *evalset, lh_ann_kind kind,
                      const lh_ann_params *p, lh_job *job, lh_error *err)
{
    json_t *out = NULL;
    lh_ann *a = NULL;
    float *q = NULL, scores[LH_TUNE_RECALL_K];
    int64_t *lat = NULL, ids[LH_TUNE_RECALL_K];
    const json_t *qs = json_object_get(evalset, "queries");
    const json_t *truth = json_object_get(evalset, "truth");
    size_t nq = json_array_size(qs);
    if (!json_is_array(qs) || !json_is_array(truth) || nq == 0 || json_array_size(truth) != nq ||
        json_integer_value(json_object_get(evalset, "dim")) != m->dim) {
        lh_error_set(err, LH_EINVAL, "the eval set does not match the index (dimension %d)",
                     m->dim);
        goto out;
    }
    if (m->n == 0) {
        lh_error_set(err, LH_EINVAL, "a trial needs vectors (the index is empty)");
        goto out;
    }
    int64_t t0 = lh_now_ms();
    a = lh_ann_new(kind, m->dim, p, m->vecs, m->n, 0, err);
    if (a == NULL || lh_ann_add(a, m->vecs, m->labels, m->n, err) != 0)
        goto out;
    int64_t build_ms = lh_now_ms() - t0;
    if (lh_job_cancelled(job)) {
        lh_error_set(err, LH_ECANCELLED, "the tuning trial was cancelled");
        goto out;
    }
    q = lh_xmalloc((size_t)m->dim * sizeof *q);
    lat = lh_xmalloc(nq * sizeof *lat);
    double recall_sum = 0;
    for (size_t i = 0; i < nq; i++) {
        if (evalset_query(qs, i, m->dim, q, err) != 0)
            goto out;
        int64_t s0 = now_us();
        if (lh_ann_search(a, q, 1, LH_TUNE_RECALL_K, NULL, scores, ids, err) != 0)
            goto out;
        lat[i] = now_us() - s0;
        const json_t *t = json_array_get(truth, i);
        size_t want = json_array_size(t) < LH_TUNE_RECALL_K ? json_array_size(t) : LH_TUNE_RECALL_K;
        size_t hit = 0;
        for (size_t x = 0; x < want; x++) {
            int64_t label = json_integer_value(json_array_get(t, x));
            for (size_t y = 0; y < LH_TUNE_RECALL_K; y++)
                hit += ids[y] == label;
        }
        recall_sum += want ? (double)hit / (double)want : 1.0;
    }
    qsort(lat, nq, sizeof *lat, cmp_i64);
    lh_ann_params eff;
    lh_ann_get_params(a, &eff);
    char at[LH_TS_MAX];
    out = json_pack(
        "{s:s,s:o,s:o,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:s}", "kind", lh_ann_kind_name(kind), "params",
        lh_ann_params_json(kind, p), "effective", lh_ann_params_json(kind, &eff), "recall_at_10",
        round(recall_sum / (double)nq * 10000.0) / 10000.0, "p50_us",
        (json_int_t)percentile(lat, nq, 0.50), "p95_us", (json_int_t)percentile(lat, nq, 0.95),
        "build_ms", (json_int_t)build_ms, "memory_bytes", (json_int_t)lh_ann_memory(a), "n",
        (json_int_t)m->n, "queries", (json_int_t)nq, "at", lh_time_rfc3339(at));
out:
    lh_ann_free(a);
    free(q);
    free(lat);
    return out;
}

/* ---------------------------------------------------------------- the champion */

const json_t *lh_tune_champion(const json_t *trials, double recall_target)
{
    const json_t *best = NULL;
    size_t i;
    const json_t *t;
    json_array_foreach(trials, i, t)
    {
        if (json_number_value(json_object_get(t, "recall_at_10")) < recall_target)
            continue;
        if (best == NULL) {
            best = t;
            continue;
        }
        json_int_t p95 = json_integer_value(json_object_get(t, "p95_us"));
        json_int_t bp95 = json_integer_value(json_object_get(best, "p95_us"));
        json_int_t mem = json_integer_value(json_object_get(t, "memory_bytes"));
        json_int_t bmem = json_integer_value(json_object_get(best, "memory_bytes"));
        if (p95 < bp95 || (p95 == bp95 && mem < bmem))
            best = t;
    }
    return best;
}

/* ---------------------------------------------------------------- the proposer */

#define LH_TUNE_AXES 3
#define LH_TUNE_AXIS_MAX 32

/* A kind's grid: up to three axes of values, each mapped onto an lh_ann_params field. */
typedef struct grid {
    int n_axes;
    int len[LH_TUNE_AXES];
    int val[LH_TUNE_AXES][LH_TUNE_AXIS_MAX];
    int *field[LH_TUNE_AXES]; /* into `p` */
    lh_ann_params p;          /* the defaults; axes overwrite their fields */
} grid;

static void axis_set(grid *g, int axis, int *field, const int *vals, int n)
{
    g->field[axis] = field;
    g->len[axis] = 0;
    for (int i = 0; i < n && g->len[axis] < LH_TUNE_AXIS_MAX; i++) {
        bool dup = false;
        for (int j = 0; j < g->len[axis]; j++)
            dup |= g->val[axis][j] == vals[i];
        if (!dup)
            g->val[axis][g->len[axis]++] = vals[i];
    }
}

/* The grid of docs/VECTORS.md §Tuning for (kind, dim, n). */
static void grid_for(lh_ann_kind kind, int dim, size_t n, grid *g)
{
    memset(g, 0, sizeof *g);
    lh_ann_params_default(kind, dim, n, &g->p);
    if (kind == LH_ANN_HNSW) {
        static const int ms[] = {8, 16, 32, 48}, efc[] = {64, 128, 200, 400},
                         efs[] = {16, 32, 64, 128, 256};
        g->n_axes = 3;
        axis_set(g, 0, &g->p.hnsw_m, ms, 4);
        axis_set(g, 1, &g->p.hnsw_ef_construction, efc, 4);
        axis_set(g, 2, &g->p.hnsw_ef_search, efs, 5);
    } else if (kind == LH_ANN_IVFPQ) {
        /* nlist: powers of two around 4·sqrt(n), within FAISS's 39-points-per-list floor. */
        int centre = 1;
        while ((double)centre * 2 <= 4.0 * sqrt((double)n) * 1.4142)
            centre *= 2;
        int cap = n / 39 > 1 ? (int)(n / 39 < 65536 ? n / 39 : 65536) : 1;
        while (cap & (cap - 1))
            cap &= cap - 1; /* a power of two too */
        int nl[5];
        for (int i = 0; i < 5; i++) {
            long v = (long)centre << i >> 2;
            nl[i] = v < 1 ? 1 : v > cap ? cap : (int)v;
        }
        /* m: divisors of dim whose sub-vectors have 2..32 dimensions (all divisors when none
           does, as for a tiny dim). */
        int ms[LH_TUNE_AXIS_MAX], nm = 0;
        for (int d = 1; d <= dim && nm < LH_TUNE_AXIS_MAX; d++) {
            if (dim % d == 0 && dim / d >= 2 && dim / d <= 32)
                ms[nm++] = d;
        }
        for (int d = 1; nm == 0 && d <= dim && d < LH_TUNE_AXIS_MAX; d++) {
            if (dim % d == 0)
                ms[nm++] = d;
        }
        static const int np[] = {1, 4, 8, 16, 32, 64};
        g->n_axes = 3;
        axis_set(g, 0, &g->p.ivf_nlist, nl, 5);
        axis_set(g, 1, &g->p.pq_m, ms, nm);
        axis_set(g, 2, &g->p.ivf_nprobe, np, 6);
    } else {
        g->n_axes = 0; /* flat: one point, no parameters */
    }
}

/* The grid index on each axis nearest to p's values. */
static void grid_snap(const grid *g, const lh_ann_params *p, int *idx)
{
    for (int a = 0; a < g->n_axes; a++) {
        const int *f =
            (const int *)((const char *)p + ((const char *)g->field[a] - (const char *)&g->p));
        int best = 0;
        for (int i = 1; i < g->len[a]; i++) {
            if (abs(g->val[a][i] - *f) < abs(g->val[a][best] - *f))
                best = i;
        }
        idx[a] = best;
    }
}

static void grid_point(grid *g, const int *idx, lh_ann_params *out)
{
    for (int a = 0; a < g->n_axes; a++)
        *g->field[a] = g->val[a][idx[a]];
    *out = g->p;
}

/* True when the journal holds a trial of kind with exactly these (requested) params. */
static bool tried(const json_t *trials, lh_ann_kind kind, const lh_ann_params *p)
{
    json_t *want = lh_ann_params_json(kind, p);
    bool found = false;
    size_t i;
    const json_t *t;
    json_array_foreach(trials, i, t)
    {
        const char *k = json_string_value(json_object_get(t, "kind"));
        if (k && strcmp(k, lh_ann_kind_name(kind)) == 0 &&
            json_equal(json_object_get(t, "params"), want)) {
            found = true;
            break;
        }
    }
    json_decref(want);
    return found;
}

/* The proposer's centre: the champion among this kind's trials at the centre target, else
 * the kind's highest-recall trial, else the defaults. */
static void centre_of(const json_t *trials, lh_ann_kind kind, const lh_ann_params *defaults,
                      lh_ann_params *out)
{
    json_t *mine = json_array();
    size_t i;
    const json_t *t;
    json_array_foreach(trials, i, t)
    {
        const char *k = json_string_value(json_object_get(t, "kind"));
        if (k && strcmp(k, lh_ann_kind_name(kind)) == 0)
            json_array_append(mine, (json_t *)t);
    }
    const json_t *c = lh_tune_champion(mine, LH_TUNE_RECALL_CENTRE);
    if (c == NULL) {
        json_array_foreach(mine, i, t)
        {
            if (c == NULL || json_number_value(json_object_get(t, "recall_at_10")) >
                                 json_number_value(json_object_get(c, "recall_at_10")))
                c = t;
        }
    }
    *out = *defaults;
    lh_error ignored;
    if (c != NULL)
        lh_ann_params_from_json(kind, json_object_get(c, "params"), out, &ignored);
    json_decref(mine);
}

int lh_tune_propose(const json_t *trials, lh_ann_kind kind, int dim, size_t n, lh_ann_params *out,
                    lh_error *err)
{
    grid g;
    grid_for(kind, dim, n, &g);
    uint64_t seed = 0x6c68747576656374ull ^ (uint64_t)json_array_size(trials);
    lh_ann_params centre, cand;
    centre_of(trials, kind, &g.p, &centre);
    int cidx[LH_TUNE_AXES] = {0};
    grid_snap(&g, &centre, cidx);

    /* Enumerate the grid once: every untried point, and the untried neighbours of the
       centre (the snapped centre itself counts as a neighbour when untried). */
    size_t total = 1;
    for (int a = 0; a < g.n_axes; a++)
        total *= (size_t)g.len[a];
    size_t *untried = lh_xmalloc(total * sizeof *untried), n_untried = 0;
    size_t *near = lh_xmalloc(total * sizeof *near), n_near = 0;
    for (size_t code = 0; code < total; code++) {
        int idx[LH_TUNE_AXES] = {0}, dist = 0;
        size_t c = code;
        for (int a = 0; a < g.n_axes; a++) {
            idx[a] = (int)(c % (size_t)g.len[a]);
            c /= (size_t)g.len[a];
            dist += abs(idx[a] - cidx[a]);
        }
        grid_point(&g, idx, &cand);
        if (tried(trials, kind, &cand))
            continue;
        untried[n_untried++] = code;
        if (dist <= 1)
            near[n_near++] = code;
    }
    int rc = 0;
    if (n_untried == 0) {
        rc = lh_error_set(err, LH_ENOTFOUND, "every %s configuration of the grid has been tried",
                          lh_ann_kind_name(kind));
        goto out;
    }
    bool explore = uniform01(&seed) < LH_TUNE_EPSILON || n_near == 0;
    size_t code =
        explore ? untried[splitmix64(&seed) % n_untried] : near[splitmix64(&seed) % n_near];
    int idx[LH_TUNE_AXES] = {0};
    for (int a = 0; a < g.n_axes; a++) {
        idx[a] = (int)(code % (size_t)g.len[a]);
        code /= (size_t)g.len[a];
    }
    grid_point(&g, idx, out);
out:
    free(untried);
    free(near);
    return rc;
}
