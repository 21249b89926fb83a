/*
 * test_firewall.c: the SQL firewall (src/query/firewall.c) judged on DuckDB's own parse
 * trees. A raw in-memory DuckDB in the test turns each statement into json_serialize_sql
 * output (what lh_sql_firewall feeds lh_sql_firewall_tree in the server), then the tree is
 * checked under three policies over a lake holding `people` and `secret`:
 *
 *   analyst  may read people and secret; no raw relations
 *   admin    the same, plus __raw__<name> of those
 *   agent    may read only people
 *
 * Cases are data: a table of statements with the expected code per policy (allowed
 * queries, refusals, and one regression row per bug found), a table of hand-made trees
 * (shapes DuckDB never prints but the fuzzer does), and every line of
 * tests/security/sql_attacks.txt, read at run time with its tag's meaning.
 */
#include "testutil.h"

#include "core/core.h"
#include "auth/auth.h"
#include "query/query.h"
#include "query/query_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- policies */

/* A lake of two datasets judged by the server's own rule (lh_sql_access): analysts and
 * admins read both and learn that a well-formed name is not a dataset (LH_REL_UNKNOWN);
 * the agent is granted `people` only and is refused anything else, existing or not. */
static const char *const lake_names[] = {"people", "secret", NULL};
static char *agent_grants[] = {"people", NULL};
static lh_principal p_analyst = {
    .name = "ana", .role = LH_ROLE_ANALYST, .profile = NULL, .datasets = NULL};
static lh_principal p_admin = {
    .name = "root", .role = LH_ROLE_ADMIN, .profile = NULL, .datasets = NULL};
static lh_principal p_agent = {
    .name = "bot", .role = LH_ROLE_AGENT, .profile = NULL, .datasets = agent_grants};

static lh_rel_access may_read_set(void *ctx, const char *relation)
{
    bool exists = false;
    for (const char *const *n = lake_names; *n; n++)
        exists = exists || strcasecmp(*n, relation) == 0;
    return lh_sql_access(ctx, relation, exists);
}

static const lh_sql_policy analyst = {.allow_raw = false,
                                      .may_read = may_read_set,
                                      .ctx = &p_analyst,
                                      .allowed_hint = "people, secret",
                                      .identity = NULL};
static const lh_sql_policy admin = {.allow_raw = true,
                                    .may_read = may_read_set,
                                    .ctx = &p_admin,
                                    .allowed_hint = "people, secret",
                                    .identity = NULL};
static const lh_sql_policy agent = {.allow_raw = false,
                                    .may_read = may_read_set,
                                    .ctx = &p_agent,
                                    .allowed_hint = "allowed: people",
                                    .identity = NULL};

/* ---------------------------------------------------------------- DuckDB parser */

typedef struct fx {
    duckdb_database db;
    duckdb_connection conn;
    duckdb_prepared_statement serialize;
} fx;

static int group_setup(void **state)
{
    fx *f = lh_xcalloc(1, sizeof(*f));
    if (duckdb_open(NULL, &f->db) != DuckDBSuccess ||
        duckdb_connect(f->db, &f->conn) != DuckDBSuccess)
        return -1;
    /* as every database of the engine has it (engine.c) */
    lh_error err;
    if (lh_row_filter_register(f->conn, &err) != 0)
        return -1;
    /* The same probe as lh_sql_firewall, with the text bound rather than quoted. */
    if (duckdb_prepare(f->conn, "SELECT json_serialize_sql(?::VARCHAR)", &f->serialize) !=
        DuckDBSuccess) {
        fprintf(stderr, "prepare: %s\n", duckdb_prepare_error(f->serialize));
        return -1;
    }
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    fx *f = *state;
    duckdb_destroy_prepare(&f->serialize);
    duckdb_disconnect(&f->conn);
    duckdb_close(&f->db);
    free(f);
    return 0;
}

/* json_serialize_sql(sql) as DuckDB prints it. Caller frees. */
static char *serialize(fx *f, const char *sql)
{
    duckdb_result res;
    char *out = NULL;
    if (duckdb_bind_varchar(f->serialize, 1, sql) != DuckDBSuccess)
        fail_msg("bind failed for: %s", sql);
    if (duckdb_execute_prepared(f->serialize, &res) != DuckDBSuccess) {
        fprintf(stderr, "json_serialize_sql failed: %s\n", duckdb_result_error(&res));
        duckdb_destroy_result(&res);
        fail_msg("json_serialize_sql failed for: %s", sql);
    }
    char *v = duckdb_value_varchar(&res, 0, 0);
    if (!v)
        fail_msg("json_serialize_sql returned NULL for: %s", sql);
    out = lh_xstrdup(v);
    duckdb_free(v);
    duckdb_destroy_result(&res);
    return out;
}

/* ---------------------------------------------------------------- expectations */

/* Expected outcome per policy: 0 (runs), LH_EFORBIDDEN, LH_EINVAL, or REFUSED (either
 * refusal: a parse error and a firewall refusal both keep the statement from running). */
#define OK 0
#define FB LH_EFORBIDDEN
#define IV LH_EINVAL
#define REFUSED 1

static bool outcome_matches(int want, int got)
{
    if (want == REFUSED)
        return got == LH_EFORBIDDEN || got == LH_EINVAL;
    return want == got;
}

static const char *outcome_name(int code)
{
    return code == REFUSED ? "refused" : code == 0 ? "allowed" : lh_code_name(code);
}

/* Checks one statement under one policy; prints a line and returns 1 on a mismatch. */
static int check_one(fx *f, const char *sql, const char *policy_name, const lh_sql_policy *p,
                     int want, const char *where)
{
    char *tree = serialize(f, sql);
    lh_error err;
    lh_error_clear(&err);
    int got = lh_sql_firewall_tree(tree, p, &err);
    int bad = 0;
    if (!outcome_matches(want, got)) {
        fprintf(stderr, "%s: %s as %s: expected %s, got %s (%s)\n", where, sql, policy_name,
                outcome_name(want), outcome_name(got), err.message);
        bad = 1;
    } else if (got == LH_EFORBIDDEN &&
               (err.kind == NULL || strcmp(err.kind, "sql_forbidden") != 0)) {
        fprintf(stderr, "%s: %s as %s: refusal without kind sql_forbidden\n", where, sql,
                policy_name);
        bad = 1;
    } else if (got == LH_EINVAL && (err.kind == NULL || strcmp(err.kind, "sql_error") != 0)) {
        fprintf(stderr, "%s: %s as %s: parse error without kind sql_error\n", where, sql,
                policy_name);
        bad = 1;
    }
    free(tree);
    return bad;
}

typedef struct sql_case {
    const char *sql;
    int analyst, agent, admin;
} sql_case;

static int check_case(fx *f, const sql_case *c, const char *where)
{
    return check_one(f, c->sql, "analyst", &analyst, c->analyst, where) +
           check_one(f, c->sql, "agent", &agent, c->agent, where) +
           check_one(f, c->sql, "admin", &admin, c->admin, where);
}

/* ---------------------------------------------------------------- allowed statements */

static const sql_case allowed_cases[] = {
    {"SELECT 1", OK, OK, OK},
    {"SELECT * FROM people", OK, OK, OK},
    {"SELECT * FROM PEOPLE", OK, OK, OK}, /* SQL names are case-insensitive */
    {"SELECT * FROM \"people\"", OK, OK, OK},
    {"FROM people", OK, OK, OK},
    {"FROM people SELECT email", OK, OK, OK},
    {"SELECT email FROM people WHERE candidate_id = 3 ORDER BY 1 LIMIT 5 OFFSET 1", OK, OK, OK},
    {"SELECT p.email FROM people p JOIN people q ON p.candidate_id = q.candidate_id", OK, OK, OK},
    {"SELECT * FROM people a LEFT JOIN people b USING (candidate_id)", OK, OK, OK},
    {"SELECT * FROM people a, people b WHERE a.city = b.city", OK, OK, OK},
    {"SELECT * FROM people p POSITIONAL JOIN people q", OK, OK, OK},
    {"SELECT * FROM people a ASOF JOIN people b ON a.candidate_id >= b.candidate_id", OK, OK, OK},
    {"SELECT * FROM people, LATERAL (SELECT people.salary * 2 AS d) t", OK, OK, OK},
    /* CTEs: later ones see earlier ones, nested WITH sees the outer ones */
    {"WITH a AS (SELECT * FROM people) SELECT * FROM a", OK, OK, OK},
    {"WITH a AS (SELECT * FROM people), b AS (SELECT * FROM a), c AS (SELECT * FROM b, a) "
     "SELECT * FROM c",
     OK, OK, OK},
    {"WITH a AS (SELECT 1 AS x) SELECT * FROM a, (WITH b AS (SELECT * FROM a) SELECT * FROM b) t",
     OK, OK, OK},
    {"WITH a AS (SELECT 1 AS x) SELECT * FROM a WHERE x IN (SELECT x FROM a)", OK, OK, OK},
    {"WITH a AS MATERIALIZED (SELECT * FROM people) SELECT count(*) FROM a", OK, OK, OK},
    {"WITH a AS NOT MATERIALIZED (SELECT * FROM people) SELECT count(*) FROM a", OK, OK, OK},
    /* a CTE may shadow a relation the caller may not read: DuckDB reads the CTE */
    {"WITH secret AS (SELECT * FROM people) SELECT * FROM secret", OK, OK, OK},
    {"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) "
     "SELECT * FROM r",
     OK, OK, OK},
    {"WITH RECURSIVE r(n) AS (SELECT 1 UNION SELECT n + 1 FROM r, people WHERE n < 3) "
     "SELECT * FROM r",
     OK, OK, OK},
    {"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < "
     "(SELECT count(*) FROM people)) SELECT * FROM r",
     OK, OK, OK},
    {"WITH RECURSIVE a AS (SELECT 1 AS n), r(n) AS (SELECT n FROM a UNION ALL "
     "SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r, a",
     OK, OK, OK},
    /* set operations and subqueries */
    {"SELECT email FROM people UNION SELECT email FROM people", OK, OK, OK},
    {"SELECT email FROM people UNION ALL BY NAME SELECT email FROM people", OK, OK, OK},
    {"SELECT 1 EXCEPT SELECT 2", OK, OK, OK},
    {"SELECT 1 INTERSECT SELECT 1", OK, OK, OK},
    {"SELECT * FROM people WHERE candidate_id IN (SELECT candidate_id FROM people "
     "WHERE salary > 10)",
     OK, OK, OK},
    {"SELECT (SELECT max(salary) FROM people) AS m", OK, OK, OK},
    {"SELECT * FROM people WHERE EXISTS (SELECT 1 FROM people q WHERE q.city = people.city)", OK,
     OK, OK},
    {"SELECT * FROM (SELECT * FROM (SELECT * FROM people) a) b", OK, OK, OK},
    /* allowed table functions, VALUES, unnest */
    {"SELECT * FROM range(10)", OK, OK, OK},
    {"SELECT * FROM range(10) t(x) JOIN people ON people.candidate_id = t.x", OK, OK, OK},
    {"SELECT * FROM generate_series(1, 5)", OK, OK, OK},
    {"SELECT * FROM unnest([1, 2, 3])", OK, OK, OK},
    {"SELECT unnest([1, 2, 3])", OK, OK, OK},
    {"SELECT * FROM (VALUES (1, 'a'), (2, 'b')) v(id, name)", OK, OK, OK},
    {"VALUES (1), (2)", OK, OK, OK},
    /* DESCRIBE and SUMMARIZE of a readable relation or query */
    {"DESCRIBE people", OK, OK, OK},
    {"SUMMARIZE people", OK, OK, OK},
    {"DESCRIBE SELECT email FROM people", OK, OK, OK},
    {"SELECT * FROM (DESCRIBE people)", OK, OK, OK},
    /* aggregates, windows, modern syntax */
    {"SELECT city, count(*), avg(salary) FROM people GROUP BY city HAVING count(*) > 1 "
     "ORDER BY 2 DESC",
     OK, OK, OK},
    {"SELECT city, count(*) FROM people GROUP BY ALL ORDER BY ALL", OK, OK, OK},
    {"SELECT sum(salary) FILTER (WHERE is_active) FROM people", OK, OK, OK},
    {"SELECT city, row_number() OVER (PARTITION BY city ORDER BY salary DESC) FROM people", OK, OK,
     OK},
    {"SELECT avg(salary) OVER w FROM people WINDOW w AS (ORDER BY hired_at ROWS 2 PRECEDING)", OK,
     OK, OK},
    {"SELECT * FROM people QUALIFY row_number() OVER (PARTITION BY city) = 1", OK, OK, OK},
    {"SELECT COLUMNS('sal.*') FROM people", OK, OK, OK},
    {"SELECT * EXCLUDE (email) FROM people", OK, OK, OK},
    {"SELECT list_transform([1, 2], x -> x + 1), [x * 2 FOR x IN [1, 2]]", OK, OK, OK},
    {"SELECT * FROM people USING SAMPLE 10", OK, OK, OK},
    {"PIVOT people ON city IN ('Paris', 'Lyon') USING count(*)", OK, OK, OK},
    {"SELECT current_date, now(), version(), gen_random_uuid()", OK, OK, OK},
    /* names that only look dangerous */
    {"SELECT 'read_csv(''/etc/passwd'')' AS just_text", OK, OK, OK},
    {"SELECT \"read_csv\" FROM (SELECT 1 AS \"read_csv\") t", OK, OK, OK},
    {"SELECT * FROM people AS secret", OK, OK, OK},
    /* relations the roles differ on */
    {"SELECT * FROM secret", OK, FB, OK},
    {"SELECT * FROM people JOIN secret USING (candidate_id)", OK, FB, OK},
    {"SELECT * FROM __raw__people", FB, FB, OK},
    {"SELECT * FROM \"__RAW__People\"", FB, FB, OK},
    {"SELECT * FROM __raw__secret", FB, FB, OK},
    {"DESCRIBE __raw__people", FB, FB, OK},
};

static void test_allowed_and_role_dependent(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(allowed_cases) / sizeof(allowed_cases[0]); i++)
        bad += check_case(*state, &allowed_cases[i], "allowed_cases");
    if (bad)
        fail_msg("%d mismatches (listed above)", bad);
}

/* ---------------------------------------------------------------- refused statements */

static const sql_case refused_cases[] = {
    {"SELECT * FROM nothing_here", IV, FB, IV}, /* may know it is not there */
    {"SELECT * FROM __raw__nothing_here", FB, FB, IV},
    {"SELECT * FROM __raw__", FB, FB, FB},
    {"SELECT * FROM temp.main.people", FB, FB, FB},
    {"SELECT * FROM secret AT (TIMESTAMP => now())", FB, FB, FB},
    {"SELECT * FROM json_each('{}')", FB, FB, FB},
    {"SELECT * FROM repeat_row(1, num_rows => 3)", FB, FB, FB},
    {"SELECT * FROM main.range(3)", OK, OK, OK}, /* main is where range lives: allowed */
    {"SELECT * FROM system.main.range(3)", FB, FB, FB},
    {"SELECT * FROM people WHERE email = (SELECT current_setting('threads'))", FB, FB, FB},
    {"SELECT main.current_setting('threads')", FB, FB, FB},
    {"SELECT * FROM people, (SELECT * FROM read_parquet('x.parquet')) t", FB, FB, FB},
    {"SELECT * FROM range((SELECT count(*) FROM secret))", OK, FB, OK},
    {"SELECT list_transform([1], x -> (SELECT count(*) FROM secret))", OK, FB, OK},
    {"SUMMARIZE information_schema.tables", FB, FB, FB},
    {"DESCRIBE main.people", FB, FB, FB},
    {"DESCRIBE '/etc/passwd'", FB, FB, FB},
    {"SELECT * FROM (SHOW TABLES)", FB, FB, FB},
    {"SHOW DATABASES", FB, FB, FB},
    {"SHOW VARIABLES", FB, FB, FB},
    {"PIVOT secret ON city IN ('a') USING sum(salary)", OK, FB, OK},
    {"", FB, FB, FB},
    {";", FB, FB, FB},
    {"SELECT 1; SELECT 2", FB, FB, FB},
    {"SELEC 1", IV, IV, IV},
    {"SELECT * FROM", IV, IV, IV},
    /* Regression: the anchor of a recursive CTE (the left side of its UNION) reads the real
     * relation of the CTE's name in DuckDB; the firewall once treated it as the CTE. */
    {"WITH RECURSIVE secret AS (SELECT * FROM secret UNION ALL SELECT * FROM secret "
     "WHERE false) SELECT * FROM secret",
     OK, FB, OK},
    {"WITH RECURSIVE __raw__people AS (SELECT * FROM __raw__people UNION ALL "
     "SELECT * FROM __raw__people WHERE false) SELECT * FROM __raw__people",
     FB, FB, OK},
    {"WITH RECURSIVE people AS ((SELECT * FROM __raw__people) UNION ALL "
     "SELECT * FROM people WHERE false) SELECT * FROM people",
     FB, FB, OK},
    {"WITH RECURSIVE secret AS (SELECT 1 AS x UNION ALL SELECT x FROM secret WHERE false) "
     "SELECT * FROM secret",
     OK, OK, OK}, /* only the recursive side names it: that is the CTE */
    /* Regression: named SHOW listings (tables, all tables, databases) are not relations;
     * a CTE of the same name once made the firewall wave them through. */
    {"WITH __show_tables_expanded AS (SELECT 1) SELECT * FROM (SHOW ALL TABLES)", FB, FB, FB},
    {"WITH \"\"\"tables\"\"\" AS (SELECT 1) SELECT * FROM (SHOW TABLES)", FB, FB, FB},
    {"WITH \"\"\"databases\"\"\" AS (SELECT 1) SELECT * FROM (SHOW DATABASES)", FB, FB, FB},
    /* Regression (found by fuzz_firewall_sql): a DOUBLE constant that overflows is printed
     * by json_serialize_sql as a bare Infinity, which is not JSON; the firewall answered
     * LH_EINTERNAL, a 500 for a valid query. */
    {"SELECT 1e999, -1e999", OK, OK, OK},
    {"SELECT * FROM people WHERE salary < 1e400 AND salary > -1e400", OK, OK, OK},
    {"SELECT 'Infinity', 'NaN', \"Infinity\" FROM (SELECT 1 AS \"Infinity\")", OK, OK, OK},
    {"SELECT * FROM rang(01000e01000) b", FB, FB, FB},
    {"SELECT * FROM secret WHERE salary < 1e999", OK, FB, OK},
    /* Regression: built-in macros that query DuckDB's catalog (view SQL holds every
     * dataset's name and file paths) or write to its log. */
    {"SELECT pg_get_viewdef(x) FROM range(5000) t(x)", FB, FB, FB},
    {"SELECT pg_catalog.pg_get_viewdef(1)", FB, FB, FB},
    {"SELECT pg_get_constraintdef(1)", FB, FB, FB},
    {"SELECT format_type(1, 1)", FB, FB, FB},
    {"SELECT get_block_size('memory')", FB, FB, FB},
    {"SELECT write_log('x')", FB, FB, FB},
    /* The allow-list: unlisted names, state and session functions, windows and qualifiers
     * are judged like any call. */
    {"SELECT no_such_function(1)", FB, FB, FB},
    {"SELECT iceberg_scan('x')", FB, FB, FB},
    {"SELECT * FROM iceberg_scan('x')", FB, FB, FB},
    {"SELECT setseed(0.5)", FB, FB, FB},
    {"SELECT nextval('s')", FB, FB, FB},
    {"SELECT getvariable('x')", FB, FB, FB},
    {"SELECT txid_current()", FB, FB, FB},
    {"SELECT current_setting('threads') OVER ()", FB, FB, FB},
    {"SELECT sum(salary) OVER (PARTITION BY current_setting('threads')) FROM people", FB, FB, FB},
    {"SELECT system.main.abs(1)", FB, FB, FB},
    {"SELECT memory.main.abs(1)", FB, FB, FB},
    {"SELECT main.abs(-1), pg_catalog.pg_typeof(1)", OK, OK, OK},
    {"SELECT row_number() OVER (), lag(salary) OVER (ORDER BY salary), sum(salary) OVER () "
     "FROM people",
     OK, OK, OK},
    {"SELECT list_aggr([1, 2], 'sum'), list_transform([1], x -> x + 1), [1, 2][1], "
     "{'a': 1}, 'a' ILIKE 'b', 5!, 'a' || 'b', 1 AT TIME ZONE 'UTC'",
     OK, OK, OK},
};

static void test_refused(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(refused_cases) / sizeof(refused_cases[0]); i++)
        bad += check_case(*state, &refused_cases[i], "refused_cases");
    if (bad)
        fail_msg("%d mismatches (listed above)", bad);
}

/* Deep nesting must be refused (or run), never be an internal error. */
static void test_deep_nesting(void **state)
{
    static const int depths[] = {50, 200, 400, 800};
    for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
        lh_buf b;
        lh_buf_init(&b);
        lh_buf_puts(&b, "SELECT ");
        for (int d = 0; d < depths[i]; d++)
            lh_buf_puts(&b, "(SELECT ");
        lh_buf_puts(&b, "1");
        for (int d = 0; d < depths[i]; d++)
            lh_buf_puts(&b, ")");
        char *tree = serialize(*state, b.data);
        lh_error err;
        int rc = lh_sql_firewall_tree(tree, &analyst, &err);
        if (rc != 0 && rc != LH_EFORBIDDEN && rc != LH_EINVAL)
            fail_msg("depth %d: %s (%s)", depths[i], lh_code_name(rc), err.message);
        free(tree);
        lh_buf_free(&b);
    }
}

/* ---------------------------------------------------------------- hand-made trees */

typedef struct tree_case {
    const char *tree;
    int want; /* under the analyst policy */
} tree_case;

#define STMT(node) "{\"error\":false,\"statements\":[{\"node\":" node "}]}"

static const tree_case tree_cases[] = {
    {"", LH_EINTERNAL},
    {"not json", LH_EINTERNAL},
    {"[1,2]", LH_EINTERNAL},
    {"{\"error\":true,\"error_type\":\"parser\",\"error_message\":\"x\"}", LH_EINVAL},
    {"{\"error\":true,\"error_type\":\"parser\"}", LH_EINVAL},
    {"{\"error\":true,\"error_type\":\"not implemented\",\"error_message\":\"Only SELECT "
     "statements can be serialized to json!\"}",
     LH_EFORBIDDEN},
    {"{\"error\":true}", LH_EFORBIDDEN},
    {"{\"error\":false}", LH_EFORBIDDEN},
    {"{\"error\":false,\"statements\":{}}", LH_EFORBIDDEN},
    {"{\"error\":false,\"statements\":[]}", LH_EFORBIDDEN},
    {"{\"error\":false,\"statements\":[1,2]}", LH_EFORBIDDEN},
    {STMT("{\"type\":\"SELECT_NODE\",\"from_table\":{\"type\":\"BASE_TABLE\","
          "\"table_name\":\"people\"}}"),
     0},
    {STMT("{\"type\":\"SELECT_NODE\",\"from_table\":{\"type\":\"BASE_TABLE\","
          "\"table_name\":\"nope\"}}"),
     LH_EINVAL},
    {STMT("{\"type\":\"SELECT_NODE\",\"from_table\":{\"type\":\"BASE_TABLE\","
          "\"table_name\":\"/etc/passwd\"}}"),
     LH_EFORBIDDEN},
    /* a BASE_TABLE without a usable name is refused, not skipped */
    {STMT("{\"type\":\"SELECT_NODE\",\"from_table\":{\"type\":\"BASE_TABLE\"}}"), LH_EFORBIDDEN},
    {STMT("{\"type\":\"SELECT_NODE\",\"from_table\":{\"type\":\"BASE_TABLE\","
          "\"table_name\":7}}"),
     LH_EFORBIDDEN},
    {STMT("{\"type\":\"SELECT_NODE\",\"from_table\":{\"type\":\"BASE_TABLE\","
          "\"table_name\":\"people\",\"schema_name\":\"main\"}}"),
     LH_EFORBIDDEN},
    {STMT("{\"type\":\"SELECT_NODE\",\"from_table\":{\"type\":\"TABLE_FUNCTION\"}}"),
     LH_EFORBIDDEN},
    {STMT("{\"type\":\"SELECT_NODE\",\"from_table\":{\"type\":\"TABLE_FUNCTION\","
          "\"function\":{\"class\":\"FUNCTION\",\"function_name\":\"range\"}}}"),
     0},
    {STMT("{\"type\":\"SELECT_NODE\",\"from_table\":{\"type\":\"MADE_UP_REF\"}}"), LH_EFORBIDDEN},
    {STMT("{\"type\":\"SELECT_NODE\",\"from_table\":{\"type\":\"SHOW_REF\"}}"), LH_EFORBIDDEN},
    {STMT("{\"type\":\"SELECT_NODE\",\"select_list\":[{\"class\":\"FUNCTION\"}]}"), LH_EFORBIDDEN},
    {STMT("{\"type\":\"SELECT_NODE\",\"cte_map\":{\"map\":[{\"key\":\"a\"}]}}"), LH_EFORBIDDEN},
    {STMT("{\"type\":\"SELECT_NODE\",\"cte_map\":{\"map\":[7]}}"), LH_EFORBIDDEN},
    /* non-finite constants (DuckDB prints them bare) are read; strings are left alone */
    {STMT("{\"type\":\"SELECT_NODE\",\"v\":[NaN,-Infinity,Infinity,-NaN],"
          "\"s\":\"NaN \\\" Infinity\"}"),
     0},
    {STMT("{\"type\":\"SELECT_NODE\",\"from_table\":{\"type\":\"BASE_TABLE\","
          "\"table_name\":\"Infinity\"}}"),
     LH_EINVAL}, /* the name survives: no such dataset */
    {STMT("{\"type\":\"SELECT_NODE\",\"v\":Infinit}"), LH_EINTERNAL},
    /* a recursive CTE's name is itself only on the recursive (right) side */
    {STMT("{\"type\":\"RECURSIVE_CTE_NODE\",\"cte_name\":\"__raw__people\",\"left\":{"
          "\"type\":\"SELECT_NODE\",\"from_table\":{\"type\":\"BASE_TABLE\",\"table_name\":"
          "\"__raw__people\"}}}"),
     LH_EFORBIDDEN},
    {STMT("{\"type\":\"RECURSIVE_CTE_NODE\",\"cte_name\":\"__raw__people\",\"right\":{"
          "\"type\":\"SELECT_NODE\",\"from_table\":{\"type\":\"BASE_TABLE\",\"table_name\":"
          "\"__raw__people\"}}}"),
     0},
};

static void test_hand_made_trees(void **state)
{
    (void)state;
    lh_error none;
    assert_int_equal(lh_sql_firewall_tree(NULL, &analyst, &none), LH_EINTERNAL);
    for (size_t i = 0; i < sizeof(tree_cases) / sizeof(tree_cases[0]); i++) {
        lh_error err;
        lh_error_clear(&err);
        int rc = lh_sql_firewall_tree(tree_cases[i].tree, &analyst, &err);
        if (rc != tree_cases[i].want)
            fail_msg("tree %zu %s: expected %s, got %s (%s)", i, tree_cases[i].tree,
                     outcome_name(tree_cases[i].want), outcome_name(rc), err.message);
    }
}

/* ---------------------------------------------------------------- the attack corpus */

/* tests/security/sql_attacks.txt, located through LH_SOURCE_DIR (set by CMake for ctest;
 * the compiled-in default lets the binary run by hand too). Caller frees. */
static char *corpus_path(void)
{
    const char *src = getenv("LH_SOURCE_DIR");
#ifdef LH_SOURCE_DIR_DEFAULT
    if (!src || !*src)
        src = LH_SOURCE_DIR_DEFAULT;
#endif
    if (!src || !*src)
        fail_msg("LH_SOURCE_DIR is not set: run through ctest");
    return lh_xasprintf("%s/tests/security/sql_attacks.txt", src);
}

/* Tag → expected outcome per policy, as the corpus header defines the tags. Admins are not
 * part of the corpus's contract. */
static const struct {
    const char *tag;
    int analyst, agent;
} corpus_tags[] = {
    {"forbidden", FB, FB},       {"allowed", OK, OK},
    {"agent_forbidden", OK, FB}, {"refused", REFUSED, REFUSED},
    {"timeout", OK, OK}, /* stopped later by the time limit, not by the firewall */
    {"capped", OK, OK},  /* stopped later by the row cap or the time limit */
};

static void test_attack_corpus(void **state)
{
    char *path = corpus_path();
    char *text = NULL;
    size_t len = 0;
    lh_error err;
    if (lh_fs_read_all(path, 1 << 20, &text, &len, &err) != 0)
        fail_msg("%s", err.message);
    int bad = 0, lines = 0, statements = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lines++;
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *tab = strchr(line, '\t');
        if (!tab)
            fail_msg("%s line %d has no TAB between tag and SQL: %s", path, lines, line);
        *tab = '\0';
        const char *sql = tab + 1;
        size_t t = 0;
        while (t < sizeof(corpus_tags) / sizeof(corpus_tags[0]) &&
               strcmp(corpus_tags[t].tag, line) != 0)
            t++;
        if (t == sizeof(corpus_tags) / sizeof(corpus_tags[0]))
            fail_msg("%s line %d: unknown tag '%s'", path, lines, line);
        char where[64];
        snprintf(where, sizeof(where), "corpus line %d (%s)", lines, line);
        bad += check_one(*state, sql, "analyst", &analyst, corpus_tags[t].analyst, where);
        bad += check_one(*state, sql, "agent", &agent, corpus_tags[t].agent, where);
        statements++;
    }
    free(text);
    free(path);
    assert_true(statements >= 50); /* the corpus was found and read whole */
    if (bad)
        fail_msg("%d mismatches over %d corpus statements (listed above)", bad, statements);
}

/* ---------------------------------------------------------------- function allow-list */

/* Every function of the pinned DuckDB's catalog is classified (functions.c): a DuckDB that
 * brings a new function fails here until someone decides what it is. */
static void test_every_duckdb_function_is_classified(void **state)
{
    fx *f = *state;
    duckdb_result res;
    assert_int_equal(duckdb_query(f->conn,
                                  "SELECT DISTINCT function_name, function_type FROM "
                                  "duckdb_functions() ORDER BY 1",
                                  &res),
                     DuckDBSuccess);
    idx_t n = duckdb_row_count(&res);
    assert_true(n > 800); /* the catalog was really read */
    int missing = 0;
    for (idx_t i = 0; i < n; i++) {
        char *name = duckdb_value_varchar(&res, 0, i);
        char *type = duckdb_value_varchar(&res, 1, i);
        lh_fn_class cls = lh_function_class(name);
        if (cls == LH_FN_UNKNOWN) {
            fprintf(stderr, "unclassified DuckDB function: %s (%s)\n", name, type);
            missing++;
        }
        /* only the three generators may be called in FROM */
        if (cls == LH_FN_TABLE && strcmp(type, "table") == 0)
            assert_true(strcmp(name, "range") == 0 || strcmp(name, "generate_series") == 0 ||
                        strcmp(name, "unnest") == 0);
        duckdb_free(name);
        duckdb_free(type);
    }
    duckdb_destroy_result(&res);
    assert_int_equal(missing, 0);
    /* the engine's audit at start agrees, and sees a function that appears later */
    assert_int_equal(lh_functions_audit(f->conn), 0);
    assert_int_equal(duckdb_query(f->conn, "CREATE TEMP MACRO lh_new_fn(x) AS x + 1", NULL),
                     DuckDBSuccess);
    assert_int_equal(lh_functions_audit(f->conn), 1);
    assert_int_equal(duckdb_query(f->conn, "DROP MACRO temp.lh_new_fn", NULL), DuckDBSuccess);

    size_t count;
    const lh_fn_entry *t = lh_function_table(&count);
    for (size_t i = 1; i < count; i++)
        if (strcasecmp(t[i - 1].name, t[i].name) >= 0)
            fail_msg("functions.c is not sorted at %s, %s", t[i - 1].name, t[i].name);
}

/* A few rows that matter, and the rule for names nobody listed. */
static void test_function_classes(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        lh_fn_class cls;
    } rows[] = {
        {"abs", LH_FN_ALLOW},
        {"SUM", LH_FN_ALLOW},
        {"row_number", LH_FN_ALLOW},
        {"list_aggr", LH_FN_ALLOW},
        {"range", LH_FN_TABLE},
        {"unnest", LH_FN_TABLE},
        {"read_csv", LH_FN_FILES},
        {"glob", LH_FN_FILES},
        {"parquet_metadata", LH_FN_FILES},
        {"current_setting", LH_FN_CATALOG},
        {"pg_get_viewdef", LH_FN_CATALOG},
        {"duckdb_views", LH_FN_CATALOG},
        {"query_table", LH_FN_SQL},
        {"json_serialize_plan", LH_FN_SQL},
        {"setseed", LH_FN_STATE},
        {"nextval", LH_FN_STATE},
        {"enable_profiling", LH_FN_STATEMENT},
        {"json_each", LH_FN_NOT_OFFERED},
        {"lh_row_visible", LH_FN_INTERNAL},
        {"iceberg_scan", LH_FN_UNKNOWN},
        {"load_extension", LH_FN_UNKNOWN},
        {"no_such_function", LH_FN_UNKNOWN},
        {"", LH_FN_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (lh_function_class(rows[i].name) != rows[i].cls)
            fail_msg("%s: class %d, expected %d", rows[i].name, lh_function_class(rows[i].name),
                     rows[i].cls);
}

/* ---------------------------------------------------------------- verdict cache */

/* The cache answers only for the same identity, the same text and the epoch it was told:
 * a catalog change (invalidate) or another grant set never reuses an allowed verdict. */
static void test_verdict_cache(void **state)
{
    (void)state;
    lh_verdicts *v = lh_verdicts_new();
    const char *sql = "SELECT * FROM people";
    uint64_t e = lh_verdicts_epoch(v);
    assert_false(lh_verdicts_allowed(v, "analyst", sql, e));
    lh_verdicts_remember(v, "analyst", sql, e);
    assert_true(lh_verdicts_allowed(v, "analyst", sql, e));
    /* another identity, another text, a prefix of the key, no identity */
    assert_false(lh_verdicts_allowed(v, "agent:people", sql, e));
    assert_false(lh_verdicts_allowed(v, "analyst", "SELECT * FROM people ", e));
    assert_false(lh_verdicts_allowed(v, "analys", "tSELECT * FROM people", e));
    assert_false(lh_verdicts_allowed(v, NULL, sql, e));
    lh_verdicts_remember(v, NULL, sql, e);
    assert_false(lh_verdicts_allowed(v, NULL, sql, e));

    /* a catalog change forgets everything */
    lh_verdicts_invalidate(v);
    uint64_t e2 = lh_verdicts_epoch(v);
    assert_true(e2 != e);
    assert_false(lh_verdicts_allowed(v, "analyst", sql, e2));
    /* a verdict reached while the catalog changed is stored under the old epoch: stale */
    lh_verdicts_remember(v, "analyst", sql, e);
    assert_false(lh_verdicts_allowed(v, "analyst", sql, e2));
    lh_verdicts_remember(v, "analyst", sql, e2);
    assert_true(lh_verdicts_allowed(v, "analyst", sql, e2));

    /* bounded: thousands of distinct texts evict, the latest stays */
    char buf[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(buf, sizeof(buf), "SELECT %d", i);
        lh_verdicts_remember(v, "analyst", buf, e2);
    }
    assert_true(lh_verdicts_allowed(v, "analyst", buf, e2));
    int kept = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(buf, sizeof(buf), "SELECT %d", i);
        kept += lh_verdicts_allowed(v, "analyst", buf, e2);
    }
    assert_true(kept <= 1024);
    /* texts past the size cap are never cached */
    char *big = lh_xmalloc(20000);
    memset(big, ' ', 19999);
    memcpy(big, "SELECT 1", 8);
    big[19999] = '\0';
    lh_verdicts_remember(v, "analyst", big, e2);
    assert_false(lh_verdicts_allowed(v, "analyst", big, e2));
    free(big);
    lh_verdicts_free(v);
}

/* The identity of a caller's policy: equal grant sets (any order, any case) share it;
 * another grant set, role or raw access does not. */
static void test_policy_identity(void **state)
{
    (void)state;
    char *g1[] = {"people", "Orders", NULL};
    char *g2[] = {"orders", "PEOPLE", NULL};
    char *g3[] = {"people", NULL};
    char *g4[] = {"people", "orders", "secret", NULL};
    lh_principal a1 = {.name = "a1", .role = LH_ROLE_AGENT, .profile = NULL, .datasets = g1};
    lh_principal a2 = {.name = "a2", .role = LH_ROLE_AGENT, .profile = NULL, .datasets = g2};
    lh_principal a3 = {.name = "a1", .role = LH_ROLE_AGENT, .profile = NULL, .datasets = g3};
    lh_principal a4 = {.name = "a1", .role = LH_ROLE_AGENT, .profile = NULL, .datasets = g4};
    lh_principal an = {.name = "a1", .role = LH_ROLE_ANALYST, .profile = NULL, .datasets = NULL};
    lh_principal ad = {.name = "a1", .role = LH_ROLE_ADMIN, .profile = NULL, .datasets = NULL};
    lh_sql_policy *p1 = lh_sql_policy_for(NULL, &a1), *p2 = lh_sql_policy_for(NULL, &a2);
    lh_sql_policy *p3 = lh_sql_policy_for(NULL, &a3), *p4 = lh_sql_policy_for(NULL, &a4);
    lh_sql_policy *pn = lh_sql_policy_for(NULL, &an), *pd = lh_sql_policy_for(NULL, &ad);
    assert_string_equal(p1->identity, p2->identity);
    assert_string_not_equal(p1->identity, p3->identity);
    assert_string_not_equal(p1->identity, p4->identity);
    assert_string_not_equal(pn->identity, pd->identity);
    assert_string_not_equal(pn->identity, p1->identity);
    lh_principal ap = {
        .name = "a1", .role = LH_ROLE_AGENT, .profile = "recruiting", .datasets = g1};
    lh_sql_policy *pp = lh_sql_policy_for(NULL, &ap);
    assert_string_not_equal(pp->identity, p1->identity);
    lh_sql_policy_free(pp);
    assert_false(pn->allow_raw);
    assert_true(pd->allow_raw);
    lh_sql_policy *ps[] = {p1, p2, p3, p4, pn, pd};
    for (size_t i = 0; i < 6; i++)
        lh_sql_policy_free(ps[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed_and_role_dependent),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_hand_made_trees),
        cmocka_unit_test(test_attack_corpus),
        cmocka_unit_test(test_every_duckdb_function_is_classified),
        cmocka_unit_test(test_function_classes),
        cmocka_unit_test(test_verdict_cache),
        cmocka_unit_test(test_policy_identity),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
