/*
 * fuzz_jcs: RFC 8785 canonicalisation (core/jcs.c) on arbitrary bytes.
 *
 * Oracles besides the sanitizers:
 *   - the result is 0 or LH_EINVAL (kind invalid_json), and on LH_EINVAL the output
 *     buffer is exactly as it was;
 *   - accepted input gives valid UTF-8 output that is a fixed point: canonicalising the
 *     output again yields the same bytes;
 *   - the output is JSON jansson parses, and when it does (jansson refuses integers past
 *     64 bits), canonicalising jansson's value gives the same bytes again (the route the
 *     audit verifier takes).
 */
#include "core/core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lh_buf a, b, c;
    lh_error err;
    lh_buf_init(&a);
    lh_buf_init(&b);
    lh_buf_init(&c);
    lh_buf_puts(&a, "x");
    int rc = lh_jcs_canonicalize((const char *)data, size, &a, &err);
    if (rc != 0) {
        if (rc != LH_EINVAL || strcmp(lh_error_kind(&err), "invalid_json") != 0 || a.len != 1)
            abort();
        goto out;
    }
    const char *out = a.data + 1;
    size_t n = a.len - 1;
    if (!lh_utf8_valid(out, n))
        abort();
    if (lh_jcs_canonicalize(out, n, &b, &err) != 0 || b.len != n || memcmp(b.data, out, n) != 0)
        abort();
    json_t *v = json_loadb(out, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (v) {
        if (lh_jcs_canonicalize_value(v, &c, &err) != 0 || c.len != n ||
            memcmp(c.data, out, n) != 0)
            abort();
        json_decref(v);
    }
out:
    lh_buf_free(&a);
    lh_buf_free(&b);
    lh_buf_free(&c);
    return 0;
}
