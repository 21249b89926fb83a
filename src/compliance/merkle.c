/*
 * merkle.c: the RFC 6962 Merkle tree of the verifiable audit log (issue 12 item 1;
 * docs/AUDIT.md "Verifiable log"): hashing, the tree in memory, inclusion and consistency
 * proofs, and their RFC 9162 verification. The persisted log around it (leaves file,
 * subject index, the audit hook) is merkle_log.c.
 *
 * Invariant: levels[k][i] is the hash of the complete subtree of 2^k leaves starting at
 * leaf i·2^k; every such subtree is hashed once, when its last leaf arrives. Every range
 * the RFC 6962 recursions visit starts at a multiple of its largest power-of-two part, so
 * MTH of any range is O(log n) lookups and hashings. m->mu guards the tree.
 */
#include "compliance_internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- hashing */

void lh_merkle_leaf_hash(const void *data, size_t len, unsigned char out[LH_MERKLE_HASH])
{
    crypto_hash_sha256_state st;
    const unsigned char zero = 0x00;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, &zero, 1);
    crypto_hash_sha256_update(&st, data, len);
    crypto_hash_sha256_final(&st, out);
}

void lh_merkle_node_hash(const unsigned char left[LH_MERKLE_HASH],
                         const unsigned char right[LH_MERKLE_HASH],
                         unsigned char out[LH_MERKLE_HASH])
{
    unsigned char buf[1 + 2 * LH_MERKLE_HASH];
    buf[0] = 0x01;
    memcpy(buf + 1, left, LH_MERKLE_HASH);
    memcpy(buf + 1 + LH_MERKLE_HASH, right, LH_MERKLE_HASH);
    crypto_hash_sha256(out, buf, sizeof(buf));
}

/* ---------------------------------------------------------------- verification */

bool lh_merkle_verify_inclusion(uint64_t index, uint64_t size, const unsigned char *leaf,
                                const unsigned char *path, size_t n, const unsigned char *root)
{
    if (index >= size)
        return false;
    uint64_t fn = index, sn = size - 1;
    unsigned char r[LH_MERKLE_HASH];
    memcpy(r, leaf, LH_MERKLE_HASH);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = path + i * LH_MERKLE_HASH;
        if (sn == 0)
            return false;
        if ((fn & 1) || fn == sn) {
            lh_merkle_node_hash(p, r, r);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            lh_merkle_node_hash(r, p, r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && sodium_memcmp(r, root, LH_MERKLE_HASH) == 0;
}

static bool is_pow2(uint64_t x)
{
    return x && !(x & (x - 1));
}

bool lh_merkle_verify_consistency(uint64_t size1, uint64_t size2, const unsigned char *root1,
                                  const unsigned char *root2, const unsigned char *proof, size_t n)
{
    if (size1 == 0 || size1 > size2)
        return false;
    if (size1 == size2)
        return n == 0 && sodium_memcmp(root1, root2, LH_MERKLE_HASH) == 0;
    /* When size1 is a power of two its root is the first node of the path. */
    const unsigned char *first;
    size_t i = 0;
    if (is_pow2(size1)) {
        first = root1;
    } else {
        if (n == 0)
            return false;
        first = proof;
        i = 1;
    }
    uint64_t fn = size1 - 1, sn = size2 - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    unsigned char fr[LH_MERKLE_HASH], sr[LH_MERKLE_HASH];
    memcpy(fr, first, LH_MERKLE_HASH);
    memcpy(sr, first, LH_MERKLE_HASH);
    for (; i < n; i++) {
        const unsigned char *c = proof + i * LH_MERKLE_HASH;
        if (sn == 0)
            return false;
        if ((fn & 1) || fn == sn) {
            lh_merkle_node_hash(c, fr, fr);
            lh_merkle_node_hash(c, sr, sr);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            lh_merkle_node_hash(sr, c, sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && sodium_memcmp(fr, root1, LH_MERKLE_HASH) == 0 &&
           sodium_memcmp(sr, root2, LH_MERKLE_HASH) == 0;
}

/* ---------------------------------------------------------------- the tree */

/* Largest power of two strictly below n (n >= 2). */
static uint64_t split_point(uint64_t n)
{
    uint64_t k = 1;
    while (k << 1 < n)
        k <<= 1;
    return k;
}

static int log2_exact(uint64_t x)
{
    int k = 0;
    while (x > 1) {
        x >>= 1;
        k++;
    }
    return k;
}

static void level_push(lh_merkle *m, int k, const unsigned char h[LH_MERKLE_HASH])
{
    uint64_t len = m->size >> k; /* the count once this hash is in */
    if (len > m->cap[k]) {
        size_t nc = m->cap[k] ? m->cap[k] * 2 : 64;
        m->levels[k] = lh_xrealloc(m->levels[k], nc * LH_MERKLE_HASH);
        m->cap[k] = nc;
    }
    memcpy(m->levels[k] + (len - 1) * LH_MERKLE_HASH, h, LH_MERKLE_HASH);
}

void merkle_tree_append(lh_merkle *m, const unsigned char leaf[LH_MERKLE_HASH])
{
    m->size++;
    level_push(m, 0, leaf);
    unsigned char h[LH_MERKLE_HASH];
    /* Each complete pair at level k completes a subtree at level k+1. */
    for (int k = 0; k + 1 < MERKLE_LEVELS && ((m->size >> k) & 1) == 0; k++) {
        uint64_t len = m->size >> k;
        lh_merkle_node_hash(m->levels[k] + (len - 2) * LH_MERKLE_HASH,
                            m->levels[k] + (len - 1) * LH_MERKLE_HASH, h);
        level_push(m, k + 1, h);
    }
}

/* MTH of leaves [start, start+n), n >= 1, start a multiple of n's largest power-of-two
 * part (true of every range the RFC 6962 recursions visit). */
static void mth(const lh_merkle *m, uint64_t start, uint64_t n, unsigned char out[LH_MERKLE_HASH])
{
    if (is_pow2(n)) {
        int k = log2_exact(n);
        memcpy(out, m->levels[k] + (start >> k) * LH_MERKLE_HASH, LH_MERKLE_HASH);
        return;
    }
    uint64_t k = split_point(n);
    unsigned char l[LH_MERKLE_HASH], r[LH_MERKLE_HASH];
    mth(m, start, k, l);
    mth(m, start + k, n - k, r);
    lh_merkle_node_hash(l, r, out);
}

static void path_push(lh_buf *b, const unsigned char h[LH_MERKLE_HASH])
{
    lh_buf_append(b, h, LH_MERKLE_HASH);
}

/* RFC 6962 PATH(index, D[start : start+n]). */
static void inclusion_path(const lh_merkle *m, uint64_t index, uint64_t start, uint64_t n,
                           lh_buf *out)
{
    if (n <= 1)
        return;
    uint64_t k = split_point(n);
    unsigned char h[LH_MERKLE_HASH];
    if (index < k) {
        inclusion_path(m, index, start, k, out);
        mth(m, start + k, n - k, h);
    } else {
        inclusion_path(m, index - k, start + k, n - k, out);
        mth(m, start, k, h);
    }
    path_push(out, h);
}

/* RFC 6962 SUBPROOF(size1, D[start : start+n], whole). */
static void subproof(const lh_merkle *m, uint64_t size1, uint64_t start, uint64_t n, bool whole,
                     lh_buf *out)
{
    unsigned char h[LH_MERKLE_HASH];
    if (size1 == n) {
        if (!whole) {
            mth(m, start, n, h);
            path_push(out, h);
        }
        return;
    }
    uint64_t k = split_point(n);
    if (size1 <= k) {
        subproof(m, size1, start, k, whole, out);
        mth(m, start + k, n - k, h);
    } else {
        subproof(m, size1 - k, start + k, n - k, false, out);
        mth(m, start, k, h);
    }
    path_push(out, h);
}

lh_merkle *merkle_alloc(void)
{
    lh_merkle *m = lh_xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->sync_mu, NULL);
    m->fd = -1;
    return m;
}

void merkle_free(lh_merkle *m)
{
    for (int k = 0; k < MERKLE_LEVELS; k++)
        free(m->levels[k]);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->sync_mu);
    free(m);
}

lh_merkle *lh_merkle_new(void)
{
    if (sodium_init() < 0)
        abort();
    return merkle_alloc();
}

void lh_merkle_append_hash(lh_merkle *m, const unsigned char leaf[LH_MERKLE_HASH])
{
    pthread_mutex_lock(&m->mu);
    merkle_tree_append(m, leaf);
    pthread_mutex_unlock(&m->mu);
}

uint64_t lh_merkle_size(lh_merkle *m)
{
    pthread_mutex_lock(&m->mu);
    uint64_t n = m->size;
    pthread_mutex_unlock(&m->mu);
    return n;
}

int lh_merkle_root(lh_merkle *m, uint64_t size, unsigned char out[LH_MERKLE_HASH], lh_error *err)
{
    int rc = 0;
    pthread_mutex_lock(&m->mu);
    if (size == 0)
        crypto_hash_sha256(out, NULL, 0);
    else if (size > m->size)
        rc = lh_error_set(err, LH_EINVAL, "the log has %llu leaves, not %llu",
                          (unsigned long long)m->size, (unsigned long long)size);
    else
        mth(m, 0, size, out);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int lh_merkle_inclusion(lh_merkle *m, uint64_t index, uint64_t size, unsigned char **path,
                        size_t *n, lh_error *err)
{
    *path = NULL;
    *n = 0;
    lh_buf b;
    lh_buf_init(&b);
    int rc = 0;
    pthread_mutex_lock(&m->mu);
    if (size > m->size || index >= size) {
        rc = lh_error_set(
            err, LH_EINVAL, "no leaf %llu in a tree of %llu leaves (the log has %llu)",
            (unsigned long long)index, (unsigned long long)size, (unsigned long long)m->size);
        goto out;
    }
    inclusion_path(m, index, 0, size, &b);
out:
    pthread_mutex_unlock(&m->mu);
    if (rc == 0) {
        *n = b.len / LH_MERKLE_HASH;
        *path = (unsigned char *)b.data;
        if (!*path)
            *path = lh_xmalloc(1);
    } else {
        lh_buf_free(&b);
    }
    return rc;
}

int lh_merkle_consistency(lh_merkle *m, uint64_t size1, uint64_t size2, unsigned char **proof,
                          size_t *n, lh_error *err)
{
    *proof = NULL;
    *n = 0;
    if (size1 == 0 || size1 > size2)
        return lh_error_set(err, LH_EINVAL,
                            "a consistency proof needs 1 <= from <= to (got from=%llu, to=%llu)",
                            (unsigned long long)size1, (unsigned long long)size2);
    lh_buf b;
    lh_buf_init(&b);
    int rc = 0;
    pthread_mutex_lock(&m->mu);
    if (size2 > m->size)
        rc = lh_error_set(err, LH_ENOTFOUND, "the log has %llu leaves; there is no tree of %llu",
                          (unsigned long long)m->size, (unsigned long long)size2);
    else
        subproof(m, size1, 0, size2, true, &b);
    pthread_mutex_unlock(&m->mu);
    if (rc == 0) {
        *n = b.len / LH_MERKLE_HASH;
        *proof = (unsigned char *)b.data;
        if (!*proof)
            *proof = lh_xmalloc(1);
    } else {
        lh_buf_free(&b);
    }
    return rc;
}
