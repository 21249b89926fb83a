/*
 * test_vector_tune.c: tune.c, the pure part of tuning. Eval sets are deterministic and
 * their truth is brute force; a trial measures what it says (exact search has recall 1);
 * the champion rule (recall target, then p95, then memory); the proposer is deterministic
 * from the journal, never repeats a config, stays near the champion most of the time and
 * walks the whole grid before it gives up.
 */
#include "testutil.h"

#include "vector/vector_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *unit_vecs(size_t n, int dim, uint64_t seed)
{
    float *v = malloc(n * dim * sizeof *v);
    uint64_t s = seed | 1;
    for (size_t i = 0; i < n; i++) {
        double norm = 0;
        for (int j = 0; j < dim; j++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            v[i * dim + j] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
            norm += (double)v[i * dim + j] * v[i * dim + j];
        }
        for (int j = 0; j < dim; j++)
            v[i * dim + j] = (float)(v[i * dim + j] / sqrt(norm));
    }
    return v;
}

static int64_t *labels_for(size_t n)
{
    int64_t *l = malloc(n * sizeof *l);
    for (size_t i = 0; i < n; i++)
        l[i] = 5 + 3 * (int64_t)i;
    return l;
}

static void test_evalset_is_deterministic_with_brute_force_truth(void **state)
{
    (void)state;
    size_t n = 800;
    int dim = 16;
    float *v = unit_vecs(n, dim, 7);
    int64_t *l = labels_for(n);
    lh_tune_matrix m = {.n = n, .dim = dim, .vecs = v, .labels = l};
    lh_error err;
    json_t *a = lh_tune_evalset(&m, 30, 10, 42, &err), *b = lh_tune_evalset(&m, 30, 10, 42, &err),
           *c = lh_tune_evalset(&m, 30, 10, 43, &err);
    assert_non_null(a);
    assert_true(json_equal(a, b));
    assert_false(json_equal(a, c));
    assert_int_equal(json_integer_value(json_object_get(a, "k")), 10);
    assert_int_equal(json_integer_value(json_object_get(a, "dim")), dim);
    json_t *qs = json_object_get(a, "queries"), *truth = json_object_get(a, "truth");
    assert_int_equal(json_array_size(qs), 30);
    size_t self_first = 0;
    for (size_t i = 0; i < 30; i++) {
        float q[16];
        double norm = 0;
        for (int j = 0; j < dim; j++) {
            q[j] = (float)json_real_value(json_array_get(json_array_get(qs, i), j));
            norm += (double)q[j] * q[j];
        }
        assert_true(fabs(norm - 1.0) < 1e-4);
        /* Brute force agrees with the stored truth, in order. */
        float best[10];
        int64_t top[10];
        for (int t = 0; t < 10; t++) {
            best[t] = -INFINITY;
            top[t] = -1;
        }
        bool is_copy = false;
        for (size_t r = 0; r < n; r++) {
            float s = 0;
            for (int j = 0; j < dim; j++)
                s += q[j] * v[r * dim + j];
            is_copy |= s > 0.99999f;
            int p = 9;
            if (s <= best[9])
                continue;
            while (p > 0 && best[p - 1] < s) {
                best[p] = best[p - 1];
                top[p] = top[p - 1];
                p--;
            }
            best[p] = s;
            top[p] = l[r];
        }
        json_t *t = json_array_get(truth, i);
        assert_int_equal(json_array_size(t), 10);
        for (int j = 0; j < 10; j++)
            assert_int_equal(json_integer_value(json_array_get(t, j)), top[j]);
        assert_false(is_copy); /* perturbed: never a stored vector itself */
        self_first += best[0] > 0.9f;
    }
    assert_true(self_first >= 25); /* small noise: the sampled vector stays the nearest */
    json_decref(a);
    json_decref(b);
    json_decref(c);

    /* k larger than n: truth lists hold n labels. */
    lh_tune_matrix tiny = {.n = 3, .dim = dim, .vecs = v, .labels = l};
    a = lh_tune_evalset(&tiny, 2, 10, 1, &err);
    assert_int_equal(json_array_size(json_array_get(json_object_get(a, "truth"), 0)), 3);
    json_decref(a);
    lh_tune_matrix empty = {.n = 0, .dim = dim, .vecs = v, .labels = l};
    assert_null(lh_tune_evalset(&empty, 2, 10, 1, &err));
    assert_int_equal(err.code, LH_EINVAL);
    free(v);
    free(l);
}

static void test_trial_measures_recall_latency_memory(void **state)
{
    (void)state;
    size_t n = 2000;
    int dim = 16;
    float *v = unit_vecs(n, dim, 8);
    int64_t *l = labels_for(n);
    lh_tune_matrix m = {.n = n, .dim = dim, .vecs = v, .labels = l};
    lh_error err;
    json_t *es = lh_tune_evalset(&m, 50, 10, 1, &err);
    lh_ann_params p;
    lh_ann_params_default(LH_ANN_FLAT, dim, n, &p);
    json_t *t = lh_tune_trial(&m, es, LH_ANN_FLAT, &p, NULL, &err);
    if (t == NULL)
        fail_msg("%s", err.message);
    assert_true(json_real_value(json_object_get(t, "recall_at_10")) > 0.999);
    assert_string_equal(json_string_value(json_object_get(t, "kind")), "flat");
    json_int_t p50 = json_integer_value(json_object_get(t, "p50_us"));
    json_int_t p95 = json_integer_value(json_object_get(t, "p95_us"));
    assert_true(p50 >= 0 && p95 >= p50);
    assert_true(json_integer_value(json_object_get(t, "memory_bytes")) >=
                (json_int_t)(n * dim * 4));
    assert_int_equal(json_integer_value(json_object_get(t, "n")), n);
    assert_non_null(json_object_get(t, "build_ms"));
    assert_non_null(json_string_value(json_object_get(t, "at")));
    json_decref(t);

    /* A weak HNSW (efSearch 1 asks the graph for little) recalls less than exact; the
       requested params are recorded, and what FAISS used beside them. */
    lh_ann_params_default(LH_ANN_HNSW, dim, n, &p);
    p.hnsw_m = 4;
    p.hnsw_ef_construction = 8;
    p.hnsw_ef_search = 1;
    t = lh_tune_trial(&m, es, LH_ANN_HNSW, &p, NULL, &err);
    assert_non_null(t);
    double r = json_real_value(json_object_get(t, "recall_at_10"));
    assert_true(r > 0.1 && r < 0.999);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "params"), "M")), 4);
    json_decref(t);

    /* IVF-PQ asked for more lists than the data allows: params as asked, effective clamped. */
    lh_ann_params_default(LH_ANN_IVFPQ, dim, n, &p);
    p.ivf_nlist = 1024;
    p.pq_m = 4;
    t = lh_tune_trial(&m, es, LH_ANN_IVFPQ, &p, NULL, &err);
    assert_non_null(t);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "params"), "nlist")),
                     1024);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "effective"), "nlist")),
                     (json_int_t)(n / 39));
    json_decref(t);

    /* An eval set of another dimension is refused. */
    json_object_set_new(es, "dim", json_integer(dim + 1));
    assert_null(lh_tune_trial(&m, es, LH_ANN_FLAT, &p, NULL, &err));
    assert_int_equal(err.code, LH_EINVAL);
    json_decref(es);
    free(v);
    free(l);
}

static json_t *fake_trial(const char *kind, json_t *params, double recall, int p95, int mem)
{
    return json_pack("{s:s,s:o,s:f,s:i,s:i,s:i}", "kind", kind, "params", params, "recall_at_10",
                     recall, "p50_us", p95 / 2, "p95_us", p95, "memory_bytes", mem);
}

static void test_champion_rule(void **state)
{
    (void)state;
    json_t *trials = json_array();
    assert_null(lh_tune_champion(trials, 0.95));
    json_array_append_new(trials, fake_trial("hnsw", json_object(), 0.99, 50, 900));  /* 0 */
    json_array_append_new(trials, fake_trial("hnsw", json_object(), 0.90, 10, 100));  /* 1: below */
    json_array_append_new(trials, fake_trial("ivfpq", json_object(), 0.96, 40, 500)); /* 2 */
    json_array_append_new(trials,
                          fake_trial("flat", json_object(), 1.0, 40, 300)); /* 3: tie, less mem */
    assert_ptr_equal(lh_tune_champion(trials, 0.95), json_array_get(trials, 3));
    assert_ptr_equal(lh_tune_champion(trials, 0.995), json_array_get(trials, 3));
    assert_ptr_equal(lh_tune_champion(trials, 0.85), json_array_get(trials, 1));
    assert_null(lh_tune_champion(trials, 1.01));
    json_decref(trials);
}

/* Grid indexes of an HNSW config. */
static int hnsw_dist(const lh_ann_params *a, const lh_ann_params *b)
{
    static const int ms[] = {8, 16, 32, 48}, efc[] = {64, 128, 200, 400},
                     efs[] = {16, 32, 64, 128, 256};
    int d = 0, ia = 0, ib = 0;
    for (int i = 0; i < 4; i++) {
        ia = ms[i] == a->hnsw_m ? i : ia;
        ib = ms[i] == b->hnsw_m ? i : ib;
    }
    d += abs(ia - ib);
    for (int i = 0; i < 4; i++) {
        ia = efc[i] == a->hnsw_ef_construction ? i : ia;
        ib = efc[i] == b->hnsw_ef_construction ? i : ib;
    }
    d += abs(ia - ib);
    for (int i = 0; i < 5; i++) {
        ia = efs[i] == a->hnsw_ef_search ? i : ia;
        ib = efs[i] == b->hnsw_ef_search ? i : ib;
    }
    return d + abs(ia - ib);
}

static void test_proposer_near_champion_deterministic_deduplicated(void **state)
{
    (void)state;
    lh_error err;
    lh_ann_params champ, p, q;
    lh_ann_params_default(LH_ANN_HNSW, 64, 10000, &champ);
    champ.hnsw_m = 16;
    champ.hnsw_ef_construction = 128;
    champ.hnsw_ef_search = 64;
    json_t *journal = json_array();
    json_array_append_new(
        journal, fake_trial("hnsw", lh_ann_params_json(LH_ANN_HNSW, &champ), 0.97, 100, 1000));
    int near = 0, far = 0;
    for (int len = 1; len <= 40; len++) {
        assert_int_equal(lh_tune_propose(journal, LH_ANN_HNSW, 64, 10000, &p, &err), 0);
        assert_int_equal(lh_tune_propose(journal, LH_ANN_HNSW, 64, 10000, &q, &err), 0);
        assert_memory_equal(&p, &q, sizeof p); /* same journal, same proposal */
        int d = hnsw_dist(&p, &champ);
        assert_true(d >= 1); /* never the champion again */
        near += d == 1;
        far += d > 1;
        /* Lengthen the journal with another kind's trial: the centre stays. */
        json_array_append_new(journal, fake_trial("flat", json_object(), 0.5, 1000, 10));
    }
    assert_true(near >= 24); /* ε = 0.2: mostly neighbours... */
    assert_true(far >= 1);   /* ...and some exploration */
    json_decref(journal);
}

static void test_proposer_walks_the_whole_grid(void **state)
{
    (void)state;
    lh_error err;
    lh_ann_params p;
    json_t *journal = json_array();
    int steps = 0;
    while (lh_tune_propose(journal, LH_ANN_HNSW, 32, 5000, &p, &err) == 0) {
        /* Recall rises with efSearch so champions move around. */
        double recall = 0.80 + 0.04 * log2((double)p.hnsw_ef_search / 16.0);
        size_t i;
        json_t *t;
        json_t *pj = lh_ann_params_json(LH_ANN_HNSW, &p);
        json_array_foreach(journal, i, t)
            assert_false(json_equal(json_object_get(t, "params"), pj));
        json_array_append_new(
            journal, fake_trial("hnsw", pj, recall, 10 + p.hnsw_ef_search, p.hnsw_m * 100));
        assert_true(++steps <= 80);
    }
    assert_int_equal(err.code, LH_ENOTFOUND);
    assert_int_equal(steps, 4 * 4 * 5);
    json_decref(journal);

    /* The first proposal on an empty journal is the defaults' neighbourhood. */
    journal = json_array();
    assert_int_equal(lh_tune_propose(journal, LH_ANN_FLAT, 32, 5000, &p, &err), 0);
    json_array_append_new(journal, fake_trial("flat", json_object(), 1.0, 100, 10));
    assert_int_equal(lh_tune_propose(journal, LH_ANN_FLAT, 32, 5000, &p, &err), LH_ENOTFOUND);

    /* IVF-PQ: nlist powers of two within n/39, m divides dim. */
    for (int i = 0; i < 30; i++) {
        assert_int_equal(lh_tune_propose(journal, LH_ANN_IVFPQ, 48, 20000, &p, &err), 0);
        assert_int_equal(48 % p.pq_m, 0);
        assert_true(48 / p.pq_m >= 2 && 48 / p.pq_m <= 32);
        assert_true(p.ivf_nlist >= 1 && p.ivf_nlist <= 20000 / 39);
        assert_int_equal(p.ivf_nlist & (p.ivf_nlist - 1), 0);
        assert_true(p.ivf_nprobe >= 1 && p.ivf_nprobe <= 64);
        json_array_append_new(
            journal, fake_trial("ivfpq", lh_ann_params_json(LH_ANN_IVFPQ, &p), 0.9, 100, 10));
    }
    json_decref(journal);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evalset_is_deterministic_with_brute_force_truth),
        cmocka_unit_test(test_trial_measures_recall_latency_memory),
        cmocka_unit_test(test_champion_rule),
        cmocka_unit_test(test_proposer_near_champion_deterministic_deduplicated),
        cmocka_unit_test(test_proposer_walks_the_whole_grid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
