/*
 * types.c: DuckDB logical types as names and as trees.
 *
 * Names are DuckDB's own (what typeof() returns): "BIGINT", "DECIMAL(10,2)",
 * "INTEGER[]", "INTEGER[3]", "STRUCT(a INTEGER, \"b c\" VARCHAR)", "MAP(VARCHAR, INTEGER)",
 * "ENUM('a', 'b')", an alias such as "JSON" when the type has one. The C API has no call
 * for a type's name, so it is built here from the type's parameters, quoting STRUCT and
 * UNION field names as DuckDB does (bare only when a lowercase identifier that is not a
 * keyword). The unit tests compare these names with typeof().
 *
 * Trees (lh_tnode) hold each node's logical type and parameters, built once per result
 * column, so rendering a cell never asks DuckDB about types.
 */
#include "query_internal.h"

#include <stdlib.h>
#include <string.h>

/* Types whose name has no parameters; the others are built from their parameters. */
static const struct {
    duckdb_type id;
    const char *name;
} type_names[] = {
    {DUCKDB_TYPE_BOOLEAN, "BOOLEAN"},
    {DUCKDB_TYPE_TINYINT, "TINYINT"},
    {DUCKDB_TYPE_SMALLINT, "SMALLINT"},
    {DUCKDB_TYPE_INTEGER, "INTEGER"},
    {DUCKDB_TYPE_BIGINT, "BIGINT"},
    {DUCKDB_TYPE_UTINYINT, "UTINYINT"},
    {DUCKDB_TYPE_USMALLINT, "USMALLINT"},
    {DUCKDB_TYPE_UINTEGER, "UINTEGER"},
    {DUCKDB_TYPE_UBIGINT, "UBIGINT"},
    {DUCKDB_TYPE_HUGEINT, "HUGEINT"},
    {DUCKDB_TYPE_UHUGEINT, "UHUGEINT"},
    {DUCKDB_TYPE_FLOAT, "FLOAT"},
    {DUCKDB_TYPE_DOUBLE, "DOUBLE"},
    {DUCKDB_TYPE_VARCHAR, "VARCHAR"},
    {DUCKDB_TYPE_DATE, "DATE"},
    {DUCKDB_TYPE_TIMESTAMP, "TIMESTAMP"},
    {DUCKDB_TYPE_TIMESTAMP_S, "TIMESTAMP_S"},
    {DUCKDB_TYPE_TIMESTAMP_MS, "TIMESTAMP_MS"},
    {DUCKDB_TYPE_TIMESTAMP_NS, "TIMESTAMP_NS"},
    {DUCKDB_TYPE_TIMESTAMP_TZ, "TIMESTAMP WITH TIME ZONE"},
    {DUCKDB_TYPE_UUID, "UUID"},
    {DUCKDB_TYPE_SQLNULL, "\"NULL\""},
    {DUCKDB_TYPE_TIME, "TIME"},
    {DUCKDB_TYPE_TIME_NS, "TIME_NS"},
    {DUCKDB_TYPE_TIME_TZ, "TIME WITH TIME ZONE"},
    {DUCKDB_TYPE_INTERVAL, "INTERVAL"},
    {DUCKDB_TYPE_BLOB, "BLOB"},
    {DUCKDB_TYPE_BIT, "BIT"},
    {DUCKDB_TYPE_BIGNUM, "BIGNUM"},
};

bool lh_keywords_has(const lh_keywords *kw, const char *word)
{
    size_t lo = 0, hi = kw ? kw->count : 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(kw->words[mid], word);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* A STRUCT/UNION field name as DuckDB writes it: bare when it is a lowercase identifier
 * and not a keyword, else double-quoted. */
static void type_field_name(lh_buf *b, const char *name, const lh_keywords *kw)
{
    bool bare = *name && !(name[0] >= '0' && name[0] <= '9');
    for (const char *p = name; *p && bare; p++)
        bare = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
    if (bare && !lh_keywords_has(kw, name)) {
        lh_buf_puts(b, name);
        return;
    }
    lh_buf_putc(b, '"');
    for (const char *p = name; *p; p++) {
        if (*p == '"')
            lh_buf_putc(b, '"');
        lh_buf_putc(b, *p);
    }
    lh_buf_putc(b, '"');
}

static void type_name(lh_buf *b, duckdb_logical_type t, const lh_keywords *kw);

static void type_members(lh_buf *b, duckdb_logical_type t, bool is_union, const lh_keywords *kw)
{
    idx_t n = is_union ? duckdb_union_type_member_count(t) : duckdb_struct_type_child_count(t);
    lh_buf_puts(b, is_union ? "UNION(" : "STRUCT(");
    for (idx_t i = 0; i < n; i++) {
        char *name =
            is_union ? duckdb_union_type_member_name(t, i) : duckdb_struct_type_child_name(t, i);
        duckdb_logical_type ct =
            is_union ? duckdb_union_type_member_type(t, i) : duckdb_struct_type_child_type(t, i);
        if (i)
            lh_buf_puts(b, ", ");
        type_field_name(b, name ? name : "", kw);
        lh_buf_putc(b, ' ');
        type_name(b, ct, kw);
        duckdb_free(name);
        duckdb_destroy_logical_type(&ct);
    }
    lh_buf_putc(b, ')');
}

static void type_name(lh_buf *b, duckdb_logical_type t, const lh_keywords *kw)
{
    char *alias = duckdb_logical_type_get_alias(t);
    if (alias) {
        lh_buf_puts(b, alias);
        duckdb_free(alias);
        return;
    }
    duckdb_type id = duckdb_get_type_id(t);
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
        if (type_names[i].id == id) {
            lh_buf_puts(b, type_names[i].name);
            return;
        }
    }
    duckdb_logical_type c1 = NULL, c2 = NULL;
    switch (id) {
    case DUCKDB_TYPE_DECIMAL:
        lh_buf_printf(b, "DECIMAL(%u,%u)", duckdb_decimal_width(t), duckdb_decimal_scale(t));
        break;
    case DUCKDB_TYPE_LIST:
        c1 = duckdb_list_type_child_type(t);
        type_name(b, c1, kw);
        lh_buf_puts(b, "[]");
        break;
    case DUCKDB_TYPE_ARRAY:
        c1 = duckdb_array_type_child_type(t);
        type_name(b, c1, kw);
        lh_buf_printf(b, "[%llu]", (unsigned long long)duckdb_array_type_array_size(t));
        break;
    case DUCKDB_TYPE_MAP:
        c1 = duckdb_map_type_key_type(t);
        c2 = duckdb_map_type_value_type(t);
        lh_buf_puts(b, "MAP(");
        type_name(b, c1, kw);
        lh_buf_puts(b, ", ");
        type_name(b, c2, kw);
        lh_buf_putc(b, ')');
        break;
    case DUCKDB_TYPE_STRUCT:
    case DUCKDB_TYPE_UNION:
        type_members(b, t, id == DUCKDB_TYPE_UNION, kw);
        break;
    case DUCKDB_TYPE_ENUM: {
        lh_buf_puts(b, "ENUM(");
        uint32_t n = duckdb_enum_dictionary_size(t);
        for (uint32_t i = 0; i < n; i++) {
            char *w = duckdb_enum_dictionary_value(t, i);
            lh_buf_puts(b, i ? ", '" : "'");
            for (const char *p = w; p && *p; p++) {
                if (*p == '\'')
                    lh_buf_putc(b, '\'');
                lh_buf_putc(b, *p);
            }
            lh_buf_putc(b, '\'');
            duckdb_free(w);
        }
        lh_buf_putc(b, ')');
        break;
    }
    default:
        lh_buf_printf(b, "UNKNOWN(%d)", (int)id);
        break;
    }
    if (c1)
        duckdb_destroy_logical_type(&c1);
    if (c2)
        duckdb_destroy_logical_type(&c2);
}

/* ---------------------------------------------------------------- type trees */

void lh_tnode_init(lh_tnode *n, duckdb_logical_type lt)
{
    memset(n, 0, sizeof(*n));
    n->lt = lt;
    n->id = duckdb_get_type_id(lt);
    switch (n->id) {
    case DUCKDB_TYPE_DECIMAL:
        n->width = duckdb_decimal_width(lt);
        n->scale = duckdb_decimal_scale(lt);
        n->storage = duckdb_decimal_internal_type(lt);
        break;
    case DUCKDB_TYPE_ENUM:
        n->storage = duckdb_enum_internal_type(lt);
        break;
    case DUCKDB_TYPE_LIST:
        n->nchildren = 1;
        n->children = lh_xcalloc(1, sizeof(lh_tnode));
        lh_tnode_init(&n->children[0], duckdb_list_type_child_type(lt));
        break;
    case DUCKDB_TYPE_ARRAY:
        n->array_size = duckdb_array_type_array_size(lt);
        n->nchildren = 1;
        n->children = lh_xcalloc(1, sizeof(lh_tnode));
        lh_tnode_init(&n->children[0], duckdb_array_type_child_type(lt));
        break;
    case DUCKDB_TYPE_MAP:
        n->nchildren = 2;
        n->children = lh_xcalloc(2, sizeof(lh_tnode));
        lh_tnode_init(&n->children[0], duckdb_map_type_key_type(lt));
        lh_tnode_init(&n->children[1], duckdb_map_type_value_type(lt));
        break;
    case DUCKDB_TYPE_STRUCT:
        n->nchildren = duckdb_struct_type_child_count(lt);
        n->children = lh_xcalloc(n->nchildren ? n->nchildren : 1, sizeof(lh_tnode));
        for (idx_t i = 0; i < n->nchildren; i++)
            lh_tnode_init(&n->children[i], duckdb_struct_type_child_type(lt, i));
        break;
    case DUCKDB_TYPE_UNION:
        n->nchildren = duckdb_union_type_member_count(lt);
        n->children = lh_xcalloc(n->nchildren ? n->nchildren : 1, sizeof(lh_tnode));
        for (idx_t i = 0; i < n->nchildren; i++)
            lh_tnode_init(&n->children[i], duckdb_union_type_member_type(lt, i));
        break;
    default:
        break;
    }
}

void lh_tnode_free(lh_tnode *n)
{
    for (idx_t i = 0; i < n->nchildren; i++)
        lh_tnode_free(&n->children[i]);
    free(n->children);
    if (n->lt)
        duckdb_destroy_logical_type(&n->lt);
}

char *lh_type_name(duckdb_logical_type t, const lh_keywords *kw)
{
    lh_buf b;
    lh_buf_init(&b);
    type_name(&b, t, kw);
    return b.data ? b.data : lh_xstrdup("");
}
