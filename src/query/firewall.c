/*
 * firewall.c: decides whether a user's SQL may run, before DuckDB executes anything.
 *
 * The statement is parsed by DuckDB's own parser (json_serialize_sql, with the SQL passed
 * as a string literal, so it is data to the parser, never code) and the resulting tree is
 * walked in full. Rules:
 *   - exactly one statement, and it must be a SELECT (WITH, UNION, subqueries allowed):
 *     anything else does not serialize ("Only SELECT statements ...") and is refused;
 *   - every base-table reference must be a CTE in scope, or a relation the policy says the
 *     caller may read (a dataset the caller may see; __raw__<name> only when allow_raw).
 *     That excludes DuckDB's built-in views (duckdb_tables, sqlite_master, ...), schema-
 *     or catalog-qualified names (information_schema.tables, memory.main.x) and
 *     replacement scans of files (FROM '/etc/passwd');
 *   - CTE scoping is resolved conservatively: a CTE's body sees only the CTEs defined
 *     before it, the main query all of them. A recursive CTE sees itself only in its
 *     recursive part (the right side of its UNION): in the anchor (the left side) DuckDB's
 *     binder resolves the name to the real relation, so `WITH RECURSIVE secret AS
 *     (SELECT * FROM secret UNION ...)` reads the table `secret`. A name treated as a
 *     table when DuckDB would treat it as a CTE only costs a false refusal; the reverse
 *     would be a leak, and cannot happen under these rules;
 *   - functions are checked against an ALLOW-list (functions.c: every name of DuckDB's
 *     catalog of functions, classified by us; anything else is refused): scalar,
 *     aggregate, macro and window calls must be classified pure; table functions (FROM)
 *     only range, generate_series and unnest. A function may be qualified only with
 *     DuckDB's own schemas (main, pg_catalog), where every listed name lives;
 *   - caller_attribute('name') (AI-safe views, safe_views.c) only when the policy allows
 *     it, which only the check of a view's row filter does, and with one constant
 *     argument; in user SQL it is refused like getvariable, which it wraps;
 *   - SHOW_REF (DESCRIBE/SUMMARIZE) only over a checked query; a named SHOW_REF is one
 *     of DuckDB's listings (SHOW TABLES, SHOW ALL TABLES, SHOW DATABASES, SHOW
 *     VARIABLES), never a relation, and is refused whatever CTE shares its name;
 *     time travel (AT clauses) is refused;
 *   - no identifier (outside constants) starts with "__lh": access auditing's companion
 *     views "__lhkey__<name>" and their column "__lh_key" (lineage.c) are the engine's
 *     alone, whatever the policy.
 * DuckDB's sandbox (external access off, allowed folders, locked configuration) is the
 * second wall behind this one.
 */
#include "query_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Table-reference node types that may appear; anything else is refused. */
static const char *const allowed_ref_types[] = {"BASE_TABLE", "TABLE_FUNCTION",  "JOIN",
                                                "SUBQUERY",   "EXPRESSION_LIST", "EMPTY",
                                                "EMPTY_FROM", "SHOW_REF",        "PIVOT"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

typedef struct scope {
    const char **names;
    size_t n;
    const struct scope *up;
} scope;

typedef struct walker {
    const lh_sql_policy *policy;
    lh_error *err;
    int depth;
} walker;

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(s, list[i]) == 0)
            return true;
    return false;
}

static bool in_scope(const scope *sc, const char *name)
{
    for (; sc; sc = sc->up)
        for (size_t i = 0; i < sc->n; i++)
            if (strcasecmp(sc->names[i], name) == 0)
                return true;
    return false;
}

static int forbid(walker *w, const char *fmt, const char *arg)
{
    return lh_error_setk(w->err, LH_EFORBIDDEN, "sql_forbidden", fmt, arg);
}

static int walk(walker *w, json_t *node, const scope *sc);

static int check_relation(walker *w, json_t *ref, const scope *sc)
{
    const char *table = lh_json_str(ref, "table_name");
    const char *schema = lh_json_str(ref, "schema_name");
    const char *catalog = lh_json_str(ref, "catalog_name");
    if (!table)
        return forbid(w, "%s", "a table reference without a name was refused");
    if ((schema && *schema) || (catalog && *catalog))
        return lh_error_setk(w->err, LH_EFORBIDDEN, "sql_forbidden",
                             "qualified name '%s%s%s%s%s' refused: name datasets without a "
                             "schema or catalog",
                             catalog && *catalog ? catalog : "", catalog && *catalog ? "." : "",
                             schema && *schema ? schema : "", schema && *schema ? "." : "", table);
    json_t *at = json_object_get(ref, "at_clause");
    if (at && !json_is_null(at))
        return forbid(w, "time travel (AT clause) on '%s' is not supported", table);
    if (in_scope(sc, table))
        return 0;
    const lh_sql_policy *p = w->policy;
    const char *name = table;
    if (strncasecmp(table, LH_RAW_PREFIX, strlen(LH_RAW_PREFIX)) == 0) {
        if (!p->allow_raw)
            return forbid(w, "raw relation '%s' is for admins only", table);
        name = table + strlen(LH_RAW_PREFIX);
    }
    lh_rel_access access = p->may_read(p->ctx, name);
    if (access == LH_REL_ALLOW)
        return 0;
    if (access == LH_REL_UNKNOWN)
        return lh_error_setk(w->err, LH_EINVAL, "sql_error",
                             "Catalog Error: there is no dataset named '%s' (%s)", name,
                             p->allowed_hint ? p->allowed_hint : "see GET /catalog/datasets");
    return lh_error_setk(w->err, LH_EFORBIDDEN, "sql_forbidden",
                         "relation '%s' is not one you may read (%s)", table,
                         p->allowed_hint ? p->allowed_hint : "no relations are granted");
}

/* A function may be qualified with a schema where DuckDB's functions live (main,
 * pg_catalog), never with a catalog: every listed name lives there, so a qualifier can
 * never reach another function than the one the table judged. */
static bool builtin_qualifier(const char *catalog, const char *schema)
{
    static const char *const schemas[] = {"main", "pg_catalog"};
    return (!catalog || !*catalog) &&
           (!schema || !*schema || in_list(schema, schemas, COUNT(schemas)));
}

/* fn is a FUNCTION or WINDOW expression, or a table function's call (in FROM). */
static int check_function(walker *w, json_t *fn, bool is_table_function)
{
    const char *name = lh_json_str(fn, "function_name");
    if (!name)
        return forbid(w, "%s", "a function without a name was refused");
    if (!builtin_qualifier(lh_json_str(fn, "catalog"), lh_json_str(fn, "schema")))
        return forbid(w, "qualified function '%s' refused: call functions by their name", name);
    /* caller_attribute (safe_views.c) exists only in a view's row filter, with one
     * constant argument; user SQL never calls it (nor getvariable, functions.c). */
    if (strcasecmp(name, "caller_attribute") == 0) {
        const json_t *args = json_object_get(fn, "children");
        const char *cls0 = lh_json_str(json_array_get(args, 0), "class");
        if (!w->policy->allow_caller_attribute || is_table_function)
            return forbid(w, "function '%s' refused: it may be used only in a view's row filter",
                          name);
        if (json_array_size(args) != 1 || !cls0 || strcmp(cls0, "CONSTANT") != 0)
            return forbid(w, "%s",
                          "caller_attribute takes one constant string: the attribute's name");
        return 0;
    }
    lh_fn_class cls = lh_function_class(name);
    if (is_table_function) {
        if (cls != LH_FN_TABLE)
            return forbid(w,
                          "table function '%s' refused: only range, generate_series and "
                          "unnest may be called; read data through datasets",
                          name);
        return 0;
    }
    if (cls == LH_FN_ALLOW || cls == LH_FN_TABLE)
        return 0;
    return lh_error_setk(w->err, LH_EFORBIDDEN, "sql_forbidden", "function '%s' refused: %s", name,
                         lh_function_reason(cls));
}

/* A query node's CTEs: each body is walked with the CTEs before it in scope (a recursive
 * body adds its own name for its recursive part only: see walk_object); fills names with
 * the scope for the rest of the node (borrowed from the tree). */
static int walk_ctes(walker *w, json_t *cte_map, const scope *outer, const char **names,
                     size_t *n_names)
{
    json_t *map = json_object_get(cte_map, "map");
    size_t i;
    json_t *entry;
    *n_names = 0;
    json_array_foreach(map, i, entry)
    {
        const char *key = lh_json_str(entry, "key");
        json_t *value = json_object_get(entry, "value");
        if (!key || !value)
            return forbid(w, "%s", "a malformed WITH clause was refused");
        scope s = {names, *n_names, outer};
        int rc = walk(w, value, &s);
        if (rc)
            return rc;
        names[(*n_names)++] = key;
    }
    return 0;
}

static int walk_object(walker *w, json_t *node, const scope *sc)
{
    const char *type = lh_json_str(node, "type");
    const char *klass = lh_json_str(node, "class");
    int rc;

    json_t *cte_map = json_object_get(node, "cte_map");
    const char **names = NULL;
    scope inner = {NULL, 0, sc};
    if (json_is_object(cte_map)) {
        size_t n = json_array_size(json_object_get(cte_map, "map"));
        if (n > 0) {
            names = lh_xcalloc(n + 1, sizeof(char *));
            size_t got = 0;
            if ((rc = walk_ctes(w, cte_map, sc, names, &got)) != 0)
                goto out;
            inner.names = names;
            inner.n = got;
            sc = &inner;
        }
    }

    if (!klass && type) {
        /* A table reference sits under from_table / left / right / source; query nodes
         * (SELECT_NODE, SET_OPERATION_NODE, ...) also have a type but a known set. */
        if (strcmp(type, "BASE_TABLE") == 0) {
            if ((rc = check_relation(w, node, sc)) != 0)
                goto out;
        } else if (strcmp(type, "TABLE_FUNCTION") == 0) {
            if ((rc = check_function(w, json_object_get(node, "function"), true)) != 0)
                goto out;
        } else if (strcmp(type, "SHOW_REF") == 0) {
            /* DESCRIBE/SUMMARIZE x carry the query SELECT * FROM x (walked below). A
             * table_name here names a listing ("tables", __show_tables_expanded,
             * "databases", "variables"), which DuckDB binds as such even when a CTE of
             * that name is in scope: refused, and never looked up in the scope. */
            const char *table = lh_json_str(node, "table_name");
            json_t *q = json_object_get(node, "query");
            if ((table && *table) || !json_is_object(q)) {
                rc = forbid(w, "%s", "SHOW refused: it lists relations you may not see");
                goto out;
            }
        }
    }
    if (klass && (strcmp(klass, "FUNCTION") == 0 || strcmp(klass, "WINDOW") == 0) &&
        (rc = check_function(w, node, false)) != 0)
        goto out;

    /* Table-reference positions only hold known reference types. */
    static const char *const ref_keys[] = {"from_table", "left", "right", "source"};
    for (size_t i = 0; i < COUNT(ref_keys); i++) {
        json_t *ref = json_object_get(node, ref_keys[i]);
        const char *rt = lh_json_str(ref, "type");
        if (!rt || lh_json_str(ref, "class"))
            continue;
        bool is_query_node = strstr(rt, "_NODE") != NULL;
        if (!is_query_node && !in_list(rt, allowed_ref_types, COUNT(allowed_ref_types))) {
            rc = forbid(w, "table reference of kind '%s' refused", rt);
            goto out;
        }
    }

    /* A recursive CTE's own name is in scope in its recursive part (right) only; its
     * anchor (left) binds the name to the real relation, as DuckDB's binder does. */
    const char *self = NULL;
    if (!klass && type && strcmp(type, "RECURSIVE_CTE_NODE") == 0)
        self = lh_json_str(node, "cte_name");
    scope recursive = {&self, 1, sc};

    const char *key;
    json_t *child;
    json_object_foreach(node, key, child)
    {
        if (strcmp(key, "cte_map") == 0)
            continue;
        const scope *child_sc = self && strcmp(key, "right") == 0 ? &recursive : sc;
        if ((rc = walk(w, child, child_sc)) != 0)
            goto out;
    }
    rc = 0;
out:
    free(names);
    return rc;
}

static int walk(walker *w, json_t *node, const scope *sc)
{
    if (++w->depth > 4000) {
        w->depth--;
        return forbid(w, "%s", "the statement is nested too deeply");
    }
    int rc = 0;
    if (json_is_object(node)) {
        rc = walk_object(w, node, sc);
    } else if (json_is_array(node)) {
        size_t i;
        json_t *child;
        json_array_foreach(node, i, child)
        {
            if ((rc = walk(w, child, sc)) != 0)
                break;
        }
    }
    w->depth--;
    return rc;
}

/* Any identifier of the tree (outside constants) starting with "__lh". */
static bool has_reserved(const json_t *node, int depth)
{
    if (depth > 4000)
        return true;
    if (json_is_string(node))
        return strncasecmp(json_string_value(node), "__lh", 4) == 0;
    if (json_is_array(node)) {
        size_t i;
        const json_t *v;
        json_array_foreach(node, i, v)
        {
            if (has_reserved(v, depth + 1))
                return true;
        }
        return false;
    }
    const char *klass = lh_json_str(node, "class");
    if (!json_is_object(node) || (klass && strcmp(klass, "CONSTANT") == 0))
        return false;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)node, k, v)
    {
        if (has_reserved(v, depth + 1))
            return true;
    }
    return false;
}

/* DuckDB prints a DOUBLE constant that overflowed (SELECT 1e999) as a bare Infinity,
 * -Infinity or NaN, which is not JSON. Outside strings no JSON token starts with 'I' or 'N',
 * so each such token (and its sign) becomes null: the walk never reads constant values.
 * Caller frees. */
char *lh_sql_tree_finite(const char *text)
{
    size_t n = strlen(text);
    char *out = lh_xmalloc(2 * n + 1); /* "null" for "NaN" grows by one byte */
    size_t o = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\' && i + 1 < n)
                out[o++] = text[i++];
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else {
            size_t skip = 0;
            size_t sign = c == '-' ? 1 : 0;
            if (strncmp(text + i + sign, "Infinity", 8) == 0)
                skip = sign + 8;
            else if (strncmp(text + i + sign, "NaN", 3) == 0)
                skip = sign + 3;
            if (skip) {
                memcpy(out + o, "null", 4);
                o += 4;
                i += skip - 1;
                continue;
            }
        }
        out[o++] = text[i];
    }
    out[o] = '\0';
    return out;
}

int lh_sql_firewall_tree(const char *serialized, const lh_sql_policy *policy, lh_error *err)
{
    json_error_t jerr;
    char *text = serialized ? lh_sql_tree_finite(serialized) : NULL;
    /* Node positions are uint64 (18446744073709551615 for "none"), past jansson's integer
     * range; the walk needs no numbers, so integers are decoded as reals. */
    json_t *doc = json_loads(text, JSON_DECODE_INT_AS_REAL, &jerr);
    free(text);
    int rc = 0;
    if (!json_is_object(doc)) {
        rc = lh_error_set(err, LH_EINTERNAL, "cannot read the parser's output: %s", jerr.text);
        goto out;
    }
    if (json_is_true(json_object_get(doc, "error"))) {
        const char *type = lh_json_str(doc, "error_type");
        const char *msg = lh_json_str(doc, "error_message");
        if (type && strcmp(type, "parser") == 0)
            rc = lh_error_setk(err, LH_EINVAL, "sql_error", "Parser Error: %s",
                               msg ? msg : "syntax error");
        else
            rc = lh_error_setk(err, LH_EFORBIDDEN, "sql_forbidden",
                               "only a single SELECT statement may run (%s)",
                               msg && strstr(msg, "Only SELECT") ? "this is not a SELECT"
                                                                 : (msg ? msg : "refused"));
        goto out;
    }
    json_t *stmts = json_object_get(doc, "statements");
    if (json_array_size(stmts) != 1) {
        rc = lh_error_setk(err, LH_EFORBIDDEN, "sql_forbidden",
                           "exactly one SELECT statement may run; this text holds %zu",
                           json_array_size(stmts));
        goto out;
    }
    if (has_reserved(json_array_get(stmts, 0), 0)) {
        rc = lh_error_setk(err, LH_EFORBIDDEN, "sql_forbidden",
                           "names starting with \"__lh\" are reserved for the engine");
        goto out;
    }
    walker w = {policy, err, 0};
    rc = walk(&w, json_array_get(stmts, 0), NULL);
out:
    json_decref(doc);
    return rc;
}

/* The probe and the walk; conn NULL means a fresh internal connection. A statement this
 * policy's identity was allowed in the current epoch skips both (verdicts.c), and then its
 * lineage (audited policies) comes from the cache too. */
static int firewall_run(lh_engine *eng, duckdb_connection conn, const char *sql,
                        const lh_sql_policy *policy, lh_lineage *lin, lh_error *err)
{
    if (!sql || !*sql)
        return lh_error_setk(err, LH_EINVAL, "sql_error", "the SQL text is empty");
    bool want_lineage = lin && conn && policy->audited;
    /* Read before the check: a catalog change during it leaves the verdict stale. */
    uint64_t epoch = lh_verdicts_epoch(eng->verdicts);
    char *payload = NULL;
    if (lh_verdicts_lookup(eng->verdicts, policy->identity, sql, epoch,
                           want_lineage ? &payload : NULL)) {
        bool ok = !want_lineage || (payload && lh_lineage_from_text(payload, lin) == 0);
        free(payload);
        if (ok)
            return 0;
        lh_lineage_clear(lin); /* cached by a caller that did not classify: do it now */
    }
    char *lit = lh_sql_literal(sql);
    char *probe = lh_xasprintf("SELECT json_serialize_sql(%s)", lit);
    free(lit);
    json_t *res =
        conn ? lh_conn_query_json(eng, conn, probe, err) : lh_engine_query_json(eng, probe, err);
    free(probe);
    if (!res)
        return err ? err->code : LH_EINTERNAL;
    const char *text =
        json_string_value(json_array_get(json_array_get(json_object_get(res, "rows"), 0), 0));
    int rc = text ? lh_sql_firewall_tree(text, policy, err)
                  : lh_error_set(err, LH_EINTERNAL, "the parser returned nothing");
    char *cached = NULL;
    if (rc == 0 && want_lineage) {
        rc = lh_lineage_classify(eng, conn, text, policy, lin, err);
        if (rc == 0)
            cached = lh_lineage_to_text(lin);
    }
    json_decref(res);
    if (rc == 0)
        lh_verdicts_store(eng->verdicts, policy->identity, sql, epoch, cached);
    free(cached);
    return rc;
}

int lh_sql_firewall(lh_engine *eng, const char *sql, const lh_sql_policy *policy, lh_error *err)
{
    return firewall_run(eng, NULL, sql, policy, NULL, err);
}

int lh_firewall_on_conn(lh_engine *eng, duckdb_connection conn, const char *sql,
                        const lh_sql_policy *policy, lh_lineage *lin, lh_error *err)
{
    return firewall_run(eng, conn, sql, policy, lin, err);
}
