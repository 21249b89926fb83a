/*
 * tools.c: the MCP tools an agent calls (docs/AGENTS.md "Tools").
 *
 *   list_datasets     the relations the caller may read, described (no data: not audited)
 *   describe_dataset  one of them
 *   query_sql         one SELECT through the firewall and the agent rules, as a compact
 *                     table (columns + rows, truncated flag)
 *   get_record        one row by the relation's key column, through the relation the
 *                     profile binds (a safe view's redactions apply)
 *   search            vector search over the caller's searchable indexes (docs/VECTORS.md)
 *
 * Invariants:
 *   - One rule for who reads what: the caller's SQL policy (lh_sql_policy_for). Listings
 *     keep what may_read allows; every read of data runs through the query engine with
 *     that policy (firewall included), so no tool reaches a relation SQL could not.
 *   - Reads of data are audited exactly as POST /query/sql: an lh_access_audit per call
 *     (accessor with profile and model name, the purpose, the trace id), its sink handed
 *     to the engine (one audit row per subject before the rows can be read), a
 *     dataset-level record after the start (lh_access_record), an agent's refusal
 *     journaled (lh_access_record_denied). A trace that cannot be written fails the call
 *     (JSON-RPC internal error): nothing of the read reaches the model.
 *   - The model's mistakes are tool results with isError true and a message saying how
 *     to fix the call (MCP's rule: the model sees those, not protocol errors).
 *   - Purpose: a `purpose` argument of every tool that reads data, or params._meta
 *     ["lakehouse/purpose"]; required (agents cannot read without one, as with SQL).
 *     Trace id: params._meta["lakehouse/trace_id"], else 32 random hex characters; given
 *     back in the result's _meta either way.
 */
#include "agents_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_PURPOSE "lakehouse/purpose"
#define META_TRACE "lakehouse/trace_id"

typedef enum { T_LIST, T_DESCRIBE, T_QUERY, T_RECORD, T_SEARCH } tool_id;
typedef enum { A_STRING, A_INTEGER, A_KEY /* string or integer */ } arg_type;

typedef struct tool_arg {
    const char *name;
    arg_type type;
    bool required;
    const char *description;
} tool_arg;

typedef struct tool_def {
    tool_id id;
    const char *name, *title, *description;
    tool_arg args[6];
} tool_def;

#define PURPOSE_ARG                                                                                \
    {                                                                                              \
        "purpose", A_STRING, true,                                                                 \
            "Why you read this data (e.g. \"candidate_screening\"). Written into the audit row "   \
            "of "                                                                                  \
            "every person whose data you receive."                                                 \
    }

/* The one table: tools/list renders it, argument checks read it. */
static const tool_def tools[] = {
    {T_LIST,
     "list_datasets",
     "List datasets",
     "The datasets (and safe views) you may read: description, columns with their type, "
     "PII flag, PII kind, sensitivity and redaction, and the key column get_record uses. "
     "Start here.",
     {{0}}},
    {T_DESCRIBE,
     "describe_dataset",
     "Describe a dataset",
     "One dataset you may read, described as list_datasets does, with its row count and "
     "searchable indexes.",
     {{"name", A_STRING, true, "The dataset's name, as list_datasets shows it."}}},
    {T_QUERY,
     "query_sql",
     "Query with SQL",
     "Runs one read-only SQL SELECT (DuckDB dialect) over the datasets you may read and "
     "returns a compact table: columns, rows, row_count, truncated. Rows that hold "
     "people's data must carry their key column. Every person in the result is audited.",
     {{"sql", A_STRING, true,
       "One SELECT statement, e.g. SELECT name, city FROM people "
       "WHERE city = 'Lyon'."},
      PURPOSE_ARG,
      {"limit", A_INTEGER, false, "Rows returned at most (default and cap set by the server)."}}},
    {T_RECORD,
     "get_record",
     "Get one record",
     "One row of a dataset by its key column (see list_datasets' key_column), as the "
     "dataset you were given shows it: redacted columns stay redacted. The person is audited.",
     {{"dataset", A_STRING, true, "The dataset's name, as list_datasets shows it."},
      {"key", A_KEY, true, "The key's value, as the dataset shows it (string or integer)."},
      PURPOSE_ARG}},
    {T_SEARCH,
     "search",
     "Semantic search",
     "Vector search over the text of a dataset you may read: the documents closest in "
     "meaning to `query`, best first, optionally filtered by a SQL boolean expression over "
     "the dataset's columns. Every person among the hits is audited.",
     {{"query", A_STRING, true, "What to look for, in natural language."},
      PURPOSE_ARG,
      {"index", A_STRING, false,
       "The index to search (describe_dataset lists them); "
       "optional when you may search one index only."},
      {"k", A_INTEGER, false, "Hits wanted, 1..50 (default 10)."},
      {"filter", A_STRING, false,
       "A SQL boolean expression over the dataset's columns, "
       "e.g. city = 'Lyon'."}}},
};
#define N_TOOLS (sizeof(tools) / sizeof(tools[0]))
#define SEARCH_MAX_K 50

static size_t n_args(const tool_def *t)
{
    size_t n = 0;
    while (n < sizeof(t->args) / sizeof(t->args[0]) && t->args[n].name)
        n++;
    return n;
}

json_t *mcp_tools_list(const lh_mcp *m)
{
    json_t *out = json_array();
    for (size_t i = 0; i < N_TOOLS; i++) {
        const tool_def *t = &tools[i];
        if (t->id == T_SEARCH && !m->mc.vectors)
            continue;
        json_t *props = json_object(), *req = json_array();
        for (size_t a = 0; a < n_args(t); a++) {
            const tool_arg *g = &t->args[a];
            json_t *p = json_pack("{s:s}", "description", g->description);
            if (g->type == A_STRING) {
                json_object_set_new(p, "type", json_string("string"));
                json_object_set_new(p, "minLength", json_integer(1));
            } else if (g->type == A_INTEGER) {
                json_object_set_new(p, "type", json_string("integer"));
                json_object_set_new(p, "minimum", json_integer(1));
                if (strcmp(g->name, "limit") == 0)
                    json_object_set_new(p, "maximum", json_integer(m->mc.cfg->mcp_max_rows));
                else if (strcmp(g->name, "k") == 0)
                    json_object_set_new(p, "maximum", json_integer(SEARCH_MAX_K));
            } else {
                json_object_set_new(p, "type", json_pack("[s,s]", "string", "integer"));
            }
            json_object_set_new(props, g->name, p);
            if (g->required)
                json_array_append_new(req, json_string(g->name));
        }
        json_t *schema = json_pack("{s:s,s:o,s:o,s:b}", "type", "object", "properties", props,
                                   "required", req, "additionalProperties", 0);
        json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:o,s:{s:b,s:b}}", "name", t->name,
                                             "title", t->title, "description", t->description,
                                             "inputSchema", schema, "annotations", "readOnlyHint",
                                             1, "openWorldHint", 0));
    }
    return out;
}

/* ---------------------------------------------------------------- results */

/* A CallToolResult: structured as text (for every client) and structuredContent. Steals
 * structured. */
static json_t *tool_ok(json_t *structured, const char *trace_id)
{
    char *text = json_dumps(structured, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_t *r = json_pack("{s:[{s:s,s:s}],s:o,s:b}", "content", "type", "text", "text",
                          text ? text : "{}", "structuredContent", structured, "isError", 0);
    free(text);
    if (trace_id)
        json_object_set_new(r, "_meta", json_pack("{s:s}", META_TRACE, trace_id));
    return r;
}

/* A tool error the model reads: "<message>" (and the error's kind, for programs). */
static json_t *tool_error(const lh_error *err, const char *trace_id)
{
    json_t *r = json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text", err->message,
                          "isError", 1);
    json_t *meta = json_pack("{s:s}", "lakehouse/error", lh_error_kind(err));
    if (trace_id)
        json_object_set_new(meta, META_TRACE, json_string(trace_id));
    json_object_set_new(r, "_meta", meta);
    return r;
}

/* ---------------------------------------------------------------- relations */

/* The column entries of a manifest by name (case-insensitive), or NULL. Borrowed. */
static const json_t *manifest_column(const json_t *manifest, const char *name)
{
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(manifest, "columns"), i, c)
    {
        const char *n = lh_json_str(c, "name");
        if (n && strcasecmp(n, name) == 0)
            return c;
    }
    return NULL;
}

/* {name, type, is_pii, pii_kind, sensitivity, description} of one manifest column, with
 * the redaction a view applies (NULL: none). */
static json_t *column_entry(const json_t *col, const char *name, const char *redaction)
{
    const char *type = lh_json_str(col, "type");
    if (redaction && (strcmp(redaction, "hash") == 0 || strcmp(redaction, "mask") == 0))
        type = "VARCHAR";
    json_t *e = json_pack("{s:s,s:s,s:b}", "name", name, "type", type ? type : "", "is_pii",
                          json_is_true(json_object_get(col, "is_pii")));
    const char *kind = lh_json_str(col, "pii_kind");
    json_object_set_new(e, "pii_kind", kind ? json_string(kind) : json_null());
    const char *sens = lh_json_str(col, "sensitivity");
    json_object_set_new(e, "sensitivity", json_string(sens ? sens : "None"));
    const char *desc = lh_json_str(col, "description");
    if (desc && *desc)
        json_object_set_new(e, "description", json_string(desc));
    if (redaction)
        json_object_set_new(e, "redaction", json_string(redaction));
    return e;
}

/* A dataset or view as the caller may know it; NULL when it vanished meanwhile. Agents do
 * not learn a view's base (they cannot read it). */
static json_t *describe(lh_mcp *m, const lh_principal *who, const char *name, bool detailed)
{
    lh_error ignored;
    lh_catalog *cat = m->mc.cat;
    json_t *out = NULL, *base = NULL, *view = NULL, *tombs = NULL;
    lh_relation_kind kind = lh_catalog_relation_kind(cat, name);
    if (kind == LH_RELATION_DATASET) {
        base = lh_catalog_get(cat, name, &ignored);
    } else if (kind == LH_RELATION_VIEW) {
        view = lh_catalog_view_get(cat, name, &ignored);
        base = view ? lh_catalog_get(cat, lh_json_str(view, "base_dataset"), &ignored) : NULL;
    }
    if (!base)
        goto out;
    const json_t *src = view ? view : base;
    const char *desc = lh_json_str(src, "description");
    if ((!desc || !*desc) && view)
        desc = lh_json_str(base, "description");
    out = json_pack("{s:s,s:s,s:s}", "name", lh_json_str(src, "name"), "kind",
                    view ? "view" : "dataset", "description", desc ? desc : "");
    /* The key: the subject key column, else the column the dataset's tombstones (and a
     * keyed sync's upserts) use. */
    const char *subject_key = lh_json_str(base, "subject_key_column"), *key = subject_key;
    if (!key) {
        tombs = lh_catalog_tombstones(cat, lh_json_str(base, "name"), &ignored);
        key = lh_json_str(tombs, "key_column");
    }
    const char *key_out = NULL;
    json_t *cols = json_array();
    if (view) {
        const json_t *red = json_object_get(view, "column_redactions");
        size_t i;
        const json_t *c;
        json_array_foreach(json_object_get(view, "columns"), i, c)
        {
            const char *cn = json_string_value(c);
            const json_t *mc = manifest_column(base, cn);
            json_array_append_new(
                cols, column_entry(mc, cn, lh_json_str(json_object_get(red, cn), "kind")));
            if (key && strcasecmp(cn, key) == 0)
                key_out = cn;
        }
        json_object_set_new(out, "rows_filtered", json_boolean(lh_json_str(view, "row_filter")));
        if (who->role != LH_ROLE_AGENT)
            json_object_set_new(out, "base_dataset", json_string(lh_json_str(base, "name")));
    } else {
        size_t i;
        const json_t *c;
        json_array_foreach(json_object_get(base, "columns"), i, c)
            json_array_append_new(cols, column_entry(c, lh_json_str(c, "name"), NULL));
        key_out = key;
    }
    json_object_set_new(out, "key_column", key_out ? json_string(key_out) : json_null());
    json_object_set_new(out, "holds_personal_data", json_boolean(subject_key != NULL));
    json_object_set_new(out, "columns", cols);
    if (detailed) {
        const char *sens = lh_json_str(base, "sensitivity");
        json_object_set_new(out, "sensitivity", json_string(sens ? sens : "None"));
        if (!view)
            json_object_set_new(out, "row_count", json_integer(lh_json_int(base, "row_count", 0)));
        const char *upd = lh_json_str(base, "updated_at");
        if (upd)
            json_object_set_new(out, "updated_at", json_string(upd));
    }
out:
    json_decref(base);
    json_decref(view);
    json_decref(tombs);
    return out;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

json_t *mcp_relations(lh_mcp *m, const lh_principal *who)
{
    lh_sql_policy *policy = lh_sql_policy_for(m->mc.cat, who);
    json_t *datasets = lh_catalog_list(m->mc.cat), *views = lh_catalog_views_list(m->mc.cat);
    size_t n = json_array_size(datasets) + json_array_size(views), k = 0;
    char **names = lh_xcalloc(n ? n : 1, sizeof(char *));
    json_t *lists[2] = {datasets, views};
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *e;
        json_array_foreach(lists[l], i, e)
        {
            const char *name = lh_json_str(e, "name");
            if (name && policy->may_read(policy->ctx, name) == LH_REL_ALLOW)
                names[k++] = lh_xstrdup(name);
        }
    }
    qsort(names, k, sizeof(char *), cmp_name);
    json_t *out = json_array();
    for (size_t i = 0; i < k; i++) {
        json_t *d = describe(m, who, names[i], false);
        if (d)
            json_array_append_new(out, d);
        free(names[i]);
    }
    free(names);
    json_decref(datasets);
    json_decref(views);
    lh_sql_policy_free(policy);
    return out;
}

/* 0 when who may read name; else LH_ENOTFOUND / LH_EFORBIDDEN naming what is allowed. */
static int check_readable(lh_mcp *m, const lh_principal *who, const char *name, lh_error *err)
{
    if (lh_name_validate(name, "dataset name", NULL) != 0 && who->role != LH_ROLE_AGENT)
        return lh_error_setk(err, LH_ENOTFOUND, "unknown_dataset",
                             "'%s' is not a dataset name; call list_datasets for the names", name);
    lh_sql_policy *policy = lh_sql_policy_for(m->mc.cat, who);
    lh_rel_access a = policy->may_read(policy->ctx, name);
    int rc = 0;
    if (a == LH_REL_DENY)
        rc = lh_error_setk(err, LH_EFORBIDDEN, "dataset_forbidden",
                           "dataset '%s' is not readable with this key (%s); call list_datasets "
                           "for what you may read",
                           name, policy->allowed_hint);
    else if (a == LH_REL_UNKNOWN)
        rc = lh_error_setk(err, LH_ENOTFOUND, "unknown_dataset",
                           "no dataset named '%s'; call list_datasets for the names", name);
    lh_sql_policy_free(policy);
    return rc;
}

json_t *mcp_relation_describe(lh_mcp *m, const lh_principal *who, const char *name, lh_error *err)
{
    if (check_readable(m, who, name, err) != 0)
        return NULL;
    json_t *d = describe(m, who, name, true);
    if (!d) {
        lh_error_setk(err, LH_ENOTFOUND, "unknown_dataset",
                      "no dataset named '%s'; call list_datasets for the names", name);
        return NULL;
    }
    if (m->mc.vectors) {
        json_t *searchable = lh_vectors_searchable(m->mc.vectors, who), *mine = json_array();
        size_t i;
        json_t *ix;
        json_array_foreach(searchable, i, ix)
        {
            lh_error ignored;
            json_t *def = lh_vectors_get(m->mc.vectors, json_string_value(ix), &ignored);
            if (def && strcasecmp(lh_json_str(def, "dataset") ? lh_json_str(def, "dataset") : "",
                                  lh_json_str(d, "name")) == 0)
                json_array_append_new(mine, json_pack("{s:s,s:s}", "index", json_string_value(ix),
                                                      "text_column",
                                                      lh_json_str(def, "text_column")
                                                          ? lh_json_str(def, "text_column")
                                                          : ""));
            json_decref(def);
        }
        json_decref(searchable);
        json_object_set_new(d, "search_indexes", mine);
    }
    return d;
}

void mcp_record_metadata_denial(lh_mcp *m, const lh_principal *who, const char *what,
                                const char *name, const lh_error *denial)
{
    if (who->role != LH_ROLE_AGENT || denial->code != LH_EFORBIDDEN)
        return;
    json_t *details =
        json_pack("{s:s,s:s,s:s,s:s,s:[s]}", "kind", "denied", "role", lh_role_name(who->role),
                  "via", what, "error", lh_error_kind(denial), "datasets", name);
    json_object_set_new(details, "message", json_string(denial->message));
    if (who->profile)
        json_object_set_new(details, "profile", json_string(who->profile));
    lh_error err;
    if (lh_catalog_record(m->mc.cat, who->name, LH_ACCESS_DENIED_ACTION, "", details, &err) != 0)
        lh_log(LH_LOG_ERROR, "mcp.denial_not_recorded", "{s:s,s:s}", "actor", who->name, "message",
               err.message);
}

/* ---------------------------------------------------------------- calls */

struct mcp_tool_call {
    lh_mcp *m;
    const lh_principal *who; /* borrowed: valid for the request */
    const tool_def *tool;
    char trace_id[LH_ACCESS_HEADER_MAX + 1];
    lh_access_audit *access; /* the sink's context (opts.sink_ctx) */
    lh_query_opts opts;
    lh_query *q; /* holds the query slot (query_sql, get_record, search) */
    char *sql;   /* what runs (the caller's, or ours for get_record) */
    char *relation, *key_column;
    /* search */
    char *index, *text, *filter;
    size_t k;
};

bool mcp_tool_call_holds_slot(const mcp_tool_call *c)
{
    return c->q != NULL;
}

void mcp_tool_call_free(mcp_tool_call *c)
{
    if (!c)
        return;
    lh_query_free(c->q); /* before the context its sink uses */
    lh_access_audit_free(c->access);
    free(c->sql);
    free(c->relation);
    free(c->key_column);
    free(c->index);
    free(c->text);
    free(c->filter);
    free(c);
}

/* Checks arguments against the tool's table: unknown names, missing required ones, wrong
 * types; purpose may come from _meta. Messages say how to fix the call. */
static int check_args(const tool_def *t, const json_t *args, const json_t *meta, lh_error *err)
{
    const char *k;
    const json_t *v;
    lh_buf names;
    lh_buf_init(&names);
    for (size_t a = 0; a < n_args(t); a++)
        lh_buf_printf(&names, "%s%s", a ? ", " : "", t->args[a].name);
    lh_buf_putc(&names, '\0');
    int rc = 0;
    json_object_foreach((json_t *)args, k, v)
    {
        const tool_arg *g = NULL;
        for (size_t a = 0; a < n_args(t) && !g; a++)
            if (strcmp(t->args[a].name, k) == 0)
                g = &t->args[a];
        if (!g) {
            rc = lh_error_setk(err, LH_EINVAL, "invalid_arguments",
                               "%s has no argument '%s' (arguments: %s)", t->name, k,
                               n_args(t) ? names.data : "none");
            goto out;
        }
        bool ok = g->type == A_STRING ? json_is_string(v) && json_string_length(v) > 0
                  : g->type == A_INTEGER
                      ? json_is_integer(v) && json_integer_value(v) >= 1
                      : (json_is_string(v) && json_string_length(v) > 0) || json_is_integer(v);
        if (!ok) {
            rc = lh_error_setk(err, LH_EINVAL, "invalid_arguments", "%s: '%s' must be %s", t->name,
                               k,
                               g->type == A_STRING    ? "a non-empty string"
                               : g->type == A_INTEGER ? "a positive integer"
                                                      : "a string or an integer");
            goto out;
        }
    }
    for (size_t a = 0; a < n_args(t); a++) {
        const tool_arg *g = &t->args[a];
        if (!g->required || json_object_get(args, g->name))
            continue;
        if (strcmp(g->name, "purpose") == 0 && lh_json_str(meta, META_PURPOSE))
            continue;
        rc = lh_error_setk(err, LH_EINVAL,
                           strcmp(g->name, "purpose") == 0 ? "purpose_required"
                                                           : "invalid_arguments",
                           "%s needs the argument '%s': %s", t->name, g->name, g->description);
        goto out;
    }
out:
    lh_buf_free(&names);
    return rc;
}

/* The audit context of a data read: purpose from the arguments (else _meta), the trace
 * id already chosen. */
static lh_access_audit *access_for(mcp_tool_call *c, const json_t *args, const json_t *meta,
                                   lh_error *err)
{
    const char *purpose = lh_json_str(args, "purpose");
    if (!purpose)
        purpose = lh_json_str(meta, META_PURPOSE);
    lh_access_audit *a =
        lh_access_audit_new(c->m->mc.audit, c->m->mc.cat, c->who, purpose, c->trace_id, err);
    /* compliance's messages name the HTTP headers; say it in the tool's words */
    if (!a && strcmp(lh_error_kind(err), "invalid_header") == 0)
        lh_error_setk(err, LH_EINVAL, "invalid_arguments",
                      "purpose and _meta[\"%s\"] must be valid UTF-8 of at most %d bytes",
                      META_TRACE, LH_ACCESS_HEADER_MAX);
    return a;
}

/* Takes the query slot and sets the audit sink; the read runs in mcp_tool_finish. */
static int open_read(mcp_tool_call *c, int64_t max_rows, lh_error *err)
{
    const lh_config *cfg = c->m->mc.cfg;
    c->opts = (lh_query_opts){.format = LH_FORMAT_JSON,
                              .max_rows = max_rows,
                              .timeout_ms = cfg->query_timeout_ms,
                              .sink = lh_access_audit_sink(c->access),
                              .sink_ctx = c->access};
    c->q = lh_query_open(c->m->mc.eng, &c->opts, err);
    if (!c->q && err->code == LH_EBUSY)
        lh_error_setk(err, LH_EBUSY, "busy",
                      "the server is running its maximum of %d queries; retry in a second",
                      cfg->max_concurrent_queries);
    return c->q ? 0 : err->code;
}

static int begin_query(mcp_tool_call *c, const json_t *args, lh_error *err)
{
    const lh_config *cfg = c->m->mc.cfg;
    const char *sql = lh_json_str(args, "sql");
    if ((int64_t)strlen(sql) > cfg->max_sql_bytes)
        return lh_error_setk(err, LH_EINVAL, "invalid_arguments",
                             "the SQL is %zu bytes; the limit is %lld bytes: send a shorter "
                             "statement",
                             strlen(sql), (long long)cfg->max_sql_bytes);
    int64_t limit = lh_json_int(args, "limit", 0);
    int64_t dflt =
        cfg->query_default_rows < cfg->mcp_max_rows ? cfg->query_default_rows : cfg->mcp_max_rows;
    if (limit > cfg->mcp_max_rows)
        return lh_error_setk(err, LH_EINVAL, "limit_too_large",
                             "query_sql: limit %lld is over the cap of %lld rows; ask for at "
                             "most %lld rows, or aggregate in SQL",
                             (long long)limit, (long long)cfg->mcp_max_rows,
                             (long long)cfg->mcp_max_rows);
    c->sql = lh_xstrdup(sql);
    return open_read(c, limit ? limit : dflt, err);
}

/* get_record's statement over the relation the caller was given: the key compared as
 * text, so "42" finds 42 and a view's hashed or masked key finds its rows as shown. */
static int begin_record(mcp_tool_call *c, const json_t *args, lh_error *err)
{
    const char *rel = lh_json_str(args, "dataset");
    int rc = check_readable(c->m, c->who, rel, err);
    if (rc != 0)
        return rc;
    json_t *d = describe(c->m, c->who, rel, false);
    const char *key = d ? lh_json_str(d, "key_column") : NULL;
    if (!key) {
        rc = lh_error_setk(err, LH_EINVAL, "no_key_column",
                           "dataset '%s' has no key column, so get_record cannot find one row "
                           "in it; use query_sql with a WHERE clause",
                           rel);
        json_decref(d);
        return rc;
    }
    c->relation = lh_xstrdup(lh_json_str(d, "name"));
    c->key_column = lh_xstrdup(key);
    json_decref(d);
    const json_t *kv = json_object_get(args, "key");
    char num[32];
    const char *text = json_string_value(kv);
    if (!text) {
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(kv));
        text = num;
    }
    char *ident = lh_sql_ident(c->relation), *col = lh_sql_ident(c->key_column);
    char *lit = lh_sql_literal(text);
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_printf(&b, "SELECT * FROM %s WHERE CAST(%s AS VARCHAR) = %s", ident, col, lit);
    c->sql = b.data;
    free(ident);
    free(col);
    free(lit);
    return open_read(c, 1, err);
}

static int begin_search(mcp_tool_call *c, const json_t *args, lh_error *err)
{
    int64_t k = lh_json_int(args, "k", 10);
    if (k > SEARCH_MAX_K)
        return lh_error_setk(err, LH_EINVAL, "invalid_arguments", "search: k is at most %d",
                             SEARCH_MAX_K);
    c->k = (size_t)k;
    c->text = lh_xstrdup(lh_json_str(args, "query"));
    const char *f = lh_json_str(args, "filter");
    c->filter = f ? lh_xstrdup(f) : NULL;
    json_t *mine = lh_vectors_searchable(c->m->mc.vectors, c->who);
    const char *ix = lh_json_str(args, "index");
    int rc = 0;
    if (!ix && json_array_size(mine) == 1) {
        ix = json_string_value(json_array_get(mine, 0));
    } else if (!ix) {
        char *names = lh_json_dumps(mine);
        rc = lh_error_setk(err, LH_EINVAL, "invalid_arguments",
                           json_array_size(mine)
                               ? "search needs the argument 'index': one of %s"
                               : "there is no index you may search (%s); use query_sql",
                           names);
        free(names);
        goto out;
    }
    c->index = lh_xstrdup(ix);
out:
    json_decref(mine);
    return rc;
}

int mcp_tool_begin(lh_mcp *m, const lh_principal *who, const json_t *params, json_t **result,
                   mcp_tool_call **pending, lh_error *err)
{
    *result = NULL;
    *pending = NULL;
    const char *name = lh_json_str(params, "name");
    const json_t *args = json_object_get(params, "arguments");
    const json_t *meta = json_object_get(params, "_meta");
    if (!name) {
        lh_error_set(err, MCP_INVALID_PARAMS, "tools/call needs params.name: a tool name");
        return MCP_INVALID_PARAMS;
    }
    const tool_def *t = NULL;
    for (size_t i = 0; i < N_TOOLS && !t; i++)
        if (strcmp(tools[i].name, name) == 0 && (tools[i].id != T_SEARCH || m->mc.vectors))
            t = &tools[i];
    if (!t) {
        lh_error_set(err, MCP_INVALID_PARAMS, "unknown tool '%s' (tools/list names them)", name);
        return MCP_INVALID_PARAMS;
    }
    if (args && !json_is_object(args)) {
        lh_error_set(err, MCP_INVALID_PARAMS, "params.arguments must be an object");
        return MCP_INVALID_PARAMS;
    }
    json_t *empty = args ? NULL : json_object();
    if (!args)
        args = empty;
    mcp_tool_call *c = lh_xcalloc(1, sizeof(*c));
    c->m = m;
    c->who = who;
    c->tool = t;
    const char *trace = lh_json_str(meta, META_TRACE);
    if (trace && *trace && strlen(trace) <= LH_ACCESS_HEADER_MAX)
        snprintf(c->trace_id, sizeof(c->trace_id), "%s", trace);
    else
        lh_random_hex(c->trace_id, 32);
    lh_error e;
    int rc = check_args(t, args, meta, &e);
    if (rc == 0 && t->id == T_LIST) {
        *result = tool_ok(json_pack("{s:o}", "datasets", mcp_relations(m, who)), c->trace_id);
        goto out;
    }
    if (rc == 0 && t->id == T_DESCRIBE) {
        const char *rel = lh_json_str(args, "name");
        json_t *d = mcp_relation_describe(m, who, rel, &e);
        if (d) {
            *result = tool_ok(json_pack("{s:o}", "dataset", d), c->trace_id);
            goto out;
        }
        mcp_record_metadata_denial(m, who, "mcp.describe_dataset", rel, &e);
        rc = e.code;
    }
    if (rc == 0 && !(c->access = access_for(c, args, meta, &e)))
        rc = e.code;
    if (rc == 0) {
        rc = t->id == T_QUERY    ? begin_query(c, args, &e)
             : t->id == T_RECORD ? begin_record(c, args, &e)
                                 : begin_search(c, args, &e);
        /* An agent's refusal is journaled like a firewall refusal of its SQL. */
        if (rc == LH_EFORBIDDEN) {
            lh_error rec;
            char what[600];
            snprintf(what, sizeof(what), "mcp %s %s", t->name,
                     lh_json_str(args, "dataset") ? lh_json_str(args, "dataset") : "");
            if (lh_access_record_denied(c->access, what, &e, &rec) != 0)
                lh_log(LH_LOG_ERROR, "mcp.denial_not_recorded", "{s:s,s:s}", "actor", who->name,
                       "message", rec.message);
        }
    }
    if (rc == 0) {
        *pending = c;
        c = NULL;
        goto out;
    }
    *result = tool_error(&e, c->trace_id);
out:
    json_decref(empty);
    mcp_tool_call_free(c);
    return 0;
}

/* ---------------------------------------------------------------- the read, on the pool */

/* Whether an error of a read is the server's (the call fails) or the model's to fix. */
static bool server_fault(const lh_error *e)
{
    return e->code == LH_EIO || e->code == LH_EINTERNAL || e->code == LH_EUNAVAILABLE;
}

/* Runs the statement with the caller's policy and reads the whole (capped) result. 0 with
 * *table (the engine's JSON: columns, rows, row_count, truncated), or the error. */
static int run_read(mcp_tool_call *c, json_t **table, lh_error *err)
{
    *table = NULL;
    lh_sql_policy *policy = lh_sql_policy_for(c->m->mc.cat, c->who);
    c->opts.policy = policy;
    int rc = lh_query_run(c->q, c->sql, &c->opts, err);
    c->opts.policy = NULL;
    lh_sql_policy_free(policy);
    if (rc != 0) {
        lh_error rec;
        if (lh_access_record_denied(c->access, c->sql, err, &rec) != 0)
            lh_log(LH_LOG_ERROR, "mcp.denial_not_recorded", "{s:s,s:s}", "actor", c->who->name,
                   "message", rec.message);
        return rc;
    }
    if ((rc = lh_access_record(c->access, lh_query_access(c->q), err)) != 0)
        return rc;
    lh_buf b;
    lh_buf_init(&b);
    char chunk[16384];
    ssize_t n;
    while ((n = lh_query_read(c->q, chunk, sizeof(chunk))) > 0)
        lh_buf_append(&b, chunk, (size_t)n);
    lh_error perr;
    json_t *doc = n < 0 ? NULL : lh_json_parse_object(b.data, b.len, &perr);
    lh_buf_free(&b);
    const json_t *tail = json_object_get(doc, "error");
    if (!doc || tail) {
        const lh_error *qe = lh_query_error(c->q);
        if (qe && qe->code)
            *err = *qe;
        else
            lh_error_setk(err, LH_EINTERNAL, "query_failed", "the query failed: %s",
                          tail ? lh_json_str(tail, "message") : "unreadable result");
        json_decref(doc);
        return err->code;
    }
    *table = doc;
    return 0;
}

/* {columns: [names], rows, row_count, truncated} from the engine's JSON. */
static json_t *compact_table(json_t *doc)
{
    json_t *names = json_array();
    size_t i;
    json_t *col;
    json_array_foreach(json_object_get(doc, "columns"), i, col)
        json_array_append_new(names, json_string(lh_json_str(col, "name")));
    json_t *rows = json_object_get(doc, "rows");
    return json_pack("{s:o,s:O,s:I,s:b}", "columns", names, "rows", rows ? rows : json_array(),
                     "row_count", (json_int_t)json_array_size(rows), "truncated",
                     json_is_true(json_object_get(doc, "truncated")));
}

static int finish_search(mcp_tool_call *c, json_t **out, lh_error *err)
{
    lh_sql_policy *policy = lh_sql_policy_for(c->m->mc.cat, c->who);
    lh_vector_query vq = {.text = c->text, .k = c->k, .filter = c->filter};
    lh_vector_caller caller = {.who = c->who,
                               .policy = policy,
                               .sink = lh_access_audit_sink(c->access),
                               .sink_ctx = c->access};
    json_t *access = NULL;
    int rc = lh_vectors_search(c->m->mc.vectors, c->index, &vq, &caller, out, &access, err);
    lh_sql_policy_free(policy);
    json_decref(access);
    if (rc != 0) {
        lh_error rec;
        char what[600];
        snprintf(what, sizeof(what), "mcp search %s", c->index);
        if (lh_access_record_denied(c->access, what, err, &rec) != 0)
            lh_log(LH_LOG_ERROR, "mcp.denial_not_recorded", "{s:s,s:s}", "actor", c->who->name,
                   "message", rec.message);
    }
    return rc;
}

int mcp_tool_finish(mcp_tool_call *c, json_t **result, lh_error *err)
{
    *result = NULL;
    json_t *doc = NULL, *structured = NULL;
    lh_error e;
    int rc;
    if (c->tool->id == T_SEARCH) {
        rc = finish_search(c, &structured, &e);
    } else {
        rc = run_read(c, &doc, &e);
        if (rc == 0 && c->tool->id == T_QUERY) {
            structured = compact_table(doc);
        } else if (rc == 0) {
            json_t *row = json_array_get(json_object_get(doc, "rows"), 0);
            json_t *rec = json_null();
            if (row) {
                rec = json_object();
                size_t i;
                json_t *col;
                json_array_foreach(json_object_get(doc, "columns"), i, col)
                    json_object_set(rec, lh_json_str(col, "name"), json_array_get(row, i));
            }
            structured = json_pack("{s:s,s:s,s:b,s:o,s:b}", "dataset", c->relation, "key_column",
                                   c->key_column, "found", row != NULL, "record", rec,
                                   "more_rows_with_this_key",
                                   json_is_true(json_object_get(doc, "truncated")));
        }
    }
    json_decref(doc);
    /* Done with DuckDB: the slot goes back before the reply is rendered. */
    lh_query_free(c->q);
    c->q = NULL;
    if (rc != 0 && server_fault(&e)) {
        *err = e;
        return MCP_INTERNAL_ERROR;
    }
    *result = rc == 0 ? tool_ok(structured, c->trace_id) : tool_error(&e, c->trace_id);
    return 0;
}
