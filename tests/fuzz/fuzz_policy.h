/*
 * fuzz_policy.h: what the two firewall harnesses share: the lake (people, secret), the
 * three policies (agent, analyst, admin) and the oracle run on each verdict. Header-only,
 * so each harness stays one file plus this.
 */
#ifndef LH_FUZZ_POLICY_H
#define LH_FUZZ_POLICY_H

#include "core/core.h"
#include "auth/auth.h"
#include "query/query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The lake: `people` and `secret`, judged by the server's own rule (lh_sql_access). */
static const char *const lh_fuzz_lake[] = {"people", "secret", NULL};
static char *lh_fuzz_grants[] = {"people", NULL};
static lh_principal lh_fuzz_agent = {
    .name = "bot", .role = LH_ROLE_AGENT, .profile = NULL, .datasets = lh_fuzz_grants};
static lh_principal lh_fuzz_analyst = {
    .name = "ana", .role = LH_ROLE_ANALYST, .profile = NULL, .datasets = NULL};
static lh_principal lh_fuzz_admin = {
    .name = "root", .role = LH_ROLE_ADMIN, .profile = NULL, .datasets = NULL};

static lh_rel_access lh_fuzz_may_read(void *ctx, const char *relation)
{
    bool exists = false;
    for (const char *const *n = lh_fuzz_lake; *n; n++)
        exists = exists || strcasecmp(*n, relation) == 0;
    return lh_sql_access(ctx, relation, exists);
}

/* Least to most privileged. */
static const lh_sql_policy lh_fuzz_policies[3] = {
    {.allow_raw = false,
     .may_read = lh_fuzz_may_read,
     .ctx = &lh_fuzz_agent,
     .allowed_hint = "allowed: people",
     .identity = NULL},
    {.allow_raw = false,
     .may_read = lh_fuzz_may_read,
     .ctx = &lh_fuzz_analyst,
     .allowed_hint = NULL,
     .identity = NULL},
    {.allow_raw = true,
     .may_read = lh_fuzz_may_read,
     .ctx = &lh_fuzz_admin,
     .allowed_hint = NULL,
     .identity = NULL},
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
