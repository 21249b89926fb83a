/*
 * manifest.c: the pure part of the catalog: building, checking and editing dataset
 * manifests as jansson objects (no locks, no I/O; catalog.c does those).
 *
 * Invariants kept here:
 *   - Edits are made on the manifest object itself (set/del of known fields), so fields
 *     this version does not know survive every read-modify-write.
 *   - Human edits (human_edits) are the source of truth for what a person said; they are
 *     re-applied after every ingest and every patch, so detection never overrides them.
 *   - A column stays self-consistent after edits: not PII means sensitivity "None" and no
 *     pii_kind, unless the human said otherwise in the same edit (contradictions in one
 *     edit are refused).
 *   - The dataset's sensitivity is the human's when set, else the highest of its columns'.
 */
#include "catalog_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DESCRIPTION_MAX 65536
#define OWNER_MAX 1024
#define TAGS_MAX 64
#define TAG_MAX 128
#define PII_KIND_MAX 64
#define NAMES_IN_MESSAGE 20

/* Dataset-level fields a human edit copies onto the manifest as they are. */
static const char *const copied_fields[] = {"description", "owner", "tags", "freshness"};

/* ---------------------------------------------------------------- schema */

int lh_manifest__schema_validate(const json_t *schema, lh_error *err)
{
    if (!json_is_array(schema) || json_array_size(schema) == 0)
        return lh_error_set(err, LH_EINVAL, "the data has no columns");
    size_t n = json_array_size(schema);
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(schema, i);
        const char *name = lh_json_str(c, "name");
        const char *type = lh_json_str(c, "type");
        if (!name || !*name || !type || !*type)
            return lh_error_set(err, LH_EINVAL, "schema column %zu needs a non-empty name and type",
                                i + 1);
        for (size_t j = 0; j < i; j++)
            if (strcasecmp(name, lh_json_str(json_array_get(schema, j), "name")) == 0)
                return lh_error_set(err, LH_EINVAL,
                                    "the data has two columns named '%s' (names are "
                                    "case-insensitive)",
                                    name);
    }
    return 0;
}

int lh_manifest__schema_same(const char *dataset, const json_t *have, const json_t *got,
                             lh_error *err)
{
    size_t nh = json_array_size(have), ng = json_array_size(got);
    size_t n = nh > ng ? nh : ng, diffs = 0;
    lh_buf msg;
    lh_buf_init(&msg);
    for (size_t i = 0; i < n; i++) {
        const json_t *h = json_array_get(have, i), *g = json_array_get(got, i);
        const char *hn = lh_json_str(h, "name"), *ht = lh_json_str(h, "type");
        const char *gn = lh_json_str(g, "name"), *gt = lh_json_str(g, "type");
        if (h && g && hn && gn && ht && gt && strcmp(hn, gn) == 0 && strcmp(ht, gt) == 0)
            continue;
        if (diffs++ == 10) {
            lh_buf_puts(&msg, "; …");
            break;
        }
        if (diffs > 1)
            lh_buf_puts(&msg, "; ");
        if (h && g)
            lh_buf_printf(&msg, "column %zu is '%s %s' in the dataset but '%s %s' in the new data",
                          i + 1, hn ? hn : "?", ht ? ht : "?", gn ? gn : "?", gt ? gt : "?");
        else if (h)
            lh_buf_printf(&msg, "column %zu '%s %s' is missing from the new data", i + 1,
                          hn ? hn : "?", ht ? ht : "?");
        else
            lh_buf_printf(&msg, "column %zu '%s %s' is not in the dataset", i + 1, gn ? gn : "?",
                          gt ? gt : "?");
    }
    int rc = 0;
    if (diffs)
        rc = lh_error_set(err, LH_EINVAL,
                          "cannot append to '%s': the new data has a different schema (%s); "
                          "append needs the same columns and types in the same order, use "
                          "mode 'replace' to change the schema",
                          dataset, msg.data);
    lh_buf_free(&msg);
    return rc;
}

json_t *lh_manifest__columns_from_schema(const json_t *schema)
{
    return lh_manifest__columns_detect(schema, NULL);
}

/* The PII fields of one column: the ingest's content verdict when it gave one, else the
 * verdict of the name (and type) alone. */
static json_t *column_pii(const char *name, const char *type, const json_t *content_pii)
{
    const json_t *v = json_object_get(content_pii, name);
    if (json_is_object(v))
        return json_deep_copy(v);
    lh_pii_verdict verdict;
    lh_pii_classify(name, type, NULL, 0, &verdict, NULL); /* no values: cannot fail */
    return lh_pii_verdict_json(&verdict);
}

json_t *lh_manifest__columns_detect(const json_t *schema, const json_t *content_pii)
{
    json_t *cols = json_array();
    size_t i;
    const json_t *c;
    json_array_foreach(schema, i, c)
    {
        const char *name = lh_json_str(c, "name"), *type = lh_json_str(c, "type");
        json_t *col = json_pack("{s:s,s:s}", "name", name, "type", type);
        json_t *pii = column_pii(name, type, content_pii);
        static const char *const fields[] = {"is_pii", "pii_kind", "sensitivity"};
        for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++) {
            json_t *f = json_object_get(pii, fields[k]);
            json_object_set(col, fields[k], f ? f : json_null());
        }
        json_object_set_new(col, "description", json_string(""));
        json_t *ev = json_object_get(pii, "pii_evidence");
        if (ev)
            json_object_set(col, "pii_evidence", ev);
        json_decref(pii);
        json_array_append_new(cols, col);
    }
    return cols;
}

void lh_manifest__escalate_pii(json_t *m, const json_t *content_pii)
{
    size_t i;
    json_t *col;
    json_array_foreach(json_object_get(m, "columns"), i, col)
    {
        const json_t *v = json_object_get(content_pii, lh_json_str(col, "name"));
        if (json_is_true(json_object_get(col, "is_pii")) ||
            !json_is_true(json_object_get(v, "is_pii")))
            continue;
        static const char *const fields[] = {"is_pii", "pii_kind", "sensitivity", "pii_evidence"};
        for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++) {
            json_t *f = json_object_get(v, fields[k]);
            if (f)
                json_object_set_new(col, fields[k], json_deep_copy(f));
        }
    }
}

/* ---------------------------------------------------------------- columns */

/* The column of m named `name` (case-insensitively), borrowed; NULL when none. */
static json_t *find_column(const json_t *m, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(m, "columns"), i, c)
    {
        const char *cn = lh_json_str(c, "name");
        if (cn && strcasecmp(cn, name) == 0)
            return c;
    }
    return NULL;
}

/* The edit recorded for column `name` in edits (exact key first, then case-insensitive,
 * so edits survive a replace that only changed the case of a column). Borrowed. */
static json_t *find_column_edit(const json_t *edits, const char *name)
{
    json_t *e = json_object_get(edits, name);
    if (e)
        return e;
    const char *k;
    json_object_foreach((json_t *)edits, k, e)
    {
        if (strcasecmp(k, name) == 0)
            return e;
    }
    return NULL;
}

static void apply_column_edit(json_t *col, const json_t *edit)
{
    json_t *is_pii = json_object_get(edit, "is_pii");
    json_t *kind = json_object_get(edit, "pii_kind");
    const char *sens = lh_json_str(edit, "sensitivity");
    const char *desc = lh_json_str(edit, "description");
    if (desc)
        json_object_set_new(col, "description", json_string(desc));
    if (sens)
        json_object_set_new(col, "sensitivity", json_string(sens));
    if (json_is_boolean(is_pii))
        json_object_set(col, "is_pii", is_pii);
    if (kind && (json_is_string(kind) || json_is_null(kind)))
        json_object_set(col, "pii_kind", kind);
    /* Derive what the human did not say, so the column stays consistent. */
    if (json_is_boolean(is_pii) && !json_is_true(is_pii)) {
        if (!sens)
            json_object_set_new(col, "sensitivity", json_string(lh_sensitivity_name(LH_SENS_NONE)));
        if (!kind)
            json_object_set_new(col, "pii_kind", json_null());
    } else if (json_is_true(is_pii)) {
        if (!sens && lh_sensitivity_rank(lh_json_str(col, "sensitivity")) <= 0)
            json_object_set_new(col, "sensitivity", json_string(lh_sensitivity_name(LH_SENS_PII)));
    } else if (sens) {
        bool pii = lh_sensitivity_rank(sens) > 0;
        json_object_set_new(col, "is_pii", json_boolean(pii));
        if (!pii && !kind)
            json_object_set_new(col, "pii_kind", json_null());
    }
}

/* issue 11 (subjects): the column holding the subjects' ids, set by PATCH .../metadata.
 * Shown at the top level only while the dataset has that column (a replace that drops it
 * hides it; the edit is kept and shows again when the column comes back). */
static void apply_subject_key_column(json_t *m, const json_t *he)
{
    const char *want = lh_json_str(he, "subject_key_column");
    const json_t *col = want ? find_column(m, want) : NULL;
    if (col)
        json_object_set_new(m, "subject_key_column", json_string(lh_json_str(col, "name")));
    else
        json_object_del(m, "subject_key_column");
}

void lh_manifest__apply_human_edits(json_t *m)
{
    const json_t *he = json_object_get(m, "human_edits");
    if (json_is_object(he)) {
        for (size_t i = 0; i < sizeof(copied_fields) / sizeof(copied_fields[0]); i++) {
            json_t *v = json_object_get(he, copied_fields[i]);
            if (v)
                json_object_set_new(m, copied_fields[i], json_deep_copy(v));
        }
        const json_t *edits = json_object_get(he, "columns");
        size_t i;
        json_t *col;
        if (json_is_object(edits))
            json_array_foreach(json_object_get(m, "columns"), i, col)
            {
                const char *name = lh_json_str(col, "name");
                const json_t *e = name ? find_column_edit(edits, name) : NULL;
                if (json_is_object(e))
                    apply_column_edit(col, e);
            }
    }
    apply_subject_key_column(m, he);
    const char *human = lh_json_str(he, "sensitivity");
    if (lh_sensitivity_rank(human) >= 0) {
        json_object_set_new(m, "sensitivity", json_string(human));
        return;
    }
    int max = 0;
    size_t i;
    json_t *col;
    json_array_foreach(json_object_get(m, "columns"), i, col)
    {
        int r = lh_sensitivity_rank(lh_json_str(col, "sensitivity"));
        if (r > max)
            max = r;
    }
    json_object_set_new(m, "sensitivity", json_string(lh_sensitivity_name(max)));
}

/* ---------------------------------------------------------------- patch validation */

static int check_string(const char *what, const json_t *v, size_t max, lh_error *err)
{
    if (!json_is_string(v))
        return lh_error_set(err, LH_EINVAL, "'%s' must be a string", what);
    if (json_string_length(v) > max)
        return lh_error_set(err, LH_EINVAL, "'%s' is %zu bytes long; the limit is %zu", what,
                            json_string_length(v), max);
    return 0;
}

static int check_sensitivity(const char *what, const json_t *v, bool null_ok, lh_error *err)
{
    if (null_ok && json_is_null(v))
        return 0;
    if (lh_sensitivity_rank(json_string_value(v)) >= 0)
        return 0;
    lh_buf names;
    lh_buf_init(&names);
    lh_sensitivity_list(&names);
    int rc = lh_error_set(err, LH_EINVAL, "'%s' must be one of %s%s", what, names.data,
                          null_ok ? " (or null to use the detected one)" : "");
    lh_buf_free(&names);
    return rc;
}

static int check_tags(const json_t *v, lh_error *err)
{
    if (!json_is_array(v) || json_array_size(v) > TAGS_MAX)
        return lh_error_set(err, LH_EINVAL, "'tags' must be an array of at most %d strings",
                            TAGS_MAX);
    size_t i;
    const json_t *t;
    json_array_foreach(v, i, t)
    {
        if (!json_is_string(t) || json_string_length(t) == 0 || json_string_length(t) > TAG_MAX)
            return lh_error_set(err, LH_EINVAL, "tag %zu must be a string of 1 to %d bytes", i + 1,
                                TAG_MAX);
    }
    return 0;
}

/* "dataset 'x' has no column 'y' (columns: a, b, …)" */
static int no_such_column(const json_t *m, const char *name, lh_error *err)
{
    lh_buf cols;
    lh_buf_init(&cols);
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(m, "columns"), i, c)
    {
        if (i == NAMES_IN_MESSAGE) {
            lh_buf_puts(&cols, ", …");
            break;
        }
        lh_buf_printf(&cols, "%s%s", i ? ", " : "", lh_json_str(c, "name"));
    }
    int rc = lh_error_set(err, LH_EINVAL, "dataset '%s' has no column '%s' (columns: %s)",
                          lh_json_str(m, "name"), name, cols.data ? cols.data : "");
    lh_buf_free(&cols);
    return rc;
}

typedef int (*column_field_check)(const char *what, const json_t *v, lh_error *err);

static int col_is_pii(const char *what, const json_t *v, lh_error *err)
{
    return json_is_boolean(v) ? 0
                              : lh_error_set(err, LH_EINVAL, "'%s' must be true or false", what);
}

static int col_pii_kind(const char *what, const json_t *v, lh_error *err)
{
    return json_is_null(v) ? 0 : check_string(what, v, PII_KIND_MAX, err);
}

static int col_sensitivity(const char *what, const json_t *v, lh_error *err)
{
    return check_sensitivity(what, v, false, err);
}

static int col_description(const char *what, const json_t *v, lh_error *err)
{
    return check_string(what, v, DESCRIPTION_MAX, err);
}

static const struct {
    const char *name;
    column_field_check check;
} column_fields[] = {
    {"is_pii", col_is_pii},
    {"pii_kind", col_pii_kind},
    {"sensitivity", col_sensitivity},
    {"description", col_description},
};
#define COLUMN_FIELD_LIST "is_pii, pii_kind, sensitivity, description"

static int check_column_edit(const char *col, const json_t *edit, lh_error *err)
{
    if (!json_is_object(edit))
        return lh_error_set(err, LH_EINVAL, "'columns.%s' must be an object with any of: %s", col,
                            COLUMN_FIELD_LIST);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)edit, k, v)
    {
        size_t i, n = sizeof(column_fields) / sizeof(column_fields[0]);
        for (i = 0; i < n; i++)
            if (strcmp(k, column_fields[i].name) == 0)
                break;
        if (i == n)
            return lh_error_set(err, LH_EINVAL,
                                "unknown field 'columns.%s.%s' in the metadata patch (allowed: "
                                "%s)",
                                col, k, COLUMN_FIELD_LIST);
        char *what = lh_xasprintf("columns.%s.%s", col, k);
        int rc = column_fields[i].check(what, v, err);
        free(what);
        if (rc)
            return rc;
    }
    const json_t *is_pii = json_object_get(edit, "is_pii");
    const char *sens = lh_json_str(edit, "sensitivity");
    if (is_pii && sens && json_is_true(is_pii) != (lh_sensitivity_rank(sens) > 0))
        return lh_error_set(err, LH_EINVAL, "'columns.%s': is_pii %s contradicts sensitivity '%s'",
                            col, json_is_true(is_pii) ? "true" : "false", sens);
    return 0;
}

typedef int (*patch_field_check)(const json_t *m, const json_t *v, lh_error *err);

static int patch_description(const json_t *m, const json_t *v, lh_error *err)
{
    (void)m;
    return check_string("description", v, DESCRIPTION_MAX, err);
}

static int patch_owner(const json_t *m, const json_t *v, lh_error *err)
{
    (void)m;
    return check_string("owner", v, OWNER_MAX, err);
}

static int patch_sensitivity(const json_t *m, const json_t *v, lh_error *err)
{
    (void)m;
    return check_sensitivity("sensitivity", v, true, err);
}

static int patch_tags(const json_t *m, const json_t *v, lh_error *err)
{
    (void)m;
    return check_tags(v, err);
}

static int patch_freshness(const json_t *m, const json_t *v, lh_error *err)
{
    (void)m;
    if (!json_is_object(v) && !json_is_null(v))
        return lh_error_set(err, LH_EINVAL, "'freshness' must be an object or null");
    return 0;
}

static int patch_columns(const json_t *m, const json_t *v, lh_error *err)
{
    if (!json_is_object(v))
        return lh_error_set(err, LH_EINVAL,
                            "'columns' must be an object mapping column names to edits");
    const char *col;
    const json_t *edit;
    json_object_foreach((json_t *)v, col, edit)
    {
        if (!find_column(m, col))
            return no_such_column(m, col, err);
        int rc = check_column_edit(col, edit, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* issue 11 (subjects): a column of the dataset, or null to clear. */
static int patch_subject_key_column(const json_t *m, const json_t *v, lh_error *err)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) == 0)
        return lh_error_set(err, LH_EINVAL,
                            "'subject_key_column' must be the name of a column of the dataset "
                            "(or null to clear it)");
    if (!find_column(m, json_string_value(v)))
        return no_such_column(m, json_string_value(v), err);
    return 0;
}

static const struct {
    const char *name;
    patch_field_check check;
} patch_fields[] = {
    {"description", patch_description},
    {"owner", patch_owner},
    {"sensitivity", patch_sensitivity},
    {"tags", patch_tags},
    {"freshness", patch_freshness},
    {"columns", patch_columns},
    /* issue 11 */
    {"subject_key_column", patch_subject_key_column},
};
#define PATCH_FIELD_LIST                                                                           \
    "description, owner, sensitivity, tags, freshness, columns, subject_key_column"

int lh_manifest__patch_validate(const json_t *m, const json_t *patch, lh_error *err)
{
    if (!json_is_object(patch))
        return lh_error_set(err, LH_EINVAL, "the metadata patch must be a JSON object");
    if (json_object_size(patch) == 0)
        return lh_error_set(err, LH_EINVAL,
                            "the metadata patch is empty; set any of: " PATCH_FIELD_LIST);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)patch, k, v)
    {
        size_t i, n = sizeof(patch_fields) / sizeof(patch_fields[0]);
        for (i = 0; i < n; i++)
            if (strcmp(k, patch_fields[i].name) == 0)
                break;
        if (i == n)
            return lh_error_set(
                err, LH_EINVAL,
                "unknown field '%s' in the metadata patch (allowed: " PATCH_FIELD_LIST ")", k);
        int rc = patch_fields[i].check(m, v, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* Merges one validated column edit into the recorded one. A field the new edit sets makes
 * the recorded values it derives from stale: setting sensitivity alone re-derives is_pii,
 * setting is_pii alone re-derives sensitivity (and pii_kind when false). */
static void merge_column_edit(json_t *recorded, const json_t *edit)
{
    bool has_pii = json_object_get(edit, "is_pii") != NULL;
    bool has_sens = json_object_get(edit, "sensitivity") != NULL;
    if (has_sens && !has_pii)
        json_object_del(recorded, "is_pii");
    if (has_pii && !has_sens)
        json_object_del(recorded, "sensitivity");
    if (has_pii && !json_is_true(json_object_get(edit, "is_pii")) &&
        !json_object_get(edit, "pii_kind"))
        json_object_del(recorded, "pii_kind");
    json_object_update(recorded, (json_t *)edit);
}

void lh_manifest__patch_merge(json_t *m, const json_t *patch)
{
    json_t *he = json_object_get(m, "human_edits");
    if (!json_is_object(he)) {
        he = json_object();
        json_object_set_new(m, "human_edits", he);
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v)
    {
        if (strcmp(k, "columns") == 0) {
            json_t *cols = json_object_get(he, "columns");
            if (!json_is_object(cols)) {
                cols = json_object();
                json_object_set_new(he, "columns", cols);
            }
            const char *col;
            json_t *edit;
            json_object_foreach(v, col, edit)
            {
                const char *real = lh_json_str(find_column(m, col), "name");
                json_t *recorded = json_object_get(cols, real);
                if (!json_is_object(recorded)) {
                    recorded = json_object();
                    json_object_set_new(cols, real, recorded);
                }
                merge_column_edit(recorded, edit);
            }
        } else if (strcmp(k, "sensitivity") == 0 && json_is_null(v)) {
            json_object_del(he, "sensitivity"); /* back to the detected sensitivity */
        } else if (strcmp(k, "subject_key_column") == 0) {
            /* issue 11: recorded under the column's real name; null clears it */
            const json_t *col = json_is_string(v) ? find_column(m, json_string_value(v)) : NULL;
            if (col)
                json_object_set_new(he, k, json_string(lh_json_str(col, "name")));
            else
                json_object_del(he, k);
        } else {
            json_object_set_new(he, k, json_deep_copy(v));
        }
    }
    lh_manifest__apply_human_edits(m);
}

/* ---------------------------------------------------------------- loading */

int lh_manifest__check_loaded(const json_t *m, const char *name, lh_error *err)
{
    const char *format = lh_json_str(m, "format_version");
    if (!format || strcmp(format, LH_MANIFEST_FORMAT) != 0)
        return lh_error_set(err, LH_EINVAL, "format_version is '%s', expected '%s'",
                            format ? format : "(missing)", LH_MANIFEST_FORMAT);
    const char *mname = lh_json_str(m, "name");
    if (!mname || strcmp(mname, name) != 0)
        return lh_error_set(err, LH_EINVAL, "its name '%s' differs from its file name '%s'",
                            mname ? mname : "(missing)", name);
    if (lh_name_validate(mname, "dataset name", err) != 0)
        return LH_EINVAL;
    const json_t *files = json_object_get(m, "files");
    if (!json_is_array(files) || !json_is_array(json_object_get(m, "schema")))
        return lh_error_set(err, LH_EINVAL, "it has no files or schema array");
    size_t i;
    const json_t *f;
    json_array_foreach(files, i, f)
    {
        const char *key = lh_json_str(f, "key");
        if (!key || lh_storage_key_validate(key, NULL) != 0)
            return lh_error_set(err, LH_EINVAL, "file %zu has no valid key", i + 1);
    }
    if (!json_is_array(json_object_get(m, "columns")))
        return lh_error_set(err, LH_EINVAL, "it has no columns array");
    return 0;
}

void lh_manifest__recount(json_t *m)
{
    json_int_t rows = 0, bytes = 0;
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(m, "files"), i, f)
    {
        rows += lh_json_int(f, "rows", 0);
        bytes += lh_json_int(f, "bytes", 0);
    }
    json_object_set_new(m, "row_count", json_integer(rows));
    json_object_set_new(m, "size_bytes", json_integer(bytes));
}
