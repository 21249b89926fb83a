/*
 * audit_offline.c: `lakehouse audit verify-offline RESPONSE.json --pubkey FILE` (issue 12).
 * A third party holding a legal response and the signing public key checks it without the
 * server, the data folder or the HMAC key; the checks themselves are the compliance
 * module's (lh_audit_verify_response, src/compliance/offline.c), this file reads the files
 * and prints the verdict.
 */
#include "cli/cli.h"
#include "compliance/compliance.h"

#include <stdlib.h>
#include <string.h>

#define RESPONSE_MAX ((size_t)1 << 30)
#define PUBKEY_MAX 4096

/* The verifier key from FILE: a C2SP verifier key line, or the JSON of GET /audit/pubkey
 * (its verifier_key). */
static int load_pubkey(const char *path, char **name, unsigned char pk[32], lh_error *err)
{
    char *data = NULL;
    size_t n = 0;
    int rc = lh_fs_read_all(path, PUBKEY_MAX, &data, &n, err);
    if (rc)
        return lh_error_set(err, LH_EINVAL, "cannot read the public key file '%s'", path);
    json_t *doc = n && data[0] == '{' ? json_loadb(data, n, 0, NULL) : NULL;
    const char *vkey = doc ? lh_json_str(doc, "verifier_key") : data;
    rc = lh_vkey_parse(vkey, name, pk, err);
    json_decref(doc);
    free(data);
    return rc;
}

int lh_cli_audit_verify_offline(const char *response_path, const char *pubkey_path, bool as_json)
{
    char *name = NULL, *data = NULL;
    unsigned char pk[32];
    size_t n = 0;
    lh_error err;
    json_t *doc = NULL, *report = NULL;
    int rc = LH_CLI_EXIT_ERROR;
    if (load_pubkey(pubkey_path, &name, pk, &err) != 0)
        goto fail;
    if (lh_fs_read_all(response_path, RESPONSE_MAX, &data, &n, &err) != 0) {
        lh_error_set(&err, LH_EINVAL, "cannot read the response file '%s'", response_path);
        goto fail;
    }
    if (!(doc = lh_json_parse_object(data, n, &err)) ||
        lh_audit_verify_response(doc, name, pk, &report, &err) != 0)
        goto fail;
    bool ok = json_is_true(json_object_get(report, "verified"));
    if (as_json) {
        char *s = json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
    } else {
        size_t i;
        const json_t *c;
        json_array_foreach(json_object_get(report, "checks"), i, c)
            printf("%-4s %-18s %s\n", json_is_true(json_object_get(c, "ok")) ? "ok" : "FAIL",
                   lh_json_str(c, "check"), lh_json_str(c, "detail"));
        printf("%s: %s with the public key of %s\n",
               lh_json_str(json_object_get(doc, "response"), "candidate_id"),
               ok ? "VERIFIED" : "NOT VERIFIED", name);
    }
    rc = ok ? LH_CLI_EXIT_OK : LH_CLI_EXIT_ERROR;
    goto out;
fail:
    fprintf(stderr, "error: %s: %s\n", lh_error_kind(&err), err.message);
out:
    json_decref(report);
    json_decref(doc);
    free(data);
    free(name);
    return rc;
}
