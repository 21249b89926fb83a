/*
 * lineage.c: what a statement returns of subject relations, and the rewrite that carries
 * each returned row's subject keys (access auditing, issue 11 item 5; docs/SECURITY.md
 * "Access auditing: the rewrite", docs/AUDIT.md "Access auditing").
 *
 * Input: the firewall's serialized tree (json_serialize_sql) of a statement it allowed,
 * and the subject relations (engine.c subjects_rebuild): datasets with a
 * subject_key_column K and AI-safe views over them. Each has a hidden companion
 * "__lhkey__<name>" (views.c, safe_views.c): the relation plus a last column __lh_key =
 * [CAST(K AS VARCHAR)] read from the base row.
 *
 * Classification, per query node (bottom-up):
 *   - a SELECT node is a CARRIER when it is not aggregated (no GROUP BY, no aggregate in
 *     its select list or HAVING, no DISTINCT) and its FROM holds a carrier binding: a
 *     subject relation, or a subquery or CTE whose body is a carrier. A node grouped by the
 *     key of a carrier binding is a carrier too (each group is one subject), and so is a
 *     DISTINCT over exactly one subject dataset whose raw key is selected;
 *   - otherwise a node reading subject relations is AGGREGATE-like, unless it returns row
 *     data it cannot attribute (UNTRACEABLE): a set operation (UNION, EXCEPT, INTERSECT)
 *     or a recursive CTE over subject relations, a scalar subquery returning row-level
 *     data of one, a window function returning other rows' values (lag, lead,
 *     first_value, ..., and the value-returning aggregates of agent_refused_aggregates as
 *     windows), a NATURAL JOIN of one (it would join on __lh_key too), a materialized
 *     CTE (DuckDB's CTE_NODE), PIVOT and other shapes over them, or a FROM child that is
 *     untraceable;
 *   - subject relations read only in expressions (WHERE id IN (SELECT ... FROM people))
 *     are read but no row of them is returned: AGGREGATE-like.
 * The top node decides the kind: carrier → ROWS, untraceable → UNATTRIBUTED, else
 * reading subjects → AGGREGATE, else NONE.
 *
 * The firewall refuses identifiers starting with "__lh" (the companions and their column)
 * to everyone. Refused here for every audited caller (403 sql_forbidden): whole-row references to a
 * carrier binding (`SELECT p FROM people p`, to_json(p): they would carry the hidden column; name
 * the columns), and COLUMNS(<pattern>) over one. For agents, an aggregated node over subject data
 * must not return one row's values: the aggregates of agent_refused_aggregates and GROUP BY /
 * DISTINCT on PII columns are refused, unless grouped by the key (→ ROWS).
 *
 * Rewrite (ROWS only), in place on the tree, along the carrier chain from the top: a
 * subject relation `FROM people` becomes `FROM __lhkey__people AS people` (alias kept so
 * qualified references resolve), subquery and CTE carriers are rewritten the same way, each
 * carrier node appends `list_concat(<b>.__lh_key, ...) AS __lh_key` over its carrier
 * bindings (grouped: list_distinct(flatten(list(...)))), and every STAR over a keyed
 * binding, in that node, in any other node reading a rewritten CTE, or qualified with an
 * enclosing node's carrier (LATERAL), gets __lh_key in its EXCLUDE list. json_deserialize_sql turns
 * the tree back into SQL. The statement's last column is then the hidden key list (result.c never
 * renders it).
 */
#include "query_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Aggregates that return one row's value, or collect values: refused in an agent's
 * aggregate over subject data (docs/SECURITY.md). */
static const char *const agent_refused_aggregates[] = {
    "any_value", "arbitrary", "arg_max",   "arg_max_null",  "arg_min",      "arg_min_null",
    "argmax",    "argmin",    "array_agg", "first",         "group_concat", "histogram",
    "last",      "list",      "listagg",   "max",           "max_by",       "median",
    "min",       "min_by",    "mode",      "quantile_disc", "string_agg",
};

typedef struct ninfo ninfo;

/* A CTE in scope. */
typedef struct cte_entry {
    const char *name; /* borrowed from the tree */
    json_t *value;    /* {"aliases", "query": {"node"}} */
    ninfo *info;
    bool rewritten;
    struct cte_entry *up;
} cte_entry;

typedef enum { B_PLAIN, B_SUBJECT, B_SUBQ, B_CTE } bkind;

/* A relation of a node's FROM clause. */
typedef struct binding {
    bkind kind;
    const char *name; /* alias, else the table name; "" for an unnamed subquery */
    json_t *ref;      /* the table reference (BASE_TABLE or SUBQUERY) */
    const json_t *subj;
    ninfo *inner;   /* B_SUBQ, B_CTE: the body */
    cte_entry *cte; /* B_CTE */
    bool carrier;
    bool renamed; /* column aliases: output names unknown */
    bool keyed;   /* after the rewrite, its rows hold __lh_key */
} binding;

struct ninfo {
    json_t *node;
    ninfo *up; /* the enclosing node (correlated references) */
    binding *b;
    size_t nb;
    json_t **stars; /* STAR expressions of this node (not of its subqueries) */
    size_t nstars;
    bool reads;
    bool carrier;
    bool grouped;  /* a carrier by its GROUP BY key */
    bool distinct; /* a carrier by DISTINCT over its raw key */
    bool untraceable;
    char reason[200];
    json_t *keycols; /* output names (lowercase) holding a subject key: {name: true} */
    json_t *piicols; /* output names (lowercase) holding PII */
};

typedef struct lctx {
    const json_t *subjects;
    const lh_keywords *aggs;
    const lh_sql_policy *policy;
    lh_error *err;
    int depth;
    json_t *datasets; /* set */
    ninfo **all;
    size_t nall, capall;
    cte_entry **ctes;
    size_t nctes, capctes;
    char hint[220];
    int sq_names;
} lctx;

/* scan flags */
#define IN_SELECT 1u /* select list or HAVING: aggregates count */

static int forbid(lctx *c, const char *msg)
{
    return lh_error_setk(c->err, LH_EFORBIDDEN, "sql_forbidden", "%s", msg);
}

static char *lower_dup(const char *s)
{
    char *l = lh_xstrdup(s ? s : "");
    for (char *p = l; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return l;
}

static bool str_is(const json_t *node, const char *key, const char *want)
{
    const char *v = lh_json_str(node, key);
    return v && strcmp(v, want) == 0;
}

static ninfo *info_new(lctx *c, json_t *node, ninfo *up)
{
    ninfo *n = lh_xcalloc(1, sizeof(*n));
    n->node = node;
    n->up = up;
    n->keycols = json_object();
    n->piicols = json_object();
    if (c->nall == c->capall) {
        c->capall = c->capall ? 2 * c->capall : 16;
        c->all = lh_xrealloc(c->all, c->capall * sizeof(*c->all));
    }
    c->all[c->nall++] = n;
    return n;
}

static void info_free(ninfo *n)
{
    free(n->b);
    free(n->stars);
    json_decref(n->keycols);
    json_decref(n->piicols);
    free(n);
}

static void untraceable(ninfo *n, const char *why)
{
    if (!n->untraceable)
        snprintf(n->reason, sizeof(n->reason), "%s", why);
    n->untraceable = true;
}

static binding *add_binding(ninfo *n)
{
    n->b = lh_xrealloc(n->b, (n->nb + 1) * sizeof(binding));
    memset(&n->b[n->nb], 0, sizeof(binding));
    return &n->b[n->nb++];
}

/* ---------------------------------------------------------------- analysis */

static ninfo *analyze(lctx *c, json_t *node, cte_entry *sc, ninfo *up);

static cte_entry *cte_find(cte_entry *sc, const char *name)
{
    for (; sc; sc = sc->up)
        if (strcasecmp(sc->name, name) == 0)
            return sc;
    return NULL;
}

/* The node's CTEs, each analyzed with those before it in scope; returns the new scope. */
static cte_entry *with_ctes(lctx *c, json_t *node, cte_entry *sc, ninfo *up, bool *failed)
{
    json_t *map = json_object_get(json_object_get(node, "cte_map"), "map");
    size_t i;
    json_t *e;
    json_array_foreach(map, i, e)
    {
        json_t *value = json_object_get(e, "value");
        json_t *body = json_object_get(json_object_get(value, "query"), "node");
        const char *key = lh_json_str(e, "key");
        if (!key || !body) {
            *failed = true;
            forbid(c, "a malformed WITH clause was refused");
            return sc;
        }
        ninfo *inner = analyze(c, body, sc, up);
        if (!inner) {
            *failed = true;
            return sc;
        }
        cte_entry *ce = lh_xcalloc(1, sizeof(*ce));
        ce->name = key;
        ce->value = value;
        ce->info = inner;
        ce->up = sc;
        if (c->nctes == c->capctes) {
            c->capctes = c->capctes ? 2 * c->capctes : 8;
            c->ctes = lh_xrealloc(c->ctes, c->capctes * sizeof(*c->ctes));
        }
        c->ctes[c->nctes++] = ce;
        sc = ce;
    }
    return sc;
}

/* Adds the output names of inner (key and PII columns) to a binding's view of them. */
static bool binding_has(const binding *b, const char *col, bool key)
{
    char *l = lower_dup(col);
    bool has = false;
    if (b->kind == B_SUBJECT) {
        const char *vis = lh_json_str(b->subj, "visible");
        if (key)
            has = vis && strcasecmp(vis, col) == 0;
        else {
            size_t i;
            const json_t *p;
            json_array_foreach(json_object_get(b->subj, "pii"), i,
                               p) if (strcmp(json_string_value(p), l) == 0) has = true;
        }
    } else if ((b->kind == B_SUBQ || b->kind == B_CTE) && b->inner && !b->renamed) {
        has = json_object_get(key ? b->inner->keycols : b->inner->piicols, l) != NULL;
    }
    free(l);
    return has;
}

/* A column reference of n: the binding it names when it holds a key (key) or PII (!key)
 * column of a binding, else NULL. */
static const binding *ref_resolves(const ninfo *n, const json_t *ref, bool key)
{
    const json_t *names = json_object_get(ref, "column_names");
    size_t cnt = json_array_size(names);
    if (cnt == 0 || cnt > 2)
        return NULL;
    const char *col = json_string_value(json_array_get(names, cnt - 1));
    const char *rel = cnt == 2 ? json_string_value(json_array_get(names, 0)) : NULL;
    for (size_t i = 0; col && i < n->nb; i++) {
        const binding *b = &n->b[i];
        if (b->kind == B_PLAIN || (rel && strcasecmp(rel, b->name) != 0))
            continue;
        if (binding_has(b, col, key))
            return b;
    }
    return NULL;
}

static bool is_whole_row_ref(const ninfo *n, const json_t *ref)
{
    const json_t *names = json_object_get(ref, "column_names");
    if (json_array_size(names) != 1)
        return false;
    const char *name = json_string_value(json_array_get(names, 0));
    for (const ninfo *s = n; s && name; s = s->up)
        for (size_t i = 0; i < s->nb; i++)
            if ((s->b[i].carrier || s->b[i].kind == B_SUBJECT) && *s->b[i].name &&
                strcasecmp(s->b[i].name, name) == 0)
                return true;
    return false;
}

static bool has_carrier_binding(const ninfo *n)
{
    for (size_t i = 0; i < n->nb; i++)
        if (n->b[i].carrier)
            return true;
    return false;
}

static bool agent_refused_aggregate(const char *name)
{
    for (size_t i = 0; i < sizeof(agent_refused_aggregates) / sizeof(agent_refused_aggregates[0]);
         i++)
        if (strcasecmp(agent_refused_aggregates[i], name) == 0)
            return true;
    return false;
}

/* Window functions that return another row's value. */
static bool row_valued_window(const char *name)
{
    static const char *const names[] = {"first_value", "last_value", "lag",
                                        "lead",        "nth_value",  "fill"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(names[i], name) == 0)
            return true;
    return false;
}

typedef struct scan_state {
    bool has_agg;
    const char *refused_agg; /* first agent-refused aggregate seen */
} scan_state;

/* Walks an expression of n: subqueries, aggregates, stars, whole-row references. */
static int scan_expr(lctx *c, json_t *e, cte_entry *sc, ninfo *n, unsigned flags, scan_state *ss)
{
    if (++c->depth > 4000) {
        c->depth--;
        return forbid(c, "the statement is nested too deeply");
    }
    int rc = 0;
    if (json_is_array(e)) {
        size_t i;
        json_t *v;
        json_array_foreach(e, i, v)
        {
            if ((rc = scan_expr(c, v, sc, n, flags, ss)) != 0)
                break;
        }
        goto out;
    }
    if (!json_is_object(e))
        goto out;
    const char *klass = lh_json_str(e, "class");
    if (klass && strcmp(klass, "CONSTANT") == 0)
        goto out;
    if (klass && strcmp(klass, "SUBQUERY") == 0) {
        json_t *body = json_object_get(json_object_get(e, "subquery"), "node");
        ninfo *inner = body ? analyze(c, body, sc, n) : NULL;
        if (!inner) {
            rc = c->err->code ? c->err->code : forbid(c, "a malformed subquery was refused");
            goto out;
        }
        n->reads |= inner->reads;
        if (str_is(e, "subquery_type", "SCALAR") && (inner->carrier || inner->untraceable))
            untraceable(n, "a scalar subquery returns row-level data of a subject relation");
        rc = scan_expr(c, json_object_get(e, "child"), sc, n, flags, ss);
        goto out;
    }
    if (klass && strcmp(klass, "COLUMN_REF") == 0) {
        if (is_whole_row_ref(n, e))
            rc = forbid(c, "a whole-row reference to a relation holding subjects' data was "
                           "refused in an audited query: name the columns");
        goto out;
    }
    if (klass && strcmp(klass, "STAR") == 0) {
        json_t *x = json_object_get(e, "expr");
        if (x && !json_is_null(x) && has_carrier_binding(n)) {
            rc = forbid(c, "COLUMNS(...) with a pattern over a relation holding subjects' data "
                           "was refused in an audited query: name the columns");
            goto out;
        }
        n->stars = lh_xrealloc(n->stars, (n->nstars + 1) * sizeof(json_t *));
        n->stars[n->nstars++] = e;
        goto out;
    }
    if (klass && strcmp(klass, "WINDOW") == 0 && has_carrier_binding(n)) {
        /* lag(email) OVER (...) puts another row's value, of another subject, in this
         * row: the row's own key no longer names every subject it shows */
        const char *fn = lh_json_str(e, "function_name");
        if (fn && (agent_refused_aggregate(fn) || row_valued_window(fn)))
            untraceable(n, "a window function returns other rows' values, whose subjects "
                           "cannot be traced");
    }
    if (klass && strcmp(klass, "FUNCTION") == 0 && (flags & IN_SELECT)) {
        const char *fn = lh_json_str(e, "function_name");
        char *l = lower_dup(fn);
        if (fn && (lh_keywords_has(c->aggs, l) || strcmp(l, "count_star") == 0)) {
            ss->has_agg = true;
            if (!ss->refused_agg && agent_refused_aggregate(l))
                ss->refused_agg = fn;
        }
        free(l);
    }
    const char *k;
    json_t *v;
    json_object_foreach(e, k, v)
    {
        if (json_is_object(v) || json_is_array(v))
            if ((rc = scan_expr(c, v, sc, n, flags, ss)) != 0)
                break;
    }
out:
    c->depth--;
    return rc;
}

static void note_dataset(lctx *c, const json_t *subj, const char *relname)
{
    const char *ds = lh_json_str(subj, "dataset");
    if (ds)
        json_object_set_new(c->datasets, ds, json_true());
    if (!c->hint[0]) {
        const char *vis = lh_json_str(subj, "visible");
        if (vis)
            snprintf(c->hint, sizeof(c->hint), "select \"%s\" of %s, or aggregate", vis, relname);
        else
            snprintf(c->hint, sizeof(c->hint),
                     "'%s' does not serve the subject key \"%s\": aggregate, or read a relation "
                     "that serves it",
                     relname, lh_json_str(subj, "key"));
    }
}

/* The table reference ref of node n (FROM). */
static int collect_ref(lctx *c, json_t *ref, cte_entry *sc, ninfo *n)
{
    const char *type = lh_json_str(ref, "type");
    if (!json_is_object(ref) || !type)
        return 0;
    if (strcmp(type, "BASE_TABLE") == 0) {
        const char *table = lh_json_str(ref, "table_name");
        const char *alias = lh_json_str(ref, "alias");
        if (!table)
            return 0;
        binding *b = add_binding(n);
        b->ref = ref;
        b->name = alias && *alias ? alias : table;
        cte_entry *ce = cte_find(sc, table);
        if (ce) {
            b->kind = B_CTE;
            b->cte = ce;
            b->inner = ce->info;
            b->carrier = ce->info->carrier;
            b->renamed = json_array_size(json_object_get(ce->value, "aliases")) > 0 ||
                         json_array_size(json_object_get(ref, "column_name_alias")) > 0;
            n->reads |= ce->info->reads;
            if (ce->info->untraceable)
                untraceable(n, ce->info->reason);
            return 0;
        }
        char *l = lower_dup(table);
        const json_t *subj = json_object_get(c->subjects, l);
        free(l);
        if (subj) {
            b->kind = B_SUBJECT;
            b->subj = subj;
            b->carrier = true;
            b->renamed = json_array_size(json_object_get(ref, "column_name_alias")) > 0;
            n->reads = true;
            note_dataset(c, subj, table);
        }
        return 0;
    }
    if (strcmp(type, "SUBQUERY") == 0) {
        json_t *body = json_object_get(json_object_get(ref, "subquery"), "node");
        ninfo *inner = body ? analyze(c, body, sc, n) : NULL;
        if (!inner)
            return c->err->code ? c->err->code : forbid(c, "a malformed subquery was refused");
        binding *b = add_binding(n);
        const char *alias = lh_json_str(ref, "alias");
        b->kind = B_SUBQ;
        b->ref = ref;
        b->name = alias ? alias : "";
        b->inner = inner;
        b->carrier = inner->carrier;
        b->renamed = json_array_size(json_object_get(ref, "column_name_alias")) > 0;
        n->reads |= inner->reads;
        if (inner->untraceable)
            untraceable(n, inner->reason);
        return 0;
    }
    if (strcmp(type, "JOIN") == 0) {
        size_t before = n->nb;
        int rc = collect_ref(c, json_object_get(ref, "left"), sc, n);
        if (rc == 0)
            rc = collect_ref(c, json_object_get(ref, "right"), sc, n);
        /* NATURAL joins on every shared name: __lh_key would join too */
        bool carriers = false;
        for (size_t i = before; i < n->nb; i++)
            carriers |= n->b[i].carrier;
        if (rc == 0 && carriers && str_is(ref, "ref_type", "NATURAL")) {
            for (size_t i = before; i < n->nb; i++)
                n->b[i].carrier = false;
            untraceable(n, "a NATURAL JOIN of subject relations cannot carry their subjects: "
                           "join with ON or USING");
        }
        return rc;
    }
    /* TABLE_FUNCTION, EXPRESSION_LIST, PIVOT, SHOW_REF, EMPTY: their expressions are
     * scanned with the node's (below); a PIVOT or SHOW over a subject relation is not
     * traced. */
    if (strcmp(type, "PIVOT") == 0 || strcmp(type, "SHOW_REF") == 0) {
        ninfo probe = {.node = ref, .up = n};
        probe.keycols = json_object();
        probe.piicols = json_object();
        json_t *src = json_object_get(ref, strcmp(type, "PIVOT") == 0 ? "source" : "query");
        int rc = 0;
        if (json_is_object(src) && lh_json_str(src, "type") &&
            strstr(lh_json_str(src, "type"), "_NODE")) {
            ninfo *inner = analyze(c, src, sc, n);
            rc = inner ? 0 : c->err->code;
            probe.reads = inner && inner->reads;
        } else if (src) {
            rc = collect_ref(c, src, sc, &probe);
        }
        if (probe.reads) {
            n->reads = true;
            untraceable(n, "a PIVOT or SHOW over a subject relation cannot be traced to its "
                           "subjects");
        }
        free(probe.b);
        free(probe.stars);
        json_decref(probe.keycols);
        json_decref(probe.piicols);
        return rc;
    }
    return 0;
}

/* The FROM clause's non-reference parts (join conditions, table function arguments,
 * VALUES): scanned as expressions of n. */
static int scan_ref_exprs(lctx *c, json_t *ref, cte_entry *sc, ninfo *n, scan_state *ss)
{
    const char *type = lh_json_str(ref, "type");
    if (!type)
        return 0;
    if (strcmp(type, "JOIN") == 0) {
        int rc = scan_ref_exprs(c, json_object_get(ref, "left"), sc, n, ss);
        if (rc == 0)
            rc = scan_ref_exprs(c, json_object_get(ref, "right"), sc, n, ss);
        if (rc == 0)
            rc = scan_expr(c, json_object_get(ref, "condition"), sc, n, 0, ss);
        return rc;
    }
    if (strcmp(type, "TABLE_FUNCTION") == 0)
        return scan_expr(c, json_object_get(ref, "function"), sc, n, 0, ss);
    if (strcmp(type, "EXPRESSION_LIST") == 0)
        return scan_expr(c, json_object_get(ref, "values"), sc, n, 0, ss);
    return 0;
}

/* Output column name of a select item (lowercase), or NULL when it has none we know. */
static char *item_name(const json_t *item)
{
    const char *alias = lh_json_str(item, "alias");
    if (alias && *alias)
        return lower_dup(alias);
    if (str_is(item, "class", "COLUMN_REF")) {
        const json_t *names = json_object_get(item, "column_names");
        return lower_dup(json_string_value(json_array_get(names, json_array_size(names) - 1)));
    }
    return NULL;
}

static bool in_exclude(const json_t *star, const char *col)
{
    size_t i;
    const json_t *x;
    json_array_foreach(json_object_get(star, "exclude_list"), i,
                       x) if (json_is_string(x) &&
                              strcasecmp(json_string_value(x), col) == 0) return true;
    json_array_foreach(json_object_get(star, "qualified_exclude_list"), i, x)
    {
        const char *col2 = lh_json_str(x, "column");
        if (col2 && strcasecmp(col2, col) == 0)
            return true;
    }
    json_array_foreach(json_object_get(star, "replace_list"), i, x)
    {
        const char *name = lh_json_str(x, "name");
        if (name && strcasecmp(name, col) == 0)
            return true;
    }
    return false;
}

/* The output key and PII columns of n from its select list. */
static void output_columns(ninfo *n)
{
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(n->node, "select_list"), i, item)
    {
        if (str_is(item, "class", "COLUMN_REF")) {
            char *name = item_name(item);
            if (name && ref_resolves(n, item, true))
                json_object_set_new(n->keycols, name, json_true());
            if (name && ref_resolves(n, item, false))
                json_object_set_new(n->piicols, name, json_true());
            free(name);
        } else if (str_is(item, "class", "STAR") && json_is_null(json_object_get(item, "expr"))) {
            const char *rel = lh_json_str(item, "relation_name");
            for (size_t k = 0; k < n->nb; k++) {
                const binding *b = &n->b[k];
                if (b->kind == B_PLAIN || b->renamed || (rel && *rel && strcasecmp(rel, b->name)))
                    continue;
                for (int key = 0; key < 2; key++) {
                    json_t *dst = key ? n->keycols : n->piicols;
                    if (b->kind == B_SUBJECT) {
                        if (key) {
                            const char *vis = lh_json_str(b->subj, "visible");
                            if (vis && !in_exclude(item, vis)) {
                                char *l = lower_dup(vis);
                                json_object_set_new(dst, l, json_true());
                                free(l);
                            }
                        } else {
                            size_t j;
                            const json_t *p;
                            json_array_foreach(json_object_get(b->subj, "pii"), j,
                                               p) if (!in_exclude(item, json_string_value(p)))
                                json_object_set(dst, json_string_value(p), json_true());
                        }
                    } else if (b->inner) {
                        const char *col;
                        json_t *v;
                        json_object_foreach(key ? b->inner->keycols : b->inner->piicols, col, v)
                        {
                            if (!in_exclude(item, col))
                                json_object_set(dst, col, json_true());
                        }
                    }
                }
            }
        }
    }
}

/* The select item a GROUP BY expression stands for: itself, or select_list[k-1] for a
 * positional constant k. */
static const json_t *group_target(const json_t *node, const json_t *g)
{
    if (str_is(g, "class", "CONSTANT")) {
        const json_t *v = json_object_get(json_object_get(g, "value"), "value");
        if (!json_is_integer(v))
            return NULL;
        json_int_t k = json_integer_value(v);
        return k >= 1 ? json_array_get(json_object_get(node, "select_list"), (size_t)(k - 1))
                      : NULL;
    }
    return g;
}

/* For an aggregated node: is it grouped by a carrier binding's key (each group one
 * subject)? Sets *pii_group to a PII column it groups by (not a key), if any. */
static bool grouped_by_key(const ninfo *n, const char **pii_group)
{
    const json_t *node = n->node;
    const json_t *groups = json_object_get(node, "group_expressions");
    bool by_all = str_is(node, "aggregate_handling", "FORCE_AGGREGATES");
    bool by_key = false;
    *pii_group = NULL;
    if (json_array_size(json_object_get(node, "group_sets")) > 1)
        return false; /* ROLLUP, CUBE, GROUPING SETS: subtotal rows span subjects */
    size_t i;
    const json_t *g;
    const json_t *list = by_all ? json_object_get(node, "select_list") : groups;
    json_array_foreach(list, i, g)
    {
        const json_t *t = by_all ? g : group_target(node, g);
        if (!t || !str_is(t, "class", "COLUMN_REF"))
            continue;
        const binding *b = ref_resolves(n, t, true);
        if (b && b->carrier)
            by_key = true;
        else if (ref_resolves(n, t, false) && !*pii_group) {
            const json_t *names = json_object_get(t, "column_names");
            *pii_group = json_string_value(json_array_get(names, json_array_size(names) - 1));
        }
    }
    return by_key;
}

static bool has_distinct(const json_t *node)
{
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(node, "modifiers"), i,
                       m) if (str_is(m, "type", "DISTINCT_MODIFIER")) return true;
    return false;
}

static ninfo *analyze_select(lctx *c, json_t *node, cte_entry *sc, ninfo *up)
{
    bool failed = false;
    ninfo *n = info_new(c, node, up);
    sc = with_ctes(c, node, sc, n, &failed);
    if (failed)
        return NULL;
    json_t *from = json_object_get(node, "from_table");
    if (collect_ref(c, from, sc, n) != 0)
        return NULL;
    scan_state sel = {0}, other = {0};
    if (scan_ref_exprs(c, from, sc, n, &other) != 0)
        return NULL;
    static const char *const select_keys[] = {"select_list", "having"};
    static const char *const other_keys[] = {"where_clause", "group_expressions", "qualify",
                                             "modifiers"};
    for (size_t i = 0; i < 2; i++)
        if (scan_expr(c, json_object_get(node, select_keys[i]), sc, n, IN_SELECT, &sel) != 0)
            return NULL;
    for (size_t i = 0; i < 4; i++)
        if (scan_expr(c, json_object_get(node, other_keys[i]), sc, n, 0, &other) != 0)
            return NULL;
    bool distinct = has_distinct(node);
    bool aggregated = sel.has_agg || distinct ||
                      json_array_size(json_object_get(node, "group_expressions")) > 0 ||
                      str_is(node, "aggregate_handling", "FORCE_AGGREGATES") ||
                      !json_is_null(json_object_get(node, "having"));
    output_columns(n);
    bool carrying = has_carrier_binding(n);
    if (!aggregated) {
        n->carrier = carrying && !n->untraceable;
        return n;
    }
    /* Aggregated: a group per subject is still row-level (ROWS). */
    const char *pii_group = NULL;
    if (carrying && !distinct && grouped_by_key(n, &pii_group)) {
        n->carrier = n->grouped = !n->untraceable;
        return n;
    }
    /* DISTINCT over one subject dataset selecting its raw key: the hidden [key] is a
     * function of a visible column, so DISTINCT returns the same rows (not over a view,
     * whose masked key is not). */
    if (carrying && distinct && !sel.has_agg && n->nb == 1 && n->b[0].kind == B_SUBJECT &&
        strcasecmp(lh_json_str(n->b[0].subj, "dataset"), lh_json_str(n->b[0].ref, "table_name")) ==
            0 &&
        json_object_size(n->keycols) > 0 && !n->untraceable &&
        json_array_size(json_object_get(json_array_get(json_object_get(node, "modifiers"), 0),
                                        "distinct_on_targets")) == 0) {
        n->carrier = n->distinct = true;
        return n;
    }
    /* Aggregates absorb what their rows were: the node returns no row of its inputs. */
    bool over_subjects = carrying || n->untraceable;
    n->untraceable = false;
    n->reason[0] = '\0';
    if (c->policy->agent && over_subjects) {
        if (sel.refused_agg) {
            lh_error_setk(c->err, LH_EFORBIDDEN, "sql_forbidden",
                          "aggregate '%s' over subjects' data returns one row's values and is "
                          "refused for agents: use count, sum, avg or similar, or select the "
                          "subject key",
                          sel.refused_agg);
            return NULL;
        }
        if (pii_group || (distinct && json_object_size(n->piicols) > 0)) {
            const char *col = pii_group;
            if (!col) {
                void *it = json_object_iter(n->piicols);
                col = it ? json_object_iter_key(it) : "?";
            }
            lh_error_setk(c->err, LH_EFORBIDDEN, "sql_forbidden",
                          "%s on the PII column '%s' returns row-level personal data and is "
                          "refused for agents: group by the subject key, or aggregate",
                          pii_group ? "GROUP BY" : "DISTINCT", col);
            return NULL;
        }
    }
    json_object_clear(n->keycols);
    json_object_clear(n->piicols);
    return n;
}

/* A set operation or recursive CTE: its sides are analyzed; row-level subject data in
 * either cannot be traced through it. */
static ninfo *analyze_pair(lctx *c, json_t *node, cte_entry *sc, ninfo *up, const char *what)
{
    bool failed = false;
    ninfo *n = info_new(c, node, up);
    sc = with_ctes(c, node, sc, n, &failed);
    if (failed)
        return NULL;
    static const char *const sides[] = {"left", "right"};
    bool rows = false;
    for (size_t i = 0; i < 2; i++) {
        json_t *side = json_object_get(node, sides[i]);
        if (!json_is_object(side))
            continue;
        ninfo *s = analyze(c, side, sc, n);
        if (!s)
            return NULL;
        n->reads |= s->reads;
        rows |= s->carrier || s->untraceable;
    }
    if (rows)
        untraceable(n, what);
    return n;
}

/* Does any base-table reference under node name a subject relation (or a CTE named like
 * one: a conservative answer)? Notes the datasets it finds. */
static bool mentions_subject(lctx *c, const json_t *node, int depth)
{
    bool found = false;
    if (depth > 4000)
        return true;
    if (json_is_array(node)) {
        size_t i;
        const json_t *v;
        json_array_foreach(node, i, v) found |= mentions_subject(c, v, depth + 1);
        return found;
    }
    if (!json_is_object(node) || str_is(node, "class", "CONSTANT"))
        return false;
    if (str_is(node, "type", "BASE_TABLE") && lh_json_str(node, "table_name")) {
        char *l = lower_dup(lh_json_str(node, "table_name"));
        const json_t *subj = json_object_get(c->subjects, l);
        free(l);
        if (subj) {
            note_dataset(c, subj, lh_json_str(node, "table_name"));
            return true;
        }
    }
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)node, k, v) found |= mentions_subject(c, v, depth + 1);
    return found;
}

static ninfo *analyze(lctx *c, json_t *node, cte_entry *sc, ninfo *up)
{
    const char *type = lh_json_str(node, "type");
    if (++c->depth > 4000) {
        c->depth--;
        forbid(c, "the statement is nested too deeply");
        return NULL;
    }
    ninfo *n;
    if (type && strcmp(type, "SELECT_NODE") == 0)
        n = analyze_select(c, node, sc, up);
    else if (type && strcmp(type, "SET_OPERATION_NODE") == 0)
        n = analyze_pair(c, node, sc, up,
                         "a set operation (UNION, EXCEPT, INTERSECT) returns rows of subject "
                         "relations whose subjects cannot be traced through it");
    else if (type && strcmp(type, "RECURSIVE_CTE_NODE") == 0)
        n = analyze_pair(c, node, sc, up,
                         "a recursive query returns rows of subject relations whose subjects "
                         "cannot be traced through it");
    else {
        n = info_new(c, node, up);
        if (mentions_subject(c, node, 0)) { /* unknown shape: assume the worst */
            n->reads = true;
            untraceable(n, "this statement's shape cannot be traced to its subjects");
        }
    }
    c->depth--;
    return n;
}

/* ---------------------------------------------------------------- rewrite */

static json_t *column_ref(const char *rel, const char *col)
{
    json_t *names = json_array();
    if (rel && *rel)
        json_array_append_new(names, json_string(rel));
    json_array_append_new(names, json_string(col));
    return json_pack("{s:s,s:s,s:s,s:o}", "class", "COLUMN_REF", "type", "COLUMN_REF", "alias", "",
                     "column_names", names);
}

static json_t *function(const char *name, json_t *children /* stolen */)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:n,s:{s:s,s:[]},s:b,s:b,s:b,s:s}", "class",
                     "FUNCTION", "type", "FUNCTION", "alias", "", "function_name", name, "schema",
                     "", "children", children, "filter", "order_bys", "type", "ORDER_MODIFIER",
                     "orders", "distinct", 0, "is_operator", 0, "export_state", 0, "catalog", "");
}

static void exclude_key(json_t *star)
{
    json_t *ex = json_object_get(star, "exclude_list");
    if (!json_is_array(ex)) {
        ex = json_array();
        json_object_set_new(star, "exclude_list", ex);
    }
    size_t i;
    json_t *x;
    json_array_foreach(ex, i, x) if (json_is_string(x) &&
                                     strcmp(json_string_value(x), LH_KEY_COLUMN) == 0) return;
    json_array_append_new(ex, json_string(LH_KEY_COLUMN));
}

/* After the rewrite: every star that covers a keyed binding gets __lh_key in its EXCLUDE
 * list, in any node (a node reading a rewritten CTE, a LATERAL subquery's `p.*` of an outer
 * carrier): an unqualified star covers its own node's bindings, a qualified one the
 * binding of that name in its node or, failing that, the nearest enclosing one. */
static void exclude_stars(ninfo *n)
{
    for (size_t s = 0; s < n->nstars; s++) {
        const char *rel = lh_json_str(n->stars[s], "relation_name");
        bool covers = false;
        if (!rel || !*rel) {
            for (size_t i = 0; i < n->nb && !covers; i++)
                covers = n->b[i].keyed;
        } else {
            const binding *found = NULL;
            for (const ninfo *u = n; u && !found; u = u->up)
                for (size_t i = 0; i < u->nb && !found; i++)
                    if (strcasecmp(rel, u->b[i].name) == 0)
                        found = &u->b[i];
            covers = found && found->keyed;
        }
        if (covers)
            exclude_key(n->stars[s]);
    }
}

static void rewrite(lctx *c, ninfo *n)
{
    json_t *keys = json_array();
    for (size_t i = 0; i < n->nb; i++) {
        binding *b = &n->b[i];
        if (!b->carrier)
            continue;
        if (b->kind == B_SUBJECT) {
            const char *table = lh_json_str(b->ref, "table_name");
            char *companion = lh_xasprintf(LH_KEY_PREFIX "%s", table);
            const char *alias = lh_json_str(b->ref, "alias");
            if (!alias || !*alias)
                json_object_set_new(b->ref, "alias", json_string(table));
            b->name = lh_json_str(b->ref, "alias"); /* table_name's string goes next */
            json_object_set_new(b->ref, "table_name", json_string(companion));
            free(companion);
        } else if (b->kind == B_SUBQ) {
            rewrite(c, b->inner);
            if (!*b->name) {
                char *name = lh_xasprintf("__lh_sq%d", ++c->sq_names);
                json_object_set_new(b->ref, "alias", json_string(name));
                free(name);
                b->name = lh_json_str(b->ref, "alias");
            }
        } else if (b->kind == B_CTE && !b->cte->rewritten) {
            b->cte->rewritten = true;
            rewrite(c, b->cte->info);
        }
        b->keyed = true;
        json_array_append_new(keys, column_ref(b->name, LH_KEY_COLUMN));
    }
    json_t *key = json_array_size(keys) == 1 ? json_incref(json_array_get(keys, 0))
                                             : function("list_concat", json_incref(keys));
    json_decref(keys);
    if (n->grouped)
        key = function(
            "list_distinct",
            json_pack("[o]", function("flatten",
                                      json_pack("[o]", function("list", json_pack("[o]", key))))));
    json_object_set_new(key, "alias", json_string(LH_KEY_COLUMN));
    json_array_append_new(json_object_get(n->node, "select_list"), key);
}

/* ---------------------------------------------------------------- entry points */

/* json_serialize_sql prints the "no location" query_location as UINT64_MAX, past
 * jansson's integers: those become 0 (the deserializer ignores locations). Caller frees. */
static char *locations_fixed(const char *text)
{
    static const char pat[] = "\"query_location\":18446744073709551615";
    lh_buf b;
    lh_buf_init(&b);
    const char *p = text, *hit;
    while ((hit = strstr(p, pat))) {
        lh_buf_append(&b, p, (size_t)(hit - p));
        lh_buf_puts(&b, "\"query_location\":0");
        p = hit + sizeof(pat) - 1;
    }
    lh_buf_puts(&b, p);
    return b.data;
}

void lh_lineage_clear(lh_lineage *l)
{
    if (!l)
        return;
    for (size_t i = 0; l->datasets && l->datasets[i]; i++)
        free(l->datasets[i]);
    free(l->datasets);
    free(l->sql);
    memset(l, 0, sizeof(*l));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int lh_lineage_classify(lh_engine *eng, duckdb_connection conn, const char *tree,
                        const lh_sql_policy *policy, lh_lineage *out, lh_error *err)
{
    memset(out, 0, sizeof(*out));
    out->kind = LH_ACCESS_NONE;
    if (!policy || !policy->audited)
        return 0;
    int rc = 0;
    json_t *subjects = lh_engine_subjects(eng);
    char *fixed = locations_fixed(tree);
    json_t *doc = json_loads(fixed, JSON_ALLOW_NUL, NULL);
    bool exact = doc != NULL;
    if (!doc) { /* a constant past jansson (a huge integer, Infinity): classify only */
        free(fixed);
        fixed = lh_sql_tree_finite(tree);
        doc = json_loads(fixed, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, NULL);
    }
    lctx c = {.subjects = subjects, .aggs = &eng->aggregates, .policy = policy, .err = err};
    c.datasets = json_object();
    json_t *top = json_object_get(json_array_get(json_object_get(doc, "statements"), 0), "node");
    if (!top) {
        rc = lh_error_set(err, LH_EINTERNAL, "cannot read the parser's output");
        goto out;
    }
    ninfo *n = analyze(&c, top, NULL, NULL);
    if (!n) {
        rc = err->code ? err->code : LH_EFORBIDDEN;
        goto out;
    }
    if (!n->reads && json_object_size(c.datasets) == 0)
        goto out; /* NONE */
    size_t nd = json_object_size(c.datasets), i = 0;
    out->datasets = lh_xcalloc(nd + 1, sizeof(char *));
    const char *ds;
    json_t *v;
    json_object_foreach(c.datasets, ds, v) out->datasets[i++] = lh_xstrdup(ds);
    qsort(out->datasets, nd, sizeof(char *), cmp_str);
    snprintf(out->hint, sizeof(out->hint), "%s", c.hint);
    if (n->carrier && !exact) {
        out->kind = LH_ACCESS_UNATTRIBUTED;
        snprintf(out->reason, sizeof(out->reason),
                 "the statement holds a constant the audit rewrite cannot carry (a very large "
                 "integer or a non-finite number)");
    } else if (n->carrier) {
        out->kind = LH_ACCESS_ROWS;
        out->key_visible = json_object_size(n->keycols) > 0;
        rewrite(&c, n);
        for (size_t k = 0; k < c.nall; k++) {
            ninfo *x = c.all[k];
            for (size_t j = 0; j < x->nb; j++)
                if (x->b[j].kind == B_CTE && x->b[j].cte->rewritten)
                    x->b[j].keyed = true;
        }
        for (size_t k = 0; k < c.nall; k++)
            exclude_stars(c.all[k]);
        char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
        char *lit = lh_sql_literal(text);
        char *probe = lh_xasprintf("SELECT json_deserialize_sql(%s)", lit);
        json_t *res = lh_conn_query_json(eng, conn, probe, err);
        const char *sql =
            json_string_value(json_array_get(json_array_get(json_object_get(res, "rows"), 0), 0));
        if (sql)
            out->sql = lh_xstrdup(sql);
        else if (res)
            lh_error_set(err, LH_EINTERNAL, "the audit rewrite produced no statement");
        if (!sql)
            rc = err->code ? err->code : LH_EINTERNAL;
        json_decref(res);
        free(probe);
        free(lit);
        free(text);
    } else if (n->untraceable) {
        out->kind = LH_ACCESS_UNATTRIBUTED;
        snprintf(out->reason, sizeof(out->reason), "%s", n->reason);
    } else {
        out->kind = LH_ACCESS_AGGREGATE;
    }
out:
    for (size_t k = 0; k < c.nall; k++)
        info_free(c.all[k]);
    free(c.all);
    for (size_t k = 0; k < c.nctes; k++)
        free(c.ctes[k]);
    free(c.ctes);
    json_decref(c.datasets);
    json_decref(doc);
    json_decref(subjects);
    free(fixed);
    if (rc != 0)
        lh_lineage_clear(out);
    return rc;
}

/* ---------------------------------------------------------------- cache form */

static const char *const kind_names[] = {"none", "rows", "aggregate", "unattributed"};

char *lh_lineage_to_text(const lh_lineage *l)
{
    json_t *ds = json_array();
    for (size_t i = 0; l->datasets && l->datasets[i]; i++)
        json_array_append_new(ds, json_string(l->datasets[i]));
    json_t *o = json_pack("{s:s,s:b,s:o,s:s,s:s,s:s?}", "kind", kind_names[l->kind], "key_visible",
                          l->key_visible, "datasets", ds, "reason", l->reason, "hint", l->hint,
                          "sql", l->sql);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

int lh_lineage_from_text(const char *text, lh_lineage *l)
{
    memset(l, 0, sizeof(*l));
    json_t *o = json_loads(text, 0, NULL);
    const char *kind = lh_json_str(o, "kind");
    int rc = -1;
    for (size_t i = 0; kind && i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
        if (strcmp(kind, kind_names[i]) == 0) {
            l->kind = (lh_access_kind)i;
            rc = 0;
        }
    if (rc == 0) {
        l->key_visible = json_is_true(json_object_get(o, "key_visible"));
        const json_t *ds = json_object_get(o, "datasets");
        l->datasets = lh_xcalloc(json_array_size(ds) + 1, sizeof(char *));
        for (size_t i = 0; i < json_array_size(ds); i++)
            l->datasets[i] = lh_xstrdup(json_string_value(json_array_get(ds, i)));
        snprintf(l->reason, sizeof(l->reason), "%s",
                 lh_json_str(o, "reason") ? lh_json_str(o, "reason") : "");
        snprintf(l->hint, sizeof(l->hint), "%s",
                 lh_json_str(o, "hint") ? lh_json_str(o, "hint") : "");
        const char *sql = lh_json_str(o, "sql");
        l->sql = sql ? lh_xstrdup(sql) : NULL;
    }
    json_decref(o);
    return rc;
}

void lh_sql_fingerprint(const char *sql, char out[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)sql, strlen(sql));
    sodium_bin2hex(out, 65, h, sizeof(h));
}
