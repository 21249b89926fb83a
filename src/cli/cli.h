/*
 * cli: the `lakehouse` command. Internal header of src/cli/ (nothing outside this folder
 * and its unit test includes it).
 *
 *   client.c    lh_client: a small libcurl HTTP client for the server's API. Uploads stream
 *               from disk with a Content-Length, results can stream to a FILE.
 *   table.c     lh_table: aligned text tables (display width aware, long cells cut with …),
 *               and a JSON re-indenter that keeps the server's bytes.
 *   args.c      the argument parser (global and per-command flags) and small pure helpers
 *               such as the ingest format from a file extension.
 *   commands.c  the static command table and its handlers; lh_cli_main.
 *   retention.c `lakehouse retention-sweep` (offline, over the data folder).
 *   audit_offline.c  `lakehouse audit verify-offline`: a legal response checked with the
 *               public key only (issue 12).
 *   main.c      main(): calls lh_cli_main. Kept apart because the build puts every other
 *               file of this folder in the `lh` library, where tests can reach it.
 *
 * Exit codes: 0 ok, 1 the server or the OS said no (printed as "error: <code>: <message>"),
 * 2 usage error (the usage is printed).
 */
#ifndef LH_CLI_H
#define LH_CLI_H

#include "core/core.h"

#include <stdbool.h>
#include <stdio.h>

#define LH_VERSION "0.1.0-dev"

#define LH_CLI_EXIT_OK 0
#define LH_CLI_EXIT_ERROR 1
#define LH_CLI_EXIT_USAGE 2

#define LH_CLI_DEFAULT_SERVER "http://127.0.0.1:8470"

/* ---------------------------------------------------------------- client */

typedef struct lh_client lh_client;

/* The server URL: `flag` when given, else $LH_SERVER, else LH_CLI_DEFAULT_SERVER. A
 * trailing '/' is dropped. Caller frees. */
char *lh_client_resolve_server(const char *flag);
/* The API key: `flag` when given, else $LH_KEY, else the first line of
 * <$LH_DATA or ./data>/_secrets/admin.key when that file is readable, else NULL (the
 * request goes without Authorization). Caller frees. */
char *lh_client_resolve_key(const char *flag);

/* server_url and api_key (may be NULL) are copied. Caller frees with lh_client_free. */
lh_client *lh_client_new(const char *server_url, const char *api_key, lh_error *err);
void lh_client_free(lh_client *c);
/* The base URL (borrowed, valid until lh_client_free). */
const char *lh_client_server(const lh_client *c);

typedef struct lh_response {
    long status;        /* HTTP status, 0 when no response came */
    char *content_type; /* may be NULL; owned */
    lh_buf body;        /* the body, unless it streamed to the request's sink */
} lh_response;

void lh_response_init(lh_response *r);
void lh_response_free(lh_response *r);
/* True for a 2xx status. */
bool lh_response_ok(const lh_response *r);
/* Turns a non-2xx response into err: message "<error>: <message>" from the server's JSON
 * error body (or "http_<status>: <start of the body>" when it is not one), code from the
 * status. Returns err's code (negative). */
int lh_response_error(const lh_response *r, lh_error *err);

typedef struct lh_request {
    const char *method;               /* "GET", "POST", "DELETE" */
    const char *path;                 /* "/catalog/datasets", query string included */
    const char *json_body;            /* NULL or a JSON text sent as application/json */
    const char *upload_path;          /* NULL or a file streamed as the body */
    const char *const *extra_headers; /* NULL-terminated "Name: value" list, or NULL */
    FILE *sink; /* when not NULL, a 2xx body is written here as it arrives instead of
                   into resp->body (error bodies still go to resp->body) */
} lh_request;

/* Sends one request and waits for the whole response. Returns 0 whenever the server
 * answered (any status: check lh_response_ok); LH_EUNAVAILABLE (kind "unreachable") when
 * it could not be reached, with a message that names the URL and how to start a server;
 * LH_EIO for a transfer cut short or a file that cannot be read. resp must be initialised;
 * the caller frees it. */
int lh_client_send(lh_client *c, const lh_request *req, lh_response *resp, lh_error *err);

/* Percent-encodes s for a URL query or path segment. Caller frees. */
char *lh_client_escape(const char *s);

/* ---------------------------------------------------------------- tables */

#define LH_TABLE_MAX_CELL_WIDTH 40

typedef enum { LH_ALIGN_LEFT, LH_ALIGN_RIGHT } lh_align;

/* A grid of text cells, all copied in. A NULL cell is SQL NULL and prints as "NULL". */
typedef struct lh_table {
    size_t ncols;
    char **headers;  /* ncols, owned */
    lh_align *align; /* ncols, LH_ALIGN_LEFT by default */
    size_t nrows;
    size_t cap_rows;
    char **cells; /* nrows * ncols, row-major, owned; NULL = SQL NULL */
} lh_table;

/* headers (ncols strings) are copied. Free with lh_table_free. */
void lh_table_init(lh_table *t, size_t ncols, const char *const *headers);
void lh_table_free(lh_table *t);
void lh_table_set_align(lh_table *t, size_t col, lh_align align);
/* Appends a row; cells (ncols entries, NULL allowed) are copied. */
void lh_table_add_row(lh_table *t, const char *const *cells);

typedef struct lh_table_footer {
    int64_t rows;   /* the count printed, e.g. the server's row_count; < 0: t->nrows */
    bool truncated; /* the server stopped at the row limit */
} lh_table_footer;

/* Renders t into out:
 *
 *    name   | rows
 *   --------+------
 *    people | 1000
 *   (1 row)
 *
 * Column widths are display widths (East Asian wide characters count two, combining
 * marks zero); cells wider than LH_TABLE_MAX_CELL_WIDTH are cut on a character boundary
 * and end with "…"; control characters are shown escaped (\n, \t, \x1b) so data can
 * neither break the grid nor drive the terminal; invalid UTF-8 bytes become U+FFFD.
 * footer may be NULL (then "(N rows)" from t->nrows). */
void lh_table_render(const lh_table *t, const lh_table_footer *footer, lh_buf *out);

/* The noun for a count: `one` when n is 1, else `many` ("1 row", "0 rows", "2 rows").
 * Every count the CLI prints goes through it. Returns one of its arguments. */
const char *lh_cli_plural(long long n, const char *one, const char *many);

/* Appends the displayable form of s (escaped and cut to max_width columns as above) to
 * out and returns its display width. Exposed for tests. */
size_t lh_cli_cell_fit(const char *s, size_t max_width, lh_buf *out);

/* Display width of the UTF-8 text s (invalid bytes count one column each). */
size_t lh_cli_display_width(const char *s, size_t len);

/* Builds a table from a query result {"columns":[{name,type}],"rows":[[...]]}: numbers
 * and booleans become their JSON text, strings their value, null NULL, arrays/objects
 * their compact JSON. Numeric columns are right-aligned. Returns LH_EINVAL when the
 * document does not have that shape. t is initialised by the call; caller frees it. */
int lh_table_from_query_result(const json_t *result, lh_table *t, lh_error *err);

/* Parses a JSON query result, keeping every number that is not an int64 integer (reals,
 * DECIMALs, HUGEINTs) as a string of the server's exact text, so tables show the digits
 * the server sent. Caller decrefs; NULL + LH_EINVAL when the text is not a JSON object. */
json_t *lh_cli_parse_query_result(const char *text, size_t len, lh_error *err);

/* Text of a JSON scalar for a cell: NULL for null; caller frees otherwise. Reals print in
 * their shortest round-trip form (0.1, not 0.10000000000000001). */
char *lh_cli_json_cell(const json_t *v);

/* Re-indents JSON text with two spaces per level, without re-encoding anything: strings
 * and numbers keep the server's exact bytes. The text is assumed to be JSON; garbage in
 * gives garbage out, never a crash. Appends a final newline. */
void lh_cli_json_pretty(const char *text, size_t len, lh_buf *out);

/* ---------------------------------------------------------------- arguments */

/* The ingest format implied by a file name: .csv → "csv", .json → "json", .ndjson and
 * .jsonl → "ndjson", .parquet → "parquet" (case-insensitive; a trailing .gz is not
 * understood). NULL when the extension says nothing. Static string. */
const char *lh_cli_format_from_path(const char *path);

/* Per-command flag specifications. */
typedef struct lh_cli_flag_spec {
    const char *name; /* "--name" */
    bool takes_value;
} lh_cli_flag_spec;

#define LH_CLI_MAX_POS 4
#define LH_CLI_MAX_FLAGS 16

/* The parsed command line. Strings are borrowed from argv. */
typedef struct lh_cli_args {
    const char *command; /* NULL when none was given */
    const char *pos[LH_CLI_MAX_POS];
    int npos;
    struct {
        const char *name;  /* "--format" */
        const char *value; /* NULL for a flag without value */
    } flags[LH_CLI_MAX_FLAGS];
    int nflags;
    /* global flags */
    const char *server;
    const char *key;
    bool json;
    bool help;
    bool version;
} lh_cli_args;

/* Parses argv[1..]: global flags (--server URL, --key KEY, --json, --help/-h, --version)
 * may appear anywhere; the first other word is the command; then its positional
 * arguments and flags, `--flag value` or `--flag=value`; `--` ends flags. `lookup`
 * returns the flag specs of a command (NULL-name terminated) or NULL when the command is
 * unknown, in which case parsing stops after the command word and the caller decides.
 * LH_EINVAL for an unknown flag, a missing value or too many arguments. */
int lh_cli_parse(int argc, char **argv, const lh_cli_flag_spec *(*lookup)(const char *command),
                 lh_cli_args *args, lh_error *err);

/* Value of a flag, or NULL when it was not given. */
const char *lh_cli_flag(const lh_cli_args *args, const char *name);
/* True when a flag was given (with or without value). */
bool lh_cli_has_flag(const lh_cli_args *args, const char *name);

/* ---------------------------------------------------------------- commands */

/* `lakehouse retention-sweep` (retention.c): its flags and its body, which needs no
 * server. Returns the exit code. */
extern const lh_cli_flag_spec lh_cli_retention_flags[];
int lh_cli_retention_sweep(const lh_cli_args *args);
/* `lakehouse audit verify-offline RESPONSE.json --pubkey FILE [--json]`: checks a saved
 * legal response with the signing public key only (FILE: the verifier key line, or the
 * JSON of GET /audit/pubkey). Prints each check; returns 0 when all pass, 1 otherwise. */
int lh_cli_audit_verify_offline(const char *response_path, const char *pubkey_path, bool json);

/* Runs the `lakehouse` command line; returns the process exit code. */
int lh_cli_main(int argc, char **argv);
/* The text `lakehouse ingest` prints for a committed dataset (manifest as the server
 * returned it), e.g.
 *   ingested p.csv into dataset 'people' (bucket primary, mode create)
 *     1,234 rows, 1 column, 12.5 KiB of Parquet, 0.31 s
 *     PII columns: email (email, PII)
 * Appends to out. Exposed for tests. */
void lh_cli_ingest_summary(const json_t *manifest, const char *file, const char *name,
                           const char *mode, double seconds, lh_buf *out);

#endif
