/*
 * offline.c: checks a signed legal response with the public key only (issue 12 item 1,
 * `lakehouse audit verify-offline`; docs/AUDIT.md "Checking a response offline").
 *
 * What can be checked without the HMAC key, and is, in this order:
 *   1. the response signature: Ed25519 over the RFC 8785 bytes of `response`;
 *   2. the checkpoint: a C2SP note signed by the same key;
 *   3. the leaf: its RFC 6962 inclusion proof leads to the checkpoint's root, and it names
 *      the response's subject;
 *   4. the rows against the leaf: each row is the subject's, each prev_chain_hash is the
 *      previous row_hmac; for a response without a window, the first row follows GENESIS,
 *      the rows are exactly rows_total and the last row_hmac is the leaf's chain_tip — so a
 *      deleted tail, or a log replaced by another chain, shows. With a window, the rows'
 *      links are checked and the response's chain_root / chain_rows_total against the leaf;
 *   5. the server's own verdict (chain_verified, tampering): HMACs cannot be recomputed
 *      without the audit key, so a changed row whose row_hmac was kept is known to the
 *      server only, which says so in the signed response.
 */
#include "compliance_internal.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool check(json_t *checks, const char *name, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool check(json_t *checks, const char *name, bool ok, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    json_array_append_new(checks,
                          json_pack("{s:s,s:b,s:s}", "check", name, "ok", ok, "detail", detail));
    return ok;
}

static bool hash_array(const json_t *arr, unsigned char **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!json_is_array(arr) || json_array_size(arr) > 128)
        return false;
    *out = lh_xmalloc(json_array_size(arr) * LH_MERKLE_HASH + 1);
    size_t i, got;
    const json_t *h;
    json_array_foreach(arr, i, h)
    {
        if (lh_b64_decode(json_string_value(h), *out + i * LH_MERKLE_HASH, LH_MERKLE_HASH, &got) !=
                0 ||
            got != LH_MERKLE_HASH)
            return false;
    }
    *n = json_array_size(arr);
    return true;
}

/* Step 4: the rows against the leaf. */
static bool check_rows(json_t *checks, const json_t *resp, const json_t *leaf)
{
    const char *id = lh_json_str(resp, "candidate_id");
    const json_t *rows = json_object_get(resp, "rows"), *window = json_object_get(resp, "window");
    const char *tip = lh_json_str(leaf, "chain_tip");
    json_int_t total = lh_json_int(leaf, "rows_total", -1);
    bool windowed = json_is_object(window) && (!json_is_null(json_object_get(window, "from")) ||
                                               !json_is_null(json_object_get(window, "to")));
    if (!json_is_array(rows) || !tip)
        return check(checks, "rows", false, "the response has no rows array or the leaf no tip");
    size_t i, n = json_array_size(rows);
    const json_t *row;
    const char *prev = NULL;
    json_array_foreach(rows, i, row)
    {
        const char *cid = lh_json_str(row, "candidate_id"), *h = lh_json_str(row, "row_hmac");
        const char *p = lh_json_str(row, "prev_chain_hash");
        if (!cid || strcmp(cid, id) != 0 || !h || !p)
            return check(checks, "rows", false, "row %zu is not a row of subject '%s'", i + 1, id);
        if (i == 0 && !windowed && strcmp(p, LH_AUDIT_GENESIS) != 0)
            return check(checks, "rows", false,
                         "the first row does not start the chain (prev_chain_hash is not "
                         "GENESIS): rows were removed from its start");
        if (prev && strcmp(p, prev) != 0)
            return check(checks, "rows", false,
                         "row %zu does not follow row %zu (a row deleted, inserted or moved)",
                         i + 1, i);
        prev = h;
    }
    check(checks, "row links", true, "%zu row(s), each prev_chain_hash the previous row_hmac", n);
    const char *root = lh_json_str(resp, "chain_root");
    json_int_t claimed = lh_json_int(resp, "chain_rows_total", -1);
    bool ok = true;
    if (!windowed) {
        if ((json_int_t)n < total)
            ok = check(checks, "tail", false,
                       "the signed log records %lld rows for this subject, the response has "
                       "%zu: rows were deleted from the end",
                       (long long)total, n);
        else if ((json_int_t)n != total || !prev || strcmp(prev, tip) != 0)
            ok = check(checks, "tail", false,
                       "the rows (%zu, last %.16s) do not end at the signed leaf (%lld rows, tip "
                       "%.16s): the log was replaced or rewritten",
                       n, prev ? prev : "none", (long long)total, tip);
        else
            check(checks, "tail", true, "the last row is the signed chain tip (%lld rows)",
                  (long long)total);
    }
    if (ok && (!root || strcmp(root, tip) != 0 || claimed != total))
        ok = check(checks, "chain root", false,
                   "the response's chain_root/chain_rows_total (%.16s, %lld) are not the "
                   "signed leaf's (%.16s, %lld)",
                   root ? root : "null", (long long)claimed, tip, (long long)total);
    else if (ok)
        check(checks, "chain root", true, "chain_root and chain_rows_total match the signed leaf");
    return ok;
}

int lh_audit_verify_response(const json_t *doc, const char *name, const unsigned char pk[32],
                             json_t **report, lh_error *err)
{
    *report = NULL;
    const json_t *resp = json_object_get(doc, "response");
    const json_t *sig = json_object_get(doc, "signature");
    const json_t *proof = json_object_get(doc, "inclusion_proof");
    const char *schema = lh_json_str(doc, "schema");
    if (!schema || strcmp(schema, "subject_audit_response.v1") != 0 || !json_is_object(resp))
        return lh_error_set(err, LH_EINVAL, "not a subject_audit_response.v1 document");
    json_t *checks = json_array();
    bool ok = true;
    unsigned char *path = NULL;
    lh_buf b;
    lh_buf_init(&b);

    /* 1. the response signature */
    unsigned char s[crypto_sign_BYTES];
    size_t sn = 0;
    const char *sv = lh_json_str(sig, "value");
    if (!json_is_object(sig) || !sv) {
        ok = check(checks, "response signature", false,
                   "the response is not signed (the server has no signing key)");
    } else if (lh_b64_decode(sv, s, sizeof(s), &sn) != 0 || sn != sizeof(s) ||
               lh_jcs_canonicalize_value(resp, &b, NULL) != 0 ||
               crypto_sign_verify_detached(s, (const unsigned char *)b.data, b.len, pk) != 0) {
        ok = check(checks, "response signature", false,
                   "the signature does not verify with this public key: the response was "
                   "changed or signed by another key");
    } else {
        check(checks, "response signature", true, "Ed25519 over the RFC 8785 bytes of response");
    }

    /* 2. the checkpoint */
    uint64_t size = 0;
    unsigned char root[LH_MERKLE_HASH], leaf_hash[LH_MERKLE_HASH];
    lh_error cerr;
    const char *note = lh_json_str(proof, "checkpoint");
    const json_t *leaf = json_object_get(proof, "leaf");
    if (!json_is_object(proof) || !note || !json_is_object(leaf)) {
        ok = check(checks, "checkpoint", false,
                   "the response has no signed checkpoint and leaf (inclusion_proof)");
        goto verdict;
    }
    if (lh_checkpoint_verify(note, name, pk, &size, root, &cerr) != 0) {
        ok = check(checks, "checkpoint", false, "%s", cerr.message);
        goto verdict;
    }
    check(checks, "checkpoint", true, "C2SP note signed by %s, tree size %llu", name,
          (unsigned long long)size);

    /* 3. the leaf's inclusion */
    size_t n = 0;
    json_int_t index = lh_json_int(proof, "leaf_index", -1);
    b.len = 0;
    if (index < 0 || lh_json_int(proof, "tree_size", -1) != (json_int_t)size ||
        !hash_array(json_object_get(proof, "hashes"), &path, &n) ||
        lh_jcs_canonicalize_value(leaf, &b, NULL) != 0) {
        ok = check(checks, "inclusion", false,
                   "the inclusion proof is malformed or not against the checkpoint's size");
        goto verdict;
    }
    lh_merkle_leaf_hash(b.data, b.len, leaf_hash);
    if (!lh_merkle_verify_inclusion((uint64_t)index, size, leaf_hash, path, n, root)) {
        ok = check(checks, "inclusion", false,
                   "the leaf is not in the signed log: its inclusion proof does not lead to the "
                   "checkpoint's root");
        goto verdict;
    }
    const char *lid = lh_json_str(leaf, "candidate_id"), *rid = lh_json_str(resp, "candidate_id");
    const char *lschema = lh_json_str(leaf, "schema");
    if (!lid || !rid || strcmp(lid, rid) != 0 || !lschema ||
        strcmp(lschema, LH_MERKLE_LEAF_SCHEMA) != 0) {
        ok = check(checks, "inclusion", false, "the leaf is not this subject's");
        goto verdict;
    }
    check(checks, "inclusion", true, "leaf %lld of %llu is in the signed log", (long long)index,
          (unsigned long long)size);

    /* 4. the rows against the leaf */
    ok = check_rows(checks, resp, leaf) && ok;

verdict:
    /* 5. the server's own verdict, which only the HMAC key could recompute */
    {
        const json_t *t = json_object_get(resp, "tampering");
        bool verified = json_is_true(json_object_get(resp, "chain_verified"));
        bool tampered = json_is_true(json_object_get(t, "detected"));
        ok = check(checks, "server verdict", verified && !tampered,
                   verified && !tampered
                       ? "the server verified every HMAC and found no tampering"
                       : "the server reports the chain does not verify or is tampered (see "
                         "response.tampering)") &&
             ok;
    }
    *report = json_pack("{s:b,s:o}", "verified", ok, "checks", checks);
    free(path);
    lh_buf_free(&b);
    return 0;
}
