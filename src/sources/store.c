/*
 * store.c: named database sources, so a sync names a source instead of resending a
 * password. The DSNs are secrets and live in <data>/_secrets/sources.json, beside the
 * API keys' store, under the same rules (docs/SECURITY.md "Database sources").
 *
 * Invariants:
 *   - The folder is 0700 and the file 0600 from its creation: every write is atomic
 *     (lh_fs_write_atomic_mode: temp file created 0600 beside it, fsync, rename, folder
 *     fsync), so a crash leaves the old or the new set, never a half-written one, and the
 *     file is never readable by others for an instant.
 *   - A change is durable before it is answered. A write that fails before its rename is
 *     rolled back in memory; one whose rename took effect but whose folder fsync failed
 *     (LH_KIND_NOT_DURABLE) is rolled forward (the file shows it), as auth does.
 *   - The file is loaded at open; one that cannot be read, is not the format, or holds an
 *     entry that does not validate stops the open (LH_EIO). Emptying it silently would
 *     lose every source's credentials.
 *   - The DSN leaves this file only through lh_sources_dsn (to connect). Listings, errors,
 *     log lines and journal events carry lh_dsn_redact / lh_dsn_location output; messages
 *     about a damaged file give a line and column, never the parser's excerpt (which could
 *     quote a password). Buffers and JSON strings that held a DSN are wiped before they
 *     are freed.
 *   - One mutex `mu` guards the set and serialises writes and journal appends, so the
 *     journal's seq order is the order of changes. Lock order: mu, then the journal's.
 */
#include "sources_internal.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STORE_FORMAT "sources.v1"
#define STORE_MAX_BYTES (16 << 20)
#define MAX_SOURCES 10000

typedef struct source {
    char *name;
    lh_source_kind kind;
    char *dsn; /* the secret */
    char *created_at;
    char *created_by;
} source;

struct lh_sources {
    pthread_mutex_t mu;
    char *dir;  /* <data>/_secrets */
    char *path; /* sources.json */
    source *v;  /* sorted by name */
    size_t n, cap;
    lh_catalog *journal; /* events go here; NULL: none */
};

static void source_clear(source *e)
{
    free(e->name);
    lh_secret_free(e->dsn);
    free(e->created_at);
    free(e->created_by);
    memset(e, 0, sizeof(*e));
}

/* Wipes a JSON string's bytes in place before its owner frees it (jansson does not). */
static void wipe_json_string(json_t *s)
{
    if (json_is_string(s))
        sodium_memzero((char *)json_string_value(s), json_string_length(s));
}

/* Index of name, or -(insertion point) - 1 when absent. Under mu. */
static ssize_t find(const lh_sources *s, const char *name)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->v[mid].name, name);
        if (c == 0)
            return (ssize_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(ssize_t)lo - 1;
}

static void insert_at(lh_sources *s, size_t at, source *e)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = lh_xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    memmove(&s->v[at + 1], &s->v[at], (s->n - at) * sizeof(*s->v));
    s->v[at] = *e;
    s->n++;
    memset(e, 0, sizeof(*e));
}

/* Removes entry `at` into *out (the caller owns it). */
static void remove_at(lh_sources *s, size_t at, source *out)
{
    *out = s->v[at];
    memmove(&s->v[at], &s->v[at + 1], (s->n - at - 1) * sizeof(*s->v));
    s->n--;
}

/* Writes the set. Under mu. Returns 0 also when only the folder fsync failed (rolled
 * forward, logged). */
static int persist(lh_sources *s, lh_error *err)
{
    json_t *arr = json_array();
    bool complete = true; /* every entry rendered (lh_sources_add admits UTF-8 only) */
    for (size_t i = 0; i < s->n; i++) {
        const source *e = &s->v[i];
        json_t *item = json_pack("{s:s,s:s,s:s,s:s,s:s}", "name", e->name, "kind",
                                 lh_source_kind_name(e->kind), "dsn", e->dsn, "created_at",
                                 e->created_at, "created_by", e->created_by);
        complete = complete && item;
        json_array_append_new(arr, item);
    }
    json_t *doc = json_pack("{s:s,s:o}", "format_version", STORE_FORMAT, "sources", arr);
    char *text = complete ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    size_t i;
    json_t *item;
    json_array_foreach(arr, i, item) wipe_json_string(json_object_get(item, "dsn"));
    json_decref(doc);
    if (!text) /* never write a file that lacks a source */
        return lh_error_set(err, LH_EINTERNAL, "cannot render the sources store");
    int rc = lh_fs_write_atomic_mode(s->path, text, strlen(text), 0600, err);
    lh_secret_free(text);
    if (rc && lh_error_not_durable(err)) {
        lh_log(LH_LOG_WARN, "sources.store_not_durable", "{s:s}", "error", err->message);
        lh_error_clear(err);
        rc = 0;
    }
    return rc;
}

/* The location of a DSN for listings and events ("host:port/db"), or NULL when it does not
 * parse. Caller frees. */
static char *location_of(lh_source_kind kind, const char *dsn)
{
    lh_dsn d;
    lh_error ignored;
    if (lh_dsn_parse(kind, dsn, &d, &ignored) != 0)
        return NULL;
    char *loc = lh_dsn_location(&d);
    lh_dsn_free(&d);
    return loc;
}

/* Checks one loaded entry and moves it into *out. LH_EIO naming the entry (never its DSN). */
static int load_entry(const lh_sources *s, size_t index, json_t *e, source *out, lh_error *err)
{
    const char *name = lh_json_str(e, "name");
    const char *dsn = lh_json_str(e, "dsn");
    lh_source_kind kind;
    lh_error why;
    lh_error_clear(&why);
    if (!name || lh_name_validate(name, "source name", &why) != 0 ||
        lh_source_kind_parse(lh_json_str(e, "kind"), &kind, &why) != 0 || !dsn) {
        return lh_error_set(err, LH_EIO, "'%s' is damaged: entry %zu is not a source (%s)", s->path,
                            index, why.message[0] ? why.message : "no name or dsn");
    }
    lh_dsn d;
    if (lh_dsn_parse(kind, dsn, &d, &why) != 0)
        return lh_error_set(err, LH_EIO,
                            "'%s' is damaged: the DSN of source '%s' does not parse (%s)", s->path,
                            name, why.message);
    lh_dsn_free(&d);
    out->name = lh_xstrdup(name);
    out->kind = kind;
    out->dsn = lh_xstrdup(dsn);
    out->created_at = lh_xstrdup(lh_json_str(e, "created_at") ? lh_json_str(e, "created_at") : "");
    out->created_by = lh_xstrdup(lh_json_str(e, "created_by") ? lh_json_str(e, "created_by") : "");
    return 0;
}

static int load(lh_sources *s, lh_error *err)
{
    char *text = NULL;
    size_t len = 0;
    json_t *doc = NULL;
    int rc = lh_fs_read_all(s->path, STORE_MAX_BYTES, &text, &len, err);
    if (rc == LH_ENOTFOUND) {
        lh_error_clear(err);
        return 0; /* no source yet: the file appears with the first one */
    }
    if (rc)
        goto out;
    /* A file someone widened is narrowed again before anything reads it further. */
    struct stat st;
    if (stat(s->path, &st) == 0 && (st.st_mode & 077)) {
        if (chmod(s->path, 0600) != 0) {
            rc = lh_error_set(err, LH_EIO, "'%s' is readable by others and cannot be made 0600",
                              s->path);
            goto out;
        }
        lh_log(LH_LOG_WARN, "sources.store_mode_fixed", "{s:s}", "file", s->path);
    }
    json_error_t jerr;
    doc = json_loadb(text, len, 0, &jerr);
    json_t *arr = json_object_get(doc, "sources");
    if (!doc) {
        rc = lh_error_set(err, LH_EIO, "'%s' is damaged: not JSON (line %d, column %d)", s->path,
                          jerr.line, jerr.column);
        goto out;
    }
    const char *format = lh_json_str(doc, "format_version");
    if (!format || strcmp(format, STORE_FORMAT) != 0 || !json_is_array(arr)) {
        rc = lh_error_set(err, LH_EIO,
                          "'%s' is damaged: expected {\"format_version\": \"%s\", \"sources\": "
                          "[...]}",
                          s->path, STORE_FORMAT);
        goto out;
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        source entry = {0};
        if ((rc = load_entry(s, i, e, &entry, err)) != 0)
            goto out;
        ssize_t at = find(s, entry.name);
        if (at >= 0) {
            rc = lh_error_set(err, LH_EIO, "'%s' is damaged: source '%s' appears twice", s->path,
                              entry.name);
            source_clear(&entry);
            goto out;
        }
        insert_at(s, (size_t)(-at - 1), &entry);
    }
out:
    if (doc) {
        size_t k;
        json_t *item;
        json_array_foreach(json_object_get(doc, "sources"), k, item)
            wipe_json_string(json_object_get(item, "dsn"));
    }
    json_decref(doc);
    if (text) {
        sodium_memzero(text, len);
        free(text);
    }
    return rc;
}

lh_sources *lh_sources_open(const char *data_dir, lh_error *err)
{
    lh_sources *s = lh_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->dir = lh_path_join(data_dir, "_secrets");
    s->path = lh_path_join(s->dir, "sources.json");
    if (lh_fs_mkdirs(s->dir, 0700, err) != 0)
        goto fail;
    if (chmod(s->dir, 0700) != 0) {
        lh_error_set(err, LH_EIO, "cannot make '%s' 0700", s->dir);
        goto fail;
    }
    if (load(s, err) != 0)
        goto fail;
    return s;
fail:
    lh_sources_close(s);
    return NULL;
}

void lh_sources_close(lh_sources *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        source_clear(&s->v[i]);
    free(s->v);
    free(s->dir);
    free(s->path);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void lh_sources_set_journal(lh_sources *s, lh_catalog *cat)
{
    pthread_mutex_lock(&s->mu);
    s->journal = cat;
    pthread_mutex_unlock(&s->mu);
}

/* Appends source.created / source.deleted. Under mu. Details: kind and location only. */
static int record(lh_sources *s, const char *actor, const char *action, const source *e,
                  lh_error *err)
{
    if (!s->journal)
        return 0;
    char *loc = location_of(e->kind, e->dsn);
    json_t *details =
        json_pack("{s:s,s:s?}", "kind", lh_source_kind_name(e->kind), "location", loc);
    free(loc);
    return lh_catalog_record(s->journal, actor, action, e->name, details, err);
}

int lh_sources_add(lh_sources *s, const char *name, lh_source_kind kind, const char *dsn,
                   const char *actor, lh_error *err)
{
    lh_dsn parsed;
    if (!name)
        return lh_error_set(err, LH_EINVAL, "a source needs a name");
    if (lh_name_validate(name, "source name", err) != 0)
        return err->code;
    if (kind != LH_SOURCE_POSTGRES && kind != LH_SOURCE_MYSQL)
        return lh_error_setk(err, LH_EINVAL, "invalid_source_kind", "unknown source kind");
    if (dsn && !lh_utf8_valid(dsn, strlen(dsn)))
        return lh_error_set(err, LH_EINVAL, "the DSN is not valid UTF-8");
    if (actor && !lh_utf8_valid(actor, strlen(actor)))
        actor = "anonymous";
    if (lh_dsn_parse(kind, dsn, &parsed, err) != 0)
        return err->code;
    lh_dsn_free(&parsed);

    source e = {.name = lh_xstrdup(name), .kind = kind, .dsn = lh_xstrdup(dsn)};
    char ts[LH_TS_MAX];
    lh_time_rfc3339(ts);
    e.created_at = lh_xstrdup(ts);
    e.created_by = lh_xstrdup(actor ? actor : "anonymous");
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    ssize_t at = find(s, name);
    if (at >= 0) {
        rc = lh_error_setk(err, LH_EEXISTS, "already_exists",
                           "a source named '%s' exists; delete it first to change its DSN", name);
        goto out;
    }
    if (s->n >= MAX_SOURCES) {
        rc = lh_error_set(err, LH_ETOOLARGE, "at most %d named sources", MAX_SOURCES);
        goto out;
    }
    size_t pos = (size_t)(-at - 1);
    insert_at(s, pos, &e);
    if ((rc = persist(s, err)) != 0) {
        remove_at(s, pos, &e); /* nothing reached disk: forget it */
        goto out;
    }
    rc = record(s, actor, "source.created", &s->v[pos], err);
    lh_log(LH_LOG_INFO, "source.created", "{s:s,s:s,s:s}", "source", name, "kind",
           lh_source_kind_name(kind), "actor", actor ? actor : "anonymous");
out:
    pthread_mutex_unlock(&s->mu);
    source_clear(&e);
    return rc;
}

int lh_sources_delete(lh_sources *s, const char *name, const char *actor, lh_error *err)
{
    source gone = {0};
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    ssize_t at = name ? find(s, name) : -1;
    if (at < 0) {
        rc = lh_error_set(err, LH_ENOTFOUND, "no source named '%s'", name ? name : "");
        goto out;
    }
    remove_at(s, (size_t)at, &gone);
    if ((rc = persist(s, err)) != 0) {
        insert_at(s, (size_t)at, &gone); /* the file still has it: so does memory */
        goto out;
    }
    rc = record(s, actor, "source.deleted", &gone, err);
    lh_log(LH_LOG_INFO, "source.deleted", "{s:s,s:s}", "source", name, "actor",
           actor ? actor : "anonymous");
out:
    pthread_mutex_unlock(&s->mu);
    source_clear(&gone);
    return rc;
}

/* The public view of one source. Under mu. */
static json_t *describe(const source *e)
{
    char *redacted = lh_dsn_redact(e->dsn);
    char *loc = location_of(e->kind, e->dsn);
    json_t *out = json_pack("{s:s,s:s,s:s,s:s?,s:s,s:s}", "name", e->name, "kind",
                            lh_source_kind_name(e->kind), "dsn", redacted, "location", loc,
                            "created_at", e->created_at, "created_by", e->created_by);
    free(redacted);
    free(loc);
    return out;
}

json_t *lh_sources_list(lh_sources *s)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++)
        json_array_append_new(arr, describe(&s->v[i]));
    pthread_mutex_unlock(&s->mu);
    return arr;
}

json_t *lh_sources_get(lh_sources *s, const char *name, lh_error *err)
{
    json_t *out = NULL;
    pthread_mutex_lock(&s->mu);
    ssize_t at = name ? find(s, name) : -1;
    if (at >= 0)
        out = describe(&s->v[at]);
    pthread_mutex_unlock(&s->mu);
    if (!out)
        lh_error_set(err, LH_ENOTFOUND, "no source named '%s'", name ? name : "");
    return out;
}

char *lh_sources_dsn(lh_sources *s, const char *name, lh_source_kind *kind, lh_error *err)
{
    char *out = NULL;
    pthread_mutex_lock(&s->mu);
    ssize_t at = name ? find(s, name) : -1;
    if (at >= 0) {
        out = lh_xstrdup(s->v[at].dsn);
        if (kind)
            *kind = s->v[at].kind;
    }
    pthread_mutex_unlock(&s->mu);
    if (!out)
        lh_error_set(err, LH_ENOTFOUND, "no source named '%s'", name ? name : "");
    return out;
}
