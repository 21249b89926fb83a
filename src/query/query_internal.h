/*
 * query_internal.h: what the files of src/query/ share, and nothing else includes.
 *
 *   engine.c    generations (the user and the internal database), their sandboxes, the
 *               catalog and storage listeners, internal statements
 *   views.c     the view registry, a value with its own type (views.h)
 *   retire.c    superseded parts waiting for their readers (retire.h)
 *   duck.c      the DuckDB include and the one statement runner (duck.h)
 *   watchdog.c  the thread that interrupts queries past their deadline
 *   types.c     DuckDB type names and type trees
 *   value.c     cell rendering (DuckDB vectors → text)
 *   result.c    user queries: start, stream (JSON/CSV/NDJSON), free
 *   policy.c    who may read what (lh_sql_policy_for)
 *   firewall.c  the SQL firewall; functions.c its allow-list of functions, verdicts.c its
 *               cache of allowed statements (with the lineage of audited ones)
 *   lineage.c   access auditing: what an audited statement returns of subject relations,
 *               and the rewrite that carries their keys (result.c reports them)
 * engine.c uses views.c and retire.c; they never call back into it.
 *
 * Lock order (outermost first); nothing takes them in another order:
 *   catalog lock (held while the catalog calls our listener)
 *     → eng->regen_mu → storage rwlock (lh_storage_path/roots) → eng->gen_mu
 *     → the retirer's mutex
 *   watchdog mutex: a leaf, never held while taking another lock (expire callbacks run
 *     without it).
 *   a user query's q->mu (result.c) → watchdog mutex, → eng->gen_mu, → storage rwlock; the
 *     watchdog thread only try-locks q->mu, so waiting in lh_watchdog_remove under q->mu
 *     cannot deadlock.
 * The storage listener never calls into the catalog (it rebuilds from the engine's own
 * view registry), so it is safe whether or not its caller holds the catalog lock.
 */
#ifndef LH_QUERY_INTERNAL_H
#define LH_QUERY_INTERNAL_H

#include "query/query.h"

#include "duck.h"
#include "retire.h"
#include "views.h"

#include <pthread.h>
#include <stdatomic.h>

/* ---------------------------------------------------------------- keywords */

/* DuckDB's keywords (lowercase, sorted), loaded once from duckdb_keywords(): a STRUCT field
 * name that is one of them is quoted in type names, as DuckDB itself does. */
typedef struct lh_keywords {
    char **words;
    size_t count;
} lh_keywords;

bool lh_keywords_has(const lh_keywords *kw, const char *word);

/* ---------------------------------------------------------------- types and cells */

/* A logical type as a tree, built once per result column so that rendering a cell never
 * asks DuckDB for types again. */
typedef struct lh_tnode {
    duckdb_type id;
    duckdb_logical_type lt; /* owned */
    duckdb_type storage;    /* DECIMAL and ENUM: the physical type of the stored values */
    uint8_t width, scale;   /* DECIMAL */
    idx_t array_size;       /* ARRAY */
    idx_t nchildren;
    /* LIST/ARRAY: [element]; MAP: [key, value]; STRUCT: fields; UNION: members */
    struct lh_tnode *children;
} lh_tnode;

/* Builds the tree of lt, taking ownership of lt. Free with lh_tnode_free. */
void lh_tnode_init(lh_tnode *n, duckdb_logical_type lt);
void lh_tnode_free(lh_tnode *n);
/* DuckDB's name of a type (as typeof() prints it). Caller frees. */
char *lh_type_name(duckdb_logical_type t, const lh_keywords *kw);

typedef enum {
    LH_CELL_NULL,
    LH_CELL_BOOL,   /* text is "true" or "false" */
    LH_CELL_NUMBER, /* text is a valid JSON number literal */
    LH_CELL_TEXT,   /* UTF-8 text, to be quoted as a string */
} lh_cell_kind;

/* One rendered cell. text is borrowed: valid until the next cell of the same column or the
 * next chunk, whichever comes first. Not NUL-terminated. */
typedef struct lh_cell {
    lh_cell_kind kind;
    const char *text;
    size_t len;
} lh_cell;

typedef struct lh_col lh_col;
typedef void (*lh_cell_fn)(lh_col *col, idx_t row, lh_cell *out);

/* A result column: its name, DuckDB type name, renderer, and the current chunk's vector. */
struct lh_col {
    char *name;      /* owned */
    char *type_name; /* owned, e.g. "DECIMAL(10,2)", "INTEGER[]" */
    lh_tnode type;
    lh_cell_fn render;
    char **enum_words; /* top-level ENUM: the dictionary, owned */
    idx_t enum_count;
    /* per chunk (lh_cols_bind) */
    duckdb_vector vec;
    const void *data;
    const uint64_t *validity;
    /* per cell */
    char num[64];
    lh_buf scratch;
};

/* Columns of a result (names and types copied). NULL when the result has no columns.
 * Caller frees with lh_cols_free. */
lh_col *lh_cols_new(duckdb_result *res, idx_t *count, const lh_keywords *kw);
void lh_cols_free(lh_col *cols, idx_t count);
/* Points every column at its vector in chunk (borrowed: valid while chunk lives). */
void lh_cols_bind(lh_col *cols, idx_t count, duckdb_data_chunk chunk);
/* Renders row `row` of the bound chunk. */
void lh_col_cell(lh_col *col, idx_t row, lh_cell *out);

/* Writers of one cell. */
void lh_cell_write_json(lh_buf *b, const lh_cell *c);
void lh_cell_write_csv(lh_buf *b, const lh_cell *c);
/* CSV field for a text (quoted when it holds a comma, quote, CR or LF, or is empty). */
void lh_csv_field(lh_buf *b, const char *s, size_t len);
/* The cell as a jansson value (numbers as integers when they fit, else reals). */
json_t *lh_cell_to_json(const lh_cell *c);

/* ---------------------------------------------------------------- result buffer */

/* Rendered-but-unsent output a user query holds at most, plus one row (result.c renders row
 * by row and stops once its buffer passes this). Bounds the memory a client that does not
 * read can pin outside DuckDB's memory limit, per query slot. */
#define LH_QUERY_OUT_BUDGET ((size_t)1 << 20)

/* For tests: bytes in the query's output buffer (rendered, sent or not), and the buffer's
 * allocated capacity. */
size_t lh_query__buffered_bytes(const lh_query *q);
size_t lh_query__buffer_capacity(const lh_query *q);

/* ---------------------------------------------------------------- generations */

/* One DuckDB database with its sandbox. Two kinds (engine.c's header): the user database
 * (the buckets' datasets/ folders, with the views) and the internal one (the buckets'
 * datasets/ folders and _tmp/, no views). Whoever runs something on one holds a
 * reference; the engine holds one on each current generation. Freed when the count drops
 * to zero (so a regeneration never pulls a database from under a running query). A
 * published generation's sandbox never changes; only its views do (dataset changes). */
typedef struct lh_gen {
    duckdb_database db;
    /* setup, then view DDL: the user generation's views change on it after publication,
     * always under eng->regen_mu (nothing else uses it) */
    duckdb_connection ddl;
    int refs; /* guarded by eng->gen_mu */
    /* Connections of finished user queries, kept for the next ones (lh_gen_connect):
     * guarded by eng->gen_mu, at most eng->max_queries, disconnected with the generation. */
    struct lh_idle_conn *idle;
    int nidle;
    uint64_t seq;
    char *tmp_dir; /* owned: this generation's spill folder, removed with it */
} lh_gen;

/* ---------------------------------------------------------------- watchdog */

/* An entry of the watchdog: the connection to interrupt and when. Owned by the query, which
 * removes it before disconnecting, so the watchdog never touches a closed connection. */
typedef struct lh_watch {
    struct lh_watch *next;
    duckdb_connection conn;
    int64_t deadline_ms; /* lh_now_ms() clock */
    atomic_bool fired;   /* set once duckdb_interrupt was called */
    /* Optional: called on the watchdog thread once the entry has fired (without the
     * watchdog mutex). Must not block on its owner: returns false when the owner is busy
     * (retried a little later), true when done (the watchdog then unlinks the entry). */
    bool (*expire)(struct lh_watch *w);
    int64_t expire_at_ms; /* the watchdog's: when expire is (re)tried */
} lh_watch;

typedef struct lh_watchdog lh_watchdog;

lh_watchdog *lh_watchdog_start(lh_error *err);
/* Stops the thread; entries still registered are forgotten (not interrupted). */
void lh_watchdog_stop(lh_watchdog *wd);
void lh_watchdog_add(lh_watchdog *wd, lh_watch *w);
/* After this returns the watchdog no longer uses w (it waits while w's expire callback
 * runs, so never call it from that callback). Safe on an entry not added. */
void lh_watchdog_remove(lh_watchdog *wd, lh_watch *w);

/* ---------------------------------------------------------------- function allow-list */

/* How the firewall treats a function name (functions.c). */
typedef enum {
    LH_FN_UNKNOWN,     /* not in the table: refused */
    LH_FN_ALLOW,       /* pure: may be called in expressions */
    LH_FN_TABLE,       /* pure, and may also be called in FROM (range, generate_series, unnest) */
    LH_FN_FILES,       /* reads or lists files */
    LH_FN_CATALOG,     /* reveals the catalog, settings, session or other users' activity */
    LH_FN_SQL,         /* runs, plans or rewrites other SQL */
    LH_FN_STATE,       /* reads or changes server state (sequences, seeds, logs, checkpoints) */
    LH_FN_STATEMENT,   /* a PRAGMA function, never callable from a SELECT */
    LH_FN_NOT_OFFERED, /* a table function we do not offer */
    LH_FN_INTERNAL,    /* the server's own, for its dataset views (lh_row_visible) */
} lh_fn_class;

typedef struct lh_fn_entry {
    const char *name;
    lh_fn_class cls;
} lh_fn_entry;

/* The class of a function name (case-insensitive); LH_FN_UNKNOWN when not listed. */
lh_fn_class lh_function_class(const char *name);
/* Why a class is refused, for messages ("it reads or lists files; ..."). Static. */
const char *lh_function_reason(lh_fn_class cls);
/* The whole table, sorted case-insensitively (for tests). Static. */
const lh_fn_entry *lh_function_table(size_t *count);
/* Reads DuckDB's catalog of functions on conn and logs a warning naming those missing
 * from the table (refused until classified). Returns how many are missing. */
size_t lh_functions_audit(duckdb_connection conn);

/* ---------------------------------------------------------------- verdict cache */

/* Allowed verdicts of the firewall by (policy identity, SQL text), valid for one epoch
 * (rules in verdicts.c). Thread-safe. */
typedef struct lh_verdicts lh_verdicts;
lh_verdicts *lh_verdicts_new(void);
void lh_verdicts_free(lh_verdicts *v);
/* The current epoch: read it before checking, store the verdict under it. */
uint64_t lh_verdicts_epoch(lh_verdicts *v);
/* Moves the epoch: every remembered verdict is forgotten. Never blocks. */
void lh_verdicts_invalidate(lh_verdicts *v);
/* True when sql was allowed for identity in this epoch. identity NULL: always false. */
bool lh_verdicts_allowed(lh_verdicts *v, const char *identity, const char *sql, uint64_t epoch);
void lh_verdicts_remember(lh_verdicts *v, const char *identity, const char *sql, uint64_t epoch);
/* The same with a payload stored beside the verdict (copied): lookup gives a copy in
 * *payload (caller frees; NULL when none or not found). */
bool lh_verdicts_lookup(lh_verdicts *v, const char *identity, const char *sql, uint64_t epoch,
                        char **payload);
void lh_verdicts_store(lh_verdicts *v, const char *identity, const char *sql, uint64_t epoch,
                       const char *payload);

/* ---------------------------------------------------------------- the engine */

struct lh_engine {
    lh_storage *st;
    lh_catalog *cat;
    char *data_dir;
    char *tmp_root; /* <data>/_tmp/duckdb */
    int max_queries;
    int default_timeout_ms;
    int64_t default_rows;
    int threads;
    int64_t memory_mb;
    lh_keywords keywords;   /* read-only after open */
    lh_keywords aggregates; /* DuckDB's aggregate function names, lowercase; read-only */
    lh_verdicts *verdicts;  /* the firewall's cache; invalidated by the listeners */
    lh_watchdog *watchdog;
    lh_retirer *retirer; /* the catalog's retirer; user queries are its readers */

    /* Serialises every change of what is served (the registry, the views and both
     * generations): catalog listener (one dataset's view DDL on cur), storage listener
     * (new databases), seeding, close. cur and views change only under it, so its holder
     * may use them without gen_mu. */
    pthread_mutex_t regen_mu;
    bool listening; /* true from open until close begins; listeners check it */

    /* +1 each time the relations user SQL can name may have changed (a dataset's views
     * changed, or a new user database was published). A firewall cache keyed on the
     * catalog reads it. */
    atomic_uint_least64_t view_events;

    /* Guards cur, internal, views (the pointer), refcounts, users, slots and closing. A
     * leaf lock but for the retirer's. */
    pthread_mutex_t gen_mu;
    pthread_cond_t idle_cv;  /* signalled when users drops to zero */
    lh_gen *cur;             /* user queries: reads the committed parts, nothing else */
    lh_gen *internal;        /* our own statements (ingest's COPY, DESCRIBE of a staged file) */
    lh_view_registry *views; /* what cur serves; changed under regen_mu + gen_mu */
    uint64_t gen_seq;
    int users; /* queries and internal statements holding a generation */
    int slots; /* user queries running */
    bool closing;

    /* AI-safe views (safe_views.c): {lowercased name: definition} as the catalog has them,
     * changed under regen_mu; problems {name: reason} of those not served, under gen_mu. */
    json_t *safe_views;
    json_t *safe_view_problems;
    /* Subject relations (lineage.c's input, engine.c subjects_rebuild): replaced whole under
     * regen_mu + gen_mu at each view change, never changed in place; readers take a
     * reference (lh_engine_subjects). */
    json_t *subjects;
};

/* The current subject relations (see struct lh_engine); caller decrefs. May be NULL. */
json_t *lh_engine_subjects(lh_engine *eng);

/* Takes a reference on the current user generation (NULL + LH_EUNAVAILABLE when
 * closing). */
lh_gen *lh_gen_acquire(lh_engine *eng, lh_error *err);
void lh_gen_release(lh_engine *eng, lh_gen *g);
/* The last statement a pooled connection ran, kept with it: a SELECT prepared from sql on
 * that connection (one statement, no parameters), while the views were at view_events.
 * All fields owned; empty (NULLs) when there is none. */
typedef struct lh_stmt_cache {
    char *sql;
    duckdb_prepared_statement stmt;
    uint64_t view_events;
} lh_stmt_cache;
void lh_stmt_cache_clear(lh_stmt_cache *c);
typedef struct lh_idle_conn {
    duckdb_connection conn;
    lh_stmt_cache cache;
} lh_idle_conn;
/* A connection to g's database for one user query: an idle one a finished query gave back
 * (lh_gen_disconnect with reusable), with its cached statement in *cache, or a new one
 * (*cache empty). The caller holds a reference on g and owns *conn and *cache until it
 * hands them to lh_gen_disconnect. */
int lh_gen_connect(lh_engine *eng, lh_gen *g, duckdb_connection *conn, lh_stmt_cache *cache,
                   lh_error *err);
/* Gives *conn and *cache back (empties both; NULL conn accepted). reusable: the connection
 * carries no state of its query (see result.c: a plain finished SELECT, no variable set,
 * never interrupted) and may serve the next query on g, with the cache; otherwise, or when
 * g already keeps max_queries idle connections, both are closed. Before lh_gen_release of
 * the caller's reference. */
void lh_gen_disconnect(lh_engine *eng, lh_gen *g, duckdb_connection *conn, lh_stmt_cache *cache,
                       bool reusable);
/* For tests: the sequence number of the current user database (moves when a new one is
 * opened: at a bucket change, never at a dataset change). 0 when closing. */
uint64_t lh_engine__user_generation(lh_engine *eng);
/* lh_engine_query_json on a connection the caller holds (engine.c). */
json_t *lh_conn_query_json(lh_engine *eng, duckdb_connection conn, const char *sql, lh_error *err);
/* ---------------------------------------------------------------- lineage (lineage.c) */

/* What an audited statement returns of subject relations (lineage.c's header). */
typedef struct lh_lineage {
    lh_access_kind kind;
    bool key_visible;
    char **datasets;  /* sorted, unique, NULL-terminated; owned (NULL for NONE) */
    char reason[256]; /* UNATTRIBUTED: why */
    char hint[220];   /* for an agent's refusal: "select \"K\" of rel, or aggregate" */
    char *sql;        /* ROWS: the rewritten statement, whose last column is __lh_key */
} lh_lineage;

/* Classifies the statement whose serialized tree is `tree` for policy (NONE, nothing
 * done, when the policy is not audited) and, for ROWS, rewrites it (json_deserialize_sql
 * on conn). Errors: LH_EFORBIDDEN sql_forbidden (reserved names, whole-row references,
 * agents' row-level aggregates), LH_EINTERNAL. Fills *out (caller clears with
 * lh_lineage_clear, also on failure). */
int lh_lineage_classify(lh_engine *eng, duckdb_connection conn, const char *tree,
                        const lh_sql_policy *policy, lh_lineage *out, lh_error *err);
void lh_lineage_clear(lh_lineage *l);
/* The verdict cache's form of a lineage. Caller frees / clears. from_text: 0 or -1. */
char *lh_lineage_to_text(const lh_lineage *l);
int lh_lineage_from_text(const char *text, lh_lineage *l);
/* firewall.c: bare Infinity/-Infinity/NaN tokens of a serialized tree replaced by null.
 * Caller frees. */
char *lh_sql_tree_finite(const char *text);

/* The firewall on a connection the caller holds, so a query's parse runs inside its slot
 * and under its deadline (firewall.c). When lin is not NULL and the policy is audited, the
 * allowed statement is also classified (lh_lineage_classify) into *lin, which the verdict
 * cache keeps with the verdict, so a cached statement costs no parse and no rewrite. */
int lh_firewall_on_conn(lh_engine *eng, duckdb_connection conn, const char *sql,
                        const lh_sql_policy *policy, lh_lineage *lin, lh_error *err);

/* ---------------------------------------------------------------- AI-safe views
 * (safe_views.c) */
/* The SELECT a safe view runs: the projection with redactions over the checked filter
 * statement (lh_safe_view_filter_statement). Pure. Caller frees. */
char *lh_safe_view_select(const json_t *def);
/* "SELECT * FROM "<base>" WHERE (\n<filter>\n)", the statement the firewall checks and the
 * view embeds verbatim, or, without a filter, "SELECT * FROM "<base>"". Caller frees. */
char *lh_safe_view_filter_statement(const json_t *def);
/* Checks def's row filter: the statement above must parse to exactly one plain SELECT *
 * over the base with a WHERE clause and nothing else (no clause the filter could add by
 * closing the parenthesis), and pass the firewall with a policy that allows the base
 * alone and caller_attribute('name'). LH_EINVAL kind "bad_row_filter" otherwise. */
int lh_safe_view_filter_check(lh_engine *eng, const json_t *def, lh_error *err);
/* The caller_attribute(name) macro (getvariable('lh_attr_' || name)) on a new user db. */
int lh_safe_views_prelude(duckdb_connection conn, lh_error *err);
/* CREATE OR REPLACE VIEW / DROP VIEW IF EXISTS of a safe view on conn (caller serialises
 * DDL under regen_mu), with its subject companion (views.h, LH_KEY_PREFIX) created when
 * base_key (the base's subject_key_column) is not NULL and dropped otherwise, in one
 * transaction. */
int lh_safe_view_create(duckdb_connection conn, const json_t *def, const char *base_key,
                        lh_error *err);
int lh_safe_view_drop(duckdb_connection conn, const char *name, lh_error *err);
/* SET VARIABLE lh_attr_<k> = '<v>' for each attribute, on a query's fresh connection. A
 * no-op (no DuckDB call) when attrs is NULL or empty. */
int lh_safe_view_set_attributes(duckdb_connection conn, const json_t *attrs, lh_error *err);
#endif
