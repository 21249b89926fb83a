/*
 * test_merkle.c: the verifiable audit log (compliance/merkle.c, checkpoint.c, offline.c;
 * issue 12). The tree math against a naive recursive RFC 6962 definition written here
 * (roots, inclusion paths and consistency proofs for every size up to 70, and the
 * certificate-transparency reference roots), both verifiers accepting every honest proof
 * and refusing altered ones; persistence (reopen, torn tail), the audit hook and the
 * catch-up of rows appended while no log was attached, a cut log getting no leaf;
 * signing keys (RFC 8032 vector, file checks, the key never in a message) and C2SP notes.
 */
#include "testutil.h"

#include "compliance/compliance.h"
#include "compliance/compliance_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define H LH_MERKLE_HASH

/* ---------------------------------------------------------------- naive definition */

/* MTH(D[lo:hi]) straight from RFC 6962 §2.1, over leaf hashes. */
static void naive_mth(const unsigned char *leaves, size_t lo, size_t hi, unsigned char *out)
{
    if (hi - lo == 1) {
        memcpy(out, leaves + lo * H, H);
        return;
    }
    size_t k = 1;
    while (k * 2 < hi - lo)
        k *= 2;
    unsigned char l[H], r[H];
    naive_mth(leaves, lo, lo + k, l);
    naive_mth(leaves, lo + k, hi, r);
    lh_merkle_node_hash(l, r, out);
}

static void naive_path(const unsigned char *leaves, size_t m, size_t lo, size_t hi, lh_buf *out)
{
    if (hi - lo <= 1)
        return;
    size_t k = 1;
    while (k * 2 < hi - lo)
        k *= 2;
    unsigned char h[H];
    if (m < k) {
        naive_path(leaves, m, lo, lo + k, out);
        naive_mth(leaves, lo + k, hi, h);
    } else {
        naive_path(leaves, m - k, lo + k, hi, out);
        naive_mth(leaves, lo, lo + k, h);
    }
    lh_buf_append(out, h, H);
}

static void naive_subproof(const unsigned char *leaves, size_t m, size_t lo, size_t hi, bool b,
                           lh_buf *out)
{
    unsigned char h[H];
    if (m == hi - lo) {
        if (!b) {
            naive_mth(leaves, lo, hi, h);
            lh_buf_append(out, h, H);
        }
        return;
    }
    size_t k = 1;
    while (k * 2 < hi - lo)
        k *= 2;
    if (m <= k) {
        naive_subproof(leaves, m, lo, lo + k, b, out);
        naive_mth(leaves, lo + k, hi, h);
    } else {
        naive_subproof(leaves, m - k, lo + k, hi, false, out);
        naive_mth(leaves, lo, lo + k, h);
    }
    lh_buf_append(out, h, H);
}

static unsigned char *make_leaves(size_t n)
{
    unsigned char *l = lh_xmalloc(n * H);
    for (size_t i = 0; i < n; i++) {
        char data[32];
        int len = snprintf(data, sizeof(data), "leaf-%zu", i);
        lh_merkle_leaf_hash(data, (size_t)len, l + i * H);
    }
    return l;
}

/* ---------------------------------------------------------------- tree math */

static void hex_to(const char *hex, unsigned char *out)
{
    size_t n = 0;
    assert_int_equal(sodium_hex2bin(out, H, hex, strlen(hex), NULL, &n, NULL), 0);
    assert_int_equal(n, H);
}

/* The reference vectors of certificate-transparency's merkle_tree_test (RFC 6962). */
static void test_reference_roots(void **state)
{
    (void)state;
    static const char *const data[] = {"",
                                       "\x00",
                                       "\x10",
                                       "\x20\x21",
                                       "\x30\x31",
                                       "\x40\x41\x42\x43",
                                       "\x50\x51\x52\x53\x54\x55\x56\x57",
                                       "\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d"
                                       "\x6e\x6f"};
    static const size_t lens[] = {0, 1, 1, 2, 2, 4, 8, 16};
    static const char *const roots[] = {
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};
    lh_merkle *m = lh_merkle_new();
    unsigned char empty[H], want[H], got[H];
    hex_to("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want);
    assert_int_equal(lh_merkle_root(m, 0, empty, NULL), 0);
    assert_memory_equal(empty, want, H);
    for (size_t i = 0; i < 8; i++) {
        unsigned char leaf[H];
        lh_merkle_leaf_hash(data[i], lens[i], leaf);
        lh_merkle_append_hash(m, leaf);
        hex_to(roots[i], want);
        assert_int_equal(lh_merkle_root(m, i + 1, got, NULL), 0);
        assert_memory_equal(got, want, H);
    }
    lh_error err;
    assert_int_equal(lh_merkle_root(m, 9, got, &err), LH_EINVAL);
    lh_merkle_close(m);
}

/* Every root, every inclusion path and every consistency proof of every size up to N
 * equals the naive definition's, verifies, and stops verifying when altered. */
static void test_against_naive(void **state)
{
    (void)state;
    enum { N = 70 };
    unsigned char *leaves = make_leaves(N);
    lh_merkle *m = lh_merkle_new();
    unsigned char root[N + 1][H];
    for (size_t n = 1; n <= N; n++) {
        lh_merkle_append_hash(m, leaves + (n - 1) * H);
        unsigned char want[H];
        naive_mth(leaves, 0, n, want);
        assert_int_equal(lh_merkle_root(m, n, root[n], NULL), 0);
        assert_memory_equal(root[n], want, H);
    }
    for (size_t n = 1; n <= N; n++) {
        for (size_t i = 0; i < n; i++) {
            unsigned char *path;
            size_t np;
            lh_buf want;
            lh_buf_init(&want);
            naive_path(leaves, i, 0, n, &want);
            assert_int_equal(lh_merkle_inclusion(m, i, n, &path, &np, NULL), 0);
            assert_int_equal(np * H, want.len);
            if (np)
                assert_memory_equal(path, want.data, want.len);
            assert_true(lh_merkle_verify_inclusion(i, n, leaves + i * H, path, np, root[n]));
            /* another leaf, another index, another size, a changed path: refused */
            assert_false(
                lh_merkle_verify_inclusion(i, n, leaves + ((i + 1) % N) * H, path, np, root[n]));
            if (n > 1) {
                assert_false(
                    lh_merkle_verify_inclusion((i + 1) % n, n, leaves + i * H, path, np, root[n]));
                path[0] ^= 1;
                assert_false(lh_merkle_verify_inclusion(i, n, leaves + i * H, path, np, root[n]));
            }
            assert_false(lh_merkle_verify_inclusion(i, n + 1, leaves + i * H, path, np, root[n]));
            free(path);
            lh_buf_free(&want);
        }
        for (size_t k = 1; k <= n; k++) {
            unsigned char *proof;
            size_t np;
            lh_buf want;
            lh_buf_init(&want);
            naive_subproof(leaves, k, 0, n, true, &want);
            assert_int_equal(lh_merkle_consistency(m, k, n, &proof, &np, NULL), 0);
            assert_int_equal(np * H, want.len);
            if (np)
                assert_memory_equal(proof, want.data, want.len);
            assert_true(lh_merkle_verify_consistency(k, n, root[k], root[n], proof, np));
            if (k < n) {
                /* a forked old tree, or an altered proof, is refused */
                assert_false(
                    lh_merkle_verify_consistency(k, n, root[k == 1 ? 2 : 1], root[n], proof, np));
                if (np) {
                    proof[np * H - 1] ^= 1;
                    assert_false(lh_merkle_verify_consistency(k, n, root[k], root[n], proof, np));
                }
            }
            free(proof);
            lh_buf_free(&want);
        }
    }
    lh_error err;
    unsigned char *p;
    size_t np;
    assert_int_equal(lh_merkle_consistency(m, 0, 5, &p, &np, &err), LH_EINVAL);
    assert_int_equal(lh_merkle_consistency(m, 6, 5, &p, &np, &err), LH_EINVAL);
    assert_int_equal(lh_merkle_consistency(m, 5, N + 1, &p, &np, &err), LH_ENOTFOUND);
    assert_int_equal(lh_merkle_inclusion(m, 5, 5, &p, &np, &err), LH_EINVAL);
    lh_merkle_close(m);
    free(leaves);
}

/* A larger tree: sizes around powers of two up to 1,025, proofs still the naive ones. */
static void test_larger_sizes(void **state)
{
    (void)state;
    enum { N = 1025 };
    unsigned char *leaves = make_leaves(N);
    lh_merkle *m = lh_merkle_new();
    for (size_t i = 0; i < N; i++)
        lh_merkle_append_hash(m, leaves + i * H);
    static const size_t sizes[] = {1, 2, 7, 8, 9, 255, 256, 257, 1000, 1024, 1025};
    for (size_t a = 0; a < sizeof(sizes) / sizeof(sizes[0]); a++) {
        unsigned char r1[H], want[H];
        naive_mth(leaves, 0, sizes[a], want);
        assert_int_equal(lh_merkle_root(m, sizes[a], r1, NULL), 0);
        assert_memory_equal(r1, want, H);
        for (size_t b = a; b < sizeof(sizes) / sizeof(sizes[0]); b++) {
            unsigned char r2[H], *proof;
            size_t np;
            assert_int_equal(lh_merkle_root(m, sizes[b], r2, NULL), 0);
            assert_int_equal(lh_merkle_consistency(m, sizes[a], sizes[b], &proof, &np, NULL), 0);
            lh_buf w;
            lh_buf_init(&w);
            naive_subproof(leaves, sizes[a], 0, sizes[b], true, &w);
            assert_int_equal(np * H, w.len);
            assert_true(lh_merkle_verify_consistency(sizes[a], sizes[b], r1, r2, proof, np));
            lh_buf_free(&w);
            free(proof);
        }
    }
    lh_merkle_close(m);
    free(leaves);
}

/* ---------------------------------------------------------------- persistence and hook */

typedef struct env {
    char *tmp, *data, *keyfile;
    lh_audit *audit;
    lh_merkle *m;
} env;

static int setup(void **state)
{
    env *e = lh_xcalloc(1, sizeof(*e));
    e->tmp = lh_test_tmpdir("merkle");
    e->data = lh_path_join(e->tmp, "data");
    e->keyfile = lh_path_join(e->tmp, "audit.key");
    lh_test_write_file(e->keyfile, "0123456789abcdef0123456789abcdef-test-key\n");
    *state = e;
    return 0;
}

static void env_open(env *e, bool with_log)
{
    lh_error err;
    if (!(e->audit = lh_audit_open(e->data, e->keyfile, &err)))
        fail_msg("audit open: %s", err.message);
    if (with_log) {
        if (!(e->m = lh_merkle_open(e->data, &err)))
            fail_msg("merkle open: %s", err.message);
        if (lh_merkle_attach(e->m, e->audit, &err) != 0)
            fail_msg("attach: %s", err.message);
    }
}

static void env_close(env *e)
{
    lh_merkle_close(e->m);
    lh_audit_close(e->audit);
    e->m = NULL;
    e->audit = NULL;
}

static int teardown(void **state)
{
    env *e = *state;
    env_close(e);
#ifdef LH_FAULT_INJECTION
    lh_fault_reset();
#endif
    free(e->keyfile);
    free(e->data);
    lh_test_rmdir(e->tmp);
    free(e);
    return 0;
}

static void append(lh_audit *a, const char *id, int n)
{
    static const char *const fields[] = {"email"};
    lh_audit_entry x = {.candidate_id = id,
                        .accessor_kind = "agent",
                        .fields = fields,
                        .n_fields = 1,
                        .result = "success"};
    for (int i = 0; i < n; i++) {
        lh_error err;
        if (lh_audit_append(a, &x, NULL, &err) != 0)
            fail_msg("append: %s", err.message);
    }
}

/* The subject's leaf: rows and tip; -1 rows when it has none. */
static int64_t leaf_rows(lh_merkle *m, const char *id, char *tip)
{
    json_t *leaf;
    uint64_t idx;
    lh_error err;
    if (lh_merkle_subject_leaf(m, id, &leaf, &idx, &err) != 0)
        return -1;
    int64_t rows = lh_json_int(leaf, "rows_total", -1);
    if (tip)
        snprintf(tip, LH_AUDIT_HMAC_HEX, "%s", lh_json_str(leaf, "chain_tip"));
    json_decref(leaf);
    return rows;
}

/* Every line of the leaves file is already in its RFC 8785 form: the leaf writer's
 * direct output, against the general canonicaliser. */
static void assert_leaves_canonical(env *e)
{
    char *path = lh_xasprintf("%s/_catalog/audit_merkle/leaves.jsonl", e->data);
    char *data;
    size_t n;
    assert_int_equal(lh_fs_read_all(path, 1 << 26, &data, &n, NULL), 0);
    for (char *line = data; line < data + n; line = strchr(line, '\n') + 1) {
        size_t len = (size_t)(strchr(line, '\n') - line);
        lh_buf b;
        lh_buf_init(&b);
        lh_error err;
        assert_int_equal(lh_jcs_canonicalize(line, len, &b, &err), 0);
        if (b.len != len || memcmp(b.data, line, len) != 0)
            fail_msg("leaf not canonical: %.*s", (int)len, line);
        lh_buf_free(&b);
    }
    free(data);
    free(path);
}

static void test_hook_and_reopen(void **state)
{
    env *e = *state;
    env_open(e, true);
    /* ids that need escaping or are not ASCII: the leaf's canonical form */
    append(e->audit, "Zo\xc3\xab \"q\" \\ \xf0\x9f\x98\x80 <&> \xe2\x80\xa8", 2);
    assert_leaves_canonical(e);
    env_close(e);
    lh_fs_remove_tree(e->data, NULL);
    env_open(e, true);
    append(e->audit, "W-1", 3);
    append(e->audit, "W-2", 1);
    /* a batch of three rows over two subjects: one leaf per subject */
    static const char *const f[] = {"email"};
    lh_audit_entry b[3] = {
        {.candidate_id = "W-1", .fields = f, .n_fields = 1, .result = "success"},
        {.candidate_id = "W-3", .fields = f, .n_fields = 1, .result = "success"},
        {.candidate_id = "W-1", .fields = f, .n_fields = 1, .result = "success"}};
    lh_error err;
    assert_int_equal(lh_audit_append_batch(e->audit, b, 3, &err), 0);
    assert_int_equal(lh_merkle_size(e->m), 6); /* 3 + 1 + 2 */
    char tip[LH_AUDIT_HMAC_HEX], want[LH_AUDIT_HMAC_HEX];
    assert_int_equal(leaf_rows(e->m, "W-1", tip), 5);
    assert_int_equal(lh_audit_tip(e->audit, "W-1", want, &err), 0);
    assert_string_equal(tip, want);
    assert_int_equal(leaf_rows(e->m, "W-3", NULL), 1);
    uint64_t durable;
    assert_int_equal(lh_merkle_sync(e->m, &durable, &err), 0);
    assert_int_equal(durable, 6);
    unsigned char r1[H], r2[H];
    assert_int_equal(lh_merkle_root(e->m, 6, r1, NULL), 0);
    env_close(e);
    env_open(e, true);
    assert_int_equal(lh_merkle_size(e->m), 6); /* nothing to catch up */
    assert_int_equal(lh_merkle_root(e->m, 6, r2, NULL), 0);
    assert_memory_equal(r1, r2, H);
    assert_int_equal(leaf_rows(e->m, "W-1", NULL), 5);
}

/* Rows appended while no log was attached (an offline tool, a lost leaf) get a leaf at
 * the next attach; a log cut behind the server's back does not. */
static void test_catch_up_and_cut(void **state)
{
    env *e = *state;
    env_open(e, true);
    append(e->audit, "A", 2);
    append(e->audit, "B", 4);
    env_close(e);
    env_open(e, false);
    append(e->audit, "A", 3);
    env_close(e);
    env_open(e, true);
    assert_int_equal(leaf_rows(e->m, "A", NULL), 5);
    assert_int_equal(lh_merkle_size(e->m), 7); /* 2+4, then one catch-up leaf */
    env_close(e);
    /* cut B's last row */
    char *path = lh_xasprintf("%s/_catalog/subjects/B.audit.jsonl", e->data);
    char *data;
    size_t n;
    assert_int_equal(lh_fs_read_all(path, 1 << 20, &data, &n, NULL), 0);
    size_t end = n - 1;
    while (end > 0 && data[end - 1] != '\n')
        end--;
    assert_int_equal(truncate(path, (off_t)end), 0);
    free(data);
    free(path);
    env_open(e, true);
    assert_int_equal(leaf_rows(e->m, "B", NULL), 4); /* the signed evidence stays */
    assert_int_equal(lh_merkle_size(e->m), 7);
    /* and the next append of B (on a chain that no longer extends the leaf) adds none */
    append(e->audit, "B", 1);
    assert_int_equal(leaf_rows(e->m, "B", NULL), 4);
}

typedef struct hot_arg {
    lh_audit *audit;
    int n;
} hot_arg;

static void *hot_appender(void *arg)
{
    hot_arg *h = arg;
    append(h->audit, "HOT", h->n);
    return NULL;
}

/* Eight threads append to one subject: batches finish their group commit in any order,
 * yet the subject's leaves climb its chain one durable tip after another and end at its
 * tip; every leaf's tip is the row its rows_total names. */
static void test_concurrent_one_subject(void **state)
{
    env *e = *state;
    enum { THREADS = 8, EACH = 100 };
    env_open(e, true);
    pthread_t t[THREADS];
    hot_arg h = {e->audit, EACH};
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, hot_appender, &h);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char tip[LH_AUDIT_HMAC_HEX], want[LH_AUDIT_HMAC_HEX];
    lh_error err;
    assert_int_equal(leaf_rows(e->m, "HOT", tip), THREADS * EACH);
    assert_int_equal(lh_audit_tip(e->audit, "HOT", want, &err), 0);
    assert_string_equal(tip, want);
    uint64_t leaves = lh_merkle_size(e->m);
    assert_true(leaves >= 1 && leaves <= THREADS * EACH);
    env_close(e);
    /* the leaves, against the log */
    char *lp = lh_xasprintf("%s/_catalog/audit_merkle/leaves.jsonl", e->data);
    char *sp = lh_xasprintf("%s/_catalog/subjects/HOT.audit.jsonl", e->data);
    char *ldata, *sdata;
    size_t ln, sn;
    assert_int_equal(lh_fs_read_all(lp, 1 << 26, &ldata, &ln, NULL), 0);
    assert_int_equal(lh_fs_read_all(sp, 1 << 26, &sdata, &sn, NULL), 0);
    char(*hmacs)[LH_AUDIT_HMAC_HEX] = lh_xcalloc(THREADS * EACH + 1, LH_AUDIT_HMAC_HEX);
    int rows = 0;
    for (char *line = sdata; line < sdata + sn; line = strchr(line, '\n') + 1) {
        json_t *r = json_loadb(line, (size_t)(strchr(line, '\n') - line), 0, NULL);
        snprintf(hmacs[++rows], LH_AUDIT_HMAC_HEX, "%s", lh_json_str(r, "row_hmac"));
        json_decref(r);
    }
    assert_int_equal(rows, THREADS * EACH);
    json_int_t last = 0;
    uint64_t count = 0;
    for (char *line = ldata; line < ldata + ln; line = strchr(line, '\n') + 1) {
        json_t *l = json_loadb(line, (size_t)(strchr(line, '\n') - line), 0, NULL);
        json_int_t n = lh_json_int(l, "rows_total", 0);
        assert_true(n > last && n <= rows);
        assert_string_equal(lh_json_str(l, "chain_tip"), hmacs[n]);
        last = n;
        count++;
        json_decref(l);
    }
    assert_int_equal(count, leaves);
    assert_int_equal(last, THREADS * EACH);
    assert_leaves_canonical(e);
    free(hmacs);
    free(ldata);
    free(sdata);
    free(lp);
    free(sp);
}

static void test_torn_tail(void **state)
{
    env *e = *state;
    env_open(e, true);
    append(e->audit, "T", 3);
    env_close(e);
    char *path = lh_xasprintf("%s/_catalog/audit_merkle/leaves.jsonl", e->data);
    int64_t size = lh_fs_size(path);
    FILE *f = fopen(path, "a");
    fputs("{\"candidate_id\":\"T\",\"chain_t", f); /* a crash mid-line */
    fclose(f);
    env_open(e, true);
    assert_int_equal(lh_merkle_size(e->m), 3);
    assert_int_equal(lh_fs_size(path), size);
    env_close(e);
    /* damage before the last line is refused, not silently cut */
    char *data;
    size_t n;
    assert_int_equal(lh_fs_read_all(path, 1 << 20, &data, &n, NULL), 0);
    data[2] = 'X';
    lh_test_write_file(path, data);
    free(data);
    lh_error err;
    assert_null(lh_merkle_open(e->data, &err));
    assert_int_equal(err.code, LH_EIO);
    free(path);
}

#ifdef LH_FAULT_INJECTION
/* A leaf whose line cannot be written is not in the tree; the next batch catches up. */
static void test_leaf_write_fails(void **state)
{
    env *e = *state;
    env_open(e, true);
    append(e->audit, "F", 1);
    /* writes per append: the journal record, then the leaf (the subject's log line is
     * written by the log writer, held back here so it cannot come between them) */
    audit_log_writer_hold(e->audit, true);
    lh_fault_arm(LH_FAULT_WRITE, 2, 1, EIO);
    append(e->audit, "F", 1);
    assert_int_equal(lh_fault_fired(), 1);
    lh_fault_reset();
    audit_log_writer_hold(e->audit, false);
    assert_int_equal(lh_merkle_size(e->m), 1);
    assert_int_equal(leaf_rows(e->m, "F", NULL), 1);
    append(e->audit, "F", 1);
    assert_int_equal(leaf_rows(e->m, "F", NULL), 3);
    env_close(e);
    env_open(e, true);
    assert_int_equal(lh_merkle_size(e->m), 2);
}

/* A batch's leaves are written in one write; when it fails, every leaf of the batch is
 * taken back: the tree keeps its size and root, a subject that had a leaf keeps it, a new
 * one has none. Both catch up later (the next batch, a leaf request, the next open). */
static void test_batch_leaf_write_fails(void **state)
{
    env *e = *state;
    env_open(e, true);
    append(e->audit, "X", 1);
    unsigned char r0[H], r1[H];
    assert_int_equal(lh_merkle_root(e->m, 1, r0, NULL), 0);
    static const char *const f[] = {"email"};
    lh_audit_entry b[3] = {{.candidate_id = "X", .fields = f, .n_fields = 1, .result = "success"},
                           {.candidate_id = "Y", .fields = f, .n_fields = 1, .result = "success"},
                           {.candidate_id = "X", .fields = f, .n_fields = 1, .result = "success"}};
    lh_error err;
    audit_log_writer_hold(e->audit, true); /* writes: the journal record, then the leaves */
    lh_fault_arm(LH_FAULT_WRITE, 2, 1, EIO);
    assert_int_equal(lh_audit_append_batch(e->audit, b, 3, &err), 0); /* durable anyway */
    assert_int_equal(lh_fault_fired(), 1);
    lh_fault_reset();
    audit_log_writer_hold(e->audit, false);
    assert_int_equal(lh_merkle_size(e->m), 1);
    assert_int_equal(lh_merkle_root(e->m, 1, r1, NULL), 0);
    assert_memory_equal(r0, r1, H);
    assert_int_equal(leaf_rows(e->m, "X", NULL), 1);
    assert_int_equal(leaf_rows(e->m, "Y", NULL), -1);
    char *path = lh_xasprintf("%s/_catalog/audit_merkle/leaves.jsonl", e->data);
    char *data;
    size_t n;
    assert_int_equal(lh_fs_read_all(path, 1 << 20, &data, &n, NULL), 0);
    assert_non_null(memchr(data, '\n', n));
    assert_ptr_equal(memchr(data, '\n', n), data + n - 1); /* one line: the cut took the rest */
    free(data);
    free(path);
    append(e->audit, "X", 1); /* follows a tip no leaf has: settled from the log */
    assert_int_equal(leaf_rows(e->m, "X", NULL), 4);
    env_close(e);
    env_open(e, true); /* Y is caught up from its log */
    assert_int_equal(leaf_rows(e->m, "Y", NULL), 1);
    assert_int_equal(leaf_rows(e->m, "X", NULL), 4);
}

/* A row whose journal sync failed is not acknowledged (no leaf), but the journal replay
 * puts it in the log (its record was written): the next batch follows a tip no leaf has, waits for
 * a batch that never comes, and is settled from the log when the subject's leaf is asked for. */
static void test_unacknowledged_row_settled(void **state)
{
    env *e = *state;
    env_open(e, true);
    append(e->audit, "P", 1);
    static const char *const f[] = {"email"};
    lh_audit_entry x = {.candidate_id = "P", .fields = f, .n_fields = 1, .result = "success"};
    lh_error err;
    lh_fault_arm(LH_FAULT_FSYNC, 1, 1, EIO); /* the journal's fdatasync */
    assert_int_equal(lh_audit_append(e->audit, &x, NULL, &err), LH_EIO);
    lh_fault_reset();
    append(e->audit, "P", 1); /* replays the failed row first, then follows it */
    assert_int_equal(lh_merkle_size(e->m), 1);
    char tip[LH_AUDIT_HMAC_HEX], want[LH_AUDIT_HMAC_HEX];
    assert_int_equal(leaf_rows(e->m, "P", tip), 3);
    assert_int_equal(lh_audit_tip(e->audit, "P", want, &err), 0);
    assert_string_equal(tip, want);
    assert_int_equal(lh_merkle_size(e->m), 2);
}

/* A failed sync of the leaves file: nothing more counts as durable (so nothing more may be
 * signed) until a sync succeeds. */
static void test_sync_fails(void **state)
{
    env *e = *state;
    env_open(e, true);
    append(e->audit, "S", 2);
    uint64_t durable = 99;
    lh_error err;
    assert_int_equal(lh_merkle_sync(e->m, &durable, &err), 0);
    assert_int_equal(durable, 2);
    append(e->audit, "S", 1);
    lh_fault_arm(LH_FAULT_FSYNC, 1, 1, EIO);
    assert_int_equal(lh_merkle_sync(e->m, &durable, &err), LH_EIO);
    assert_string_equal(err.kind, "audit_write_failed");
    assert_int_equal(durable, 2);
    lh_fault_reset();
    assert_int_equal(lh_merkle_sync(e->m, &durable, &err), 0);
    assert_int_equal(durable, 3);
}
#endif

/* ---------------------------------------------------------------- keys and notes */

static void test_rfc8032_and_note(void **state)
{
    (void)state;
    unsigned char seed[32], pk[32], sig[64], want[64];
    hex_to("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", seed);
    hex_to("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", pk);
    size_t n;
    assert_int_equal(sodium_hex2bin(want, 64,
                                    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901"
                                    "555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a"
                                    "100b",
                                    128, NULL, &n, NULL),
                     0);
    lh_error err;
    lh_signer *s = lh_signer_from_seed(seed, "example.com/log", &err);
    assert_non_null(s);
    assert_memory_equal(lh_signer_public_key(s), pk, 32);
    lh_signer_sign(s, "", 0, sig);
    assert_memory_equal(sig, want, 64);

    unsigned char root[H];
    memset(root, 0xAB, H);
    char *note = lh_checkpoint_sign(s, 42, root);
    /* shape: origin, size, root, blank line, one em-dash signature line */
    assert_non_null(strstr(note,
                           "example.com/log\n42\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n\n"
                           "\xE2\x80\x94 example.com/log "));
    uint64_t size = 0;
    unsigned char got[H];
    assert_int_equal(lh_checkpoint_verify(note, "example.com/log", pk, &size, got, &err), 0);
    assert_int_equal(size, 42);
    assert_memory_equal(got, root, H);
    /* the key id: SHA-256(name ‖ \n ‖ 0x01 ‖ pk)[0..4) */
    unsigned char id[4], h[32];
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_puts(&b, "example.com/log\n\x01");
    lh_buf_append(&b, pk, 32);
    crypto_hash_sha256(h, (unsigned char *)b.data, b.len);
    lh_buf_free(&b);
    lh_signer_key_id("example.com/log", pk, id);
    assert_memory_equal(id, h, 4);
    /* the verifier key round-trips */
    char *vkey = lh_signer_vkey(s), *name = NULL;
    unsigned char pk2[32];
    assert_int_equal(lh_vkey_parse(vkey, &name, pk2, &err), 0);
    assert_string_equal(name, "example.com/log");
    assert_memory_equal(pk2, pk, 32);
    free(name);
    vkey[strlen(vkey) - 3] ^= 1;
    assert_int_equal(lh_vkey_parse(vkey, &name, pk2, &err), LH_EINVAL);
    free(vkey);
    /* a changed size, another name, another key: refused */
    note[strlen("example.com/log\n")] = '5';
    assert_int_equal(lh_checkpoint_verify(note, "example.com/log", pk, &size, got, &err),
                     LH_EINVAL);
    note[strlen("example.com/log\n")] = '4';
    assert_int_equal(lh_checkpoint_verify(note, "other/log", pk, &size, got, &err), LH_EINVAL);
    pk2[0] ^= 1;
    assert_int_equal(lh_checkpoint_verify(note, "example.com/log", pk2, &size, got, &err),
                     LH_EINVAL);
    free(note);
    lh_signer_free(s);
    assert_null(lh_signer_from_seed(seed, "has space", &err));
    assert_null(lh_signer_from_seed(seed, "a+b", &err));
}

/* Notes signed by others (the examples of Go's sumdb/note and of the C2SP signed-note
 * documentation) verify here: the key ids, the em-dash lines, the signed bytes agree. */
static void test_foreign_notes(void **state)
{
    (void)state;
    static const struct {
        const char *vkey, *note, *name;
        size_t text;
    } v[] = {
        {"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
         "If you think cryptography is the answer to your problem,\n"
         "then you don't know what your problem is.\n\n"
         "\xE2\x80\x94 PeterNeumann "
         "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgK"
         "vqfqdngotpRZb6KE6RyyBwJnAM=\n",
         "PeterNeumann", 99},
        {"example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
         "This is an example message.\n\n"
         "\xE2\x80\x94 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERY"
         "NZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n",
         "example.com/foo", 28},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char *name = NULL;
        unsigned char pk[32];
        size_t len = 0;
        lh_error err;
        assert_int_equal(lh_vkey_parse(v[i].vkey, &name, pk, &err), 0);
        assert_string_equal(name, v[i].name);
        assert_int_equal(lh_note_verify(v[i].note, name, pk, &len, &err), 0);
        assert_int_equal(len, v[i].text);
        /* one changed byte of the text, another name: refused */
        char *bad = lh_xstrdup(v[i].note);
        bad[3] ^= 1;
        assert_int_equal(lh_note_verify(bad, name, pk, &len, &err), LH_EINVAL);
        free(bad);
        assert_int_equal(lh_note_verify(v[i].note, "other", pk, &len, &err), LH_EINVAL);
        /* an unknown key's line is ignored; a malformed line rejects the note */
        char *more = lh_xasprintf("%s\xE2\x80\x94 other.example AAAAAAAA\n", v[i].note);
        assert_int_equal(lh_note_verify(more, name, pk, &len, &err), 0);
        free(more);
        more = lh_xasprintf("%sjunk\n", v[i].note);
        assert_int_equal(lh_note_verify(more, name, pk, &len, &err), LH_EINVAL);
        free(more);
        free(name);
    }
}

static void write_key(const char *path, const unsigned char *k, size_t n, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, k, n), (ssize_t)n);
    fchmod(fd, mode);
    close(fd);
}

static void test_key_files(void **state)
{
    (void)state;
    char *tmp = lh_test_tmpdir("signkey");
    char *path = lh_path_join(tmp, "sign.key");
    unsigned char sk[64], pk[32];
    crypto_sign_keypair(pk, sk);
    lh_error err;
    /* 32-byte seed, 0600 */
    write_key(path, sk, 32, 0600);
    lh_signer *s = lh_signer_load(path, "t/log", &err);
    assert_non_null(s);
    assert_memory_equal(lh_signer_public_key(s), pk, 32);
    lh_signer_free(s);
    /* 64-byte libsodium secret key, 0400 */
    write_key(path, sk, 64, 0400);
    assert_non_null(s = lh_signer_load(path, NULL, &err));
    assert_memory_equal(lh_signer_name(s), "lakehouse/", 10);
    lh_signer_free(s);
    /* group-readable, short, long, mismatched halves: refused naming the path only */
    char hex[129];
    sodium_bin2hex(hex, sizeof(hex), sk, 64);
    struct {
        size_t n;
        mode_t mode;
        bool flip;
    } bad[] = {{32, 0640, false},
               {32, 0604, false},
               {31, 0600, false},
               {33, 0600, false},
               {64, 0600, true}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned char k[65];
        memcpy(k, sk, 64);
        k[64] = 7;
        if (bad[i].flip)
            k[40] ^= 1;
        write_key(path, k, bad[i].n, bad[i].mode);
        assert_null(s = lh_signer_load(path, "t/log", &err));
        assert_int_equal(err.code, LH_EINVAL);
        assert_non_null(strstr(err.message, path));
        char seedhex[65];
        memcpy(seedhex, hex, 64);
        seedhex[64] = '\0';
        assert_null(strstr(err.message, seedhex));
    }
    /* a symlink is judged by the file it names (secret mounts are symlinks) */
    char *link = lh_path_join(tmp, "link.key");
    write_key(path, sk, 32, 0600);
    assert_int_equal(symlink(path, link), 0);
    assert_non_null(s = lh_signer_load(link, "t/log", &err));
    lh_signer_free(s);
    chmod(path, 0644);
    assert_null(lh_signer_load(link, "t/log", &err));
    assert_non_null(strstr(err.message, "chmod 600"));
    free(link);
    assert_null(lh_signer_load("/nonexistent/sign.key", NULL, &err));
    sodium_memzero(sk, sizeof(sk));
    free(path);
    lh_test_rmdir(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_roots),
        cmocka_unit_test(test_against_naive),
        cmocka_unit_test(test_larger_sizes),
        cmocka_unit_test_setup_teardown(test_hook_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_and_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_one_subject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
#ifdef LH_FAULT_INJECTION
        cmocka_unit_test_setup_teardown(test_leaf_write_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_leaf_write_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unacknowledged_row_settled, setup, teardown),
#endif
        cmocka_unit_test(test_rfc8032_and_note),
        cmocka_unit_test(test_foreign_notes),
        cmocka_unit_test(test_key_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
