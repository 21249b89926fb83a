/*
 * ratelimit.c: one token bucket per API key for /mcp (LH_MCP_CALLS_PER_MINUTE).
 *
 * A bucket holds at most per_minute tokens (a full minute's worth may come at once) and
 * refills continuously at per_minute / 60 s. Every JSON-RPC request takes one; a request
 * that finds less than one token is refused (HTTP 429) and takes nothing, so a caller
 * that keeps retrying too fast stays refused only until the next token, never longer.
 * Buckets are keyed by key name and kept for the process's life: one per key, and keys
 * are few (the auth store's).
 */
#include "agents_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct bucket {
    char *key;
    double tokens;
    int64_t at_ms; /* when tokens was last brought up to date */
} bucket;

struct mcp_ratelimit {
    double per_minute;
    pthread_mutex_t mu;
    bucket *b;
    size_t n, cap;
};

mcp_ratelimit *mcp_ratelimit_new(int per_minute)
{
    mcp_ratelimit *rl = lh_xcalloc(1, sizeof(*rl));
    rl->per_minute = per_minute > 0 ? per_minute : 1;
    pthread_mutex_init(&rl->mu, NULL);
    return rl;
}

void mcp_ratelimit_free(mcp_ratelimit *rl)
{
    if (!rl)
        return;
    for (size_t i = 0; i < rl->n; i++)
        free(rl->b[i].key);
    free(rl->b);
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}

int mcp_ratelimit_take(mcp_ratelimit *rl, const char *key, int64_t now_ms)
{
    pthread_mutex_lock(&rl->mu);
    bucket *b = NULL;
    for (size_t i = 0; i < rl->n && !b; i++)
        if (strcmp(rl->b[i].key, key) == 0)
            b = &rl->b[i];
    if (!b) {
        if (rl->n == rl->cap) {
            rl->cap = rl->cap ? rl->cap * 2 : 8;
            rl->b = lh_xrealloc(rl->b, rl->cap * sizeof(*rl->b));
        }
        b = &rl->b[rl->n++];
        *b = (bucket){.key = lh_xstrdup(key), .tokens = rl->per_minute, .at_ms = now_ms};
    }
    double rate_ms = rl->per_minute / 60000.0;
    if (now_ms > b->at_ms) {
        b->tokens = fmin(rl->per_minute, b->tokens + (double)(now_ms - b->at_ms) * rate_ms);
        b->at_ms = now_ms;
    }
    int wait_s = 0;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
    } else {
        wait_s = (int)ceil((1.0 - b->tokens) / rate_ms / 1000.0);
        if (wait_s < 1)
            wait_s = 1;
    }
    pthread_mutex_unlock(&rl->mu);
    return wait_s;
}
