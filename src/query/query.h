/*
 * query: SQL over the lake, through an embedded DuckDB.
 *
 * The engine owns one in-process DuckDB database. Every dataset is a view named after it
 * (`CREATE OR REPLACE VIEW "people" AS SELECT * FROM read_parquet([...files])`), plus
 * `__raw__<name>` for admins (identical until erasure lands). Views are kept in step with
 * the catalog through its listener.
 *
 * Sandbox (the second wall behind the SQL firewall): at open the engine sets
 * allowed_directories to each bucket's datasets/ folder and <data>/_tmp/, then
 * enable_external_access=false and lock_configuration=true. Because those can no longer
 * change, adding or removing a bucket opens a new database generation with the new roots,
 * recreates the views there and swaps it in; queries already running keep the old
 * generation alive (refcount) until they end.
 *
 * Queries stream: lh_query_start runs until the first chunk exists (so SQL errors and
 * most timeouts are known before a status line is sent); lh_query_read renders chunk by
 * chunk. A watchdog thread interrupts any query past its deadline (duckdb_interrupt).
 * The deadline covers delivery too: a query whose reader has not reached the end by then
 * is finished by the watchdog with a timeout, and its slot and DuckDB state are released
 * at once, even if lh_query_read is never called again; later reads hand out what was
 * already rendered and the error ending below. At most max_concurrent_queries run at once
 * (LH_EBUSY beyond).
 *
 * JSON result shape:
 *   {"columns":[{"name":..,"type":..}],"rows":[[..],..],"row_count":N,"truncated":bool,
 *    "elapsed_ms":X}
 * NULL → null; integers, decimals, floats → numbers (NaN/±Infinity as strings "NaN",
 * "Infinity", "-Infinity"); booleans → true/false; everything else (dates, timestamps,
 * intervals, uuids, blobs, lists, structs, maps) → its DuckDB text form as a string.
 * HUGEINT/UHUGEINT/DECIMAL are printed exactly (no float round-trip).
 * NDJSON: one JSON object per row {"col": value}; CSV: RFC 4180 with a header row.
 * A failure after streaming began: JSON ends with an extra "error":{"error","message"}
 * member (row_count/truncated still present); NDJSON ends with a line
 * {"error":..,"message":..}; CSV cannot carry it, so lh_query_read returns -1 and the
 * HTTP layer aborts the response (the client sees a truncated chunked body).
 */
#ifndef LH_QUERY_H
#define LH_QUERY_H

#include "auth/auth.h"
#include "catalog/catalog.h"
#include "core/core.h"
#include "storage/storage.h"

#include <sys/types.h>

/* The COPY options of every Parquet part we write (an ingest's part, a compaction's merged
 * part), so every part has one format: zstd. USE_TMP_FILE false: the target is already the
 * caller's staging name (it exists, so DuckDB would otherwise write a "tmp_<name>" beside it
 * and rename), and a COPY that fails part-way would leave that file in the dataset's folder,
 * where no cleanup of ours knows its name. */
#define LH_PARQUET_COPY_OPTIONS "(FORMAT parquet, COMPRESSION zstd, USE_TMP_FILE false)"

typedef struct lh_engine lh_engine;

/* Opens DuckDB (threads/memory from cfg, temp spill folder <data>/_tmp/duckdb), locks it
 * down as above, creates the views of every dataset in cat and subscribes to catalog and
 * storage changes. st and cat must outlive the engine. Caller frees with lh_engine_close,
 * which waits for running queries to end. */
lh_engine *lh_engine_open(const lh_config *cfg, lh_storage *st, lh_catalog *cat, lh_error *err);
void lh_engine_close(lh_engine *eng);

typedef enum { LH_FORMAT_JSON, LH_FORMAT_CSV, LH_FORMAT_NDJSON } lh_result_format;
/* "json" | "csv" | "ndjson" (NULL = json); else LH_EINVAL. */
int lh_result_format_parse(const char *s, lh_result_format *out, lh_error *err);
/* MIME type of a format ("application/json", "text/csv; charset=utf-8",
 * "application/x-ndjson"). Static. */
const char *lh_result_format_mime(lh_result_format f);

typedef struct lh_sql_policy lh_sql_policy;

/* ---------------------------------------------------------------- subject access (lineage.c)
 *
 * Issue 11 item 5, docs/AUDIT.md "Access auditing". A dataset that declares a
 * subject_key_column is a subject dataset; an AI-safe view whose base is one is a subject
 * view; both are subject relations. For an audited policy lh_query_run classifies what the
 * checked statement returns of subject relations and, for a row-level result, runs a
 * rewritten statement whose hidden trailing columns carry each row's subjects' raw keys
 * (never rendered, never visible to the caller's SQL). */
typedef enum {
    LH_ACCESS_NONE,         /* reads no subject relation (or the policy is not audited) */
    LH_ACCESS_ROWS,         /* row-level: the subjects of every returned row are known */
    LH_ACCESS_AGGREGATE,    /* reads subject relations, returns no row-level data of them */
    LH_ACCESS_UNATTRIBUTED, /* row-level data whose subjects cannot be traced (its shape);
                               refused for agents, a dataset-level record for others */
} lh_access_kind;

typedef struct lh_subject_access {
    lh_access_kind kind;
    /* ROWS: the visible result has a column holding the subject key (the key column
     * itself, or a view column derived from it: raw, masked or hashed). */
    bool key_visible;
    char **datasets;      /* subject datasets read (bases of subject views): sorted, unique,
                             NULL-terminated; owned by the query */
    char fingerprint[65]; /* lowercase hex SHA-256 of the SQL text as the caller sent it */
    char reason[256];     /* UNATTRIBUTED: why, as a sentence; else "" */
} lh_subject_access;

/* A query's fingerprint: the lowercase hex SHA-256 of its SQL text (65 bytes with the NUL),
 * as lh_subject_access.fingerprint and the journal's records of reads carry it. */
void lh_sql_fingerprint(const char *sql, char out[65]);

/* Called by a ROWS query with the subjects of the rows it is about to make readable,
 * before any byte of them can be read: keys are distinct raw subject keys (text) not yet
 * reported for this query; fields are the visible column names (the fields accessed).
 * Both arrays are borrowed for the call only. Called on the thread running lh_query_run,
 * lh_query_fill or lh_query_read, under the query's lock (never in lh_query_run_inline:
 * an audited ROWS query is always handed on), and only when there are new keys (a ROWS
 * query whose rows hold no key, or none, never calls it). It is called for ROWS queries
 * whether or not key_visible.
 * Returns 0, or an LH_E* code with err set: the query then fails: before its first byte,
 * lh_query_run / lh_query_run_inline return that error (the HTTP status); later, the
 * stream ends with the error trailer and no further row is handed out. */
typedef int (*lh_subject_sink)(void *ctx, const char *const *keys, size_t n_keys,
                               const char *const *fields, size_t n_fields, lh_error *err);

typedef struct lh_query_opts {
    lh_result_format format;
    int64_t max_rows; /* rows returned at most; more → truncated: true */
    int timeout_ms;   /* whole query, including streaming */
    /* The firewall's policy for the caller, or NULL (internal callers and tests only).
     * The check runs inside the query's slot and under its deadline, so hostile SQL that
     * is slow to parse is bounded like any query. */
    const lh_sql_policy *policy;
    /* Where a ROWS query of an audited policy reports its subjects (borrowed; must outlive
     * the query). NULL with an audited policy: a ROWS query is refused with
     * LH_EUNAVAILABLE kind "audit_unavailable" (no silent access). */
    lh_subject_sink sink;
    void *sink_ctx;
} lh_query_opts;

typedef struct lh_query lh_query;

/* Starts a query: takes a slot, arms the deadline, runs the firewall when opts->policy is
 * set, then executes. Errors: LH_EFORBIDDEN / LH_EINVAL from the firewall,
 * LH_EBUSY (all slots taken), LH_EINVAL kind "sql_error" with DuckDB's message (parse,
 * bind or execution errors), LH_ETIMEOUT kind "query_timeout". Caller frees with
 * lh_query_free (also when it stops reading early). */
lh_query *lh_query_start(lh_engine *eng, const char *sql, const lh_query_opts *opts, lh_error *err);
/* lh_query_start in two steps, so that the cheap part can answer at once on the caller's
 * thread and the rest can run elsewhere (the HTTP layer's query pool):
 *   lh_query_open takes a slot and starts the deadline (NULL + LH_EBUSY when all slots are
 *   taken, LH_EUNAVAILABLE while closing); never calls DuckDB.
 *   lh_query_run does everything else lh_query_start does and returns 0 or its error code
 *   (same errors). On failure the caller still frees q with lh_query_free. */
lh_query *lh_query_open(lh_engine *eng, const lh_query_opts *opts, lh_error *err);
int lh_query_run(lh_query *q, const char *sql, const lh_query_opts *opts, lh_error *err);
/* A bounded start on a thread that must not block long (an HTTP worker), for a statement
 * the firewall already allowed for opts->policy's identity (verdict cache): prepare, then
 * run DuckDB's pending tasks for at most LH_QUERY_INLINE_BUDGET_MS of wall clock.
 * Returns 0 when the query started and its first rows (up to LH_QUERY_OUT_BUDGET) are
 * rendered, as after lh_query_run + lh_query_fill; LH_QUERY_PENDING when the SQL is not
 * cached (nothing done) or the budget ran out (the pending execution stays in q): the
 * caller then calls lh_query_run on a thread that may block, which finishes the same
 * execution; or a negative error code as lh_query_run's (the caller frees q). */
/* 5 ms: with 2 ms the bench's small aggregate (2-2.5 ms p50 in DuckDB alone on the loaded
 * 2-core VM) mostly missed the budget and paid the attempt plus the hand-off (one-client
 * overhead 3.5 ms); 5 ms measured 1.6 ms, 10 ms 1.5 ms. */
#define LH_QUERY_INLINE_BUDGET_MS 5
#define LH_QUERY_PENDING 1
int lh_query_run_inline(lh_query *q, const char *sql, const lh_query_opts *opts, lh_error *err);
/* Test counters: inline starts that completed inline, and those handed on after the
 * budget (process-wide). */
uint64_t lh_query__inline_starts(void);
uint64_t lh_query__inline_handoffs(void);
/* Queries whose statement came from their pooled connection's cache (result.c). */
uint64_t lh_query__stmt_cache_hits(void);
/* Writes up to cap bytes of rendered output into buf. Returns the byte count, 0 at the
 * end, or -1 on a mid-stream CSV failure (see above). Never blocks on the client. One
 * thread at a time per query; the watchdog's expiry is synchronised internally. */
ssize_t lh_query_read(lh_query *q, char *buf, size_t cap);
/* The split form of lh_query_read for a caller that must not block on DuckDB:
 * lh_query_read_buffered only hands out what is already rendered (same returns as
 * lh_query_read) and returns LH_QUERY_AGAIN when the next bytes need DuckDB; then
 * lh_query_fill, on a thread that may block, fetches and renders up to about
 * LH_QUERY_OUT_BUDGET bytes (or to the end, or until the deadline), after which
 * lh_query_read_buffered has bytes or reports the end. One of the two at a time. */
#define LH_QUERY_AGAIN (-2)
ssize_t lh_query_read_buffered(lh_query *q, char *buf, size_t cap);
void lh_query_fill(lh_query *q);
/* The whole rendered result, taken out of q, when the query has ended without error, none
 * of it was read yet and it is at most max bytes (after a start, or lh_query_fill): the
 * caller owns the returned bytes (*len of them) and then only frees q. NULL otherwise
 * (nothing changes: read the query as usual). A small result can so be sent as one body
 * with a length instead of a stream. */
char *lh_query_take_whole(lh_query *q, size_t max, size_t *len);
/* Rows rendered so far / whether the cap cut the result / the mid-stream error if any. */
int64_t lh_query_row_count(const lh_query *q);
bool lh_query_truncated(const lh_query *q);
const lh_error *lh_query_error(const lh_query *q);
void lh_query_free(lh_query *q);
/* What the query reads of subject relations; valid after lh_query_run (or an inline start)
 * succeeded, until lh_query_free. Kind LH_ACCESS_NONE for unaudited policies. Also filled
 * when lh_query_run refused an audited statement after classifying it (an agent's
 * unattributed_access, audit_unavailable, a failed first audit), so a denied attempt can be
 * recorded with its datasets; before classification (firewall refusals, SQL errors) kind is
 * LH_ACCESS_NONE. datasets is never NULL (empty list for NONE). */
const lh_subject_access *lh_query_access(const lh_query *q);

/* {dataset: reason} for every dataset the catalog lists but no query can read, because
 * DuckDB refused its view when the user database was last rebuilt (a part missing or
 * corrupt). Paths in reasons are replaced by "<lake>". Caller decrefs. */
json_t *lh_engine_view_problems(lh_engine *eng);

/* {view: reason} for every AI-safe view the query engine could not create (its base gone
 * or refused, a column missing). Paths are replaced by "<lake>". Caller decrefs. */
json_t *lh_engine_safe_view_problems(lh_engine *eng);

/* Runs one internal statement (ours, never user SQL), e.g. COPY ... TO. *rows_out (if not
 * NULL) gets the changed/copied row count DuckDB reports. DuckDB errors are LH_EINVAL with
 * DuckDB's message (callers that know better remap them). */
int lh_engine_exec(lh_engine *eng, const char *sql, int64_t *rows_out, lh_error *err);
/* Runs one internal query with a small result and returns
 * {"columns":[{"name","type"}],"rows":[[...]]} rendered as in the JSON shape above.
 * Caller decrefs. */
json_t *lh_engine_query_json(lh_engine *eng, const char *sql, lh_error *err);

/* SQL quoting. Caller frees. */
char *lh_sql_ident(const char *name);   /* "na""me" */
char *lh_sql_literal(const char *text); /* 'it''s' */

/* ---------------------------------------------------------------- SQL firewall */

/* What the policy says of a relation name. */
typedef enum {
    LH_REL_ALLOW,   /* a relation of the lake the caller may read */
    LH_REL_DENY,    /* hidden from this caller, or not a relation of the lake at all
                       (DuckDB's built-in views, file paths): 403 */
    LH_REL_UNKNOWN, /* no such dataset, and the caller may know that (it may read every
                       dataset): 400 sql_error, like DuckDB's own catalog error */
} lh_rel_access;

/* What a caller may read. may_read answers for dataset (and later view) names.
 * allowed_hint names the allowed relations for error messages ("allowed: people,
 * orders"); may be NULL. */
struct lh_sql_policy {
    bool allow_raw; /* may name __raw__<dataset> (admins) */
    lh_rel_access (*may_read)(void *ctx, const char *relation);
    void *ctx;
    const char *allowed_hint;
    /* Equal for two policies exactly when they answer every name alike for the same
     * catalog (role, and an agent's granted set), or NULL when unknown (ad hoc policies of
     * tests). lh_sql_policy_for sets it. */
    const char *identity;
    /* AI-safe views (safe_views.c). The caller's key attributes {name: string}, borrowed,
     * or NULL: set as DuckDB variables on the query's own connection before its statement
     * is prepared, so a view's row filter reads them through caller_attribute('name'). */
    const json_t *attributes;
    /* caller_attribute('name') may be called: only in the check of a view's row filter,
     * never in user SQL. */
    bool allow_caller_attribute;
    /* Access auditing (issue 11, lineage.c): the caller's reads of subject relations are
     * classified and audited (every non-admin caller; lh_sql_policy_for sets it). */
    bool audited;
    /* The caller is an agent: a row-level read of a subject relation whose visible result
     * does not carry the subject key, or whose subjects cannot be traced, is refused. */
    bool agent;
};

/* The server's rule (policy.c): may `who` read `relation`, a dataset that exists or not?
 * Admins and analysts read every dataset and learn that a well-formed name is none
 * (LH_REL_UNKNOWN); agents read what they were granted and get LH_REL_DENY otherwise,
 * existing or not; names that could never be a dataset are LH_REL_DENY for everyone.
 * Pure, so tests and fuzzers judge with the rule the server uses. */
lh_rel_access lh_sql_access(const lh_principal *who, const char *relation, bool exists);
/* The policy of a caller: relations are the datasets of cat that who may read (by
 * lh_sql_access), __raw__ names for admins, and an allowed_hint naming them. An agent
 * bound to a profile may read exactly the profile's bindings (read from cat now; none
 * when the profile is gone). cat and who are borrowed and must outlive the policy. Caller
 * frees with lh_sql_policy_free. The catalog routes filter listings with the same policy
 * (may_read == LH_REL_ALLOW), so SQL and listings cannot disagree. */
lh_sql_policy *lh_sql_policy_for(lh_catalog *cat, const lh_principal *who);
void lh_sql_policy_free(lh_sql_policy *policy);

/* Checks user SQL before it runs (rules in firewall.c's header): parses it with DuckDB's
 * parser and walks the whole tree. Returns 0 when it may run; LH_EFORBIDDEN kind
 * "sql_forbidden" naming what was refused and why; LH_EINVAL kind "sql_error" for a
 * parse error. */
int lh_sql_firewall(lh_engine *eng, const char *sql, const lh_sql_policy *policy, lh_error *err);
/* The same check on an already serialized tree (json_serialize_sql output), for tests and
 * the fuzzer. */
int lh_sql_firewall_tree(const char *serialized, const lh_sql_policy *policy, lh_error *err);

/* Vector search filters (issue 14; safe_views.c): `filter` is one SQL boolean expression
 * over the columns of `dataset`, checked like an AI-safe view's row filter: the statement
 * SELECT * FROM "<dataset>" WHERE (\n<filter>\n) must parse to exactly that shape (the
 * filter cannot close the parenthesis and add a clause) and pass the firewall with a
 * policy that allows `dataset` alone, so it names no other relation, no table function,
 * no subquery over anything else and only allowed functions (caller_attribute included:
 * refused). At most LH_SQL_FILTER_MAX bytes. 0, or LH_EINVAL kind "bad_filter" saying
 * why. The caller then runs its statement with the caller's own policy. */
#define LH_SQL_FILTER_MAX 4096
int lh_sql_check_filter(lh_engine *eng, const char *dataset, const char *filter, lh_error *err);

/* ---------------------------------------------------------------- erasure (erasure.c) */

/* For each of the n keys (canonical text, lh_tombstone_key_text) of `column` (of DuckDB
 * type `type`) in the dataset manifest describes: how many rows hold it now in its parts,
 * tombstoned or not, into counts[i]. */
int lh_erasure_count_keys(lh_engine *eng, const json_t *manifest, const char *column,
                          const char *type, char *const *keys, size_t n, int64_t *counts,
                          lh_error *err);

typedef struct lh_compact_result {
    int64_t rows_before, rows_after, bytes_before, bytes_after;
    size_t tombstones_applied; /* keys of the set the merged part applied */
    bool tombstones_cleared;   /* false when they stay (parts appended meanwhile, or the
                                  clear failed after the commit) */
} lh_compact_result;

/* Compacts a dataset (erasure.c's header has the steps): merges every part into one
 * Parquet without the tombstoned rows, verifies it, commits it in place of the parts and
 * clears the tombstones it applied. job (may be NULL) gets progress in steps. Errors:
 * LH_ENOTFOUND, LH_ECONFLICT (a replace or another compaction won), LH_EINTERNAL kind
 * "compaction_failed", storage errors; on any error the dataset is as it was (or, when the
 * manifest rename took effect, compacted). err must not be NULL. */
int lh_compact(lh_engine *eng, const char *dataset, const char *actor, lh_job *job,
               lh_compact_result *out, lh_error *err);

#endif
