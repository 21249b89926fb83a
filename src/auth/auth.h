/*
 * auth: API keys and roles.
 *
 * A key is "lh_" + 64 hex chars (32 random bytes from libsodium), shown once when created.
 * Only a keyed hash is stored: HMAC-SHA256(pepper, key), where the 32-byte pepper lives in
 * <data>/_secrets/key_pepper (0600). A stolen keys file is useless without the pepper, and
 * the pepper alone reveals no key. Lookups hash the presented key and compare it with
 * every stored hash using sodium_memcmp (constant time, no early exit on a match).
 *
 * Store: <data>/_secrets/keys.json (0600, folder 0700), written atomically. last_used_at
 * is kept in memory and written by a background flusher once a minute (and at close), so
 * authentication never writes to disk nor waits for a write; a failed write is logged
 * and retried.
 *
 * Bootstrap: LH_ADMIN_KEY (≥ 32 chars) is an admin key held only in memory (name
 * "env-admin"). Without it, a store that has no admin key gets one: written to
 * <data>/_secrets/admin.key (0600, created with that mode, never chmod'ed later) and its
 * path logged, never the key.
 *
 * Roles:
 *   admin    everything, including raw relations (__raw__<name>)
 *   analyst  reads every dataset (and later views) with SQL; no writes
 *   agent    reads only what its profile binds; until profiles exist, only the datasets an
 *            admin granted it explicitly ("datasets" on the key)
 *   legal    audit endpoints (later issues) and catalog metadata; no SQL
 */
#ifndef LH_AUTH_H
#define LH_AUTH_H

#include "core/core.h"

typedef enum { LH_ROLE_ADMIN, LH_ROLE_ANALYST, LH_ROLE_AGENT, LH_ROLE_LEGAL } lh_role;

/* Bit for a role, for route tables: LH_ROLE_BIT(LH_ROLE_ADMIN) | ... */
#define LH_ROLE_BIT(r) (1u << (r))
#define LH_ROLES_ALL 0xFu

/* "admin" | "analyst" | "agent" | "legal"; else LH_EINVAL. */
int lh_role_parse(const char *s, lh_role *out, lh_error *err);
const char *lh_role_name(lh_role r);

/* Who is calling, resolved from a key. Copied out of the store, so it stays valid after
 * the key is revoked mid-request. Free with lh_principal_free. */
typedef struct lh_principal {
    char *name; /* key name ("env-admin" for LH_ADMIN_KEY) */
    lh_role role;
    char *profile;      /* agent: bound profile id, or NULL */
    char **datasets;    /* agent: explicitly granted datasets, NULL-terminated (may be empty) */
    json_t *attributes; /* the key's caller attributes {name: string} (owned; NULL: none);
                           views' row filters read them (docs/GOVERNANCE.md) */
} lh_principal;
void lh_principal_free(lh_principal *p);
/* True when p may read dataset `name` through SQL (admin, analyst: any; agent: granted;
 * legal: none). Case-insensitive, like SQL names. */
bool lh_principal_may_read(const lh_principal *p, const char *name);

typedef struct lh_auth lh_auth;

/* Opens the store under data_dir/_secrets and bootstraps as described above. env_admin_key
 * may be NULL; when set it must be ≥ 32 characters (LH_EINVAL otherwise). Caller frees
 * with lh_auth_close. */
lh_auth *lh_auth_open(const char *data_dir, const char *env_admin_key, lh_error *err);
void lh_auth_close(lh_auth *a);

/* Resolves a presented key. NULL + LH_EUNAUTH ("unknown or revoked API key") when it
 * matches none. Caller frees the principal. */
lh_principal *lh_auth_check(lh_auth *a, const char *key, lh_error *err);

/* Creates a key. name: 1..64 of [A-Za-z0-9_.-]; LH_EEXISTS when taken. profile: agents
 * only (optional). datasets: agents only, array of dataset names (may be NULL). On success
 * *key_out gets the new key (caller frees, after showing it once) and *info_out (if not
 * NULL) the public description; caller decrefs. Persisted before returning. */
int lh_auth_create(lh_auth *a, const char *name, lh_role role, const char *profile,
                   const json_t *datasets, char **key_out, json_t **info_out, lh_error *err);
/* [{name, role, profile, datasets, created_at, last_used_at}] sorted by name; never keys
 * or hashes. Caller decrefs. */
json_t *lh_auth_list(lh_auth *a);
/* Revokes a key by name; LH_ENOTFOUND when unknown; the env admin key cannot be revoked
 * (LH_EFORBIDDEN: unset LH_ADMIN_KEY and restart instead). Persisted before returning. */
int lh_auth_revoke(lh_auth *a, const char *name, lh_error *err);
/* Writes last_used_at changes now (the flusher does this every minute; close does it
 * once more). 0 when nothing changed or the write succeeded; a failure is logged, kept
 * pending and returned. */
int lh_auth_flush(lh_auth *a, lh_error *err);
/* Sets the flusher's interval (default 60 s; tests use a few ms). */
void lh_auth_set_flush_interval(lh_auth *a, int64_t ms);

/* ---------------------------------------------------------------- caller attributes
 * An admin may give a key attributes, {name: string} (e.g. {"region": "CO"}), that AI-safe
 * views' row filters compare with through caller_attribute('region'). Names are 1..64 of
 * [a-z0-9_] starting with a letter; values strings of at most 256 bytes; at most 32 per
 * key. Stored in keys.json with the key, listed by lh_auth_list, copied into principals.
 * Attributes are not secrets, but they are never logged either. */
#define LH_AUTH_MAX_ATTRIBUTES 32
#define LH_AUTH_MAX_ATTRIBUTE_BYTES 256
/* 0 when attrs is a valid attribute set, else LH_EINVAL naming what is wrong. */
int lh_auth_attributes_validate(const json_t *attrs, lh_error *err);
/* Replaces the attributes of key `name` (an empty object clears them); persisted before
 * returning. LH_ENOTFOUND when unknown; LH_EFORBIDDEN for the env admin key. *info_out
 * (if not NULL) gets the key's public description; caller decrefs. */
int lh_auth_set_attributes(lh_auth *a, const char *name, const json_t *attrs, json_t **info_out,
                           lh_error *err);
#endif
