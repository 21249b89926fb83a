/*
 * verdicts.c: the firewall's memory of SQL it allowed, so a dashboard that sends the same
 * statement again skips DuckDB's parse, the JSON round trip and the tree walk.
 *
 * Invariants:
 *   - Only "allowed" is remembered, keyed by the exact SQL text and the policy's identity
 *     (role, and an agent's granted set: see policy.c). Policies without an identity are
 *     never cached. Refusals always run the full check, so their messages stay exact.
 *   - An entry is valid for one epoch. The epoch moves (lh_verdicts_invalidate) after
 *     every change of the relations a policy can answer about: the catalog listener (a
 *     dataset created, replaced, deleted) and every bucket change. A caller reads the
 *     epoch BEFORE running its check and stores the verdict under that value, so a verdict
 *     computed while the catalog changed is stale on arrival, never served for the new
 *     state. The principal's own grants are in the identity: a key revoked and recreated
 *     with other grants has another identity.
 *   - Bounded: LH_VERDICT_SLOTS entries (set-associative, LH_VERDICT_WAYS per set, the
 *     oldest way of a full set is replaced) and texts up to LH_VERDICT_MAX_SQL bytes, so
 *     the cache holds at most a few MiB whatever callers send.
 *   - Thread-safe: one mutex, held only to compare or copy strings, never across a query.
 *     The epoch is atomic so invalidation (called under the catalog's lock) never waits.
 */
#include "query_internal.h"

#include <stdlib.h>
#include <string.h>

#define LH_VERDICT_WAYS 4
#define LH_VERDICT_SETS 256
#define LH_VERDICT_MAX_SQL 8192

typedef struct verdict {
    char *key; /* identity '\0' sql '\0', owned; NULL when the way is empty */
    size_t key_len;
    uint64_t hash;
    uint64_t epoch;
    uint64_t stamp; /* insertion order, to replace the oldest way */
    char *payload;  /* what the check derived with the verdict (lineage.c's
                       classification and rewrite for audited policies), or NULL */
} verdict;

struct lh_verdicts {
    pthread_mutex_t mu;
    atomic_uint_fast64_t epoch;
    uint64_t clock; /* guarded by mu */
    verdict set[LH_VERDICT_SETS][LH_VERDICT_WAYS];
};

lh_verdicts *lh_verdicts_new(void)
{
    lh_verdicts *v = lh_xcalloc(1, sizeof(*v));
    pthread_mutex_init(&v->mu, NULL);
    atomic_init(&v->epoch, 1);
    return v;
}

void lh_verdicts_free(lh_verdicts *v)
{
    if (!v)
        return;
    for (size_t s = 0; s < LH_VERDICT_SETS; s++)
        for (size_t w = 0; w < LH_VERDICT_WAYS; w++) {
            free(v->set[s][w].key);
            free(v->set[s][w].payload);
        }
    pthread_mutex_destroy(&v->mu);
    free(v);
}

uint64_t lh_verdicts_epoch(lh_verdicts *v)
{
    return atomic_load(&v->epoch);
}

void lh_verdicts_invalidate(lh_verdicts *v)
{
    if (v)
        atomic_fetch_add(&v->epoch, 1);
}

/* FNV-1a over identity '\0' sql: spreads keys over sets; equality is checked in full. */
static uint64_t key_hash(const char *identity, const char *sql, size_t *len)
{
    uint64_t h = 1469598103934665603ULL;
    size_t n = 0;
    for (const char *s = identity;; s++, n++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        if (!*s)
            break;
    }
    n++;
    for (const char *s = sql; *s; s++, n++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    *len = n;
    return h;
}

static bool key_equal(const verdict *e, uint64_t h, size_t len, const char *identity,
                      const char *sql)
{
    if (!e->key || e->hash != h || e->key_len != len)
        return false;
    size_t id_len = strlen(identity);
    return memcmp(e->key, identity, id_len + 1) == 0 &&
           memcmp(e->key + id_len + 1, sql, len - id_len - 1) == 0;
}

static bool cacheable(const char *identity, const char *sql)
{
    return identity && sql && strlen(sql) <= LH_VERDICT_MAX_SQL;
}

bool lh_verdicts_allowed(lh_verdicts *v, const char *identity, const char *sql, uint64_t epoch)
{
    return lh_verdicts_lookup(v, identity, sql, epoch, NULL);
}

void lh_verdicts_remember(lh_verdicts *v, const char *identity, const char *sql, uint64_t epoch)
{
    lh_verdicts_store(v, identity, sql, epoch, NULL);
}

bool lh_verdicts_lookup(lh_verdicts *v, const char *identity, const char *sql, uint64_t epoch,
                        char **payload)
{
    if (payload)
        *payload = NULL;
    if (!v || !cacheable(identity, sql))
        return false;
    size_t len;
    uint64_t h = key_hash(identity, sql, &len);
    verdict *ways = v->set[h % LH_VERDICT_SETS];
    bool hit = false;
    pthread_mutex_lock(&v->mu);
    for (size_t w = 0; w < LH_VERDICT_WAYS && !hit; w++) {
        hit = ways[w].epoch == epoch && key_equal(&ways[w], h, len, identity, sql);
        if (hit && payload && ways[w].payload)
            *payload = lh_xstrdup(ways[w].payload);
    }
    pthread_mutex_unlock(&v->mu);
    return hit;
}

void lh_verdicts_store(lh_verdicts *v, const char *identity, const char *sql, uint64_t epoch,
                       const char *payload)
{
    if (!v || !cacheable(identity, sql))
        return;
    char *pl = payload ? lh_xstrdup(payload) : NULL;
    size_t len;
    uint64_t h = key_hash(identity, sql, &len);
    /* Built outside the lock: identity '\0' sql (the terminating NUL is not part of len). */
    size_t id_len = strlen(identity);
    char *key = lh_xmalloc(len + 1);
    memcpy(key, identity, id_len + 1);
    memcpy(key + id_len + 1, sql, len - id_len - 1);
    key[len] = '\0';

    verdict *ways = v->set[h % LH_VERDICT_SETS];
    pthread_mutex_lock(&v->mu);
    /* The same key (a stale epoch or a concurrent insert), else an empty or stale way,
     * else the oldest. */
    verdict *slot = NULL;
    for (size_t w = 0; w < LH_VERDICT_WAYS && !slot; w++)
        if (key_equal(&ways[w], h, len, identity, sql))
            slot = &ways[w];
    uint64_t now = atomic_load(&v->epoch);
    for (size_t w = 0; w < LH_VERDICT_WAYS && !slot; w++)
        if (!ways[w].key || ways[w].epoch != now)
            slot = &ways[w];
    if (!slot) {
        slot = &ways[0];
        for (size_t w = 1; w < LH_VERDICT_WAYS; w++)
            if (ways[w].stamp < slot->stamp)
                slot = &ways[w];
    }
    char *old = slot->key, *old_pl = slot->payload;
    slot->key = key;
    slot->payload = pl;
    slot->key_len = len;
    slot->hash = h;
    slot->epoch = epoch;
    slot->stamp = ++v->clock;
    pthread_mutex_unlock(&v->mu);
    free(old);
    free(old_pl);
}
