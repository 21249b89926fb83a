/*
 * legal.c: the legal audit endpoint's logic (GET /audit/subject/{id}, GET /audit/health):
 * who may call it, and the subject_audit_response.v1 it answers. HTTP glue is in
 * src/http/legal_routes.c; docs/AUDIT.md "Legal endpoint" is the contract.
 *
 * Invariants:
 *   - The token never leaves this file: it is read from its file per request (so a
 *     rotation needs no restart), compared in constant time as fixed-length digests
 *     (sodium_memcmp of SHA-256s, so neither the content nor the length of the presented
 *     value steers the time taken), and wiped from memory after. Messages name the
 *     variable, never the token nor the file's content.
 *   - A response says what was checked: chain_verified is computed over the whole log on
 *     every call, never taken from a cache, and a manifest that expects a chain root the
 *     log does not end with is flagged, whatever the window.
 */
#include "subjects_internal.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define TOKEN_MIN 32
#define TOKEN_FILE_MAX 4096

/* How long a response waits for the subject's newest durable rows to reach the Merkle
 * log (the hook runs right after the group commit; the log line is written before it). */
#define LEAF_WAIT_TRIES 20
#define LEAF_WAIT_US 10000

struct lh_legal {
    lh_subjects *subjects;
    lh_catalog *cat;
    lh_audit *audit; /* NULL: no audit key configured */
    char *token_file;
    lh_merkle *merkle; /* issue 12: the verifiable log, NULL without an audit chain */
    lh_signer *signer; /* NULL: no LH_AUDIT_SIGNING_KEY_FILE; responses unsigned */
};

lh_legal *lh_legal_open(lh_subjects *subjects, lh_catalog *cat, lh_audit *audit,
                        const char *token_file)
{
    lh_legal *lg = lh_xcalloc(1, sizeof(*lg));
    lg->subjects = subjects;
    lg->cat = cat;
    lg->audit = audit;
    lg->token_file = token_file ? lh_xstrdup(token_file) : NULL;
    return lg;
}

void lh_legal_attach_log(lh_legal *lg, lh_merkle *merkle, lh_signer *signer)
{
    lg->merkle = merkle;
    lg->signer = signer;
}

void lh_legal_close(lh_legal *lg)
{
    if (!lg)
        return;
    free(lg->token_file);
    free(lg);
}

/* ---------------------------------------------------------------- token */

/* Reads the token (trailing whitespace and newlines dropped: files written with echo
 * work). 503 with the reason when it is unusable. *tok is wiped and freed by the caller
 * with token_free. */
static int token_load(const char *path, char **tok, size_t *len, lh_error *err)
{
    *tok = NULL;
    *len = 0;
    if (!path || !*path)
        return lh_error_setk(err, LH_EUNAVAILABLE, "legal_token_unconfigured",
                             "the legal audit endpoint is not configured: set "
                             "LH_LEGAL_AUDIT_TOKEN_FILE to a file holding a token of at least "
                             "%d bytes and restart the server",
                             TOKEN_MIN);
    char *data = NULL;
    size_t n = 0;
    lh_error lerr;
    int rc = lh_fs_read_all(path, TOKEN_FILE_MAX, &data, &n, &lerr);
    if (rc == LH_ETOOLARGE)
        return lh_error_setk(err, LH_EUNAVAILABLE, "legal_token_unusable",
                             "the file named by LH_LEGAL_AUDIT_TOKEN_FILE is larger than %d "
                             "bytes; it must hold only the token",
                             TOKEN_FILE_MAX);
    if (rc != 0)
        return lh_error_setk(err, LH_EUNAVAILABLE, "legal_token_unusable",
                             "the file named by LH_LEGAL_AUDIT_TOKEN_FILE is missing or "
                             "unreadable: create it (mode 0600) with a token of at least %d "
                             "bytes",
                             TOKEN_MIN);
    while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r' || data[n - 1] == ' ' ||
                     data[n - 1] == '\t'))
        data[--n] = '\0';
    if (n == 0) {
        free(data);
        return lh_error_setk(err, LH_EUNAVAILABLE, "legal_token_unusable",
                             "the file named by LH_LEGAL_AUDIT_TOKEN_FILE is empty: write a "
                             "token of at least %d bytes into it",
                             TOKEN_MIN);
    }
    if (n < TOKEN_MIN) {
        sodium_memzero(data, n);
        free(data);
        return lh_error_setk(err, LH_EUNAVAILABLE, "legal_token_unusable",
                             "the token in the file named by LH_LEGAL_AUDIT_TOKEN_FILE is %zu "
                             "bytes; at least %d are required",
                             n, TOKEN_MIN);
    }
    *tok = data;
    *len = n;
    return 0;
}

static void token_free(char *tok, size_t len)
{
    if (tok) {
        sodium_memzero(tok, len);
        free(tok);
    }
}

static int token_check(const char *token_file, const char *presented, lh_error *err)
{
    char *tok = NULL;
    size_t len = 0;
    int rc = token_load(token_file, &tok, &len, err);
    if (rc)
        return rc;
    if (!presented || !*presented) {
        rc = lh_error_setk(err, LH_EUNAUTH, "legal_token_missing",
                           "send the legal audit token in the X-Lakehouse-Legal-Token header "
                           "(or use a key of role legal)");
        goto out;
    }
    unsigned char want[crypto_hash_sha256_BYTES], got[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(want, (const unsigned char *)tok, len);
    crypto_hash_sha256(got, (const unsigned char *)presented, strlen(presented));
    if (sodium_memcmp(want, got, sizeof(want)) != 0)
        rc = lh_error_setk(err, LH_EUNAUTH, "legal_token_invalid",
                           "the X-Lakehouse-Legal-Token header does not hold the legal audit "
                           "token");
    sodium_memzero(want, sizeof(want));
    sodium_memzero(got, sizeof(got));
out:
    token_free(tok, len);
    return rc;
}

int lh_legal_authorize(lh_legal *lg, const char *presented, const lh_principal *who, lh_error *err)
{
    /* A key of role legal (or admin, which may do everything) needs no token. */
    if (who && (who->role == LH_ROLE_LEGAL || who->role == LH_ROLE_ADMIN))
        return 0;
    if (who && (!presented || !*presented))
        return lh_error_set(err, LH_EFORBIDDEN,
                            "role '%s' may not read the legal audit endpoints: use a key of "
                            "role legal or send X-Lakehouse-Legal-Token",
                            lh_role_name(who->role));
    return token_check(lg->token_file, presented, err);
}

/* ---------------------------------------------------------------- response */

/* Tampering flags from the audit chain's verdict: the manifest expects a chain root the
 * log does not show (missing, empty, or the root nowhere in it: rows cut), or a row does
 * not verify. Rows after the expected root (manifest_lag) are not tampering: an append is
 * durable before its root is mirrored, so a crash between the two leaves the manifest
 * behind; they are reported beside the flags. */
static json_t *tamper_flags(const lh_audit_verdict *v)
{
    json_t *flags = json_array();
    if (v->verified)
        return flags;
    static const char *const as_is[] = {"log_missing", "log_empty", "missing_rows"};
    const char *flag = "chain_broken";
    for (size_t i = 0; i < sizeof(as_is) / sizeof(as_is[0]); i++)
        if (v->reason && strcmp(v->reason, as_is[i]) == 0)
            flag = as_is[i];
    json_array_append_new(flags, json_pack("{s:s,s:s,s:I,s:s}", "flag", flag, "cause",
                                           v->reason ? v->reason : "unknown", "row",
                                           (json_int_t)v->first_bad_row, "reason", v->detail));
    return flags;
}

/* The distinct datasets the manifest names. */
static json_t *datasets_referenced(const json_t *manifest)
{
    json_t *out = json_array();
    size_t i, j;
    const json_t *e, *d;
    json_array_foreach(json_object_get(manifest, "datasets"), i, e)
    {
        const char *name = lh_json_str(e, "dataset");
        bool seen = !name;
        json_array_foreach(out, j, d) seen = seen || strcmp(json_string_value(d), name) == 0;
        if (!seen)
            json_array_append_new(out, json_string(name));
    }
    return out;
}

/* The catalog's AI-safe views over the referenced datasets (issue 10): what a reader may
 * use instead of the raw relations. */
static json_t *safe_views(lh_catalog *cat, const json_t *datasets)
{
    json_t *out = json_array(), *all = lh_catalog_views_list(cat);
    size_t i, j;
    json_t *v, *d;
    json_array_foreach(all, i, v)
    {
        const char *base = lh_json_str(v, "base_dataset");
        json_array_foreach(datasets, j, d)
        {
            if (base && strcasecmp(base, json_string_value(d)) == 0) {
                json_array_append_new(
                    out, json_pack("{s:s?,s:s,s:O?,s:s?,s:O?}", "name", lh_json_str(v, "name"),
                                   "base_dataset", base, "columns", json_object_get(v, "columns"),
                                   "status", lh_json_str(v, "status"), "column_redactions",
                                   json_object_get(v, "column_redactions")));
                break;
            }
        }
    }
    json_decref(all);
    return out;
}

/* What the response says it checked. */
static json_t *checks(void)
{
    return json_pack("[s,s,s,s]", "manifest read from storage",
                     "whole audit log read and replayed from GENESIS, whatever the window",
                     "every row's HMAC-SHA256 recomputed over its RFC 8785 canonical form with "
                     "the server's audit key, and every prev_chain_hash compared with the "
                     "previous row_hmac",
                     "the manifest's audit_log_chain_root looked for in the log (missing, empty "
                     "or cut logs are flagged)");
}

/* ---------------------------------------------------------------- signed log (issue 12) */

/* Flags a subject whose log does not end at its latest signed leaf: rows cut from the end
 * (fewer rows than the leaf records), or the log replaced or rewritten (another tip). */
static void leaf_flag(json_t *flags, const json_t *leaf, const lh_audit_verdict *v)
{
    if (!leaf) {
        json_array_append_new(
            flags, json_pack("{s:s,s:s,s:I}", "flag", "not_in_signed_log", "reason",
                             "the subject's chain tip has no leaf in the signed Merkle log", "rows",
                             (json_int_t)v->rows_total));
        return;
    }
    json_int_t signed_rows = lh_json_int(leaf, "rows_total", -1);
    const char *tip = lh_json_str(leaf, "chain_tip");
    if (signed_rows == v->rows_total && tip && strcmp(tip, v->chain_root) == 0)
        return;
    json_array_append_new(
        flags,
        json_pack("{s:s,s:s,s:I,s:I}", "flag", "not_in_signed_log", "reason",
                  signed_rows > v->rows_total
                      ? "the signed Merkle log records more rows for this subject than its log "
                        "holds: rows were cut from the end"
                      : "the log does not end at the chain tip the signed Merkle log records "
                        "for this subject: it was replaced or rewritten",
                  "signed_rows", signed_rows, "rows", (json_int_t)v->rows_total));
}

/* n hashes as a JSON array of base64 strings. */
static json_t *hashes_json(const unsigned char *hashes, size_t n)
{
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        char *h = lh_b64_encode(hashes + i * LH_MERKLE_HASH, LH_MERKLE_HASH);
        json_array_append_new(out, json_string(h));
        free(h);
    }
    return out;
}

/* The signer's C2SP key id in hex (9 bytes with the NUL). */
static void key_id_hex(const lh_signer *s, char hex[9])
{
    unsigned char id[4];
    lh_signer_key_id(lh_signer_name(s), lh_signer_public_key(s), id);
    sodium_bin2hex(hex, 9, id, sizeof(id));
}

/* {leaf, leaf_index, tree_size, root_hash, hashes, checkpoint}: the leaf's RFC 6962
 * inclusion proof against every durable leaf, and that tree's signed checkpoint (null
 * without a signer). NULL + err when the log cannot be made durable. */
static json_t *inclusion_proof(lh_legal *lg, const json_t *leaf, uint64_t index, lh_error *err)
{
    uint64_t size = 0;
    unsigned char root[LH_MERKLE_HASH], *path = NULL;
    size_t n = 0;
    if (lh_merkle_sync(lg->merkle, &size, err) != 0 ||
        lh_merkle_root(lg->merkle, size, root, err) != 0 ||
        lh_merkle_inclusion(lg->merkle, index, size, &path, &n, err) != 0)
        return NULL;
    json_t *hashes = hashes_json(path, n);
    char *root64 = lh_b64_encode(root, LH_MERKLE_HASH);
    char *note = lg->signer ? lh_checkpoint_sign(lg->signer, size, root) : NULL;
    json_t *out = json_pack("{s:O,s:I,s:I,s:s,s:o,s:s?}", "leaf", leaf, "leaf_index",
                            (json_int_t)index, "tree_size", (json_int_t)size, "root_hash", root64,
                            "hashes", hashes, "checkpoint", note);
    free(root64);
    free(note);
    free(path);
    return out;
}

/* *out = {algorithm, signer, key_id, signed, value}: Ed25519 over the RFC 8785 bytes of
 * resp; null without a signer. An error (resp has no canonical form) fails the response
 * rather than answer it unsigned, which would read as "no signing key". */
static int response_signature(lh_legal *lg, const json_t *resp, json_t **out, lh_error *err)
{
    *out = json_null();
    if (!lg->signer)
        return 0;
    lh_buf b;
    lh_buf_init(&b);
    int rc = lh_jcs_canonicalize_value(resp, &b, err);
    if (rc == 0) {
        unsigned char sig[64];
        char hex[9];
        lh_signer_sign(lg->signer, b.data, b.len, sig);
        key_id_hex(lg->signer, hex);
        char *v = lh_b64_encode(sig, sizeof(sig));
        *out = json_pack("{s:s,s:s,s:s,s:s,s:s}", "algorithm", "Ed25519", "signer",
                         lh_signer_name(lg->signer), "key_id", hex, "signed",
                         "RFC 8785 bytes of response", "value", v);
        free(v);
    }
    lh_buf_free(&b);
    return rc;
}

/* The checkpoint and consistency endpoints need the log and the key. */
static int log_ready(lh_legal *lg, lh_error *err)
{
    if (!lg->merkle)
        return lh_error_setk(err, LH_EUNAVAILABLE, "audit_unconfigured",
                             "the audit chain is not configured: set LH_SUBJECT_AUDIT_KEY to the "
                             "file of the audit key and restart the server");
    if (!lg->signer)
        return lh_error_setk(err, LH_EUNAVAILABLE, "audit_signing_unconfigured",
                             "the audit log is not signed: set LH_AUDIT_SIGNING_KEY_FILE to a "
                             "file (mode 0600) holding a 32-byte Ed25519 seed and restart the "
                             "server");
    return 0;
}

json_t *lh_legal_checkpoint(lh_legal *lg, lh_error *err)
{
    uint64_t size = 0;
    unsigned char root[LH_MERKLE_HASH];
    if (log_ready(lg, err) != 0 || lh_merkle_sync(lg->merkle, &size, err) != 0 ||
        lh_merkle_root(lg->merkle, size, root, err) != 0)
        return NULL;
    char *note = lh_checkpoint_sign(lg->signer, size, root);
    char *root64 = lh_b64_encode(root, LH_MERKLE_HASH);
    json_t *out =
        json_pack("{s:s,s:s,s:I,s:s}", "checkpoint", note, "origin", lh_signer_name(lg->signer),
                  "tree_size", (json_int_t)size, "root_hash", root64);
    free(note);
    free(root64);
    return out;
}

/* A tree size from the query: decimal digits only. */
static int parse_size(const char *name, const char *s, uint64_t *out, lh_error *err)
{
    char *end = NULL;
    if (!s || !*s || strlen(s) > 19 || strspn(s, "0123456789") != strlen(s))
        return lh_error_set(err, LH_EINVAL, "'%s' must be a tree size (a decimal number)", name);
    *out = strtoull(s, &end, 10);
    return 0;
}

json_t *lh_legal_consistency(lh_legal *lg, const char *from, const char *to, lh_error *err)
{
    uint64_t m = 0, n = 0, size = 0;
    unsigned char *proof = NULL;
    size_t np = 0;
    if (log_ready(lg, err) != 0 || parse_size("from", from, &m, err) != 0 ||
        parse_size("to", to, &n, err) != 0)
        return NULL;
    if (m == 0 || m > n) {
        lh_error_set(err, LH_EINVAL, "a consistency proof needs 1 <= from <= to (got %llu, %llu)",
                     (unsigned long long)m, (unsigned long long)n);
        return NULL;
    }
    if (lh_merkle_sync(lg->merkle, &size, err) != 0)
        return NULL;
    if (n > size) {
        lh_error_set(err, LH_ENOTFOUND, "the signed log has %llu leaves; there is no tree of %llu",
                     (unsigned long long)size, (unsigned long long)n);
        return NULL;
    }
    if (lh_merkle_consistency(lg->merkle, m, n, &proof, &np, err) != 0)
        return NULL;
    json_t *hashes = hashes_json(proof, np);
    free(proof);
    return json_pack("{s:I,s:I,s:o}", "from", (json_int_t)m, "to", (json_int_t)n, "hashes", hashes);
}

json_t *lh_legal_pubkey(lh_legal *lg, lh_error *err)
{
    if (!lg->signer) {
        lh_error_setk(err, LH_EUNAVAILABLE, "audit_signing_unconfigured",
                      "the audit log is not signed: set LH_AUDIT_SIGNING_KEY_FILE to a file "
                      "(mode 0600) holding a 32-byte Ed25519 seed and restart the server");
        return NULL;
    }
    char hex[9];
    key_id_hex(lg->signer, hex);
    char *pk = lh_b64_encode(lh_signer_public_key(lg->signer), 32);
    char *vkey = lh_signer_vkey(lg->signer);
    json_t *out = json_pack("{s:s,s:s,s:s,s:s,s:s}", "algorithm", "Ed25519", "signer",
                            lh_signer_name(lg->signer), "key_id", hex, "public_key", pk,
                            "verifier_key", vkey);
    free(pk);
    free(vkey);
    return out;
}

json_t *lh_legal_subject_response(lh_legal *lg, const char *id, const char *from, const char *to,
                                  lh_error *err)
{
    int64_t from_s = 0, to_s = 0;
    if (from && lh_compliance__parse_ts(from, &from_s) != 0) {
        lh_error_set(err, LH_EINVAL,
                     "'from' must be an RFC 3339 timestamp such as "
                     "2026-05-03T00:00:00Z");
        return NULL;
    }
    if (to && lh_compliance__parse_ts(to, &to_s) != 0) {
        lh_error_set(err, LH_EINVAL,
                     "'to' must be an RFC 3339 timestamp such as "
                     "2026-05-04T00:00:00Z");
        return NULL;
    }
    if (from && to && to_s < from_s) {
        lh_error_set(err, LH_EINVAL, "'to' is before 'from'");
        return NULL;
    }
    char key[LH_SUBJECT_KEY_MAX];
    if (lh_subject_key(id, key, sizeof(key), err) != 0)
        return NULL;
    if (!lg->audit) {
        lh_error_setk(err, LH_EUNAVAILABLE, "audit_unconfigured",
                      "the audit chain is not configured: set LH_SUBJECT_AUDIT_KEY to the file "
                      "of the audit key and restart the server");
        return NULL;
    }
    lh_error lerr;
    json_t *manifest = lh_subjects_get(lg->subjects, id, &lerr);
    if (!manifest && lerr.code != LH_ENOTFOUND) {
        if (err)
            *err = lerr;
        return NULL;
    }
    const char *want = manifest ? lh_json_str(manifest, "audit_log_chain_root") : NULL;
    lh_audit_verdict v;
    json_t *rows = NULL, *out = NULL, *leaf = NULL;
    uint64_t leaf_index = 0;
    memset(&v, 0, sizeof(v));
    /* The subject's latest Merkle leaf must be the tip the log was read at. A row is in the
     * log a moment before its group commit and the hook that adds its leaf: when the leaf
     * is behind, wait for it (leaf lookups only, no re-read); when it is ahead (rows
     * appended since the read), read the log again, at most twice. A log whose tip never
     * becomes the leaf's (a cut or replaced log) is flagged below. */
    if (lh_audit_read(lg->audit, id, want, from, to, &rows, &v, err) != 0)
        goto out;
    for (int polls = 0, rereads = 0; lg->merkle && v.rows_total > 0;) {
        lh_error lerr2;
        json_decref(leaf);
        leaf = NULL;
        json_int_t signed_rows = -1;
        if (lh_merkle_subject_leaf(lg->merkle, id, &leaf, &leaf_index, &lerr2) == 0) {
            signed_rows = lh_json_int(leaf, "rows_total", -1);
            if (signed_rows == v.rows_total &&
                strcmp(lh_json_str(leaf, "chain_tip"), v.chain_root) == 0)
                break;
        }
        if (signed_rows > v.rows_total && rereads < 2) {
            rereads++;
            json_decref(rows);
            rows = NULL;
            if (lh_audit_read(lg->audit, id, want, from, to, &rows, &v, err) != 0)
                goto out;
            continue;
        }
        if (signed_rows >= v.rows_total || ++polls >= LEAF_WAIT_TRIES)
            break;
        usleep(LEAF_WAIT_US);
    }
    if (!manifest && v.rows_total == 0) {
        lh_error_setk(err, LH_ENOTFOUND, "subject_not_found",
                      "no subject with candidate id '%s' (no manifest and no audit row)", id);
        goto out;
    }
    char now[LH_TS_MAX];
    lh_time_rfc3339(now);
    json_t *flags = tamper_flags(&v);
    if (lg->merkle && v.rows_total > 0)
        leaf_flag(flags, leaf, &v);
    bool tampered = json_array_size(flags) > 0;
    json_t *bad = v.verified
                      ? json_null()
                      : json_pack("{s:I,s:s,s:s}", "row", (json_int_t)v.first_bad_row, "cause",
                                  v.reason ? v.reason : "unknown", "reason", v.detail);
    json_t *referenced = manifest ? datasets_referenced(manifest) : json_array();
    json_t *views = safe_views(lg->cat, referenced);
    json_t *resp = json_pack(
        "{s:s,s:s,s:{s:o,s:o},s:o,s:o,s:I,s:b,s:o,s:I,s:o,s:I,s:o,s:o,"
        "s:{s:o,s:b,s:o,s:s},s:{s:b,s:o}}",
        "candidate_id", id, "generated_at", now, "window", "from",
        from ? json_string(from) : json_null(), "to", to ? json_string(to) : json_null(),
        "manifest", manifest ? json_incref(manifest) : json_null(), "rows", json_incref(rows),
        "rows_in_window", (json_int_t)json_array_size(rows), "chain_verified", v.verified,
        "chain_root", v.chain_root[0] ? json_string(v.chain_root) : json_null(), "chain_rows_total",
        (json_int_t)v.rows_total, "first_bad_row", bad, "manifest_lag", (json_int_t)v.manifest_lag,
        "datasets_referenced", referenced, "safe_views_available", views, "completeness", "checked",
        checks(), "window_complete", v.verified && !tampered, "log_object",
        json_sprintf("_catalog/subjects/%s.audit.jsonl", key), "limits",
        "row HMACs can be recomputed only with the audit key; without it, a reader checks "
        "this response's signature, the subject's chain tip and row count as a leaf of the "
        "signed Merkle log (inclusion_proof), and the rows' links up to that tip "
        "(`lakehouse audit verify-offline`, docs/AUDIT.md)",
        "tampering", "detected", tampered, "flags", flags);
    json_t *proof = leaf ? inclusion_proof(lg, leaf, leaf_index, err) : json_null(), *sig = NULL;
    if (!proof || response_signature(lg, resp, &sig, err) != 0) {
        json_decref(proof);
        json_decref(sig);
        json_decref(resp);
        goto out;
    }
    out = json_pack("{s:s,s:o,s:o,s:o}", "schema", "subject_audit_response.v1", "response", resp,
                    "signature", sig, "inclusion_proof", proof);
out:
    json_decref(manifest);
    json_decref(rows);
    json_decref(leaf);
    return out;
}

json_t *lh_legal_health(lh_legal *lg)
{
    lh_error err;
    char *tok = NULL;
    size_t len = 0;
    bool token_ok = token_load(lg->token_file, &tok, &len, &err) == 0;
    token_free(tok, len);
    json_t *chain = json_pack("{s:b}", "configured", lg->audit != NULL);
    if (lg->audit) {
        lh_audit_stats st;
        lh_audit_get_stats(lg->audit, &st);
        json_object_set_new(chain, "rows_since_start", json_integer((json_int_t)st.rows));
        json_object_set_new(chain, "journal_syncs", json_integer((json_int_t)st.syncs));
    }
    /* issue 12: the signed log */
    json_t *vlog =
        json_pack("{s:b,s:b,s:s?}", "configured", lg->merkle != NULL, "signed", lg->signer != NULL,
                  "signer", lg->signer ? lh_signer_name(lg->signer) : NULL);
    if (lg->merkle)
        json_object_set_new(vlog, "leaves", json_integer((json_int_t)lh_merkle_size(lg->merkle)));
    return json_pack("{s:s,s:s,s:{s:b,s:s?},s:o,s:o}", "schema", "audit_health.v1", "status", "ok",
                     "legal_token", "usable", token_ok, "problem", token_ok ? NULL : err.message,
                     "audit_chain", chain, "verifiable_log", vlog);
}
