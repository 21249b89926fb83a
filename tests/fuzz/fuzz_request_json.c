/*
 * fuzz_request_json: request bodies, as the JSON routes see them.
 *
 * The bytes are a request body. They go through lh_json_parse_object (what every JSON
 * route calls first), then through the field checks of the two bodies that carry the most
 * structure:
 *   - POST /query/sql: "sql" a non-empty string, "format" through lh_result_format_parse,
 *     "limit" a non-negative integer under the cap (the handler's checks, repeated here:
 *     they are inline in src/http/query_routes.c);
 *   - PATCH .../metadata: lh_manifest__patch_validate against a fixed manifest and, when
 *     valid, lh_manifest__patch_merge; merging the same patch twice must give the same
 *     manifest as merging it once (edits are re-applied after every patch and ingest), and
 *     every sensitivity must stay one of the known names.
 * The raw bytes are also rendered with lh_buf_json_string, whose output must always parse
 * back as one JSON string (invalid UTF-8 becomes U+FFFD), equal to the input when the input
 * is valid UTF-8 without NUL.
 *
 * This harness includes catalog_internal.h: the manifest checks are the catalog's pure
 * internals, and testing them without a catalog on disk is the point.
 */
#include "catalog/catalog_internal.h"
#include "core/core.h"
#include "query/query.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUERY_MAX_ROWS 100000

static json_t *base_manifest;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_request_json: %s\n", what);
    abort();
}

static json_t *make_manifest(void)
{
    json_t *schema = json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "name",
                               "candidate_id", "type", "BIGINT", "name", "email", "type", "VARCHAR",
                               "name", "Salary", "type", "DECIMAL(10,2)", "name", "birth_date",
                               "type", "DATE", "name", "notes", "type", "VARCHAR");
    lh_error err;
    if (lh_manifest__schema_validate(schema, &err) != 0)
        die(err.message);
    json_t *m = json_pack("{s:s,s:s,s:o,s:o,s:o}", "format_version", LH_MANIFEST_FORMAT, "name",
                          "people", "schema", schema, "columns",
                          lh_manifest__columns_from_schema(schema), "files", json_array());
    lh_manifest__apply_human_edits(m);
    return m;
}

/* The checks of lh_h_query_sql on its body. */
static void check_query_body(const json_t *body)
{
    json_t *sql = json_object_get(body, "sql");
    if (!json_is_string(sql) || json_string_length(sql) == 0)
        return;
    lh_result_format fmt;
    json_t *format = json_object_get(body, "format");
    if (format && !json_is_string(format))
        return;
    lh_error err;
    if (lh_result_format_parse(json_string_value(format), &fmt, &err) != 0)
        return;
    if (!lh_result_format_mime(fmt))
        die("a parsed format has no MIME type");
    json_t *limit = json_object_get(body, "limit");
    if (limit && (!json_is_integer(limit) || json_integer_value(limit) < 0 ||
                  json_integer_value(limit) > QUERY_MAX_ROWS))
        return;
    /* a body the handler accepts: its SQL text is quoted for the firewall's probe */
    char *lit = lh_sql_literal(json_string_value(sql));
    if (lit[0] != '\'' || lit[strlen(lit) - 1] != '\'')
        die("lh_sql_literal lost its quotes");
    free(lit);
}

static void check_sensitivities(const json_t *m)
{
    if (lh_sensitivity_rank(lh_json_str(m, "sensitivity")) < 0)
        die("the dataset's sensitivity is not a known name");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(m, "columns"), i, c)
    {
        if (lh_sensitivity_rank(lh_json_str(c, "sensitivity")) < 0)
            die("a column's sensitivity is not a known name");
        if (!json_is_boolean(json_object_get(c, "is_pii")))
            die("a column's is_pii is not a boolean");
    }
}

static void check_patch(const json_t *patch)
{
    lh_error err;
    if (lh_manifest__patch_validate(base_manifest, patch, &err) != 0) {
        if (err.code != LH_EINVAL)
            die("a refused patch is not LH_EINVAL");
        return;
    }
    json_t *once = json_deep_copy(base_manifest);
    lh_manifest__patch_merge(once, patch);
    check_sensitivities(once);
    json_t *twice = json_deep_copy(once);
    if (lh_manifest__patch_validate(twice, patch, &err) != 0)
        die("a valid patch became invalid after being merged");
    lh_manifest__patch_merge(twice, patch);
    if (!json_equal(once, twice))
        die("merging a patch twice differs from merging it once");
    json_decref(twice);
    json_decref(once);
}

/* lh_buf_json_string must always produce one valid JSON string. */
static void check_json_string(const uint8_t *data, size_t size)
{
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_json_string(&b, (const char *)data, size);
    json_error_t jerr;
    json_t *v = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!json_is_string(v)) {
        fprintf(stderr, "rendered: %.*s\nerror: %s\n", (int)b.len, b.data, jerr.text);
        die("lh_buf_json_string produced invalid JSON");
    }
    /* Valid UTF-8 (jansson says so by accepting it as a string) comes back unchanged. */
    json_t *direct = json_stringn((const char *)data, size);
    if (direct && memchr(data, 0, size) == NULL &&
        (json_string_length(v) != size || memcmp(json_string_value(v), data, size) != 0))
        die("lh_buf_json_string changed valid UTF-8");
    json_decref(direct);
    json_decref(v);
    lh_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!base_manifest) {
        lh_log_set_level(LH_LOG_ERROR);
        base_manifest = make_manifest();
    }
    check_json_string(data, size);
    lh_error err;
    json_t *body = lh_json_parse_object((const char *)data, size, &err);
    if (!body) {
        if (err.code != LH_EINVAL)
            die("a refused body is not LH_EINVAL");
        return 0;
    }
    check_query_body(body);
    check_patch(body);
    json_decref(body);
    return 0;
}
