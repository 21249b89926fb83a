/*
 * common.c: the small things every file of src/sources/ shares: source kinds, the
 * reader's column arrays, secret strings.
 */
#include "sources_internal.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

const char *lh_source_kind_name(lh_source_kind kind)
{
    return kind == LH_SOURCE_MYSQL ? "mysql" : "postgres";
}

int lh_source_kind_parse(const char *s, lh_source_kind *out, lh_error *err)
{
    if (s && (strcmp(s, "postgres") == 0 || strcmp(s, "postgresql") == 0)) {
        *out = LH_SOURCE_POSTGRES;
        return 0;
    }
    if (s && (strcmp(s, "mysql") == 0 || strcmp(s, "mariadb") == 0)) {
        *out = LH_SOURCE_MYSQL;
        return 0;
    }
    return lh_error_setk(err, LH_EINVAL, "invalid_source_kind",
                         "unknown source kind '%s': use postgres or mysql", s ? s : "(none)");
}

void lh_db_reader_free_columns(lh_db_reader *r)
{
    for (size_t i = 0; i < r->ncols; i++) {
        if (r->names)
            free(r->names[i]);
        if (r->types && r->types[i])
            duckdb_destroy_logical_type(&r->types[i]);
        if (r->source_types)
            free(r->source_types[i]);
    }
    free(r->names);
    free(r->types);
    free(r->source_types);
    r->names = NULL;
    r->types = NULL;
    r->source_types = NULL;
    r->ncols = 0;
}

void lh_secret_free(char *secret)
{
    if (!secret)
        return;
    sodium_memzero(secret, strlen(secret));
    free(secret);
}
