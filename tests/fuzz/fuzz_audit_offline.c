/*
 * fuzz_audit_offline: what `lakehouse audit verify-offline` reads from a third party, on
 * arbitrary bytes (issue 12). The first byte chooses: 'N' a checkpoint note, 'K' a verifier
 * key, anything else a legal response document; all are checked against the fixed key of
 * the seeds (seed 32 × 0x42, name "fuzz/log"; tests/fuzz/corpus/fuzz_audit_offline holds
 * a signed response, a windowed one, a checkpoint and the verifier key it made).
 *
 * Oracles besides the sanitizers:
 *   - lh_checkpoint_verify, lh_vkey_parse: 0 or LH_EINVAL, nothing else; a note that
 *     verifies starts with the key's name and its size line, and verifying it again gives
 *     the same size and root;
 *   - lh_audit_verify_response: 0 with a report or LH_EINVAL; a report that says verified
 *     has every check ok, and the response signature really verifies (checked here with
 *     libsodium over the RFC 8785 bytes, not through the product's check).
 */
#include "compliance/compliance.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME "fuzz/log"

static unsigned char pk[32];

static void oracle(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "oracle: %s\n", what);
        abort();
    }
}

static void init(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    if (sodium_init() < 0)
        abort();
    unsigned char seed[32], sk[64];
    memset(seed, 0x42, sizeof(seed));
    crypto_sign_seed_keypair(pk, sk, seed);
    lh_log_set_level(LH_LOG_ERROR);
}

static void check_note(const char *text)
{
    uint64_t size = 0, size2 = 0;
    unsigned char root[LH_MERKLE_HASH], root2[LH_MERKLE_HASH];
    lh_error err;
    int rc = lh_checkpoint_verify(text, NAME, pk, &size, root, &err);
    oracle(rc == 0 || rc == LH_EINVAL, "lh_checkpoint_verify returned an unexpected code");
    if (rc == 0) {
        oracle(strncmp(text, NAME "\n", strlen(NAME) + 1) == 0,
               "a verified note names another origin");
        oracle(lh_checkpoint_verify(text, NAME, pk, &size2, root2, &err) == 0 && size2 == size &&
                   memcmp(root, root2, sizeof(root)) == 0,
               "a verified note does not verify the same way twice");
    }
}

static void check_vkey(const char *text)
{
    char *name = NULL;
    unsigned char key[32];
    lh_error err;
    int rc = lh_vkey_parse(text, &name, key, &err);
    oracle(rc == 0 || rc == LH_EINVAL, "lh_vkey_parse returned an unexpected code");
    oracle((rc == 0) == (name != NULL), "lh_vkey_parse: name and result disagree");
    free(name);
}

static void check_response(const char *text, size_t len)
{
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    if (!doc)
        return;
    json_t *report = NULL;
    lh_error err;
    int rc = lh_audit_verify_response(doc, NAME, pk, &report, &err);
    oracle(rc == 0 || rc == LH_EINVAL, "lh_audit_verify_response returned an unexpected code");
    oracle((rc == 0) == (report != NULL), "a report without success, or success without one");
    if (report && json_is_true(json_object_get(report, "verified"))) {
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(report, "checks"), i, c)
            oracle(json_is_true(json_object_get(c, "ok")), "verified with a failed check");
        lh_buf b;
        lh_buf_init(&b);
        unsigned char sig[64];
        size_t n = 0;
        oracle(lh_jcs_canonicalize_value(json_object_get(doc, "response"), &b, NULL) == 0 &&
                   lh_b64_decode(lh_json_str(json_object_get(doc, "signature"), "value"), sig,
                                 sizeof(sig), &n) == 0 &&
                   n == sizeof(sig) &&
                   crypto_sign_verify_detached(sig, (const unsigned char *)b.data, b.len, pk) == 0,
               "verified, but the response signature does not verify");
        lh_buf_free(&b);
    }
    json_decref(report);
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    if (size == 0)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    if (data[0] == 'N')
        check_note(text);
    else if (data[0] == 'K')
        check_vkey(text);
    else
        check_response(text, size - 1);
    free(text);
    return 0;
}
