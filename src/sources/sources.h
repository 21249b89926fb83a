/*
 * sources: database tables streamed into datasets (PostgreSQL through libpq, MySQL and
 * MariaDB through libmariadb), once or incrementally; named sources whose DSNs are kept
 * as secrets; and the DSN redaction every message that could carry one goes through.
 *
 * The stream: a reader (pg.c, mysql.c) pulls rows from the server without buffering the
 * result (COPY ... TO STDOUT / mysql_use_result) and fills DuckDB data chunks; a private
 * in-memory DuckDB instance (sync.c) exposes the reader as a table function and COPYs it
 * into a staged Parquet part, so memory stays bounded by a row group whatever the table's
 * size. The part then takes the file ingest's path (lh_ingest_commit_part): content PII,
 * object commit, manifest commit, journal event.
 *
 * See docs/INGEST.md ("Database sources") for the type mappings and the sync semantics.
 */
#ifndef LH_SOURCES_H
#define LH_SOURCES_H

#include "catalog/catalog.h"
#include "core/core.h"
#include "ingest/ingest.h"
#include "query/query.h"

typedef enum { LH_SOURCE_POSTGRES, LH_SOURCE_MYSQL } lh_source_kind;

/* "postgres" | "mysql". */
const char *lh_source_kind_name(lh_source_kind kind);
/* Parses "postgres" (also "postgresql") | "mysql" (also "mariadb"); else LH_EINVAL. */
int lh_source_kind_parse(const char *s, lh_source_kind *out, lh_error *err);

/* ---------------------------------------------------------------- DSNs (dsn.c)
 * Accepted forms:
 *   postgres: postgresql://user:pass@host:port/db?k=v, postgres://..., and libpq's
 *             key=value form (host=... user=... password=... dbname=... sslmode=...,
 *             values optionally single-quoted with \' and \\ escapes);
 *   mysql:    mysql://user:pass@host:port/db?ssl-mode=REQUIRED (also mariadb://) and the
 *             same key=value form (host, port, user, password, dbname or database,
 *             ssl-mode/sslmode, unix_socket).
 * Percent-escapes in URIs are decoded. */

typedef struct lh_dsn {
    lh_source_kind kind;
    char *host;     /* NULL: the library's default */
    int port;       /* 0: the default */
    char *user;     /* may be NULL */
    char *password; /* the secret; may be NULL */
    char *database; /* may be NULL */
    char *sslmode;  /* "disable" | "prefer" | "require" | "verify-ca" | "verify-full",
                       or NULL (the library's default) */
    char *socket;   /* mysql unix_socket, or NULL */
} lh_dsn;

/* Parses a DSN of `kind`. LH_EINVAL (the message never quotes the DSN). */
int lh_dsn_parse(lh_source_kind kind, const char *dsn, lh_dsn *out, lh_error *err);
/* Frees the fields (wiping the password first). Accepts a zeroed struct. */
void lh_dsn_free(lh_dsn *dsn);
/* The DSN with its password replaced by "***" (user:***@host, password=***), in any of
 * the forms above; a DSN that cannot be parsed becomes "<unparsable DSN>". Caller frees. */
char *lh_dsn_redact(const char *dsn);
/* "host:port/db" of a DSN, for lineage and messages; never the user or password. Caller
 * frees. */
char *lh_dsn_location(const lh_dsn *dsn);
/* Replaces every occurrence of the DSN's password (and the raw DSN itself) in
 * err->message with "***": for messages from libraries that might echo them. */
void lh_dsn_scrub(lh_error *err, const lh_dsn *dsn, const char *raw_dsn);

/* ---------------------------------------------------------------- named sources (store.c)
 * <data>/_secrets/sources.json (folder 0700, file 0600 from creation, atomic writes):
 * {format_version: "sources.v1", sources: [{name, kind, dsn, created_at, created_by}]}.
 * The DSN leaves this module only through lh_sources_dsn (to connect); listings carry it
 * redacted. Thread-safe (one mutex). */

typedef struct lh_sources lh_sources;

/* Loads the store under data_dir (creating <data>/_secrets 0700; the file appears with the
 * first source). A file that cannot be read or parsed, or holds an entry that does not
 * validate, is LH_EIO (never silently emptied; the message never quotes a DSN). Caller
 * frees with lh_sources_close. */
lh_sources *lh_sources_open(const char *data_dir, lh_error *err);
void lh_sources_close(lh_sources *s);
/* From then on every add and delete appends source.created / source.deleted (target: the
 * name; details: {kind, location}, never the DSN) to cat's event journal, under the store's
 * lock so the journal's order is the order of changes. cat must outlive s; NULL: none. */
void lh_sources_set_journal(lh_sources *s, lh_catalog *cat);
/* Adds a source: name is a slug (lh_name_validate), the DSN must parse for kind (and be
 * UTF-8). LH_EEXISTS when the name is taken, LH_EINVAL, LH_EIO. Durable before it returns;
 * LH_EIO kind event_not_recorded when it was made but its journal event is still pending. */
int lh_sources_add(lh_sources *s, const char *name, lh_source_kind kind, const char *dsn,
                   const char *actor, lh_error *err);
/* LH_ENOTFOUND when unknown. Durable before it returns; event_not_recorded as for add.
 * actor (may be NULL) is the journal event's. */
int lh_sources_delete(lh_sources *s, const char *name, const char *actor, lh_error *err);
/* [{name, kind, dsn (redacted), location, created_at, created_by}]. Caller decrefs. */
json_t *lh_sources_list(lh_sources *s);
/* One source as lh_sources_list shows it, or NULL + LH_ENOTFOUND. Caller decrefs. */
json_t *lh_sources_get(lh_sources *s, const char *name, lh_error *err);
/* The secret DSN of a named source and its kind, or NULL + LH_ENOTFOUND. Caller frees
 * with lh_secret_free. */
char *lh_sources_dsn(lh_sources *s, const char *name, lh_source_kind *kind, lh_error *err);
/* lh_secret_free (core.h) wipes and frees it. */

/* ---------------------------------------------------------------- syncs (sync.c) */

typedef struct lh_db_ingest_request {
    lh_source_kind kind;
    const char *dsn;    /* the secret DSN, or NULL with source */
    const char *source; /* a named source (its kind must be `kind`), or NULL with dsn */
    const char *table;  /* "table" or "schema.table" (quoted by the reader), or NULL */
    const char *query;  /* one SELECT, run as the source's user, or NULL (exactly one of
                           table and query) */
    const char *dataset;
    lh_ingest_mode mode;
    const char *bucket;             /* or NULL, as for a file ingest */
    const char *incremental_column; /* or NULL: create/replace record the watermark (every
                                       row is read), append reads rows above it */
    const char *key_column;         /* or NULL; with incremental_column: an append upserts
                                       by this key (create/replace only record it) */
    const char *actor;
} lh_db_ingest_request;

typedef struct lh_db_ingest lh_db_ingest;

/* ing, cat, eng and src must outlive it. Caller frees with lh_db_ingest_close. */
lh_db_ingest *lh_db_ingest_open(lh_ingest *ing, lh_catalog *cat, lh_engine *eng, lh_sources *src,
                                lh_error *err);
void lh_db_ingest_close(lh_db_ingest *d);
/* Validates a request before it is queued: names, mode, table xor query, dsn xor source,
 * key only with an incremental column, the source exists and has the right kind or the
 * DSN parses, the dataset exists for append / not for create, the bucket. LH_EINVAL, LH_ENOTFOUND,
 * LH_EEXISTS. Never connects. */
int lh_db_ingest_check(lh_db_ingest *d, const lh_db_ingest_request *req, lh_error *err);
/* Runs a sync (on a job thread: job gets progress in rows and may cancel it; NULL runs it
 * inline). On success *result (if not NULL) gets
 *   {dataset, mode, rows, rows_superseded, watermark: {column, previous, current} | null,
 *    job (the job's id, or a random one inline), manifest}
 * (the API's reply; h5 added "job" to match it). An append that reads no row commits
 * nothing and returns the unchanged manifest with rows 0.
 * Errors: those of lh_db_ingest_check, LH_EUPSTREAM (connection refused, authentication,
 * TLS, unknown table, a query error or the server gone mid-stream), LH_EINVAL kind
 * "unmappable_value" (a value the mapping cannot hold, naming column and row; also a
 * value an append cannot cast to the dataset's type), LH_EINVAL kind "schema_mismatch"
 * (append: other columns), "key_not_unique" (append with a key the new rows repeat), an
 * incremental column other than the dataset's watermark's, LH_ECANCELLED, LH_ECONFLICT, LH_EIO. On
 * any error nothing is left behind and an existing dataset is as it was. No message ever carries
 * the DSN's password. */
int lh_db_ingest_run(lh_db_ingest *d, const lh_db_ingest_request *req, lh_job *job, json_t **result,
                     lh_error *err);

#endif
