/*
 * safe_views.c: AI-safe views, the query engine's side: the row filter's check, the DDL
 * and the caller's attributes (docs/GOVERNANCE.md).
 *
 * A safe view `v` over dataset `people` is
 *   CREATE OR REPLACE VIEW "v" AS SELECT <projection> FROM (
 *   SELECT * FROM "people" WHERE (
 *   <row filter>
 *   )) AS lh_src
 * The inner statement is, byte for byte, the one the firewall checked
 * (lh_safe_view_filter_statement): parsed by DuckDB, it must be one SELECT * over the base
 * with a WHERE clause and no other clause, so a filter cannot close the parenthesis and
 * append a UNION, a LIMIT or a second FROM; and it passes the firewall with a policy that
 * allows the base alone, so it reads no other relation and calls only pure functions (plus
 * caller_attribute). The newlines around the filter end any `--` comment it holds before
 * our closing parenthesis. The view reads the base's dataset view (never __raw__), so the
 * base's tombstones apply through it.
 *
 * Redactions (the projection), NULL stays NULL in all three:
 *   hash  sha256(CAST(c AS VARCHAR)): lowercase hex SHA-256 of the value's text, the same
 *         on every server and restart, so joins on hashed ids work;
 *   mask  the first keep_prefix and last keep_suffix characters (code points: DuckDB's
 *         length/substr count characters, not bytes) kept, every other one a '*'; a value
 *         of at most keep_prefix + keep_suffix characters is starred whole;
 *   null  CASE WHEN false THEN c END: always NULL, with c's type (no type name to copy).
 *
 * Subject views (access auditing, lineage.c): when the base declares a subject_key_column
 * K, the view gets a hidden companion "__lhkey__<view>", the same SELECT plus
 * [CAST(lh_src.K AS VARCHAR)] AS __lh_key, created and dropped with it in one transaction.
 *
 * Caller attributes: a key's attributes reach DuckDB as variables lh_attr_<name>, set with
 * SET VARIABLE on the query's own connection (result.c opens one per query, so nothing
 * survives into another caller's query) before its statement is prepared; the macro
 * caller_attribute(name) reads getvariable('lh_attr_' || name), NULL when the caller has
 * no such attribute, so `region = caller_attribute('region')` is never true for it. User
 * SQL cannot set them (SET is not a SELECT: the firewall refuses it) nor read them
 * (getvariable and caller_attribute are refused in user SQL; functions.c, firewall.c).
 */
#include "query_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ATTR_VAR_PREFIX "lh_attr_"

char *lh_safe_view_filter_statement(const json_t *def)
{
    char *base = lh_sql_ident(lh_json_str(def, "base_dataset"));
    const char *filter = lh_json_str(def, "row_filter");
    char *sql = filter ? lh_xasprintf("SELECT * FROM %s WHERE (\n%s\n)", base, filter)
                       : lh_xasprintf("SELECT * FROM %s", base);
    free(base);
    return sql;
}

/* One projected column with its redaction into b. */
static void project_column(lh_buf *b, const char *col, const json_t *red)
{
    char *id = lh_sql_ident(col);
    const char *kind = lh_json_str(red, "kind");
    if (!kind) {
        lh_buf_puts(b, id);
    } else if (strcmp(kind, "hash") == 0) {
        lh_buf_printf(b, "sha256(CAST(%s AS VARCHAR)) AS %s", id, id);
    } else if (strcmp(kind, "mask") == 0) {
        long long p = (long long)lh_json_int(red, "keep_prefix", 0);
        long long s = (long long)lh_json_int(red, "keep_suffix", 0);
        char *v = lh_xasprintf("CAST(%s AS VARCHAR)", id);
        lh_buf_printf(b,
                      "CASE WHEN %s IS NULL THEN NULL "
                      "WHEN length(%s) <= %lld THEN repeat('*', length(%s)) "
                      "ELSE substr(%s, 1, %lld) || repeat('*', length(%s) - %lld) || "
                      "substr(%s, length(%s) - %lld + 1) END AS %s",
                      v, v, p + s, v, v, p, v, p + s, v, v, s, id);
        free(v);
    } else { /* null */
        lh_buf_printf(b, "CASE WHEN false THEN %s END AS %s", id, id);
    }
    free(id);
}

/* The view's SELECT; with key (the base's subject key column), the companion's: one more
 * column __lh_key = [CAST(lh_src.<key> AS VARCHAR)], read from the base row, so it holds
 * the raw key even when the view hashes, masks or omits that column. Caller frees. */
static char *view_select(const json_t *def, const char *key)
{
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_puts(&b, "SELECT ");
    const json_t *reds = json_object_get(def, "column_redactions");
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(def, "columns"), i, c)
    {
        if (i)
            lh_buf_puts(&b, ", ");
        project_column(&b, json_string_value(c), json_object_get(reds, json_string_value(c)));
    }
    if (key) {
        char *kid = lh_sql_ident(key);
        lh_buf_printf(&b, ", [CAST(lh_src.%s AS VARCHAR)] AS " LH_KEY_COLUMN, kid);
        free(kid);
    }
    char *inner = lh_safe_view_filter_statement(def);
    lh_buf_printf(&b, " FROM (\n%s\n) AS lh_src", inner);
    free(inner);
    return b.data;
}

char *lh_safe_view_select(const json_t *def)
{
    return view_select(def, NULL);
}

/* ---------------------------------------------------------------- the filter's check */

static lh_rel_access base_only(void *ctx, const char *relation)
{
    return strcasecmp((const char *)ctx, relation) == 0 ? LH_REL_ALLOW : LH_REL_DENY;
}

static bool empty_array(const json_t *node, const char *key)
{
    const json_t *v = json_object_get(node, key);
    return json_is_array(v) && json_array_size(v) == 0;
}

static bool null_field(const json_t *node, const char *key)
{
    const json_t *v = json_object_get(node, key);
    return !v || json_is_null(v);
}

/* The statement's shape: exactly SELECT * FROM "<base>" WHERE (...), nothing added. */
static bool plain_filter_shape(const json_t *doc, const char *base)
{
    const json_t *stmts = json_object_get(doc, "statements");
    if (json_array_size(stmts) != 1)
        return false;
    const json_t *n = json_object_get(json_array_get(stmts, 0), "node");
    const char *type = lh_json_str(n, "type");
    const json_t *sel = json_object_get(n, "select_list");
    const json_t *star = json_array_get(sel, 0);
    const json_t *from = json_object_get(n, "from_table");
    const char *agg = lh_json_str(n, "aggregate_handling");
    return type && strcmp(type, "SELECT_NODE") == 0 && empty_array(n, "modifiers") &&
           empty_array(json_object_get(n, "cte_map"), "map") && json_array_size(sel) == 1 &&
           lh_json_str(star, "class") && strcmp(lh_json_str(star, "class"), "STAR") == 0 &&
           null_field(star, "expr") && empty_array(star, "exclude_list") &&
           empty_array(star, "replace_list") && lh_json_str(from, "type") &&
           strcmp(lh_json_str(from, "type"), "BASE_TABLE") == 0 &&
           lh_json_str(from, "table_name") &&
           strcasecmp(lh_json_str(from, "table_name"), base) == 0 && null_field(from, "sample") &&
           !null_field(n, "where_clause") && empty_array(n, "group_expressions") &&
           empty_array(n, "group_sets") && agg && strcmp(agg, "STANDARD_HANDLING") == 0 &&
           null_field(n, "having") && null_field(n, "sample") && null_field(n, "qualify");
}

/* The check of one filter over base: the statement SELECT * FROM "<base>" WHERE (\n<filter>\n)
 * must pass the firewall with a policy that allows base alone (and caller_attribute when
 * allowed) and have the plain shape. Refusals are LH_EINVAL kind `kind`, their messages
 * starting with `what` ("row_filter", "filter"). */
static int filter_check(lh_engine *eng, const char *base, const char *filter,
                        bool allow_caller_attribute, const char *kind, const char *what,
                        lh_error *err)
{
    int rc = 0;
    char *rel = lh_sql_ident(base);
    char *stmt = lh_xasprintf("SELECT * FROM %s WHERE (\n%s\n)", rel, filter);
    char *lit = lh_sql_literal(stmt);
    char *probe = lh_xasprintf("SELECT json_serialize_sql(%s)", lit);
    json_t *res = lh_engine_query_json(eng, probe, err);
    json_t *doc = NULL;
    if (!res) {
        rc = err->code;
        goto out;
    }
    const char *text =
        json_string_value(json_array_get(json_array_get(json_object_get(res, "rows"), 0), 0));
    lh_sql_policy policy = {.allow_raw = false,
                            .may_read = base_only,
                            .ctx = (void *)base,
                            .allowed_hint = "a filter reads its base dataset only",
                            .allow_caller_attribute = allow_caller_attribute};
    lh_error why;
    if (!text || lh_sql_firewall_tree(text, &policy, &why) != 0) {
        rc = lh_error_setk(err, LH_EINVAL, kind,
                           "%s refused: %s (it must be one SQL boolean expression over "
                           "the columns of '%s')",
                           what, text ? why.message : "the parser returned nothing", base);
        goto out;
    }
    doc = json_loads(text, JSON_DECODE_INT_AS_REAL, NULL);
    if (!plain_filter_shape(doc, base))
        rc = lh_error_setk(err, LH_EINVAL, kind,
                           "%s refused: it must be one boolean expression, with no "
                           "clause of its own (no closing parenthesis followed by UNION, "
                           "GROUP BY, LIMIT, ...)",
                           what);
out:
    json_decref(doc);
    json_decref(res);
    free(probe);
    free(lit);
    free(stmt);
    free(rel);
    return rc;
}

int lh_safe_view_filter_check(lh_engine *eng, const json_t *def, lh_error *err)
{
    const char *filter = lh_json_str(def, "row_filter");
    if (!filter)
        return 0;
    return filter_check(eng, lh_json_str(def, "base_dataset"), filter, true, "bad_row_filter",
                        "row_filter", err);
}

int lh_sql_check_filter(lh_engine *eng, const char *dataset, const char *filter, lh_error *err)
{
    if (!filter || !*filter)
        return lh_error_setk(err, LH_EINVAL, "bad_filter",
                             "filter must be a non-empty SQL boolean expression");
    if (strlen(filter) > LH_SQL_FILTER_MAX)
        return lh_error_setk(err, LH_EINVAL, "bad_filter",
                             "filter is %zu bytes; the limit is %d bytes", strlen(filter),
                             LH_SQL_FILTER_MAX);
    return filter_check(eng, dataset, filter, false, "bad_filter", "filter", err);
}

/* ---------------------------------------------------------------- DDL */

int lh_safe_views_prelude(duckdb_connection conn, lh_error *err)
{
    return lh_duck_exec(conn,
                        "CREATE OR REPLACE MACRO caller_attribute(name) AS "
                        "getvariable('" ATTR_VAR_PREFIX "' || name)",
                        err);
}

/* CREATE OR REPLACE VIEW of def, or its companion ("__lhkey__<name>", key != NULL). */
static int create_one(duckdb_connection conn, const json_t *def, const char *key, lh_error *err)
{
    const char *name = lh_json_str(def, "name");
    char *rel = key ? lh_xasprintf(LH_KEY_PREFIX "%s", name) : lh_xstrdup(name);
    char *id = lh_sql_ident(rel);
    char *select = view_select(def, key);
    char *sql = lh_xasprintf("CREATE OR REPLACE VIEW %s AS %s", id, select);
    int rc = lh_duck_exec(conn, sql, err);
    free(sql);
    free(select);
    free(id);
    free(rel);
    return rc;
}

static int drop_one(duckdb_connection conn, const char *rel, lh_error *err)
{
    char *id = lh_sql_ident(rel);
    char *sql = lh_xasprintf("DROP VIEW IF EXISTS %s", id);
    int rc = lh_duck_exec(conn, sql, err);
    free(sql);
    free(id);
    return rc;
}

/* Ends the transaction begun before the statements that returned rc: COMMIT, or ROLLBACK
 * on any failure (conn then holds what it held before). */
static int end_transaction(duckdb_connection conn, int rc, lh_error *err)
{
    lh_error e;
    if (rc == 0 && (rc = lh_duck_exec(conn, "COMMIT", err)) == 0)
        return 0;
    if (lh_duck_exec(conn, "ROLLBACK", &e) != 0 && !strstr(e.message, "no transaction"))
        lh_log(LH_LOG_WARN, "view_rollback_failed", "{s:s}", "message", e.message);
    return rc;
}

int lh_safe_view_create(duckdb_connection conn, const json_t *def, const char *base_key,
                        lh_error *err)
{
    const char *name = lh_json_str(def, "name");
    int rc = lh_duck_exec(conn, "BEGIN TRANSACTION", err);
    if (rc != 0)
        return rc;
    rc = create_one(conn, def, NULL, err);
    if (rc == 0 && base_key) {
        rc = create_one(conn, def, base_key, err);
    } else if (rc == 0) {
        char *rel = lh_xasprintf(LH_KEY_PREFIX "%s", name);
        rc = drop_one(conn, rel, err);
        free(rel);
    }
    rc = end_transaction(conn, rc, err);
    if (rc)
        err->message[strcspn(err->message, "\n")] = '\0';
    return rc;
}

int lh_safe_view_drop(duckdb_connection conn, const char *name, lh_error *err)
{
    int rc = lh_duck_exec(conn, "BEGIN TRANSACTION", err);
    if (rc != 0)
        return rc;
    char *rel = lh_xasprintf(LH_KEY_PREFIX "%s", name);
    rc = drop_one(conn, name, err);
    if (rc == 0)
        rc = drop_one(conn, rel, err);
    free(rel);
    return end_transaction(conn, rc, err);
}

int lh_safe_view_set_attributes(duckdb_connection conn, const json_t *attrs, lh_error *err)
{
    if (!attrs || json_object_size(attrs) == 0)
        return 0;
    lh_buf b;
    lh_buf_init(&b);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)attrs, k, v)
    {
        char *var = lh_xasprintf(ATTR_VAR_PREFIX "%s", k);
        char *id = lh_sql_ident(var);
        char *lit = lh_sql_literal(json_string_value(v) ? json_string_value(v) : "");
        lh_buf_printf(&b, "SET VARIABLE %s = %s;", id, lit);
        free(lit);
        free(id);
        free(var);
    }
    int rc = lh_duck_exec(conn, b.data, err);
    lh_buf_free(&b);
    return rc;
}
