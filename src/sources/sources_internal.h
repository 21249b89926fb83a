/*
 * sources_internal.h: what the files of src/sources/ share and nothing outside reads —
 * the reader interface the two database drivers implement and sync.c drives.
 */
#ifndef LH_SOURCES_INTERNAL_H
#define LH_SOURCES_INTERNAL_H

#include "sources.h"

#include <pthread.h>
#include <stdatomic.h>

/* duckdb.h declares a few `f()` functions; keep -Wstrict-prototypes for our own code. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <duckdb.h>
#pragma GCC diagnostic pop

/* A cancellation point a sync shares with its reader before the reader exists: the reader
 * attaches its socket as soon as it has connected, so a cancel while it opens (a server
 * that computes for a long time before its first row: PostgreSQL sends nothing, not even
 * COPY's start, until its output buffer fills) shuts that socket down too. Thread-safe. */
typedef struct lh_db_cancel {
    pthread_mutex_t mu;
    int fd; /* the attached socket, or -1 */
    atomic_bool fired;
} lh_db_cancel;

void lh_db_cancel_init(lh_db_cancel *c);
void lh_db_cancel_destroy(lh_db_cancel *c);
/* From any thread: marks c fired and shuts the attached socket down (recv and poll in the
 * reader's library return at once). Idempotent. The signature is a job cancel hook's. */
void lh_db_cancel_fire(void *c);
/* Reader side (c may be NULL): attach the connected socket, -1 when c has already fired
 * (the reader stops: LH_ECANCELLED); detach it before closing the socket. */
int lh_db_cancel_attach(lh_db_cancel *c, int fd);
void lh_db_cancel_detach(lh_db_cancel *c);
bool lh_db_cancel_fired(lh_db_cancel *c);

/* What to read: a table or a query, optionally only the rows whose incremental column is
 * above a watermark. The reader builds the statement in its server's dialect, quoting the
 * table ("schema"."table" / `db`.`table`) and the column, and passing the watermark as a
 * string literal the server compares after its own implicit cast. */
typedef struct lh_db_select {
    const char *table;              /* or NULL */
    const char *query;              /* or NULL: exactly one of the two */
    const char *incremental_column; /* or NULL */
    const char *watermark;          /* rows with column > this text; NULL: every row */
    lh_db_cancel *cancel;           /* or NULL: the reader attaches its socket to it */
} lh_db_select;

/* An open, streaming read. Created by lh_pg_reader_open / lh_mysql_reader_open, which
 * connect, describe the result (names and mapped types, before any row is read), and start
 * the unbuffered stream. Used by one thread at a time, except interrupt. */
typedef struct lh_db_reader lh_db_reader;
struct lh_db_reader {
    size_t ncols;
    char **names;               /* the result's column names (unique: a duplicate is
                                   refused at open, LH_EINVAL naming it) */
    duckdb_logical_type *types; /* the DuckDB type each column is delivered as */
    char **source_types;        /* the server's type of each column ("numeric(12,2)",
                                   "tinyint(1) unsigned", ...), for messages and docs */
    int64_t rows;               /* rows delivered so far */
    /* Fills out (created with types[], so its vectors match) with up to
     * duckdb_vector_size() rows and sets its size; a size of 0 is the end of the result.
     * 0, or: LH_EUPSTREAM (query error or server gone mid-stream), LH_EINVAL kind
     * "unmappable_value" naming the column, its source type and the row number (never the
     * value), LH_ECANCELLED after interrupt. */
    int (*next)(lh_db_reader *r, duckdb_data_chunk out, lh_error *err);
    /* From any thread: makes a next() blocked on the network return LH_ECANCELLED soon
     * (shutdown of the socket or the server's cancel request). Idempotent. */
    void (*interrupt)(lh_db_reader *r);
    /* Closes the connection and frees everything, names and types included. */
    void (*close)(lh_db_reader *r);
};

/* Open errors: LH_EINVAL (a DSN that does not parse, a table name that is not one, an
 * empty or non-SELECT query), LH_EUPSTREAM (refused connection, authentication failure,
 * TLS required but unavailable, unknown table or column, a query the server rejects),
 * LH_EINVAL kind "unmappable_type" (a column type with no mapping, naming it). The
 * message names the cause and the server's location (host:port/db), never the password.
 * The caller frees the reader with r->close(r). */
lh_db_reader *lh_pg_reader_open(const char *dsn, const lh_db_select *sel, lh_error *err);
lh_db_reader *lh_mysql_reader_open(const char *dsn, const lh_db_select *sel, lh_error *err);

/* ---------------------------------------------------------------- syncs (sync.c) */

/* Opens the reader of a sync for sel (the watermark is known only once the dataset is
 * locked, so the sync opens the reader itself). NULL + err as lh_pg_reader_open. */
typedef lh_db_reader *(*lh_db_reader_open_fn)(void *ctx, const lh_db_select *sel, lh_error *err);

/* lh_db_ingest_run with the reader opened by open(open_ctx, sel) instead of a server's:
 * the whole pipeline (dataset lock, watermark, private DuckDB, COPY, upsert keys, commit)
 * without a DSN. req->dsn and req->source are only checked for presence (one of them);
 * source_label is lineage's "source". The unit tests drive it with scripted readers. The
 * reader is closed before it returns. */
int lh_db_ingest_run_with(lh_db_ingest *d, const lh_db_ingest_request *req,
                          const char *source_label, lh_db_reader_open_fn open, void *open_ctx,
                          lh_job *job, json_t **result, lh_error *err);

/* ---------------------------------------------------------------- a sync's private DuckDB
 * (stream.c) */

#define LH_SYNC_STREAM_FN "lh_source_stream"

/* The private instance of one sync and what its table function learnt. */
typedef struct lh_sync_stream {
    lh_db_reader *r; /* borrowed */
    lh_job *job;     /* borrowed, or NULL */
    bool done;
    int rc;         /* the reader's (or the cancel's) error, 0 when none */
    lh_error error; /* its lh_error, as the reader set it */
    duckdb_database db;
    duckdb_connection conn;
} lh_sync_stream;

/* Opens the in-memory instance (its own memory limit, one thread, no spilling) with
 * LH_SYNC_STREAM_FN() reading r. s must be zeroed; r and job must outlive it. The caller
 * closes it with lh_sync_stream_close (also after a failure), before closing r. */
int lh_sync_stream_open(lh_sync_stream *s, lh_db_reader *r, lh_job *job, lh_error *err);
void lh_sync_stream_close(lh_sync_stream *s);
/* Runs sql (every column VARCHAR) on the instance: [[text | null, ...]]. NULL + err
 * (LH_EINTERNAL with DuckDB's message) on failure. Caller decrefs. */
json_t *lh_sync_stream_rows(lh_sync_stream *s, const char *sql, lh_error *err);
/* [{name, type}] of the stream (binding only: no row is read), json/jsonb source columns
 * typed JSON. Caller decrefs. */
json_t *lh_sync_stream_schema(lh_sync_stream *s, lh_error *err);

/* Frees names, types and source_types of ncols columns (readers' close calls it). */
void lh_db_reader_free_columns(lh_db_reader *r);

/* ---------------------------------------------------------------- SQL text (common.c) */

/* Appends s[0..n) as an identifier quoted with `quote` (" for PostgreSQL, ` for MySQL),
 * the quote doubled inside. */
void lh_db_put_ident(lh_buf *b, char quote, const char *s, size_t n);
/* Appends "table" or "container.table" quoted part by part; LH_EINVAL for an empty part or
 * more than one dot. container names the first part in the message ("schema",
 * "database"). */
int lh_db_put_table(lh_buf *b, char quote, const char *container, const char *table, lh_error *err);

/* ---------------------------------------------------------------- vector writing (common.c)
 * For readers filling a chunk's vectors. */

/* Marks row `row` of v NULL (making its validity mask writable first). */
void lh_vec_set_null(duckdb_vector v, idx_t row);
/* Stores an unscaled decimal (the value times 10^scale) in row `row` of a DECIMAL vector of
 * any width; type is v's logical type. -1 when it has more digits than the type's width
 * allows (the caller reports an unmappable value), else 0. */
int lh_vec_put_decimal(duckdb_vector v, duckdb_logical_type type, idx_t row, __int128 unscaled);
/* Parses decimal text s[0..n) ("-12.5", "+3", "0.000", ".5"; no exponent, no spaces) into
 * the unscaled value at `scale` digits, exactly: extra fraction digits must be zeros.
 * -1 when it is not such a number, has a non-zero digit past `scale`, or has more than
 * `precision` significant digits; else 0. */
int lh_decimal_parse(const char *s, size_t n, int precision, int scale, __int128 *out);

#endif
