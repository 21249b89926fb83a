/*
 * policy.c: who may read which relation through SQL, the rule the firewall applies.
 *
 * The domain decides, not the HTTP glue: a caller's relations are the datasets of the
 * catalog its principal may read (lh_principal_may_read); nothing else (DuckDB's built-in
 * views, file paths) is a relation. lh_sql_access is pure, so the firewall's unit tests and
 * fuzzers judge with the very rule the server uses.
 *
 * A policy also carries its identity: a string that two policies share exactly when they
 * answer every relation name alike for the same catalog (the role, and for agents the set
 * of granted datasets, lowercased and sorted). The firewall's verdict cache keys on it, so
 * a key revoked and recreated with other grants never reuses a verdict; the principal's
 * name is not part of it, so two analysts share verdicts.
 *
 * Model profiles: an agent key bound to a profile reads exactly the profile's bindings,
 * resolved from the catalog when the policy is made (once per query, so a profile deleted
 * or re-created with other bindings takes effect at the next query). The policy then judges
 * an effective principal whose granted set is those bindings (a key never has both a
 * profile and grants: auth refuses it), so the identity, and with it the verdict cache,
 * includes the bound set: two profiles with different bindings never share a verdict. A
 * profile that no longer exists binds nothing.
 */
#include "query/query.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct caller_policy {
    lh_sql_policy policy;    /* first: lh_sql_policy_free casts back */
    lh_catalog *cat;         /* borrowed */
    const lh_principal *who; /* borrowed, or &bound */
    lh_principal bound;      /* a profile's agent: datasets = the bindings (owned) */
    char *hint, *identity;   /* owned */
} caller_policy;

lh_rel_access lh_sql_access(const lh_principal *who, const char *relation, bool exists)
{
    if (exists && lh_principal_may_read(who, relation))
        return LH_REL_ALLOW;
    /* Callers who may read every dataset may learn that one does not exist; a name that
     * could never be a dataset (a path, a DuckDB built-in view) stays a refusal. Agents
     * get 403 either way, so they cannot probe for datasets they are not granted. */
    bool reads_all = who->role == LH_ROLE_ADMIN || who->role == LH_ROLE_ANALYST;
    if (!exists && reads_all && lh_name_validate(relation, "dataset name", NULL) == 0)
        return LH_REL_UNKNOWN;
    return LH_REL_DENY;
}

static lh_rel_access caller_may_read(void *ctx, const char *relation)
{
    caller_policy *p = ctx;
    /* AI-safe views are relations like datasets (granted to agents by name) */
    return lh_sql_access(p->who, relation,
                         lh_catalog_relation_kind(p->cat, relation) != LH_RELATION_NONE);
}

/* "allowed: a, b" for agents; a pointer to the catalog for everyone else. Caller frees. */
static char *allowed_hint(const lh_principal *who)
{
    if (who->role != LH_ROLE_AGENT)
        return lh_xstrdup("any dataset listed by GET /catalog/datasets");
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_puts(&b, "allowed: ");
    size_t start = b.len;
    for (char **d = who->datasets; d && *d; d++)
        lh_buf_printf(&b, "%s%s", b.len > start ? ", " : "", *d);
    if (b.len == start)
        lh_buf_puts(&b, "none");
    return b.data;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "admin", "analyst", "legal", or "agent:" + the granted (or profile-bound) names
 * lowercased, sorted and joined by '/' (which no dataset name holds), then " profile:<id>"
 * when the agent has a profile. Caller frees. */
static char *identity_of(const lh_principal *who)
{
    if (who->role != LH_ROLE_AGENT)
        return lh_xstrdup(lh_role_name(who->role));
    size_t n = 0;
    for (char **d = who->datasets; d && *d; d++)
        n++;
    char **names = lh_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        names[i] = lh_xstrdup(who->datasets[i]);
        for (char *c = names[i]; *c; c++)
            *c = (char)tolower((unsigned char)*c);
    }
    qsort(names, n, sizeof(char *), cmp_str);
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_puts(&b, "agent:");
    for (size_t i = 0; i < n; i++) {
        lh_buf_printf(&b, "%s%s", i ? "/" : "", names[i]);
        free(names[i]);
    }
    free(names);
    if (who->profile)
        lh_buf_printf(&b, " profile:%s", who->profile);
    return b.data;
}

/* The bindings of who's profile as a NULL-terminated list of copies (empty when the
 * profile is gone). Caller frees each and the list. */
static char **profile_bindings(lh_catalog *cat, const char *profile)
{
    json_t *b = lh_catalog_profile_bindings(cat, profile);
    size_t n = json_array_size(b);
    char **out = lh_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        out[i] = lh_xstrdup(json_string_value(json_array_get(b, i)));
    json_decref(b);
    return out;
}

lh_sql_policy *lh_sql_policy_for(lh_catalog *cat, const lh_principal *who)
{
    caller_policy *p = lh_xcalloc(1, sizeof(*p));
    p->cat = cat;
    p->who = who;
    if (cat && who->role == LH_ROLE_AGENT && who->profile) {
        p->bound = (lh_principal){.name = who->name,
                                  .role = who->role,
                                  .profile = who->profile,
                                  .datasets = profile_bindings(cat, who->profile),
                                  .attributes = who->attributes /* borrowed */};
        p->who = who = &p->bound;
    }
    p->hint = allowed_hint(who);
    p->identity = identity_of(who);
    p->policy.allow_raw = who->role == LH_ROLE_ADMIN;
    p->policy.may_read = caller_may_read;
    p->policy.ctx = p;
    p->policy.allowed_hint = p->hint;
    p->policy.identity = p->identity;
    p->policy.attributes = who->attributes; /* views' row filters (safe_views.c) */
    /* access auditing (lineage.c): every caller but admins; agents must be attributable */
    p->policy.audited = who->role != LH_ROLE_ADMIN;
    p->policy.agent = who->role == LH_ROLE_AGENT;
    return &p->policy;
}

void lh_sql_policy_free(lh_sql_policy *policy)
{
    if (!policy)
        return;
    caller_policy *p = (caller_policy *)policy;
    for (char **d = p->bound.datasets; d && *d; d++)
        free(*d);
    free(p->bound.datasets);
    free(p->hint);
    free(p->identity);
    free(p);
}
