/*
 * commands.c: the subcommands of `lakehouse`, one static table {name, handler, flags,
 * usage}. `serve` runs the server in this process; every other command is a client of a
 * running server over HTTP (src/cli/client.c), so the CLI sees exactly what any other
 * client sees, permissions included.
 *
 * Output: readable tables by default; --json prints the server's JSON re-indented but
 * byte-for-byte otherwise; query results asked as CSV or NDJSON stream to stdout as they
 * arrive. Errors go to stderr as "error: <code>: <message>".
 */
#include "agents/agents.h"
#include "cli/cli.h"
#include "compliance/compliance.h"
#include "http/http.h"
#include "sources/sources.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct cli_ctx {
    const lh_cli_args *args;
    lh_client *client; /* NULL for commands that need no server */
    bool has_key;
} cli_ctx;

typedef struct command {
    const char *name;
    int (*run)(cli_ctx *ctx);
    const lh_cli_flag_spec *flags;
    int min_pos, max_pos;
    bool needs_server;
    const char *usage;
    const char *summary;
} command;

static const command *find_command(const char *name);

/* ---------------------------------------------------------------- output helpers */

static int fail(const lh_error *err)
{
    fprintf(stderr, "error: %s: %s\n", lh_error_kind(err), err->message);
    return LH_CLI_EXIT_ERROR;
}

static int fail_response(const cli_ctx *ctx, const lh_response *resp)
{
    lh_error err;
    lh_response_error(resp, &err);
    fprintf(stderr, "error: %s\n", err.message);
    if (resp->status == 401 && !ctx->has_key)
        fprintf(stderr, "hint: no API key was sent; pass --key KEY or set LH_KEY\n");
    return LH_CLI_EXIT_ERROR;
}

static int usage_error(const command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nusage: lakehouse %s\n", cmd->usage);
    va_end(ap);
    return LH_CLI_EXIT_USAGE;
}

static void print_buf(const lh_buf *b)
{
    fwrite(b->data, 1, b->len, stdout);
}

static void print_json_pretty(const lh_response *resp)
{
    lh_buf out;
    lh_buf_init(&out);
    lh_cli_json_pretty(resp->body.data ? resp->body.data : "", resp->body.len, &out);
    print_buf(&out);
    lh_buf_free(&out);
}

/* 1234567 → "1,234,567": row counts read at a glance. */
static void format_count(char *buf, size_t size, long long n)
{
    char digits[32];
    int len = snprintf(digits, sizeof(digits), "%lld", n < 0 ? -n : n);
    size_t o = 0;
    if (n < 0 && o + 1 < size)
        buf[o++] = '-';
    for (int i = 0; i < len && o + 1 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0 && o + 1 < size)
            buf[o++] = ',';
        if (o + 1 < size)
            buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

static void format_bytes(char *buf, size_t size, double bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (bytes >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, size, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
}

/* GETs path and parses the JSON answer. Returns the exit code; *doc is set on success. */
static int get_json(cli_ctx *ctx, const char *path, json_t **doc)
{
    lh_error err;
    lh_response resp;
    int rc = LH_CLI_EXIT_OK;
    lh_response_init(&resp);
    lh_request req = {.method = "GET", .path = path};
    if (lh_client_send(ctx->client, &req, &resp, &err) != 0) {
        rc = fail(&err);
        goto out;
    }
    if (!lh_response_ok(&resp)) {
        rc = fail_response(ctx, &resp);
        goto out;
    }
    if (ctx->args->json) {
        print_json_pretty(&resp);
        *doc = NULL;
        goto out;
    }
    *doc = lh_json_parse_object(resp.body.data ? resp.body.data : "", resp.body.len, &err);
    if (!*doc)
        rc = fail(&err);
out:
    lh_response_free(&resp);
    return rc;
}

/* ---------------------------------------------------------------- serve */

static const lh_cli_flag_spec serve_flags[] = {
    {"--data", true},
    {"--listen", true},
    {NULL, false},
};

static int cmd_serve(cli_ctx *ctx)
{
    lh_config cfg;
    lh_error err;
    int rc;
    const char *data = lh_cli_flag(ctx->args, "--data");
    const char *listen = lh_cli_flag(ctx->args, "--listen");

    if (lh_config_load(&cfg, &err) != 0) {
        rc = fail(&err);
        goto out;
    }
    if ((data && lh_config_set_data_dir(&cfg, data, &err) != 0) ||
        (listen && lh_config_set_listen(&cfg, listen, &err) != 0)) {
        fprintf(stderr, "error: %s\nusage: lakehouse %s\n", err.message,
                find_command("serve")->usage);
        rc = LH_CLI_EXIT_USAGE;
        goto out;
    }
    rc = lh_serve(&cfg);
out:
    lh_config_free(&cfg);
    return rc;
}

/* ---------------------------------------------------------------- ingest */

static const lh_cli_flag_spec ingest_flags[] = {
    {"--name", true},   {"--format", true},   {"--mode", true},
    {"--bucket", true}, {"--encoding", true}, {NULL, false},
};

static const char *const ingest_formats[] = {"csv", "json", "ndjson", "parquet", NULL};
static const char *const ingest_modes[] = {"create", "replace", "append", NULL};

static bool one_of(const char *s, const char *const *allowed)
{
    for (; *allowed; allowed++)
        if (strcmp(s, *allowed) == 0)
            return true;
    return false;
}

/* "email (email, PII), salary (salary, Financial)" for the columns flagged as PII. */
static void describe_pii(const json_t *manifest, lh_buf *out)
{
    size_t i;
    const json_t *col;
    json_array_foreach(json_object_get(manifest, "columns"), i, col)
    {
        if (!json_is_true(json_object_get(col, "is_pii")))
            continue;
        const char *kind = lh_json_str(col, "pii_kind");
        const char *sens = lh_json_str(col, "sensitivity");
        lh_buf_printf(out, "%s%s (%s%s%s)", out->len ? ", " : "", lh_json_str(col, "name"),
                      kind ? kind : "?", sens ? ", " : "", sens ? sens : "");
    }
}

void lh_cli_ingest_summary(const json_t *m, const char *file, const char *name, const char *mode,
                           double seconds, lh_buf *out)
{
    long long nrows = (long long)lh_json_int(m, "row_count", 0);
    size_t ncols = json_array_size(json_object_get(m, "columns"));
    char rows[32], size[32];
    format_count(rows, sizeof(rows), nrows);
    format_bytes(size, sizeof(size), (double)lh_json_int(m, "size_bytes", 0));
    lh_buf pii;
    lh_buf_init(&pii);
    describe_pii(m, &pii);
    lh_buf_printf(out, "ingested %s into dataset '%s' (bucket %s, mode %s)\n", file,
                  lh_json_str(m, "name") ? lh_json_str(m, "name") : name,
                  lh_json_str(m, "bucket") ? lh_json_str(m, "bucket") : "?",
                  mode ? mode : "create");
    lh_buf_printf(out, "  %s %s, %zu %s, %s of Parquet, %.2f s\n", rows,
                  lh_cli_plural(nrows, "row", "rows"), ncols,
                  lh_cli_plural((long long)ncols, "column", "columns"), size, seconds);
    lh_buf_printf(out, "  PII columns: %s\n", pii.len ? pii.data : "none");
    lh_buf_free(&pii);
}

static int cmd_ingest(cli_ctx *ctx)
{
    const command *cmd = find_command("ingest");
    const lh_cli_args *a = ctx->args;
    const char *file = a->pos[0];
    const char *name = lh_cli_flag(a, "--name");
    const char *format = lh_cli_flag(a, "--format");
    const char *mode = lh_cli_flag(a, "--mode");
    const char *bucket = lh_cli_flag(a, "--bucket");
    const char *encoding = lh_cli_flag(a, "--encoding");
    char *e_name = NULL, *e_format = NULL, *e_mode = NULL, *path = NULL, *bucket_h = NULL;
    char *e_encoding = NULL;
    json_t *doc = NULL;
    lh_response resp;
    lh_error err;
    int rc = LH_CLI_EXIT_OK;
    lh_response_init(&resp);

    if (!name || !*name) {
        rc = usage_error(cmd, "%s", "ingest needs --name (the dataset name)");
        goto out;
    }
    if (!format)
        format = lh_cli_format_from_path(file);
    if (!format) {
        rc = usage_error(cmd,
                         "cannot tell the format of '%s' from its extension; pass --format "
                         "csv|json|ndjson|parquet",
                         file);
        goto out;
    }
    if (!one_of(format, ingest_formats)) {
        rc = usage_error(cmd, "unknown format '%s' (csv, json, ndjson, parquet)", format);
        goto out;
    }
    if (mode && !one_of(mode, ingest_modes)) {
        rc = usage_error(cmd, "unknown mode '%s' (create, replace, append)", mode);
        goto out;
    }
    if (bucket && lh_bucket_name_validate(bucket, &err) != 0) {
        rc = usage_error(cmd, "%s", err.message);
        goto out;
    }

    e_name = lh_client_escape(name);
    e_format = lh_client_escape(format);
    e_mode = lh_client_escape(mode ? mode : "create");
    /* The server validates the encoding (and names the valid ones). */
    e_encoding = encoding ? lh_client_escape(encoding) : NULL;
    path = lh_xasprintf("/ingest/file?name=%s&format=%s&mode=%s%s%s", e_name, e_format, e_mode,
                        e_encoding ? "&encoding=" : "", e_encoding ? e_encoding : "");
    bucket_h = bucket ? lh_xasprintf("X-Lakehouse-Bucket: %s", bucket) : NULL;
    const char *headers[] = {bucket_h, NULL};
    lh_request req = {
        .method = "POST", .path = path, .upload_path = file, .extra_headers = headers};

    int64_t started = lh_now_ms();
    if (lh_client_send(ctx->client, &req, &resp, &err) != 0) {
        rc = fail(&err);
        goto out;
    }
    double seconds = (double)(lh_now_ms() - started) / 1000.0;
    if (!lh_response_ok(&resp)) {
        rc = fail_response(ctx, &resp);
        goto out;
    }
    if (a->json) {
        print_json_pretty(&resp);
        goto out;
    }
    doc = lh_json_parse_object(resp.body.data ? resp.body.data : "", resp.body.len, &err);
    if (!doc) {
        rc = fail(&err);
        goto out;
    }
    lh_buf summary;
    lh_buf_init(&summary);
    lh_cli_ingest_summary(json_object_get(doc, "dataset"), file, name, mode, seconds, &summary);
    print_buf(&summary);
    lh_buf_free(&summary);
out:
    json_decref(doc);
    lh_response_free(&resp);
    free(bucket_h);
    free(path);
    free(e_encoding);
    free(e_mode);
    free(e_format);
    free(e_name);
    return rc;
}

/* ---------------------------------------------------------------- sql */

static const lh_cli_flag_spec sql_flags[] = {
    {"--format", true}, {"--limit", true}, {"--purpose", true}, {"--trace-id", true}, {NULL, false},
};

static const char *const sql_formats[] = {"json", "csv", "ndjson", NULL};

/* `lakehouse sql -` reads the statement from stdin (for long queries and heredocs). */
static char *read_stdin(void)
{
    lh_buf b;
    char chunk[8192];
    size_t n;
    lh_buf_init(&b);
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
        lh_buf_append(&b, chunk, n);
    lh_buf_putc(&b, '\0');
    return b.data;
}

/* Renders a JSON query result as a table. A result that failed part-way carries an
 * "error" member after the rows that did arrive: print those, then fail. */
static int print_query_table(const lh_response *resp)
{
    lh_error err;
    lh_table t;
    lh_buf out;
    int rc = LH_CLI_EXIT_OK;
    lh_buf_init(&out);
    json_t *doc =
        lh_cli_parse_query_result(resp->body.data ? resp->body.data : "", resp->body.len, &err);
    if (!doc)
        return fail(&err);
    if (lh_table_from_query_result(doc, &t, &err) != 0) {
        rc = fail(&err);
        goto out;
    }
    lh_table_footer footer = {
        .rows = lh_json_int(doc, "row_count", -1),
        .truncated = json_is_true(json_object_get(doc, "truncated")),
    };
    lh_table_render(&t, &footer, &out);
    print_buf(&out);
    lh_table_free(&t);
    const json_t *late = json_object_get(doc, "error");
    if (late) {
        const char *kind =
            json_is_string(late) ? json_string_value(late) : lh_json_str(late, "error");
        const char *msg = lh_json_str(json_is_object(late) ? late : doc, "message");
        fprintf(stderr, "error: %s: %s\n", kind ? kind : "query_failed",
                msg ? msg : "the query failed part-way");
        rc = LH_CLI_EXIT_ERROR;
    }
out:
    lh_buf_free(&out);
    json_decref(doc);
    return rc;
}

static int cmd_sql(cli_ctx *ctx)
{
    const command *cmd = find_command("sql");
    const lh_cli_args *a = ctx->args;
    const char *format = lh_cli_flag(a, "--format");
    const char *limit_s = lh_cli_flag(a, "--limit");
    char *sql = NULL, *body = NULL;
    char *audit_headers[3] = {NULL, NULL, NULL}; /* X-Lakehouse-Purpose/-Trace-Id lines */
    json_t *req_doc = NULL;
    lh_response resp;
    lh_error err;
    int rc = LH_CLI_EXIT_OK;
    lh_response_init(&resp);

    if (format && !one_of(format, sql_formats)) {
        rc = usage_error(cmd, "unknown format '%s' (json, csv, ndjson)", format);
        goto out;
    }
    long long limit = -1;
    if (limit_s) {
        char *end;
        errno = 0;
        limit = strtoll(limit_s, &end, 10);
        if (errno || *end || end == limit_s || limit < 1) {
            rc = usage_error(cmd, "--limit must be a positive integer, not '%s'", limit_s);
            goto out;
        }
    }
    sql = strcmp(a->pos[0], "-") == 0 ? read_stdin() : lh_xstrdup(a->pos[0]);

    bool raw = format && strcmp(format, "json") != 0;
    req_doc = json_pack("{s:s, s:s}", "sql", sql, "format", raw ? format : "json");
    if (!req_doc) {
        rc = usage_error(cmd, "%s", "the SQL text is not valid UTF-8");
        goto out;
    }
    if (limit > 0)
        json_object_set_new(req_doc, "limit", json_integer(limit));
    body = lh_json_dumps(req_doc);

    /* access auditing (docs/AUDIT.md): sent as given; agents must give a purpose */
    const char *purpose = lh_cli_flag(a, "--purpose"), *trace = lh_cli_flag(a, "--trace-id");
    if ((purpose && strpbrk(purpose, "\r\n")) || (trace && strpbrk(trace, "\r\n"))) {
        rc = usage_error(cmd, "%s", "--purpose and --trace-id are one line each");
        goto out;
    }
    size_t nh = 0;
    if (purpose)
        audit_headers[nh++] = lh_xasprintf("X-Lakehouse-Purpose: %s", purpose);
    if (trace)
        audit_headers[nh++] = lh_xasprintf("X-Lakehouse-Trace-Id: %s", trace);
    lh_request req = {.method = "POST",
                      .path = "/query/sql",
                      .json_body = body,
                      .sink = raw ? stdout : NULL,
                      .extra_headers = (const char *const *)audit_headers};
    if (lh_client_send(ctx->client, &req, &resp, &err) != 0) {
        fflush(stdout);
        rc = fail(&err);
        goto out;
    }
    if (!lh_response_ok(&resp)) {
        rc = fail_response(ctx, &resp);
        goto out;
    }
    if (raw)
        goto out; /* already streamed to stdout */
    if (a->json) {
        print_json_pretty(&resp);
        goto out;
    }
    rc = print_query_table(&resp);
out:
    free(audit_headers[0]);
    free(audit_headers[1]);
    json_decref(req_doc);
    lh_response_free(&resp);
    free(body);
    free(sql);
    return rc;
}

/* ---------------------------------------------------------------- lists */

/* Cell text of obj[key]: "" when absent, NULL (printed NULL) when null. Caller frees. */
static char *member_cell(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return v ? lh_cli_json_cell(v) : lh_xstrdup("");
}

static char *yes_no(const json_t *obj, const char *key)
{
    return lh_xstrdup(json_is_true(json_object_get(obj, key)) ? "yes" : "no");
}

/* One list endpoint as a table: GET path, one row per element of doc[member], cells
 * from `cell` (caller-freed strings). --json prints the server's JSON instead. */
typedef struct list_view {
    const char *path;
    const char *member;
    const char *const *headers;
    size_t ncols;
    const size_t *right_aligned; /* column indexes, terminated by (size_t)-1; may be NULL */
    char *(*cell)(const json_t *item, size_t col);
} list_view;

static int print_list(cli_ctx *ctx, const list_view *v)
{
    json_t *doc = NULL;
    int rc = get_json(ctx, v->path, &doc);
    if (rc != LH_CLI_EXIT_OK || !doc)
        return rc;
    lh_table t;
    lh_buf out;
    lh_table_init(&t, v->ncols, v->headers);
    lh_buf_init(&out);
    for (const size_t *c = v->right_aligned; c && *c != (size_t)-1; c++)
        lh_table_set_align(&t, *c, LH_ALIGN_RIGHT);
    char **cells = lh_xcalloc(v->ncols, sizeof(char *));
    size_t i;
    const json_t *item;
    json_array_foreach(json_object_get(doc, v->member), i, item)
    {
        for (size_t c = 0; c < v->ncols; c++)
            cells[c] = v->cell(item, c);
        lh_table_add_row(&t, (const char *const *)cells);
        for (size_t c = 0; c < v->ncols; c++)
            free(cells[c]);
    }
    free(cells);
    lh_table_render(&t, NULL, &out);
    print_buf(&out);
    lh_buf_free(&out);
    lh_table_free(&t);
    json_decref(doc);
    return LH_CLI_EXIT_OK;
}

static char *dataset_cell(const json_t *m, size_t col)
{
    char buf[32];
    switch (col) {
    case 0:
        return member_cell(m, "name");
    case 1:
        return member_cell(m, "bucket");
    case 2:
        format_count(buf, sizeof(buf), (long long)lh_json_int(m, "row_count", 0));
        return lh_xstrdup(buf);
    case 3:
        format_bytes(buf, sizeof(buf), (double)lh_json_int(m, "size_bytes", 0));
        return lh_xstrdup(buf);
    case 4:
        snprintf(buf, sizeof(buf), "%zu", json_array_size(json_object_get(m, "columns")));
        return lh_xstrdup(buf);
    case 5:
        return member_cell(m, "sensitivity");
    default:
        return member_cell(m, "updated_at");
    }
}

static int cmd_datasets(cli_ctx *ctx)
{
    static const char *const headers[] = {"name",    "bucket",      "rows",      "size",
                                          "columns", "sensitivity", "updated_at"};
    static const size_t right[] = {2, 3, 4, (size_t)-1};
    list_view v = {"/catalog/datasets", "datasets", headers, 7, right, dataset_cell};
    return print_list(ctx, &v);
}

static char *bucket_cell(const json_t *b, size_t col)
{
    static const char *const members[] = {"name", "backend", "root"};
    if (col < 3)
        return member_cell(b, members[col]);
    return yes_no(b, col == 3 ? "builtin" : "available");
}

static int cmd_buckets(cli_ctx *ctx)
{
    static const char *const headers[] = {"name", "backend", "root", "builtin", "available"};
    list_view v = {"/storage/buckets", "buckets", headers, 5, NULL, bucket_cell};
    return print_list(ctx, &v);
}

/* ---------------------------------------------------------------- keys */

static const lh_cli_flag_spec keys_flags[] = {{"--role", true},
                                              {"--datasets", true},
                                              {"--profile", true},
                                              {"--attributes", true},
                                              {NULL, false}};

/* "k=v,k2=v2" → {"k":"v","k2":"v2"} ("" → {}); NULL when an item has no '='. Caller
 * decrefs. */
static json_t *split_attributes(const char *s)
{
    json_t *obj = json_object();
    while (s && *s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        const char *eq = memchr(s, '=', n);
        if (!eq || eq == s) {
            json_decref(obj);
            return NULL;
        }
        char *k = lh_xasprintf("%.*s", (int)(eq - s), s);
        json_object_set_new(obj, k, json_stringn(eq + 1, n - (size_t)(eq - s) - 1));
        free(k);
        s = comma ? comma + 1 : NULL;
    }
    return obj;
}

/* "a,b,c" → ["a","b","c"] (empty items dropped). Caller decrefs. */
static json_t *split_list(const char *s)
{
    json_t *arr = json_array();
    while (s && *s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        if (n > 0)
            json_array_append_new(arr, json_stringn(s, n));
        s = comma ? comma + 1 : NULL;
    }
    return arr;
}

/* A name that can go into a URL path segment as it is. */
static bool valid_segment(const char *name)
{
    for (const char *p = name; *p; p++)
        if (*p == '/' || *p == '?' || *p == '#' || *p == '%' || (unsigned char)*p < 0x21)
            return false;
    return *name != '\0';
}

static char *key_cell(const json_t *k, size_t col)
{
    static const char *const members[] = {"name", "role", NULL, "created_at", "last_used_at"};
    if (col == 2) {
        lh_buf ds;
        lh_buf_init(&ds);
        size_t j;
        const json_t *d;
        json_array_foreach(json_object_get(k, "datasets"), j, d)
        {
            lh_buf_printf(&ds, "%s%s", ds.len ? "," : "", json_string_value(d));
        }
        return ds.data ? ds.data : lh_xstrdup("");
    }
    return col < 5 ? member_cell(k, members[col]) : yes_no(k, "from_env");
}

static int keys_list(cli_ctx *ctx)
{
    static const char *const headers[] = {"name",       "role",         "datasets",
                                          "created_at", "last_used_at", "from_env"};
    list_view v = {"/auth/keys", "keys", headers, 6, NULL, key_cell};
    return print_list(ctx, &v);
}

/* Sends one JSON request and prints the answer (pretty JSON; the caller picks what to
 * show in text mode through `show`). */
static int send_json(cli_ctx *ctx, const char *method, const char *path, const json_t *body,
                     void (*show)(const json_t *doc))
{
    char *text = body ? lh_json_dumps(body) : NULL;
    lh_response resp;
    lh_error err;
    lh_response_init(&resp);
    lh_request req = {.method = method, .path = path, .json_body = text};
    int rc = LH_CLI_EXIT_OK;
    if (lh_client_send(ctx->client, &req, &resp, &err) != 0) {
        rc = fail(&err);
        goto out;
    }
    if (!lh_response_ok(&resp)) {
        rc = fail_response(ctx, &resp);
        goto out;
    }
    if (ctx->args->json || !show) {
        print_json_pretty(&resp);
        goto out;
    }
    json_t *doc = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
    show(doc);
    json_decref(doc);
out:
    lh_response_free(&resp);
    free(text);
    return rc;
}

static void show_created_key(const json_t *doc)
{
    printf("created %s key '%s'\n", lh_json_str(doc, "role") ? lh_json_str(doc, "role") : "?",
           lh_json_str(doc, "name") ? lh_json_str(doc, "name") : "?");
    printf("key: %s\n", lh_json_str(doc, "key") ? lh_json_str(doc, "key") : "?");
    printf("store it now: it is shown only once and only a hash of it is kept\n");
}

static void show_revoked_key(const json_t *doc)
{
    printf("revoked key '%s'\n", lh_json_str(doc, "name") ? lh_json_str(doc, "name") : "?");
}

static int cmd_keys(cli_ctx *ctx)
{
    const command *cmd = find_command("keys");
    const lh_cli_args *a = ctx->args;
    const char *sub = a->pos[0];
    if (strcmp(sub, "list") == 0) {
        if (a->npos != 1)
            return usage_error(cmd, "%s", "keys list takes no name");
        return keys_list(ctx);
    }
    if (strcmp(sub, "create") == 0) {
        const char *role = lh_cli_flag(a, "--role");
        if (a->npos != 2 || !role)
            return usage_error(cmd, "%s", "keys create needs a NAME and --role");
        json_t *body = json_pack("{s:s,s:s}", "name", a->pos[1], "role", role);
        if (!body)
            return usage_error(cmd, "%s", "the name or role is not valid UTF-8");
        if (lh_cli_flag(a, "--datasets"))
            json_object_set_new(body, "datasets", split_list(lh_cli_flag(a, "--datasets")));
        if (lh_cli_flag(a, "--profile"))
            json_object_set_new(body, "profile", json_string(lh_cli_flag(a, "--profile")));
        if (lh_cli_flag(a, "--attributes")) {
            json_t *attrs = split_attributes(lh_cli_flag(a, "--attributes"));
            if (!attrs) {
                json_decref(body);
                return usage_error(cmd, "%s", "--attributes takes name=value,name=value");
            }
            json_object_set_new(body, "attributes", attrs);
        }
        int rc = send_json(ctx, "POST", "/auth/keys", body, show_created_key);
        json_decref(body);
        return rc;
    }
    if (strcmp(sub, "revoke") == 0) {
        if (a->npos != 2)
            return usage_error(cmd, "%s", "keys revoke needs a NAME");
        char *path = lh_xasprintf("/auth/keys/%s", a->pos[1]);
        if (!valid_segment(a->pos[1])) {
            free(path);
            return usage_error(cmd, "key name '%s' is not valid", a->pos[1]);
        }
        int rc = send_json(ctx, "DELETE", path, NULL, show_revoked_key);
        free(path);
        return rc;
    }
    if (strcmp(sub, "attributes") == 0) {
        json_t *attrs = split_attributes(lh_cli_flag(a, "--attributes"));
        if (a->npos != 2 || !lh_cli_flag(a, "--attributes") || !attrs ||
            !valid_segment(a->pos[1])) {
            json_decref(attrs);
            return usage_error(cmd, "%s",
                               "keys attributes needs a NAME and --attributes name=value,... "
                               "(\"\" clears them)");
        }
        json_t *body = json_pack("{s:o}", "attributes", attrs);
        char *path = lh_xasprintf("/auth/keys/%s", a->pos[1]);
        int rc = send_json(ctx, "PATCH", path, body, NULL);
        free(path);
        json_decref(body);
        return rc;
    }
    return usage_error(cmd, "unknown keys command '%s' (create, list, revoke, attributes)", sub);
}

/* ---------------------------------------------------------------- views (AI-safe) */

static const lh_cli_flag_spec views_flags[] = {
    {"--base", true}, {"--columns", true},     {"--filter", true}, {"--redact", true},
    {"--file", true}, {"--description", true}, {NULL, false}};

/* "col:hash,col:null,col:mask:P:S" → column_redactions; NULL when an item is malformed.
 * Caller decrefs. */
static json_t *split_redactions(const char *s)
{
    json_t *out = json_object();
    json_t *items = split_list(s);
    size_t i;
    const json_t *it;
    json_array_foreach(items, i, it)
    {
        char col[256], kind[16];
        unsigned p = 0, x = 0;
        int got = sscanf(json_string_value(it), "%255[^:]:%15[^:]:%u:%u", col, kind, &p, &x);
        bool mask = got >= 2 && strcmp(kind, "mask") == 0;
        if (got < 2 || (got > 2 && !mask)) {
            json_decref(out);
            out = NULL;
            break;
        }
        json_t *r = json_pack("{s:s}", "kind", kind);
        if (mask) {
            json_object_set_new(r, "keep_prefix", json_integer(p));
            json_object_set_new(r, "keep_suffix", json_integer(x));
        }
        json_object_set_new(out, col, r);
    }
    json_decref(items);
    return out;
}

static char *view_cell(const json_t *v, size_t col)
{
    static const char *const members[] = {"name", "base_dataset", NULL, NULL, "status"};
    if (col == 2) {
        lh_buf b;
        lh_buf_init(&b);
        size_t j;
        const json_t *c;
        json_array_foreach(json_object_get(v, "columns"), j, c)
        {
            const json_t *r =
                json_object_get(json_object_get(v, "column_redactions"), json_string_value(c));
            lh_buf_printf(&b, "%s%s", b.len ? "," : "", json_string_value(c));
            if (r)
                lh_buf_printf(&b, "(%s)", lh_json_str(r, "kind"));
        }
        return b.data ? b.data : lh_xstrdup("");
    }
    if (col == 3)
        return member_cell(v, "row_filter");
    return col < 5 ? member_cell(v, members[col]) : member_cell(v, "problem");
}

static int cmd_views(cli_ctx *ctx)
{
    const command *cmd = find_command("views");
    const lh_cli_args *a = ctx->args;
    const char *sub = a->pos[0];
    if (strcmp(sub, "list") == 0) {
        static const char *const headers[] = {"name",       "base",   "columns",
                                              "row_filter", "status", "problem"};
        list_view v = {"/catalog/views", "views", headers, 6, NULL, view_cell};
        return a->npos == 1 ? print_list(ctx, &v)
                            : usage_error(cmd, "%s", "views list takes no name");
    }
    if (a->npos != 2 || !valid_segment(a->pos[1]))
        return usage_error(cmd, "views %s needs a valid view NAME", sub);
    char *path = lh_xasprintf("/catalog/views/%s", a->pos[1]);
    int rc;
    if (strcmp(sub, "show") == 0) {
        rc = send_json(ctx, "GET", path, NULL, NULL);
    } else if (strcmp(sub, "delete") == 0) {
        rc = send_json(ctx, "DELETE", path, NULL, NULL);
    } else if (strcmp(sub, "create") == 0) {
        json_t *body = NULL;
        const char *file = lh_cli_flag(a, "--file");
        if (file) {
            json_error_t jerr;
            body = json_load_file(file, 0, &jerr);
            if (!json_is_object(body)) {
                json_decref(body);
                free(path);
                return usage_error(cmd, "--file %s: not a JSON object (%s)", file, jerr.text);
            }
        } else {
            body = json_object();
        }
        json_object_set_new(body, "name", json_string(a->pos[1]));
        if (lh_cli_flag(a, "--base"))
            json_object_set_new(body, "base_dataset", json_string(lh_cli_flag(a, "--base")));
        if (lh_cli_flag(a, "--columns"))
            json_object_set_new(body, "columns", split_list(lh_cli_flag(a, "--columns")));
        if (lh_cli_flag(a, "--filter"))
            json_object_set_new(body, "row_filter", json_string(lh_cli_flag(a, "--filter")));
        if (lh_cli_flag(a, "--description"))
            json_object_set_new(body, "description", json_string(lh_cli_flag(a, "--description")));
        if (lh_cli_flag(a, "--redact")) {
            json_t *red = split_redactions(lh_cli_flag(a, "--redact"));
            if (!red) {
                json_decref(body);
                free(path);
                return usage_error(cmd, "%s",
                                   "--redact takes col:hash, col:null or col:mask:PREFIX:SUFFIX, "
                                   "comma-separated");
            }
            json_object_set_new(body, "column_redactions", red);
        }
        rc = send_json(ctx, "POST", "/catalog/views", body, NULL);
        json_decref(body);
    } else {
        rc = usage_error(cmd, "unknown views command '%s' (list, show, create, delete)", sub);
    }
    free(path);
    return rc;
}

/* ---------------------------------------------------------------- governance:
 * profiles, events, bucket migration (docs/GOVERNANCE.md) */

static const lh_cli_flag_spec profiles_flags[] = {
    {"--model", true},  {"--bind", true},        {"--description", true},
    {"--bucket", true}, {"--embed-model", true}, {"--index-config", true},
    {NULL, false}};

/* A comma-joined cell of an array member. Caller frees. */
static char *joined_cell(const json_t *obj, const char *key)
{
    lh_buf b;
    lh_buf_init(&b);
    size_t j;
    const json_t *v;
    json_array_foreach(json_object_get(obj, key), j, v)
    {
        lh_buf_printf(&b, "%s%s", b.len ? "," : "", json_string_value(v));
    }
    return b.data ? b.data : lh_xstrdup("");
}

static char *profile_cell(const json_t *p, size_t col)
{
    static const char *const members[] = {"id", "model_name", NULL,
                                          NULL, "created_by", "created_at"};
    if (col == 2)
        return joined_cell(p, "bound_datasets");
    if (col == 3)
        return joined_cell(p, "unresolved");
    return member_cell(p, members[col]);
}

static void show_profile(const json_t *doc)
{
    const json_t *p = json_object_get(doc, "profile");
    char *bound = joined_cell(p, "bound_datasets"), *unresolved = joined_cell(p, "unresolved");
    printf("profile '%s' (model %s)\n  bound: %s\n",
           lh_json_str(p, "id") ? lh_json_str(p, "id") : "?",
           lh_json_str(p, "model_name") ? lh_json_str(p, "model_name") : "?", bound);
    if (*unresolved)
        printf("  unresolved (deleted since): %s\n", unresolved);
    free(bound);
    free(unresolved);
}

static void show_deleted_profile(const json_t *doc)
{
    printf("deleted profile '%s'\n", lh_json_str(doc, "id") ? lh_json_str(doc, "id") : "?");
}

/* "/catalog/profiles/<id>" when id is a plain slug (nothing to escape), else NULL. */
static char *profile_path(const char *id)
{
    for (const char *c = id; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
            return NULL;
    return *id ? lh_xasprintf("/catalog/profiles/%s", id) : NULL;
}

static int profiles_create(cli_ctx *ctx, const command *cmd)
{
    const lh_cli_args *a = ctx->args;
    const char *model = lh_cli_flag(a, "--model"), *bind = lh_cli_flag(a, "--bind");
    if (a->npos != 2 || !model || !bind)
        return usage_error(cmd, "%s", "profiles create needs an ID, --model and --bind");
    json_t *body = json_pack("{s:s,s:s,s:o}", "id", a->pos[1], "model_name", model,
                             "bound_datasets", split_list(bind));
    if (!body)
        return usage_error(cmd, "%s", "the id or model is not valid UTF-8");
    static const char *const optional[][2] = {
        {"--description", "description"}, {"--bucket", "bucket"}, {"--embed-model", "embed_model"}};
    for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++)
        if (lh_cli_flag(a, optional[i][0]))
            json_object_set_new(body, optional[i][1], json_string(lh_cli_flag(a, optional[i][0])));
    const char *ic = lh_cli_flag(a, "--index-config");
    if (ic) {
        json_t *cfg = json_loads(ic, 0, NULL);
        if (!json_is_object(cfg)) {
            json_decref(cfg);
            json_decref(body);
            return usage_error(cmd, "%s", "--index-config must be a JSON object");
        }
        json_object_set_new(body, "index_config", cfg);
    }
    int rc = send_json(ctx, "POST", "/catalog/profiles", body, show_profile);
    json_decref(body);
    return rc;
}

static int cmd_profiles(cli_ctx *ctx)
{
    const command *cmd = find_command("profiles");
    const lh_cli_args *a = ctx->args;
    const char *sub = a->pos[0];
    if (strcmp(sub, "list") == 0) {
        if (a->npos != 1)
            return usage_error(cmd, "%s", "profiles list takes no id");
        static const char *const headers[] = {"id",         "model",      "bound",
                                              "unresolved", "created_by", "created_at"};
        list_view v = {"/catalog/profiles", "profiles", headers, 6, NULL, profile_cell};
        return print_list(ctx, &v);
    }
    if (strcmp(sub, "create") == 0)
        return profiles_create(ctx, cmd);
    if (strcmp(sub, "show") == 0 || strcmp(sub, "delete") == 0) {
        char *path = a->npos == 2 ? profile_path(a->pos[1]) : NULL;
        if (!path)
            return usage_error(cmd, "profiles %s needs one ID (a-z, 0-9, '-')", sub);
        bool show = strcmp(sub, "show") == 0;
        int rc =
            send_json(ctx, show ? "GET" : "DELETE", path, NULL, show ? NULL : show_deleted_profile);
        free(path);
        return rc;
    }
    return usage_error(cmd, "unknown profiles command '%s' (list, show, create, delete)", sub);
}

static const lh_cli_flag_spec events_flags[] = {
    {"--since", true}, {"--limit", true}, {NULL, false}};

static char *event_cell(const json_t *e, size_t col)
{
    static const char *const members[] = {"seq", "at", "actor", "action", "target"};
    if (col < 5)
        return member_cell(e, members[col]);
    const json_t *d = json_object_get(e, "details");
    return d && !json_is_null(d) ? lh_json_dumps(d) : lh_xstrdup("");
}

/* A decimal flag value ("" when absent) that is all digits, else NULL. */
static const char *digits_flag(const lh_cli_args *a, const char *name)
{
    const char *v = lh_cli_flag(a, name);
    if (!v)
        return "";
    if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 18)
        return NULL;
    return v;
}

static int cmd_events(cli_ctx *ctx)
{
    const command *cmd = find_command("events");
    const char *since = digits_flag(ctx->args, "--since"),
               *limit = digits_flag(ctx->args, "--limit");
    if (!since || !limit)
        return usage_error(cmd, "%s", "--since and --limit take a whole number");
    char *path = lh_xasprintf("/catalog/events?since=%s&limit=%s", *since ? since : "0",
                              *limit ? limit : "100");
    static const char *const headers[] = {"seq", "at", "actor", "action", "target", "details"};
    static const size_t right[] = {0, (size_t)-1};
    list_view v = {path, "events", headers, 6, right, event_cell};
    int rc = print_list(ctx, &v);
    free(path);
    return rc;
}

static void show_migration(const json_t *doc)
{
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(doc, "changed"), i, c)
    {
        const json_t *from = json_object_get(c, "from");
        char *was = from ? lh_cli_json_cell(from) : lh_xstrdup("(missing)");
        printf("%s: bucket %s -> %s\n", lh_json_str(c, "dataset"), was, lh_json_str(c, "to"));
        free(was);
    }
    printf("%zu changed, %lld unchanged\n", json_array_size(json_object_get(doc, "changed")),
           (long long)lh_json_int(doc, "unchanged", 0));
}

static int cmd_migrate_buckets(cli_ctx *ctx)
{
    return send_json(ctx, "POST", "/catalog/migrate-buckets", NULL, show_migration);
}

/* ---------------------------------------------------------------- erasure */

/* A path segment from a dataset name; NULL when the name could not be one. Caller frees. */
static char *dataset_path(const char *name, const char *suffix)
{
    if (lh_name_validate(name, "dataset name", NULL) != 0)
        return NULL;
    return lh_xasprintf("/catalog/datasets/by-name/%s%s", name, suffix);
}

static const lh_cli_flag_spec compact_flags[] = {{"--no-wait", false}, {NULL, false}};

static void show_compacted(const json_t *doc)
{
    if (lh_json_str(doc, "job_id")) {
        printf("compaction queued as job %s (lakehouse --json: GET %s)\n",
               lh_json_str(doc, "job_id"), lh_json_str(doc, "status_url"));
        return;
    }
    printf("compacted '%s': %lld -> %lld rows, %lld tombstones applied%s, %lld -> %lld bytes\n",
           lh_json_str(doc, "dataset") ? lh_json_str(doc, "dataset") : "?",
           (long long)lh_json_int(doc, "rows_before", 0),
           (long long)lh_json_int(doc, "rows_after", 0),
           (long long)lh_json_int(doc, "tombstones_applied", 0),
           json_is_false(json_object_get(doc, "tombstones_cleared")) ? " (kept)" : "",
           (long long)lh_json_int(doc, "bytes_before", 0),
           (long long)lh_json_int(doc, "bytes_after", 0));
}

static int cmd_compact(cli_ctx *ctx)
{
    const lh_cli_args *a = ctx->args;
    if (lh_name_validate(a->pos[0], "dataset name", NULL) != 0)
        return usage_error(find_command("compact"), "'%s' is not a dataset name", a->pos[0]);
    json_t *body =
        json_pack("{s:s,s:b}", "dataset", a->pos[0], "wait", !lh_cli_has_flag(a, "--no-wait"));
    int rc = send_json(ctx, "POST", "/query/compact", body, show_compacted);
    json_decref(body);
    return rc;
}

/* ---------------------------------------------------------------- ingest-db (issue 13) */

static const lh_cli_flag_spec ingest_db_flags[] = {
    {"--source", true},     {"--dsn", true},
    {"--table", true},      {"--query", true},
    {"--dataset", true},    {"--mode", true},
    {"--bucket", true},     {"--incremental-column", true},
    {"--key-column", true}, {"--no-wait", false},
    {NULL, false}};

static void show_synced(const json_t *doc)
{
    const json_t *job = json_object_get(doc, "job");
    if (json_is_object(job)) {
        printf("sync queued as job %s (lakehouse --json: GET /jobs/%s)\n", lh_json_str(job, "id"),
               lh_json_str(job, "id"));
        return;
    }
    long long rows = (long long)lh_json_int(doc, "rows", 0);
    printf("%s '%s': %lld %s", lh_json_str(doc, "mode") ? lh_json_str(doc, "mode") : "synced",
           lh_json_str(doc, "dataset") ? lh_json_str(doc, "dataset") : "?", rows,
           lh_cli_plural(rows, "row", "rows"));
    long long sup = (long long)lh_json_int(doc, "rows_superseded", 0);
    if (sup)
        printf(", %lld replaced by key", sup);
    const json_t *w = json_object_get(doc, "watermark");
    if (json_is_object(w))
        printf(", watermark %s = %s", lh_json_str(w, "column"),
               lh_json_str(w, "current") ? lh_json_str(w, "current") : "(none)");
    printf(" (job %s)\n", lh_json_str(doc, "job") ? lh_json_str(doc, "job") : "?");
}

/* The first line of stdin (a DSN given as "-", so it stays out of the process list and the
 * shell's history). Caller frees; NULL when stdin is empty. */
static char *read_stdin_line(void)
{
    lh_buf b;
    lh_buf_init(&b);
    int c;
    while ((c = getchar()) != EOF && c != '\n')
        lh_buf_putc(&b, (char)c);
    while (b.len && (b.data[b.len - 1] == '\r' || b.data[b.len - 1] == ' '))
        b.data[--b.len] = '\0';
    if (!b.len) {
        lh_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* ingest-db postgres|mysql (--source NAME | --dsn DSN|-) (--table T | --query Q) --dataset D
 * [--mode M] [--bucket B] [--incremental-column C [--key-column K]] [--no-wait] */
static int cmd_ingest_db(cli_ctx *ctx)
{
    const command *cmd = find_command("ingest-db");
    const lh_cli_args *a = ctx->args;
    const char *kind = a->pos[0];
    const char *dsn = lh_cli_flag(a, "--dsn"), *source = lh_cli_flag(a, "--source");
    const char *table = lh_cli_flag(a, "--table"), *query = lh_cli_flag(a, "--query");
    const char *dataset = lh_cli_flag(a, "--dataset"), *mode = lh_cli_flag(a, "--mode");
    const char *column = lh_cli_flag(a, "--incremental-column"),
               *key = lh_cli_flag(a, "--key-column");
    const char *bucket = lh_cli_flag(a, "--bucket");
    if (strcmp(kind, "postgres") != 0 && strcmp(kind, "mysql") != 0)
        return usage_error(cmd, "unknown source kind '%s' (postgres or mysql)", kind);
    if (!dsn == !source)
        return usage_error(cmd, "%s", "give exactly one of --source NAME and --dsn DSN");
    if (!table == !query)
        return usage_error(cmd, "%s", "give exactly one of --table T and --query Q");
    if (!dataset || !*dataset)
        return usage_error(cmd, "%s", "ingest-db needs --dataset (the dataset name)");
    if (mode && !one_of(mode, ingest_modes))
        return usage_error(cmd, "unknown mode '%s' (create, replace, append)", mode);
    if (key && !column)
        return usage_error(cmd, "%s", "--key-column needs --incremental-column");
    char *secret = NULL;
    if (dsn && strcmp(dsn, "-") == 0) {
        if (!(secret = read_stdin_line()))
            return usage_error(cmd, "%s", "--dsn - reads the DSN from stdin, which was empty");
        dsn = secret;
    }
    json_t *body = json_pack("{s:s,s:s,s:b}", "dataset", dataset, "mode", mode ? mode : "create",
                             "wait", !lh_cli_has_flag(a, "--no-wait"));
    json_object_set_new(body, dsn ? "dsn" : "source", json_string(dsn ? dsn : source));
    json_object_set_new(body, table ? "table" : "query", json_string(table ? table : query));
    if (bucket)
        json_object_set_new(body, "bucket", json_string(bucket));
    if (column) {
        json_t *inc = json_pack("{s:s}", "column", column);
        if (key)
            json_object_set_new(inc, "key", json_string(key));
        json_object_set_new(body, "incremental", inc);
    }
    char *path = lh_xasprintf("/ingest/%s", kind);
    int rc = send_json(ctx, "POST", path, body, show_synced);
    free(path);
    json_decref(body);
    lh_secret_free(secret);
    return rc;
}

static const lh_cli_flag_spec tombstones_flags[] = {
    {"--column", true}, {"--reason", true}, {NULL, false}};

static void show_tombstone_change(const json_t *doc)
{
    if (json_object_get(doc, "rows_tombstoned"))
        printf("%lld rows tombstoned\n", (long long)lh_json_int(doc, "rows_tombstoned", 0));
    else
        printf("%lld tombstones removed\n", (long long)lh_json_int(doc, "tombstones_removed", 0));
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(doc, "failures"), i, f)
    {
        const json_t *v = json_object_get(f, "value");
        char *text = json_dumps(v, JSON_ENCODE_ANY);
        printf("  not done: %s: %s\n", text ? text : "?", lh_json_str(f, "reason"));
        free(text);
    }
}

static void show_tombstones(const json_t *doc)
{
    const json_t *list = json_object_get(doc, "tombstones");
    printf("%zu tombstones on '%s'%s%s\n", json_array_size(list), lh_json_str(doc, "dataset"),
           lh_json_str(doc, "key_column") ? " by " : "",
           lh_json_str(doc, "key_column") ? lh_json_str(doc, "key_column") : "");
    size_t i;
    const json_t *t;
    json_array_foreach(list, i, t)
    {
        printf("  %s\t%s\t%s\t%s\n", lh_json_str(t, "key"), lh_json_str(t, "deleted_at"),
               lh_json_str(t, "actor"), lh_json_str(t, "reason"));
    }
}

/* tombstones list NAME | add NAME --column C VALUES | remove NAME VALUES (VALUES: a,b,c). */
static int cmd_tombstones(cli_ctx *ctx)
{
    const command *cmd = find_command("tombstones");
    const lh_cli_args *a = ctx->args;
    const char *sub = a->pos[0];
    char *path = a->npos >= 2 ? dataset_path(a->pos[1], "/tombstone") : NULL;
    if (!path)
        return usage_error(cmd, "%s", "tombstones needs a sub-command and a dataset NAME");
    int rc;
    json_t *body = NULL;
    if (strcmp(sub, "list") == 0 && a->npos == 2) {
        rc = send_json(ctx, "GET", path, NULL, show_tombstones);
    } else if (strcmp(sub, "add") == 0 && a->npos == 3 && lh_cli_flag(a, "--column")) {
        body = json_pack("{s:s,s:o}", "row_key_column", lh_cli_flag(a, "--column"),
                         "row_key_values", split_list(a->pos[2]));
        if (lh_cli_flag(a, "--reason"))
            json_object_set_new(body, "reason", json_string(lh_cli_flag(a, "--reason")));
        rc = send_json(ctx, "POST", path, body, show_tombstone_change);
    } else if (strcmp(sub, "remove") == 0 && a->npos == 3) {
        body = json_pack("{s:o}", "row_key_values", split_list(a->pos[2]));
        rc = send_json(ctx, "DELETE", path, body, show_tombstone_change);
    } else {
        rc = usage_error(cmd, "%s",
                         "use: tombstones list NAME | add NAME --column C V1,V2 | "
                         "remove NAME V1,V2");
    }
    json_decref(body);
    free(path);
    return rc;
}

/* ---------------------------------------------------------------- subjects (issue 11) */

static const lh_cli_flag_spec subjects_flags[] = {
    {"--id-column", true}, {"--strip-prefix", true}, {NULL, false}};

static void show_backfill(const json_t *doc)
{
    printf("backfilled subjects from %s.%s: created %lld, existing %lld (dataset added to "
           "%lld), refused %lld\n",
           lh_json_str(doc, "dataset") ? lh_json_str(doc, "dataset") : "?",
           lh_json_str(doc, "id_column") ? lh_json_str(doc, "id_column") : "?",
           (long long)lh_json_int(doc, "created", 0), (long long)lh_json_int(doc, "existing", 0),
           (long long)lh_json_int(doc, "datasets_added", 0),
           (long long)lh_json_int(doc, "refused_total", 0));
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(doc, "refused"), i, r)
    {
        printf("  refused '%s': %s\n", lh_json_str(r, "value") ? lh_json_str(r, "value") : "?",
               lh_json_str(r, "reason") ? lh_json_str(r, "reason") : "?");
    }
}

static int cmd_subjects(cli_ctx *ctx)
{
    const command *cmd = find_command("subjects");
    const lh_cli_args *a = ctx->args;
    if (strcmp(a->pos[0], "backfill") != 0)
        return usage_error(cmd, "unknown subjects command '%s' (backfill)", a->pos[0]);
    if (a->npos != 2)
        return usage_error(cmd, "%s", "subjects backfill needs a DATASET");
    json_t *body = json_pack("{s:s}", "dataset", a->pos[1]);
    if (!body)
        return usage_error(cmd, "%s", "the dataset name is not valid UTF-8");
    const char *col = lh_cli_flag(a, "--id-column"), *prefix = lh_cli_flag(a, "--strip-prefix");
    if (col)
        json_object_set_new(body, "id_column", json_string(col));
    if (prefix)
        json_object_set_new(body, "strip_prefix", json_string(prefix));
    int rc = send_json(ctx, "POST", "/subjects/backfill", body, show_backfill);
    json_decref(body);
    return rc;
}

/* ---------------------------------------------------------------- audit (issue 11) */

/* `lakehouse audit verify ID|--all` and `lakehouse audit known-answer` run offline: they
 * read the data folder and the key file (LH_SUBJECT_AUDIT_KEY) directly, so a regulator's
 * verification needs no running server and no API key. Beside a running server (which
 * holds the journal's lock) verify reads the logs read-only: every acknowledged row is
 * already in them. Without a server it first replays the journal (a crash's leftovers). */
static const lh_cli_flag_spec audit_flags[] = {
    {"--all", false}, {"--data", true}, {"--root", true}, {"--pubkey", true}, {NULL, false},
};

typedef struct audit_verify_ctx {
    lh_audit *audit;
    const char *root;
    bool json;
    int checked, bad;
    json_t *out;
} audit_verify_ctx;

static int audit_verify_one(void *arg, const char *id)
{
    audit_verify_ctx *c = arg;
    lh_audit_verdict v;
    lh_error err;
    c->checked++;
    if (lh_audit_verify(c->audit, id, c->root, &v, &err) != 0) {
        c->bad++;
        fprintf(stderr, "error: %s: %s\n", lh_error_kind(&err), err.message);
        return 0;
    }
    if (!v.verified)
        c->bad++;
    if (c->json) {
        json_array_append_new(
            c->out, json_pack("{s:s,s:b,s:I,s:s,s:I,s:s?,s:s?,s:I}", "candidate_id", id, "verified",
                              v.verified, "rows_total", (json_int_t)v.rows_total, "chain_root",
                              v.chain_root, "first_bad_row", (json_int_t)v.first_bad_row, "reason",
                              v.reason, "detail", v.reason ? v.detail : NULL, "manifest_lag",
                              (json_int_t)v.manifest_lag));
    } else if (v.verified) {
        printf("%s: verified, %lld rows, chain root %s\n", id, (long long)v.rows_total,
               v.chain_root[0] ? v.chain_root : "(none)");
    } else {
        printf("%s: NOT VERIFIED: first bad row %lld (%s): %s\n", id, (long long)v.first_bad_row,
               v.reason, v.detail);
    }
    return 0;
}

static int audit_known_answer(const cli_ctx *ctx)
{
    lh_audit_entry ka;
    char *canonical = NULL, hmac[LH_AUDIT_HMAC_HEX];
    lh_error err;
    lh_audit_known_answer_entry(&ka);
    if (lh_audit_row_sign((const unsigned char *)LH_AUDIT_KA_KEY, strlen(LH_AUDIT_KA_KEY), &ka,
                          LH_AUDIT_GENESIS, &canonical, hmac, &err) != 0)
        return fail(&err);
    int rc = LH_CLI_EXIT_OK;
    if (ctx->args->json) {
        json_t *o =
            json_pack("{s:s,s:s,s:s,s:b}", "key_ascii", LH_AUDIT_KA_KEY, "canonical", canonical,
                      "row_hmac", hmac, "matches_published", strcmp(hmac, LH_AUDIT_KA_HMAC) == 0);
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        printf("key (ASCII):     %s\ncanonical bytes: %s\nrow_hmac:        %s\n", LH_AUDIT_KA_KEY,
               canonical, hmac);
    }
    if (strcmp(hmac, LH_AUDIT_KA_HMAC) != 0) {
        fprintf(stderr, "error: the HMAC differs from the published %s\n", LH_AUDIT_KA_HMAC);
        rc = LH_CLI_EXIT_ERROR;
    }
    free(canonical);
    return rc;
}

static int cmd_audit(cli_ctx *ctx)
{
    const command *cmd = find_command("audit");
    const char *sub = ctx->args->pos[0];
    if (strcmp(sub, "known-answer") == 0)
        return ctx->args->npos == 1 ? audit_known_answer(ctx)
                                    : usage_error(cmd, "known-answer takes no argument");
    if (strcmp(sub, "verify-offline") == 0) {
        if (ctx->args->npos != 2 || !lh_cli_flag(ctx->args, "--pubkey"))
            return usage_error(cmd, "verify-offline takes RESPONSE.json and --pubkey FILE");
        return lh_cli_audit_verify_offline(ctx->args->pos[1], lh_cli_flag(ctx->args, "--pubkey"),
                                           ctx->args->json);
    }
    if (strcmp(sub, "verify") != 0)
        return usage_error(cmd, "unknown audit command '%s' (verify, verify-offline, known-answer)",
                           sub);
    bool all = lh_cli_has_flag(ctx->args, "--all");
    if (all == (ctx->args->npos == 2))
        return usage_error(cmd, "verify takes one subject id or --all");
    if (all && lh_cli_flag(ctx->args, "--root"))
        return usage_error(cmd, "--root (the manifest's chain root) goes with one subject id");
    lh_config cfg;
    lh_error err;
    lh_audit *audit = NULL;
    int rc = LH_CLI_EXIT_ERROR;
    audit_verify_ctx c = {.root = lh_cli_flag(ctx->args, "--root"), .json = ctx->args->json};
    const char *data = lh_cli_flag(ctx->args, "--data");
    if (lh_config_load(&cfg, &err) != 0 ||
        (data && lh_config_set_data_dir(&cfg, data, &err) != 0)) {
        rc = fail(&err);
        goto out;
    }
    if (!cfg.audit_key_file) {
        fprintf(stderr, "error: LH_SUBJECT_AUDIT_KEY is not set: name the audit key file\n");
        goto out;
    }
    if (!lh_fs_exists(cfg.data_dir)) {
        fprintf(stderr, "error: no data folder at '%s' (--data DIR or LH_DATA)\n", cfg.data_dir);
        goto out;
    }
    audit = lh_audit_open(cfg.data_dir, cfg.audit_key_file, &err);
    if (!audit && err.code == LH_EBUSY)
        audit = lh_audit_open_readonly(cfg.data_dir, cfg.audit_key_file, &err);
    if (!audit) {
        rc = fail(&err);
        goto out;
    }
    c.audit = audit;
    c.out = json_array();
    if (all)
        lh_audit_list(audit, audit_verify_one, &c, &err);
    else
        audit_verify_one(&c, ctx->args->pos[1]);
    if (c.json) {
        json_t *o = json_pack("{s:i,s:i,s:O}", "checked", c.checked, "not_verified", c.bad,
                              "subjects", c.out);
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
        json_decref(o);
    } else if (all) {
        printf("%d subject(s) checked, %d not verified\n", c.checked, c.bad);
    }
    json_decref(c.out);
    rc = c.bad ? LH_CLI_EXIT_ERROR : LH_CLI_EXIT_OK;
out:
    lh_audit_close(audit);
    lh_config_free(&cfg);
    return rc;
}

/* ---------------------------------------------------------------- retention (issue 12) */

/* The command lives in retention.c (this file holds the table). */
static int cmd_retention_sweep(cli_ctx *ctx)
{
    return lh_cli_retention_sweep(ctx->args);
}

/* ---------------------------------------------------------------- jobs (issue 13) */

static void show_job(const json_t *doc)
{
    const json_t *j = json_object_get(doc, "job");
    const json_t *p = json_object_get(j, "progress");
    const char *by = lh_json_str(j, "cancelled_by");
    const char *error = lh_json_str(j, "error");
    printf("job %s (%s, started by %s): %s\n", lh_json_str(j, "id") ? lh_json_str(j, "id") : "?",
           lh_json_str(j, "kind") ? lh_json_str(j, "kind") : "?",
           lh_json_str(j, "actor") ? lh_json_str(j, "actor") : "?",
           lh_json_str(j, "state") ? lh_json_str(j, "state") : "?");
    printf("  progress: %lld", (long long)lh_json_int(p, "done", 0));
    if (lh_json_int(p, "total", 0) > 0)
        printf(" of %lld", (long long)lh_json_int(p, "total", 0));
    printf("\n");
    if (by)
        printf("  cancel asked by %s\n", by);
    if (error)
        printf("  error: %s\n", error);
}

static int cmd_jobs(cli_ctx *ctx)
{
    const command *cmd = find_command("jobs");
    const lh_cli_args *a = ctx->args;
    const char *sub = a->pos[0];
    bool cancel = strcmp(sub, "cancel") == 0;
    if (!cancel && strcmp(sub, "show") != 0)
        return usage_error(cmd, "unknown jobs command '%s' (show, cancel)", sub);
    if (a->npos != 2 || !valid_segment(a->pos[1]))
        return usage_error(cmd, "jobs %s needs a job ID", sub);
    char *path = lh_xasprintf("/jobs/%s%s", a->pos[1], cancel ? "/cancel" : "");
    int rc = send_json(ctx, cancel ? "POST" : "GET", path, NULL, show_job);
    free(path);
    return rc;
}

/* ---------------------------------------------------------------- sources (issue 13) */

static const lh_cli_flag_spec sources_flags[] = {{"--kind", true}, {"--dsn", true}, {NULL, false}};

static char *source_cell(const json_t *src, size_t col)
{
    static const char *const members[] = {"name",       "kind",       "location",
                                          "created_at", "created_by", "dsn"};
    return member_cell(src, members[col]);
}

static void show_source(const json_t *doc)
{
    const json_t *src = json_object_get(doc, "source");
    const char *loc = lh_json_str(src, "location");
    printf("source '%s' (%s) at %s\n", lh_json_str(src, "name") ? lh_json_str(src, "name") : "?",
           lh_json_str(src, "kind") ? lh_json_str(src, "kind") : "?", loc ? loc : "?");
    printf("  dsn: %s\n", lh_json_str(src, "dsn") ? lh_json_str(src, "dsn") : "?");
    printf("  created %s by %s\n",
           lh_json_str(src, "created_at") ? lh_json_str(src, "created_at") : "?",
           lh_json_str(src, "created_by") ? lh_json_str(src, "created_by") : "?");
}

static void show_deleted_source(const json_t *doc)
{
    (void)doc; /* 204: no body */
    printf("deleted the source\n");
}

/* The DSN of `sources add`: the flag's value, or with "--dsn -" the first line of stdin,
 * so the password stays out of shell history and ps. NULL when stdin gives nothing.
 * Caller frees (wiping it). */
static char *source_dsn(const char *flag)
{
    if (strcmp(flag, "-") != 0)
        return lh_xstrdup(flag);
    char *text = read_stdin();
    size_t n = strcspn(text, "\r\n");
    text[n] = '\0';
    if (n == 0) {
        free(text);
        return NULL;
    }
    return text;
}

static int sources_add(cli_ctx *ctx, const command *cmd)
{
    const lh_cli_args *a = ctx->args;
    const char *kind = lh_cli_flag(a, "--kind"), *flag = lh_cli_flag(a, "--dsn");
    if (a->npos != 2 || !kind || !flag)
        return usage_error(cmd, "%s", "sources add needs a NAME, --kind and --dsn (\"-\": stdin)");
    char *dsn = source_dsn(flag);
    if (!dsn)
        return usage_error(cmd, "%s", "--dsn - read no DSN from stdin");
    json_t *body = json_pack("{s:s,s:s,s:s}", "name", a->pos[1], "kind", kind, "dsn", dsn);
    lh_secret_free(dsn);
    if (!body)
        return usage_error(cmd, "%s", "the name, kind or DSN is not valid UTF-8");
    int rc = send_json(ctx, "POST", "/sources", body, show_source);
    json_t *v = json_object_get(body, "dsn"); /* wipe jansson's copy of the secret */
    memset((char *)json_string_value(v), 0, json_string_length(v));
    json_decref(body);
    return rc;
}

static int cmd_sources(cli_ctx *ctx)
{
    const command *cmd = find_command("sources");
    const lh_cli_args *a = ctx->args;
    const char *sub = a->pos[0];
    if (strcmp(sub, "list") == 0) {
        static const char *const headers[] = {"name",       "kind",       "location",
                                              "created_at", "created_by", "dsn"};
        list_view v = {"/sources", "sources", headers, 6, NULL, source_cell};
        return a->npos == 1 ? print_list(ctx, &v)
                            : usage_error(cmd, "%s", "sources list takes no name");
    }
    if (strcmp(sub, "add") == 0)
        return sources_add(ctx, cmd);
    bool show = strcmp(sub, "show") == 0;
    if (!show && strcmp(sub, "delete") != 0)
        return usage_error(cmd, "unknown sources command '%s' (add, list, show, delete)", sub);
    if (a->npos != 2 || !valid_segment(a->pos[1]))
        return usage_error(cmd, "sources %s needs a NAME", sub);
    char *path = lh_xasprintf("/sources/%s", a->pos[1]);
    int rc = send_json(ctx, show ? "GET" : "DELETE", path, NULL,
                       show ? show_source : show_deleted_source);
    free(path);
    return rc;
}

/* ---------------------------------------------------------------- vectors (issue 14) */

static const lh_cli_flag_spec vectors_flags[] = {{"--dataset", true},
                                                 {"--id-column", true},
                                                 {"--text-column", true},
                                                 {"--kind", true},
                                                 {"--embedder", true},
                                                 {"--model", true},
                                                 {"--dim", true},
                                                 {"--chunk-size", true},
                                                 {"--overlap", true},
                                                 {"--refresh", true},
                                                 {"--params", true},
                                                 {"--no-wait", false},
                                                 /* vectors search (vectors_search below) */
                                                 {"--query", true},
                                                 {"--vector", true},
                                                 {"--k", true},
                                                 {"--filter", true},
                                                 {"--exact", false},
                                                 {"--chunks", false},
                                                 {"--profile", true},
                                                 {"--purpose", true},
                                                 {"--trace-id", true},
                                                 {NULL, false}};

static char *vector_cell(const json_t *ix, size_t col)
{
    static const char *const members[] = {"name",   "dataset", "kind",  "embedder",
                                          "docs",   "chunks",  "state", "embedding_stale_since",
                                          "problem"};
    return member_cell(ix, members[col]);
}

static void show_vector_index(const json_t *doc)
{
    if (lh_json_str(doc, "job")) {
        printf("queued as job %s (lakehouse jobs show %s)\n", lh_json_str(doc, "job"),
               lh_json_str(doc, "job"));
        return;
    }
    const json_t *ix = json_object_get(doc, "index");
    printf("index '%s' over %s(%s, %s): %s, %s embedder (dim %lld), %lld docs, %lld chunks\n",
           lh_json_str(ix, "name") ? lh_json_str(ix, "name") : "?",
           lh_json_str(ix, "dataset") ? lh_json_str(ix, "dataset") : "?",
           lh_json_str(ix, "id_column") ? lh_json_str(ix, "id_column") : "?",
           lh_json_str(ix, "text_column") ? lh_json_str(ix, "text_column") : "?",
           lh_json_str(ix, "kind") ? lh_json_str(ix, "kind") : "?",
           lh_json_str(ix, "embedder") ? lh_json_str(ix, "embedder") : "?",
           (long long)lh_json_int(ix, "dim", 0), (long long)lh_json_int(ix, "docs", 0),
           (long long)lh_json_int(ix, "chunks", 0));
    if (lh_json_str(ix, "embedding_stale_since"))
        printf("  stale since %s (refresh: %s)\n", lh_json_str(ix, "embedding_stale_since"),
               lh_json_str(ix, "refresh") ? lh_json_str(ix, "refresh") : "?");
    if (lh_json_str(ix, "problem"))
        printf("  problem: %s\n", lh_json_str(ix, "problem"));
}

static void show_vector_refresh(const json_t *doc)
{
    if (lh_json_str(doc, "job")) {
        printf("queued as job %s (lakehouse jobs show %s)\n", lh_json_str(doc, "job"),
               lh_json_str(doc, "job"));
        return;
    }
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(doc, "indexes"), i, e) printf(
        "%s: %lld docs embedded, %lld removed; %lld chunks added, %lld removed\n",
        lh_json_str(e, "name") ? lh_json_str(e, "name") : "?",
        (long long)lh_json_int(e, "docs_embedded", 0), (long long)lh_json_int(e, "docs_removed", 0),
        (long long)lh_json_int(e, "chunks_added", 0),
        (long long)lh_json_int(e, "chunks_removed", 0));
}

static void show_deleted_vector_index(const json_t *doc)
{
    (void)doc; /* 204: no body */
    printf("deleted the index\n");
}

static int vectors_create(cli_ctx *ctx, const command *cmd)
{
    const lh_cli_args *a = ctx->args;
    const char *ds = lh_cli_flag(a, "--dataset"), *idc = lh_cli_flag(a, "--id-column"),
               *txt = lh_cli_flag(a, "--text-column");
    if (a->npos != 2 || !ds || !idc || !txt)
        return usage_error(cmd, "%s",
                           "vectors create needs a NAME, --dataset, --id-column and --text-column");
    json_t *body = json_pack("{s:s,s:s,s:s,s:s,s:b}", "name", a->pos[1], "dataset", ds, "id_column",
                             idc, "text_column", txt, "wait", !lh_cli_has_flag(a, "--no-wait"));
    static const char *const strs[][2] = {{"--kind", "kind"},
                                          {"--embedder", "embedder"},
                                          {"--model", "model"},
                                          {"--refresh", "refresh"}};
    static const char *const ints[][2] = {
        {"--dim", "dim"}, {"--chunk-size", "chunk_size"}, {"--overlap", "overlap"}};
    for (size_t i = 0; body && i < sizeof(strs) / sizeof(strs[0]); i++)
        if (lh_cli_flag(a, strs[i][0]))
            json_object_set_new(body, strs[i][1], json_string(lh_cli_flag(a, strs[i][0])));
    for (size_t i = 0; body && i < sizeof(ints) / sizeof(ints[0]); i++) {
        const char *f = lh_cli_flag(a, ints[i][0]);
        char *end = NULL;
        long long n = f ? strtoll(f, &end, 10) : 0;
        if (f && (!*f || *end)) {
            json_decref(body);
            return usage_error(cmd, "%s must be an integer", ints[i][0]);
        }
        if (f)
            json_object_set_new(body, ints[i][1], json_integer(n));
    }
    if (body && lh_cli_flag(a, "--params")) {
        json_error_t jerr;
        json_t *p = json_loads(lh_cli_flag(a, "--params"), 0, &jerr);
        if (!json_is_object(p)) {
            json_decref(p);
            json_decref(body);
            return usage_error(cmd, "%s", "--params must be a JSON object");
        }
        json_object_set_new(body, "params", p);
    }
    if (!body)
        return usage_error(cmd, "%s", "the arguments are not valid UTF-8");
    int rc = send_json(ctx, "POST", "/vectors/indexes", body, show_vector_index);
    json_decref(body);
    return rc;
}

/* `vectors search INDEX (--query TEXT | --vector JSON) [--k N] [--filter SQL] [--exact]
 * [--chunks] [--profile ID] [--purpose P] [--trace-id T]`: POST /vectors/search/{index} (or
 * /vectors/profile/{id}/search), hits as a table (--json: the server's JSON). */
static int vectors_search(cli_ctx *ctx, const command *cmd)
{
    const lh_cli_args *a = ctx->args;
    const char *query = lh_cli_flag(a, "--query"), *vector = lh_cli_flag(a, "--vector");
    const char *k = lh_cli_flag(a, "--k"), *filter = lh_cli_flag(a, "--filter");
    const char *profile = lh_cli_flag(a, "--profile");
    const char *purpose = lh_cli_flag(a, "--purpose"), *trace = lh_cli_flag(a, "--trace-id");
    char *headers[3] = {NULL, NULL, NULL}, *text = NULL, *path = NULL;
    json_t *body = NULL, *doc = NULL;
    lh_response resp;
    lh_error err;
    int rc = LH_CLI_EXIT_OK;
    lh_response_init(&resp);
    if (a->npos != 2 || !valid_segment(a->pos[1]) || !query == !vector) {
        rc = usage_error(cmd, "%s", "vectors search needs an INDEX and one of --query, --vector");
        goto out;
    }
    if ((profile && !valid_segment(profile)) || (purpose && strpbrk(purpose, "\r\n")) ||
        (trace && strpbrk(trace, "\r\n"))) {
        rc = usage_error(cmd, "%s", "--profile is an id; --purpose and --trace-id one line each");
        goto out;
    }
    body = json_pack("{s:b,s:b}", "exact", lh_cli_has_flag(a, "--exact"), "chunks",
                     lh_cli_has_flag(a, "--chunks"));
    if (query && json_object_set_new(body, "query", json_string(query)) != 0) {
        rc = usage_error(cmd, "%s", "--query is not valid UTF-8");
        goto out;
    }
    if (vector) {
        json_error_t jerr;
        json_t *vec = json_loads(vector, 0, &jerr);
        if (!json_is_array(vec)) {
            json_decref(vec);
            rc = usage_error(cmd, "%s", "--vector must be a JSON array of numbers");
            goto out;
        }
        json_object_set_new(body, "vector", vec);
    }
    if (k) {
        char *end = NULL;
        long long n = strtoll(k, &end, 10);
        if (!*k || *end) {
            rc = usage_error(cmd, "%s", "--k must be an integer");
            goto out;
        }
        json_object_set_new(body, "k", json_integer(n));
    }
    if (filter && json_object_set_new(body, "filter", json_string(filter)) != 0) {
        rc = usage_error(cmd, "%s", "--filter is not valid UTF-8");
        goto out;
    }
    if (profile)
        json_object_set_new(body, "index", json_string(a->pos[1]));
    path = profile ? lh_xasprintf("/vectors/profile/%s/search", profile)
                   : lh_xasprintf("/vectors/search/%s", a->pos[1]);
    size_t nh = 0;
    if (purpose)
        headers[nh++] = lh_xasprintf("X-Lakehouse-Purpose: %s", purpose);
    if (trace)
        headers[nh++] = lh_xasprintf("X-Lakehouse-Trace-Id: %s", trace);
    text = lh_json_dumps(body);
    lh_request req = {.method = "POST",
                      .path = path,
                      .json_body = text,
                      .extra_headers = (const char *const *)headers};
    if (lh_client_send(ctx->client, &req, &resp, &err) != 0) {
        rc = fail(&err);
        goto out;
    }
    if (!lh_response_ok(&resp)) {
        rc = fail_response(ctx, &resp);
        goto out;
    }
    if (a->json) {
        print_json_pretty(&resp);
        goto out;
    }
    if (!(doc = lh_json_parse_object(resp.body.data ? resp.body.data : "", resp.body.len, &err))) {
        rc = fail(&err);
        goto out;
    }
    static const char *const cols[] = {"#", "doc_id", "chunk", "score", "text"};
    lh_table t;
    lh_table_init(&t, 5, cols);
    lh_table_set_align(&t, 0, LH_ALIGN_RIGHT);
    lh_table_set_align(&t, 2, LH_ALIGN_RIGHT);
    lh_table_set_align(&t, 3, LH_ALIGN_RIGHT);
    size_t i;
    const json_t *h;
    json_array_foreach(json_object_get(doc, "hits"), i, h)
    {
        char rank[24], chunk[24], score[32];
        snprintf(rank, sizeof(rank), "%zu", i + 1);
        snprintf(chunk, sizeof(chunk), "%lld", (long long)lh_json_int(h, "chunk", 0));
        snprintf(score, sizeof(score), "%.4f", json_number_value(json_object_get(h, "score")));
        const char *cells[] = {rank, lh_json_str(h, "doc_id"), chunk, score,
                               lh_json_str(h, "text")};
        lh_table_add_row(&t, cells);
    }
    lh_buf out;
    lh_buf_init(&out);
    lh_table_render(&t, NULL, &out);
    print_buf(&out);
    printf("(%s, %lld ms)\n",
           json_is_true(json_object_get(doc, "exact")) ? "exact scan" : "ANN structure",
           (long long)lh_json_int(doc, "ms", 0));
    lh_buf_free(&out);
    lh_table_free(&t);
out:
    free(headers[0]);
    free(headers[1]);
    free(text);
    free(path);
    json_decref(body);
    json_decref(doc);
    lh_response_free(&resp);
    return rc;
}

static int cmd_vectors(cli_ctx *ctx)
{
    const command *cmd = find_command("vectors");
    const lh_cli_args *a = ctx->args;
    const char *sub = a->pos[0];
    if (strcmp(sub, "list") == 0 || strcmp(sub, "stale") == 0) {
        if (a->npos != 1)
            return usage_error(cmd, "vectors %s takes no name", sub);
        if (strcmp(sub, "stale") == 0) /* no show function: prints the JSON */
            return send_json(ctx, "GET", "/vectors/stale", NULL, NULL);
        static const char *const headers[] = {"name",     "dataset",     "kind",
                                              "embedder", "docs",        "chunks",
                                              "state",    "stale_since", "problem"};
        list_view v = {"/vectors/indexes", "indexes", headers, 9, NULL, vector_cell};
        return print_list(ctx, &v);
    }
    if (strcmp(sub, "create") == 0)
        return vectors_create(ctx, cmd);
    if (strcmp(sub, "search") == 0) /* issue 14 item 4 */
        return vectors_search(ctx, cmd);
    if (a->npos != 2 || !valid_segment(a->pos[1]))
        return usage_error(cmd, "vectors %s needs a NAME", sub);
    if (strcmp(sub, "refresh") == 0) {
        char *path = lh_xasprintf("/vectors/refresh/%s", a->pos[1]);
        json_t *body = json_pack("{s:b}", "wait", !lh_cli_has_flag(a, "--no-wait"));
        int rc = send_json(ctx, "POST", path, body, show_vector_refresh);
        json_decref(body);
        free(path);
        return rc;
    }
    bool show = strcmp(sub, "show") == 0;
    if (!show && strcmp(sub, "delete") != 0)
        return usage_error(
            cmd,
            "unknown vectors command '%s' (create, list, show, delete, refresh, stale, search)",
            sub);
    char *path = lh_xasprintf("/vectors/indexes/%s", a->pos[1]);
    int rc = send_json(ctx, show ? "GET" : "DELETE", path, NULL,
                       show ? show_vector_index : show_deleted_vector_index);
    free(path);
    return rc;
}

/* ---------------------------------------------------------------- mcp-config (issue 15) */

static const lh_cli_flag_spec mcp_config_flags[] = {{"--url", true}, {NULL, false}};

/* Prints the JSON MCP hosts take (docs/AGENTS.md "Connecting an agent"). The key comes
 * from --key, else LH_API_KEY, else LH_KEY; never from the admin key file (admin keys
 * cannot use /mcp). Nothing is sent to the server. */
static int cmd_mcp_config(cli_ctx *ctx)
{
    const char *key = ctx->args->key;
    if (!key || !*key)
        key = getenv("LH_API_KEY");
    if (!key || !*key)
        key = getenv("LH_KEY");
    if (!key || !*key) {
        fprintf(stderr,
                "error: no API key: pass --key KEY or set LH_API_KEY (an agent or "
                "analyst key)\nusage: lakehouse %s\n",
                find_command("mcp-config")->usage);
        return LH_CLI_EXIT_USAGE;
    }
    const char *flag = lh_cli_flag(ctx->args, "--url");
    char *base = lh_client_resolve_server(flag ? flag : ctx->args->server);
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        base[--n] = '\0';
    /* --url may name the endpoint itself or the server */
    bool has_path = n >= 4 && strcmp(base + n - 4, "/mcp") == 0;
    char *url = lh_xasprintf("%s%s", base, has_path ? "" : "/mcp");
    json_t *doc = lh_mcp_host_config(url, key);
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", text);
    free(text);
    json_decref(doc);
    free(url);
    free(base);
    return LH_CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- help */

static int cmd_help(cli_ctx *ctx);

static const lh_cli_flag_spec no_flags[] = {{NULL, false}};

static const command commands[] = {
    {"serve", cmd_serve, serve_flags, 0, 0, false, "serve [--data DIR] [--listen HOST:PORT]",
     "run the server (data folder default ./data or LH_DATA, address 127.0.0.1:8470)"},
    {"ingest", cmd_ingest, ingest_flags, 1, 1, true,
     "ingest FILE --name NAME [--format csv|json|ndjson|parquet] "
     "[--mode create|replace|append] [--bucket BUCKET] [--encoding utf-8|utf-16|latin-1]",
     "load a file into a dataset (format from the extension unless given)"},
    /* issue 13: database syncs */
    {"ingest-db", cmd_ingest_db, ingest_db_flags, 1, 1, true,
     "ingest-db postgres|mysql (--source NAME | --dsn DSN|-) (--table T | --query Q) "
     "--dataset D [--mode create|replace|append] [--bucket B] "
     "[--incremental-column C [--key-column K]] [--no-wait]",
     "sync a database table or query into a dataset (\"--dsn -\" reads the DSN from stdin)"},
    {"sql", cmd_sql, sql_flags, 1, 1, true,
     "sql \"SELECT ...\" [--format json|csv|ndjson] "
     "[--limit N] [--purpose TEXT] [--trace-id ID]",
     "run a query (\"-\" reads it from stdin); csv and ndjson print the server's text"},
    {"datasets", cmd_datasets, no_flags, 0, 0, true, "datasets", "list the datasets"},
    {"buckets", cmd_buckets, no_flags, 0, 0, true, "buckets", "list the storage buckets"},
    {"keys", cmd_keys, keys_flags, 1, 2, true,
     "keys create NAME --role admin|analyst|agent|legal [--datasets A,B] [--profile P] "
     "[--attributes region=CO,...] | keys list | keys revoke NAME | "
     "keys attributes NAME --attributes region=CO,...",
     "manage API keys (admin): a new key is printed once"},
    {"profiles", cmd_profiles, profiles_flags, 1, 2, true,
     "profiles list | profiles show ID | profiles create ID --model M --bind A,B "
     "[--description D] [--bucket B] [--embed-model E] [--index-config JSON] | "
     "profiles delete ID",
     "manage model profiles: what agent keys bound to them may read"},
    {"events", cmd_events, events_flags, 0, 0, true, "events [--since SEQ] [--limit N]",
     "list the catalog's event journal (admin, legal), oldest first"},
    {"migrate-buckets", cmd_migrate_buckets, no_flags, 0, 0, true, "migrate-buckets",
     "rewrite manifests with empty or legacy bucket names to 'primary' (admin)"},
    {"views", cmd_views, views_flags, 1, 2, true,
     "views list | views show NAME | views delete NAME | views create NAME "
     "(--file SPEC.json | --base DATASET --columns A,B) [--filter SQL] "
     "[--redact col:hash,col:null,col:mask:P:S] [--description TEXT]",
     "manage AI-safe views (create/delete: admin); flags override the file's fields"},
    {"compact", cmd_compact, compact_flags, 1, 1, true, "compact NAME [--no-wait]",
     "merge a dataset's parts into one Parquet without its tombstoned rows (admin)"},
    {"tombstones", cmd_tombstones, tombstones_flags, 2, 3, true,
     "tombstones list NAME | tombstones add NAME --column C V1,V2 [--reason R] | "
     "tombstones remove NAME V1,V2",
     "erase rows by key until compaction, list or restore them (admin)"},
    {"retention-sweep", cmd_retention_sweep, lh_cli_retention_flags, 0, 0, false,
     "retention-sweep [--apply] [--as-of RFC3339] [--storage-root DIR] [--data DIR]",
     "offline: report subjects past a retention clock (general PII, biometric with BIPA's 3 "
     "years); --apply writes _catalog/subjects/_retention_sweep_<date>.jsonl"},
    {"subjects", cmd_subjects, subjects_flags, 1, 2, true,
     "subjects backfill DATASET [--id-column COLUMN] [--strip-prefix PREFIX]",
     "create subject manifests from a dataset's id column (admin; the prefix is stripped "
     "once)"},
    {"audit", cmd_audit, audit_flags, 1, 2, false,
     "audit verify ID|--all [--data DIR] [--root HEX] | audit verify-offline RESPONSE.json "
     "--pubkey FILE | audit known-answer",
     "offline: replay subjects' audit chains (key file LH_SUBJECT_AUDIT_KEY) naming the "
     "first bad row, check a signed legal response with the public key only, or print the "
     "known-answer row's canonical bytes and HMAC"},
    {"sources", cmd_sources, sources_flags, 1, 2, true,
     "sources add NAME --kind postgres|mysql --dsn DSN|- | sources list | sources show NAME | "
     "sources delete NAME",
     "manage named database sources (admin); \"--dsn -\" reads the DSN from stdin so the "
     "password stays out of shell history; listings show it redacted"},
    {"jobs", cmd_jobs, no_flags, 2, 2, true, "jobs show ID | jobs cancel ID",
     "show a background job's state and progress, or ask it to stop (admin: any job; other "
     "keys: their own)"},
    /* issue 14: vector indexes */
    {"vectors", cmd_vectors, vectors_flags, 1, 2, true,
     "vectors list | vectors show NAME | vectors delete NAME | vectors stale | "
     "vectors refresh DATASET [--no-wait] | vectors create NAME --dataset D --id-column C "
     "--text-column T [--kind hnsw|ivfpq|flat] [--embedder hash|ollama|openai] [--model M] "
     "[--dim N] [--chunk-size N] [--overlap N] [--refresh manual|on_append] [--params JSON] "
     "[--no-wait] | vectors search INDEX (--query TEXT | --vector JSON) [--k N] "
     "[--filter SQL] [--exact] [--chunks] [--profile ID] [--purpose P] [--trace-id T]",
     "manage vector indexes over a dataset's text column (create, delete, refresh: admin) "
     "and search them"},
    /* issue 15: agents over MCP */
    {"mcp-config", cmd_mcp_config, mcp_config_flags, 0, 0, false,
     "mcp-config [--key KEY] [--url URL]",
     "print the JSON an MCP host (Claude Code, Cursor, VS Code, ...) takes to connect an "
     "agent to this server's /mcp (key: --key, else LH_API_KEY)"},
    {"help", cmd_help, no_flags, 0, 1, false, "help [COMMAND]", "show this help"},
};

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static const lh_cli_flag_spec *command_flags(const char *name)
{
    const command *cmd = find_command(name);
    return cmd ? cmd->flags : NULL;
}

static void print_help(FILE *f)
{
    fprintf(f, "lakehouse %s: a governed lakehouse for people data\n\nusage:\n", LH_VERSION);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  lakehouse %s\n      %s\n", commands[i].usage, commands[i].summary);
    fprintf(f,
            "\nglobal options:\n"
            "  --server URL   server to talk to (default LH_SERVER or %s)\n"
            "  --key KEY      API key (default LH_KEY, else <LH_DATA or ./data>/_secrets/"
            "admin.key)\n"
            "  --json         print the server's JSON instead of a table\n"
            "  --help, -h     this help;  --version  the version\n",
            LH_CLI_DEFAULT_SERVER);
}

static int cmd_help(cli_ctx *ctx)
{
    const char *topic = ctx->args->npos ? ctx->args->pos[0] : NULL;
    const command *cmd = topic ? find_command(topic) : NULL;
    if (topic && !cmd) {
        fprintf(stderr, "error: unknown command '%s'\n\n", topic);
        print_help(stderr);
        return LH_CLI_EXIT_USAGE;
    }
    if (cmd)
        printf("usage: lakehouse %s\n  %s\n", cmd->usage, cmd->summary);
    else
        print_help(stdout);
    return LH_CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- entry point */

int lh_cli_main(int argc, char **argv)
{
    lh_cli_args args;
    lh_error err;
    cli_ctx ctx = {.args = &args};
    char *server = NULL, *key = NULL;
    int rc;

    if (lh_cli_parse(argc, argv, command_flags, &args, &err) != 0) {
        const command *cmd = args.command ? find_command(args.command) : NULL;
        fprintf(stderr, "error: %s\n", err.message);
        if (cmd)
            fprintf(stderr, "usage: lakehouse %s\n", cmd->usage);
        else
            print_help(stderr);
        return LH_CLI_EXIT_USAGE;
    }
    if (args.version) {
        printf("lakehouse %s\n", LH_VERSION);
        return LH_CLI_EXIT_OK;
    }
    if (!args.command) {
        print_help(args.help ? stdout : stderr);
        return args.help ? LH_CLI_EXIT_OK : LH_CLI_EXIT_USAGE;
    }
    const command *cmd = find_command(args.command);
    if (!cmd) {
        fprintf(stderr, "error: unknown command '%s'\n\n", args.command);
        print_help(stderr);
        return LH_CLI_EXIT_USAGE;
    }
    if (args.help) {
        printf("usage: lakehouse %s\n  %s\n", cmd->usage, cmd->summary);
        return LH_CLI_EXIT_OK;
    }
    if (args.npos < cmd->min_pos || args.npos > cmd->max_pos) {
        fprintf(stderr, "error: %s %s\nusage: lakehouse %s\n", cmd->name,
                args.npos < cmd->min_pos ? "is missing an argument" : "has too many arguments",
                cmd->usage);
        return LH_CLI_EXIT_USAGE;
    }

    if (cmd->needs_server) {
        server = lh_client_resolve_server(args.server);
        key = lh_client_resolve_key(args.key);
        ctx.has_key = key != NULL;
        ctx.client = lh_client_new(server, key, &err);
        if (!ctx.client) {
            rc = fail(&err);
            goto out;
        }
    }
    rc = cmd->run(&ctx);
out:
    lh_client_free(ctx.client);
    if (key) {
        memset(key, 0, strlen(key));
        free(key);
    }
    free(server);
    return rc;
}
