/*
 * core: what every module of lakehouse stands on.
 *
 *   - lh_error: the one error type that crosses module boundaries (code + kind + message).
 *   - logging: structured JSON lines on stderr, one write(2) per line so lines never
 *     interleave between threads.
 *   - fs helpers: atomic file writes (temp + fsync + rename + fsync of the folder), so a
 *     crash never leaves a half-written file under its final name.
 *   - names: validation of user-supplied names (datasets, buckets, keys).
 *   - time, random ids, small JSON helpers, configuration.
 *
 * Conventions used across the code base (see docs/ARCHITECTURE.md):
 *   - functions that can fail return int (0 ok, negative LH_E* code) or a pointer (NULL on
 *     failure) and fill `lh_error *err` (which may be NULL when the caller does not care);
 *   - every comment on a function that returns memory says who frees it.
 */
#ifndef LH_CORE_H
#define LH_CORE_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---------------------------------------------------------------- errors */

/* Error codes. Few, and each means something to a caller; the HTTP layer maps them to
 * status codes in one table (src/http/server.c). */
typedef enum {
    LH_OK = 0,
    LH_EINVAL = -1,        /* bad input: 400 */
    LH_ENOTFOUND = -2,     /* 404 */
    LH_EEXISTS = -3,       /* 409 */
    LH_EFORBIDDEN = -4,    /* 403 */
    LH_EUNAUTH = -5,       /* 401 */
    LH_ETOOLARGE = -6,     /* 413 */
    LH_ECONFLICT = -7,     /* 409: a concurrent change won; retry */
    LH_EIO = -8,           /* 500: disk or OS failure */
    LH_EINTERNAL = -9,     /* 500: a bug or an unexpected library failure */
    LH_EUNSUPPORTED = -10, /* 415: unsupported media type / format */
    LH_EBUSY = -11,        /* 429: too many concurrent requests */
    LH_ETIMEOUT = -12,     /* 408: the query ran past its time limit */
    LH_EUNAVAILABLE = -13, /* 503: the server is shutting down or not configured */
    LH_EMETHOD = -14,      /* 405: the path exists, the method does not */
    LH_EUPSTREAM = -15,    /* 502: a source database refused, failed or went away */
    LH_ECANCELLED = -16,   /* 409: the job was cancelled (POST /jobs/{id}/cancel) */
} lh_code;

#define LH_ERROR_MSG_MAX 1024

typedef struct lh_error {
    int code;         /* an lh_code */
    const char *kind; /* static string for the JSON "error" field, or NULL for the code's
                         default (see lh_error_kind) */
    char message[LH_ERROR_MSG_MAX];
} lh_error;

/* Fills err (if not NULL) and returns code, so callers can write
 * `return lh_error_set(err, LH_EINVAL, "...")`. The message is printf-formatted and
 * truncated to LH_ERROR_MSG_MAX - 1 bytes. */
int lh_error_set(lh_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* As lh_error_set, with a specific kind (a static string such as "sql_forbidden"). */
int lh_error_setk(lh_error *err, int code, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Replaces every occurrence of `needle` in err->message with `with` (truncating at the
 * message's capacity). Used to keep internal paths out of messages clients see. */
void lh_error_scrub(lh_error *err, const char *needle, const char *with);
/* Resets err to LH_OK with an empty message. */
void lh_error_clear(lh_error *err);
/* The JSON "error" field: err->kind when set, else the code's default name
 * ("invalid_request", "not_found", ...). Never NULL; static storage. */
const char *lh_error_kind(const lh_error *err);
/* The default kind of a code. Static storage. */
const char *lh_code_name(int code);

/* ---------------------------------------------------------------- logging */

typedef enum { LH_LOG_DEBUG, LH_LOG_INFO, LH_LOG_WARN, LH_LOG_ERROR } lh_log_level;

/* Minimum level printed (default INFO; LH_LOG_LEVEL=debug|info|warn|error). */
void lh_log_set_level(lh_log_level level);
/* Writes one JSON line to stderr: {"ts":..,"level":..,"event":EVENT, ...fields}.
 * `fields_fmt` is a jansson json_pack format producing an object (e.g. "{s:s,s:i}"), or
 * NULL for none. A string field that is not valid UTF-8 is written with its bad bytes as
 * \xHH (NULL as null); the line keeps every other field. Never pass secrets here. */
void lh_log(lh_log_level level, const char *event, const char *fields_fmt, ...);
/* For tests and fuzzers: each line (JSON, without its newline; borrowed for the call)
 * goes to sink instead of stderr; NULL restores stderr. Set it before other threads log;
 * the sink may be called from any thread. */
typedef void (*lh_log_sink)(const char *line, size_t len, void *ctx);
void lh_log_set_sink(lh_log_sink sink, void *ctx);

/* ---------------------------------------------------------------- file system */

/* Every file and folder of the data tree is owner-only (item 8 of issue 9: personal data
 * is not world-readable): folders are created 0700 and files 0600, whatever the umask. */
#define LH_DIR_MODE 0700
#define LH_FILE_MODE 0600

/* The kind of an error returned by a commit step that failed AFTER the rename (or unlink)
 * took effect: the new state is visible under its final name but may not survive a power
 * cut (the folder fsync failed). Its outcome is unknown, so callers must neither report
 * the old state nor delete what the old state referenced: they roll forward (keep and
 * serve the new state) and leave superseded objects to the sweep at the next start. */
#define LH_KIND_NOT_DURABLE "commit_not_durable"
/* True when err reports such a failure (see LH_KIND_NOT_DURABLE). */
bool lh_error_not_durable(const lh_error *err);

/* Fault injection (tests only). Test builds (CMake option LH_FAULT_INJECTION, on in
 * build-san/) route the file-system calls of the commit paths through lh_sys_*, which can
 * be told "make the Nth call of operation X fail with errno E": from a unit test with
 * lh_fault_arm, from a server with LH_FAULT="op:N:ERRNO[:COUNT]" (counted from the end of
 * start-up) (op is one of open, write, fsync, rename, fsync_dir, mkdir, unlink, zero_fill;
 * ERRNO a name such as EIO or ENOSPC or a number; COUNT consecutive calls fail from the Nth
 * on, 1 by default, 0 for all). In release builds lh_sys_* are the plain system calls and the
 * hook does not exist. */
typedef enum {
    LH_FAULT_OPEN,
    LH_FAULT_WRITE,
    LH_FAULT_FSYNC,
    LH_FAULT_RENAME,
    LH_FAULT_FSYNC_DIR,
    LH_FAULT_MKDIR,
    LH_FAULT_UNLINK,
    LH_FAULT_ZERO_FILL,
    LH_FAULT_OP_COUNT
} lh_fault_op;

#ifdef LH_FAULT_INJECTION
/* Zeroes every call counter and arms op: its nth call from now (1-based) and the count-1
 * calls after it fail with errnum (count 0: every call from the nth on). */
void lh_fault_arm(lh_fault_op op, unsigned nth, unsigned count, int errnum);
/* Disarms and zeroes the counters. */
void lh_fault_reset(void);
/* Calls of op counted since the last arm/reset. */
unsigned lh_fault_calls(lh_fault_op op);
/* Number of calls that were made to fail since the last arm/reset. */
unsigned lh_fault_fired(void);
/* Arms from a spec "op:N:ERRNO[:COUNT]". */
int lh_fault_arm_spec(const char *spec, lh_error *err);
/* Arms from LH_FAULT when set (the server calls it once start-up is done, so N counts the
 * calls made while serving requests). */
void lh_fault_arm_from_env(void);
/* Counts a call of op; true (errno set) when it must fail. */
bool lh_fault__fail(lh_fault_op op);
/* The op's name in LH_FAULT specs ("open", "fsync_dir", ...), or "?" out of range. */
const char *lh_fault_op_name(lh_fault_op op);
#else
#define lh_fault__fail(op) false
#endif

/* The hooked system calls (see above). */
int lh_sys_open(const char *path, int flags, mode_t mode);
ssize_t lh_sys_write(int fd, const void *buf, size_t len);
int lh_sys_fsync(int fd);
/* fdatasync(2), counted and failed as the fsync operation (the audit journal's group
 * commit syncs with it). */
int lh_sys_fdatasync(int fd);
int lh_sys_rename(const char *from, const char *to);
int lh_sys_mkdir(const char *path, mode_t mode);
int lh_sys_unlink(const char *path);

/* mkdir -p with `mode` for created folders (chmod-ed to `mode`, so the umask cannot widen
 * nor narrow it). Each folder it creates is fsynced into its parent before it returns, so
 * nothing durable can refer to a folder that a power cut would lose. */
int lh_fs_mkdirs(const char *path, mode_t mode, lh_error *err);
/* fsync a folder so a rename or unlink inside it is durable. */
int lh_fs_fsync_dir(const char *dir, lh_error *err);
/* Writes data to path atomically (mode LH_FILE_MODE): a temp file beside it, fsync,
 * rename, fsync of the folder. On a failure before the rename the previous file (if any)
 * is untouched and no temp remains; after it, the error's kind is LH_KIND_NOT_DURABLE. */
int lh_fs_write_atomic(const char *path, const void *data, size_t len, lh_error *err);
/* As lh_fs_write_atomic, with the file created in `mode` (e.g. 0600 for secrets: there is
 * no moment at which the file exists with a wider mode). */
int lh_fs_write_atomic_mode(const char *path, const void *data, size_t len, mode_t mode,
                            lh_error *err);
/* Makes an already-written file durable under its final name: fsync(tmp_path), rename to
 * final_path, fsync of the folder. On a failure before the rename tmp_path is left for the
 * caller to remove; a failure after it has the kind LH_KIND_NOT_DURABLE (the file is in
 * place under final_path, its durability unknown). */
int lh_fs_commit(const char *tmp_path, const char *final_path, lh_error *err);
/* Reads a whole file (at most max_len bytes, else LH_ETOOLARGE). *data is NUL-terminated
 * for convenience; caller frees it with free(). */
int lh_fs_read_all(const char *path, size_t max_len, char **data, size_t *len, lh_error *err);
/* Removes a file or a whole tree; a missing path is not an error. */
int lh_fs_remove_tree(const char *path, lh_error *err);
/* Size of a file in bytes, or -1. */
int64_t lh_fs_size(const char *path);
/* True when path exists. */
bool lh_fs_exists(const char *path);
/* Joins two path parts with one '/'. Caller frees. Never NULL (aborts on OOM). */
char *lh_path_join(const char *a, const char *b);
/* Absolute, normalised form of a path (the path itself need not exist, its parent
 * folders are created by the caller). Caller frees; NULL with err on failure. */
char *lh_path_absolute(const char *path, lh_error *err);
/* Writes all len bytes to fd, retrying on EINTR and short writes: the one write loop of
 * the code base. Returns 0, or -1 with errno set; a syscall-level helper (like git's
 * write_in_full), so each caller words its own lh_error (it knows what the file is and
 * whether its path may appear in a message). Goes through the fault hook (write). */
int lh_fs_write_all(int fd, const void *data, size_t len);
/* Writes zeros over bytes [from, to) of fd with pwrite (the file offset does not move),
 * extending the file when `to` is past its end: preallocation that, unlike fallocate's
 * unwritten extents, needs no metadata change when the bytes are overwritten later, so
 * an fdatasync after such an overwrite flushes data alone. Returns 0, or -1 with errno set
 * and *done the end of the zeros known written (from <= *done < to). Goes through the
 * fault hook once per call (zero_fill). */
int lh_fs_zero_fill(int fd, uint64_t from, uint64_t to, uint64_t *done);

/* ---------------------------------------------------------------- names */

/* Dataset (and later view/profile) names: 1..128 bytes, [A-Za-z_][A-Za-z0-9_]*, not
 * starting with "__" (reserved for internal relations such as __raw__<name>) nor with
 * DuckDB's built-in prefixes duckdb_, sqlite_, pragma_, pg_ (any case), and not
 * information_schema.
 * `what` names the thing in the message ("dataset name"). Returns 0 or LH_EINVAL. */
int lh_name_validate(const char *name, const char *what, lh_error *err);
/* Prefix of each dataset's raw relation (`__raw__<name>`, admins only): the one
 * definition. The query engine creates the relations under it, the firewall recognises
 * it, and lh_name_validate's "__" rule keeps every dataset name clear of it. */
#define LH_RAW_PREFIX "__raw__"
/* Bucket names: 1..63 bytes of [a-z0-9_-], starting with a letter or digit. */
int lh_bucket_name_validate(const char *name, lh_error *err);

/* ---------------------------------------------------------------- time, ids */

/* Wall clock as RFC 3339 UTC with milliseconds: "2026-11-24T22:45:01.123Z".
 * buf must hold at least LH_TS_MAX bytes. Returns buf. */
#define LH_TS_MAX 40
char *lh_time_rfc3339(char *buf);
/* Monotonic clock in milliseconds (for elapsed times and deadlines). */
int64_t lh_now_ms(void);
/* 32 lowercase hex characters of fresh randomness (a uuid-like id). buf >= 33 bytes. */
void lh_random_hex(char *buf, size_t hex_chars);

/* ---------------------------------------------------------------- JSON helpers */

/* Borrowed string member of obj, or NULL when absent or not a string. */
const char *lh_json_str(const json_t *obj, const char *key);
/* Integer member, or `dflt` when absent or not an integer. */
json_int_t lh_json_int(const json_t *obj, const char *key, json_int_t dflt);
/* Compact JSON text of v. Caller frees with free(). Never NULL (aborts on OOM). */
char *lh_json_dumps(const json_t *v);
/* Parses JSON text into an object; anything else (bad JSON, not an object) is LH_EINVAL
 * with jansson's line/column in the message. Caller decrefs. */
json_t *lh_json_parse_object(const char *text, size_t len, lh_error *err);

/* ---------------------------------------------------------------- memory */

/* malloc/calloc/strdup/realloc that abort on OOM: a server that cannot allocate a few
 * bytes cannot do anything sensible, and checked-everywhere OOM paths would be untested. */
void *lh_xmalloc(size_t n);
void *lh_xcalloc(size_t n, size_t size);
void *lh_xrealloc(void *p, size_t n);
char *lh_xstrdup(const char *s);
/* printf into a fresh string. Caller frees. */
char *lh_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Wipes (sodium_memzero) and frees a secret string: DSN passwords, API keys. Accepts NULL.
 * Shared by sources/ and vector/, which are peers. */
void lh_secret_free(char *secret);

/* A growable byte buffer (for rendering). */
typedef struct lh_buf {
    char *data;
    size_t len;
    size_t cap;
} lh_buf;
void lh_buf_init(lh_buf *b);
void lh_buf_free(lh_buf *b);
void lh_buf_append(lh_buf *b, const void *data, size_t len);
void lh_buf_puts(lh_buf *b, const char *s);
void lh_buf_putc(lh_buf *b, char c);
void lh_buf_printf(lh_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal (quotes included), escaping as JSON requires;
 * invalid UTF-8 bytes become U+FFFD so the output is always valid JSON. */
void lh_buf_json_string(lh_buf *b, const char *s, size_t len);
/* Drops the first n bytes (used by streaming writers). */
void lh_buf_consume(lh_buf *b, size_t n);
/* Appends s[0..len) as valid UTF-8 text: every byte that is not part of a valid UTF-8
 * sequence becomes the four characters \xHH; with `controls`, so does every ASCII control
 * character and DEL (for raw bytes from the network: URLs, methods, headers). Valid UTF-8
 * without controls is copied unchanged. */
void lh_buf_put_escaped(lh_buf *b, const char *s, size_t len, bool controls);
/* lh_buf_put_escaped into a new string. Caller frees. */
char *lh_escape(const char *s, size_t len, bool controls);
/* True when s[0..len) is valid UTF-8 (no overlongs, surrogates or values past U+10FFFF). */
bool lh_utf8_valid(const char *s, size_t len);
/* The largest length <= len at which s can be cut without splitting a UTF-8 sequence
 * (len itself when s[0..len) does not end inside one). */
size_t lh_utf8_cut(const char *s, size_t len);

/* ---------------------------------------------------------------- canonical JSON */

/* RFC 8785 (JSON Canonicalization Scheme), src/core/jcs.c. Appends the canonical form of
 * the JSON text text[0..len) to out: members sorted by the UTF-16 code units of their
 * keys, ECMAScript number form, only '"', '\\' and U+0000..U+001F escaped, UTF-8 as is.
 * Duplicate keys, lone surrogates, invalid UTF-8, numbers beyond the double range and
 * anything that is not JSON (NaN, Infinity, comments, trailing text) are LH_EINVAL
 * (kind "invalid_json"); then out is left as it was. */
int lh_jcs_canonicalize(const char *text, size_t len, lh_buf *out, lh_error *err);
/* The same for a jansson value (serialised first; jansson values hold no NaN). */
int lh_jcs_canonicalize_value(const json_t *v, lh_buf *out, lh_error *err);
/* Appends s[0..n) (valid UTF-8, which the caller checks) as an RFC 8785 string literal:
 * for writers that emit canonical JSON directly (the audit rows). */
void lh_jcs_put_string(lh_buf *out, const char *s, size_t n);
/* ECMAScript Number::toString of a finite double (the JCS number form) into buf
 * (cap >= 32). Returns 0, or -1 for NaN/Infinity or a short buffer. */
int lh_jcs_format_number(double d, char *buf, size_t cap);

/* ---------------------------------------------------------------- jobs */

/* A pool of our own worker threads for long work (an ingest's COPY; later compaction,
 * backfill, index builds), so it never runs on an HTTP worker that holds other
 * connections. Jobs run in submission order on `threads` threads; each has an id and a
 * progress counter that GET /jobs/{id} shows, and the registry keeps the last
 * LH_JOBS_KEEP finished jobs for it. Thread-safe. */
typedef struct lh_jobs lh_jobs;
typedef struct lh_job lh_job;
#define LH_JOB_ID_LEN 16
#define LH_JOBS_KEEP 256

/* The work: runs on a pool thread; returns 0 or an LH_E* code with err filled (its
 * message becomes the job's "error"). May call lh_job_progress. */
typedef int (*lh_job_fn)(lh_job *job, void *ctx, lh_error *err);
/* Runs on the pool thread after the job's record shows its outcome; the pool never
 * touches ctx afterwards, so this is where ctx's owner learns the job is over. May be
 * NULL. */
typedef void (*lh_job_done_fn)(void *ctx, int rc);

/* Starts `threads` (>= 1) workers. Caller frees with lh_jobs_close. */
lh_jobs *lh_jobs_open(int threads, lh_error *err);
/* Stops taking jobs, lets every queued and running job finish, joins the workers and
 * frees the pool. Accepts NULL. */
void lh_jobs_close(lh_jobs *jobs);
/* Queues a job. kind ("ingest") and actor are copied. On success id_out (>=
 * LH_JOB_ID_LEN + 1 bytes) gets the job's id and the pool owns the call of run and done;
 * LH_EUNAVAILABLE once lh_jobs_close has begun (then neither is called). */
int lh_jobs_submit(lh_jobs *jobs, const char *kind, const char *actor, lh_job_fn run,
                   lh_job_done_fn done, void *ctx, char *id_out, lh_error *err);
/* Queues a task: fn(ctx) runs on a pool thread like a job, in the same order, but leaves
 * no record (no id, no registry entry, no log line), so short hand-offs (a query's start
 * and chunk fetches) cost one queue push and one wake-up. LH_EUNAVAILABLE once
 * lh_jobs_close has begun (then fn is not called). */
int lh_jobs_post(lh_jobs *jobs, void (*fn)(void *ctx), void *ctx, lh_error *err);
/* The job's id (LH_JOB_ID_LEN hex characters). Borrowed: valid while the job runs. */
const char *lh_job_id(const lh_job *job);
/* Reports progress in units the job chooses (rows, bytes, steps); total 0 = unknown.
 * A NULL job (work run outside the pool) is ignored. */
void lh_job_progress(lh_job *job, int64_t done, int64_t total);
/* Records what a job produced (a backfill's counts), shown as "result" by lh_jobs_get, so
 * a client that did not wait can read it. result is stolen (also for a NULL job). */
void lh_job_set_result(lh_job *job, json_t *result);
/* Cancellation. lh_jobs_cancel asks a queued or running job to stop: a queued job never
 * runs (its done is still called, with LH_ECANCELLED, on the cancelling thread before
 * lh_jobs_cancel returns), a running one sees lh_job_cancelled() turn true and its cancel
 * hook, if set, is called once on the cancelling thread; the job's run then returns
 * LH_ECANCELLED and the job ends in state "cancelled" (a run that fails otherwise after
 * the request also ends "cancelled"; one that succeeds anyway ends "succeeded"). Asking
 * again while it runs is a no-op (0). LH_ENOTFOUND when unknown, LH_ECONFLICT kind
 * "job_finished" when it has already finished. actor (may be NULL) is recorded as who
 * cancelled ("cancelled_by"). */
int lh_jobs_cancel(lh_jobs *jobs, const char *id, const char *actor, lh_error *err);
/* lh_jobs_cancel for a caller who may stop only the jobs it started (the job's actor is
 * `actor`): LH_EFORBIDDEN otherwise, checked under the same lock as the cancel. */
int lh_jobs_cancel_own(lh_jobs *jobs, const char *id, const char *actor, lh_error *err);
/* Cancels every unfinished job of `kind` (as lh_jobs_cancel, by actor): what a shutdown
 * does to work that can stop cleanly (syncs) before lh_jobs_close waits for the rest.
 * Returns how many it asked. */
int lh_jobs_cancel_kind(lh_jobs *jobs, const char *kind, const char *actor);
/* True once the job was asked to stop. A NULL job is never cancelled. */
bool lh_job_cancelled(const lh_job *job);
/* Sets (fn non-NULL) or clears (fn NULL) the hook that lh_jobs_cancel calls to interrupt
 * blocking work (a reader waiting on a socket). Set and cleared by the job's own thread;
 * the hook runs under the job's lock (never the pool's), so after clearing it returns, the
 * hook is not running and will not run; the pool also clears it when run returns. Called
 * at once when the job is already cancelled. Each hook set runs at most once. A NULL job
 * is ignored. */
void lh_job_set_cancel_hook(lh_job *job, void (*fn)(void *ctx), void *ctx);
/* {id, kind, actor, state: queued|running|succeeded|failed|cancelled, created_at, started_at,
 * finished_at, progress: {done, total}, error, cancelled_by, result?} of a known job;
 * NULL + LH_ENOTFOUND once it is unknown or forgotten. Caller decrefs. */
json_t *lh_jobs_get(lh_jobs *jobs, const char *id, lh_error *err);

/* ---------------------------------------------------------------- configuration */

typedef struct lh_config {
    char *data_dir;             /* --data / LH_DATA, default "./data" (made absolute) */
    char *listen_host;          /* --listen / LH_LISTEN host part, default 127.0.0.1 */
    int listen_port;            /* default 8470 */
    int http_threads;           /* LH_HTTP_THREADS, default max(8, max_concurrent_queries) */
    int job_threads;            /* LH_JOB_THREADS, default 2 (long work: ingests) */
    int connection_timeout_s;   /* LH_CONNECTION_TIMEOUT_S, default 60 (idle / slow clients) */
    int max_connections;        /* LH_MAX_CONNECTIONS, default 256 */
    int64_t max_upload_bytes;   /* LH_MAX_UPLOAD_BYTES, default 8 GiB (ingest bodies) */
    int64_t max_json_body;      /* LH_MAX_JSON_BODY, default 1 MiB (all JSON request bodies) */
    int64_t max_sql_bytes;      /* LH_MAX_SQL_BYTES, default 64 KiB (SQL text of one query) */
    int64_t query_max_rows;     /* LH_QUERY_MAX_ROWS, default 100000 (cap on "limit") */
    int64_t query_default_rows; /* LH_QUERY_DEFAULT_ROWS, default 1000 (when no "limit") */
    int query_timeout_ms;       /* LH_QUERY_TIMEOUT_MS, default 30000 */
    int max_concurrent_queries; /* LH_MAX_CONCURRENT_QUERIES, default 8 (429 beyond) */
    int64_t duckdb_memory_mb;   /* LH_DUCKDB_MEMORY_MB, default 0 = DuckDB's own default */
    int duckdb_threads;         /* LH_DUCKDB_THREADS, default 0 = number of cores */
    char *admin_key;            /* LH_ADMIN_KEY (issue 3), may be NULL; never logged */
    char *legal_token_file;     /* LH_LEGAL_AUDIT_TOKEN_FILE (issue 11): the legal audit
                                   token's file, may be NULL; read per request, never logged */
    char *audit_key_file;       /* LH_SUBJECT_AUDIT_KEY (issue 11): the audit chain's key
                                   file, may be NULL (no audit chain) */
    char *biometric_root;       /* LH_BIOMETRIC_STORAGE_ROOT (issue 12): where biometric
                                   photos are stored, outside the data folder; may be NULL
                                   (the biometric endpoints answer 503) */
    /* LH_AUDIT_SIGNING_KEY_FILE (issue 12): the Ed25519 key of the audit log's checkpoints
     * and legal responses, may be NULL (unsigned); never logged */
    char *audit_signing_key;
    /* LH_VECTOR_TUNE_* (issue 14, docs/VECTORS.md §Tuning): the background tuning agent:
     * LH_VECTOR_TUNE_AGENT (1 starts it; default 0), LH_VECTOR_TUNE_MAX_PER_HOUR (default 6),
     * LH_VECTOR_TUNE_COOLDOWN_S (default 300) */
    int vector_tune_agent, vector_tune_max_per_hour, vector_tune_cooldown_s;
    /* LH_AUDIT_LOG_ORIGIN (issue 12): signer name and log origin, NULL: lakehouse/<host> */
    char *audit_origin;
    /* LH_EMBED_* (issue 14, docs/VECTORS.md §Embedders): the ollama / openai embedders */
    char *embed_ollama_url;       /* LH_EMBED_OLLAMA_URL, default http://127.0.0.1:11434 */
    char *embed_openai_url;       /* LH_EMBED_OPENAI_URL, default http://127.0.0.1:8000 */
    char *embed_openai_key_file;  /* LH_EMBED_OPENAI_KEY_FILE: the API key's file, may be NULL;
                                     read when an openai embedder opens, never logged */
    char *embed_keep_alive;       /* LH_EMBED_KEEP_ALIVE: ollama keep_alive sent when a model is
                                     loaded ("30m", "-1"), NULL: the server's default */
    int embed_timeout_ms;         /* LH_EMBED_TIMEOUT_MS, default 30000 (one request) */
    int embed_connect_timeout_ms; /* LH_EMBED_CONNECT_TIMEOUT_MS, default 5000 */
    int embed_batch;              /* LH_EMBED_BATCH, default 64 texts per request */
    int embed_retries;            /* LH_EMBED_RETRIES, default 3 (429, 5xx, connection errors) */
    /* issue 15: agents over MCP (src/agents/, docs/AGENTS.md) */
    int mcp_calls_per_minute;  /* LH_MCP_CALLS_PER_MINUTE, default 120 (per key) */
    int mcp_session_idle_s;    /* LH_MCP_SESSION_IDLE_S, default 1800 */
    int mcp_max_sessions;      /* LH_MCP_MAX_SESSIONS, default 1024 (503 beyond) */
    int64_t mcp_max_rows;      /* LH_MCP_MAX_ROWS, default 500 (query_sql's cap) */
    char *mcp_allowed_origins; /* LH_MCP_ALLOWED_ORIGINS: comma-separated Origin values a
                                  browser-borne request may carry; NULL: none */
} lh_config;

/* Fills cfg with defaults, then applies LH_* environment variables. Invalid values are
 * LH_EINVAL naming the variable. Free with lh_config_free. */
int lh_config_load(lh_config *cfg, lh_error *err);
/* Parses "HOST:PORT" (or ":PORT" / "PORT") into cfg. */
int lh_config_set_listen(lh_config *cfg, const char *listen, lh_error *err);
/* Replaces data_dir (made absolute). */
int lh_config_set_data_dir(lh_config *cfg, const char *dir, lh_error *err);
void lh_config_free(lh_config *cfg);

#endif
