/*
 * fuzz_policy.h: what the two firewall harnesses share: the lake (people, secret), the
 * three policies (agent, analyst, admin) and the oracle run on each verdict. Header-only,
 * so each harness stays one file plus this.
 */
#ifndef LH_FUZZ_POLICY_H
#define LH_FUZZ_POLICY_H

#include "core/core.h"
#include "query/query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct lh_fuzz_lake {
    const char *const *readable; /* NULL-terminated */
    bool reads_all;              /* may learn that a dataset does not exist */
} lh_fuzz_lake;

/* As the server's policy (src/http/query_routes.c) over a fixed lake. */
static lh_rel_access lh_fuzz_may_read(void *ctx, const char *relation)
{
    const lh_fuzz_lake *l = ctx;
    for (const char *const *n = l->readable; *n; n++)
        if (strcasecmp(*n, relation) == 0)
            return LH_REL_ALLOW;
    if (l->reads_all && lh_name_validate(relation, "dataset name", NULL) == 0)
        return LH_REL_UNKNOWN;
    return LH_REL_DENY;
}

static const char *const lh_fuzz_all[] = {"people", "secret", NULL};
static const char *const lh_fuzz_granted[] = {"people", NULL};
static const lh_fuzz_lake lh_fuzz_lake_all = {lh_fuzz_all, true};
static const lh_fuzz_lake lh_fuzz_lake_agent = {lh_fuzz_granted, false};

/* Least to most privileged. */
static const lh_sql_policy lh_fuzz_policies[3] = {
    {false, lh_fuzz_may_read, (void *)&lh_fuzz_lake_agent, "allowed: people"},
    {false, lh_fuzz_may_read, (void *)&lh_fuzz_lake_all, NULL},
    {true, lh_fuzz_may_read, (void *)&lh_fuzz_lake_all, NULL},
};
static const char *const lh_fuzz_policy_names[3] = {"agent", "analyst", "admin"};

static void lh_fuzz_fail(const char *tree, const char *what, const char *policy, int rc)
{
    fprintf(stderr, "firewall oracle: %s (policy %s, rc %d)\ntree: %.2000s\n", what, policy, rc,
            tree);
    abort();
}

/* Checks one tree under the three policies; from_duckdb says the tree is DuckDB's own
 * output (then it must always be readable). Returns the agent's verdict. */
static int lh_fuzz_check_tree(const char *tree, bool from_duckdb)
{
    int prev = 0, first = 0;
    for (int i = 0; i < 3; i++) {
        lh_error err;
        lh_error_clear(&err);
        int rc = lh_sql_firewall_tree(tree, &lh_fuzz_policies[i], &err);
        const char *pn = lh_fuzz_policy_names[i];
        if (rc != 0 && rc != LH_EFORBIDDEN && rc != LH_EINVAL && rc != LH_EINTERNAL)
            lh_fuzz_fail(tree, "unexpected code", pn, rc);
        if (rc != err.code)
            lh_fuzz_fail(tree, "return code and err.code differ", pn, rc);
        if (rc == LH_EFORBIDDEN && (!err.kind || strcmp(err.kind, "sql_forbidden") != 0))
            lh_fuzz_fail(tree, "refusal without kind sql_forbidden", pn, rc);
        if (rc == LH_EINVAL && (!err.kind || strcmp(err.kind, "sql_error") != 0))
            lh_fuzz_fail(tree, "LH_EINVAL without kind sql_error", pn, rc);
        if (rc == LH_EINTERNAL && from_duckdb)
            lh_fuzz_fail(tree, "DuckDB's own output was unreadable (a 500)", pn, rc);
        if (rc != 0 && !err.message[0])
            lh_fuzz_fail(tree, "a refusal without a message", pn, rc);
        if (i > 0 && prev == 0 && rc != 0)
            lh_fuzz_fail(tree, "a more privileged policy refused what a lesser one allowed", pn,
                         rc);
        if (i == 0)
            first = rc;
        prev = rc;
    }
    return first;
}

#endif
