/*
 * row_filter.c: the scalar function a dataset view with tombstones filters on (views.h):
 *
 *   lh_row_visible(bitmaps BLOB, offsets BIGINT[], file_index UBIGINT, row BIGINT) -> BOOLEAN
 *
 * bitmaps is the dirty parts' deletion bitmaps end to end (bit r is byte r/8, most
 * significant bit first, as bitstring_agg writes them); offsets[i] is the bit where the
 * bitmap of the scan's file i starts and offsets[i + 1] where it ends (n + 1 entries for n
 * files); file_index and row are the scan's virtual columns. A row is visible iff its bit
 * is 0. A file index or row outside the offsets is an error, never a visible row.
 *
 * Why a function of ours: DuckDB's own get_bit(from_base64('...')::BIT, (row + CASE
 * file_index ... END)::INTEGER) = 0 evaluates five vector operations per chunk (the offset,
 * the sum, the cast, get_bit with its bounds check, the comparison) and cost 1.37-1.57x a
 * plain scan of 1M rows with 1% hidden; this one loop cost 1.19-1.22x beside it, against
 * 1.10-1.13x for a filter of arithmetic alone (ARCHITECTURE.md, "What erasure costs").
 *
 * The two constants are read once per query, at bind: DuckDB folds them (the base64 is
 * decoded then) and the bitmap is kept as bind data shared by every copy of the bound
 * expression (reference-counted: DuckDB copies bind data when it copies expressions and
 * runs the function on several threads at once, reading only).
 */
#include "views.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    atomic_int refs;
    uint8_t *bits;  /* duckdb_get_blob's copy (duckdb_free) */
    uint64_t nbits; /* 8 * its bytes */
    int64_t *offs;  /* nfiles + 1 ascending bit offsets within [0, nbits] */
    uint64_t nfiles;
} row_masks;

static void masks_release(void *p)
{
    row_masks *m = p;
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
        return;
    duckdb_free(m->bits);
    free(m->offs);
    free(m);
}

static void *masks_share(void *p)
{
    atomic_fetch_add(&((row_masks *)p)->refs, 1);
    return p;
}

/* Folds argument i of the call being bound (which must be a constant) into *out (caller
 * destroys); NULL when it is not constant or does not fold. */
static const char *fold_arg(duckdb_bind_info info, duckdb_client_context ctx, idx_t i,
                            duckdb_value *out)
{
    *out = NULL;
    duckdb_expression e = duckdb_scalar_function_bind_get_argument(info, i);
    const char *problem = NULL;
    if (!e || !duckdb_expression_is_foldable(e)) {
        problem = LH_ROW_VISIBLE_FN ": the bitmaps and the offsets must be constants";
    } else {
        duckdb_error_data ed = duckdb_expression_fold(ctx, e, out);
        if (duckdb_error_data_has_error(ed) || !*out || duckdb_is_null_value(*out))
            problem = LH_ROW_VISIBLE_FN ": the bitmaps and the offsets must not be NULL";
        duckdb_destroy_error_data(&ed);
    }
    duckdb_destroy_expression(&e);
    return problem;
}

/* The offsets list v as nfiles + 1 ascending values within [0, nbits]; NULL when it is not. */
static int64_t *offsets_read(duckdb_value v, uint64_t nbits, uint64_t *nfiles)
{
    idx_t n = duckdb_get_list_size(v);
    if (n < 2)
        return NULL;
    int64_t *offs = lh_xcalloc(n, sizeof(int64_t));
    bool ok = true;
    for (idx_t i = 0; ok && i < n; i++) {
        duckdb_value c = duckdb_get_list_child(v, i);
        ok = c && !duckdb_is_null_value(c);
        if (ok)
            offs[i] = duckdb_get_int64(c);
        duckdb_destroy_value(&c);
        ok = ok && offs[i] >= (i ? offs[i - 1] : 0) && (uint64_t)offs[i] <= nbits;
    }
    if (!ok) {
        free(offs);
        return NULL;
    }
    *nfiles = n - 1;
    return offs;
}

static void row_visible_bind(duckdb_bind_info info)
{
    duckdb_client_context ctx = NULL;
    duckdb_scalar_function_get_client_context(info, &ctx);
    duckdb_value bits = NULL, offs = NULL;
    const char *problem = fold_arg(info, ctx, 0, &bits);
    if (!problem)
        problem = fold_arg(info, ctx, 1, &offs);
    if (!problem) {
        row_masks *m = lh_xcalloc(1, sizeof(*m));
        atomic_init(&m->refs, 1);
        duckdb_blob b = duckdb_get_blob(bits);
        m->bits = b.data;
        m->nbits = (uint64_t)b.size * 8;
        m->offs = offsets_read(offs, m->nbits, &m->nfiles);
        if (m->offs) {
            duckdb_scalar_function_set_bind_data(info, m, masks_release);
            duckdb_scalar_function_set_bind_data_copy(info, masks_share);
        } else {
            masks_release(m);
            problem = LH_ROW_VISIBLE_FN ": the offsets must ascend from 0 to at most the "
                                        "bitmaps' length, one more than the files";
        }
    }
    if (problem)
        duckdb_scalar_function_bind_set_error(info, problem);
    duckdb_destroy_value(&bits);
    duckdb_destroy_value(&offs);
    duckdb_destroy_client_context(&ctx);
}

static void row_visible(duckdb_function_info info, duckdb_data_chunk input, duckdb_vector output)
{
    const row_masks *m = duckdb_scalar_function_get_bind_data(info);
    idx_t n = duckdb_data_chunk_get_size(input);
    duckdb_vector fv = duckdb_data_chunk_get_vector(input, 2);
    duckdb_vector rv = duckdb_data_chunk_get_vector(input, 3);
    const uint64_t *file = duckdb_vector_get_data(fv);
    const int64_t *row = duckdb_vector_get_data(rv);
    /* the scan never gives NULL here; a caller who did would get an error, not a row */
    uint64_t *fvalid = duckdb_vector_get_validity(fv), *rvalid = duckdb_vector_get_validity(rv);
    bool ok = true;
    for (idx_t i = 0; (fvalid || rvalid) && ok && i < n; i++)
        ok = (!fvalid || duckdb_validity_row_is_valid(fvalid, i)) &&
             (!rvalid || duckdb_validity_row_is_valid(rvalid, i));
    bool *out = duckdb_vector_get_data(output);
    for (idx_t i = 0; ok && i < n; i++) {
        uint64_t f = file[i];
        int64_t r = row[i];
        ok = f < m->nfiles && r >= 0 && r < m->offs[f + 1] - m->offs[f];
        if (!ok)
            break;
        uint64_t bit = (uint64_t)(m->offs[f] + r);
        out[i] = !((m->bits[bit >> 3] >> (7 - (bit & 7))) & 1);
    }
    if (!ok)
        duckdb_scalar_function_set_error(info, LH_ROW_VISIBLE_FN
                                         ": a row outside its part's deletion bitmap (a part "
                                         "longer than its manifest says)");
}

int lh_row_filter_register(duckdb_connection conn, lh_error *err)
{
    duckdb_scalar_function f = duckdb_create_scalar_function();
    duckdb_scalar_function_set_name(f, LH_ROW_VISIBLE_FN);
    duckdb_logical_type blob = duckdb_create_logical_type(DUCKDB_TYPE_BLOB);
    duckdb_logical_type big = duckdb_create_logical_type(DUCKDB_TYPE_BIGINT);
    duckdb_logical_type ubig = duckdb_create_logical_type(DUCKDB_TYPE_UBIGINT);
    duckdb_logical_type list = duckdb_create_list_type(big);
    duckdb_logical_type boolean = duckdb_create_logical_type(DUCKDB_TYPE_BOOLEAN);
    duckdb_scalar_function_add_parameter(f, blob);
    duckdb_scalar_function_add_parameter(f, list);
    duckdb_scalar_function_add_parameter(f, ubig);
    duckdb_scalar_function_add_parameter(f, big);
    duckdb_scalar_function_set_return_type(f, boolean);
    duckdb_scalar_function_set_bind(f, row_visible_bind);
    duckdb_scalar_function_set_function(f, row_visible);
    duckdb_state st = duckdb_register_scalar_function(conn, f);
    duckdb_destroy_scalar_function(&f);
    duckdb_destroy_logical_type(&blob);
    duckdb_destroy_logical_type(&big);
    duckdb_destroy_logical_type(&ubig);
    duckdb_destroy_logical_type(&list);
    duckdb_destroy_logical_type(&boolean);
    if (st == DuckDBError)
        return lh_error_set(err, LH_EINTERNAL, "cannot register the function " LH_ROW_VISIBLE_FN);
    return 0;
}
