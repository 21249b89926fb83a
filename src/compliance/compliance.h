/*
 * compliance: subjects, the per-subject audit chain, the legal endpoint's logic.
 * (docs/AUDIT.md; DESIGN.md §2 "compliance")
 *
 * Sits beside query and ingest: it may use core, storage, catalog and query, never http.
 * One public header with a section per part; helpers shared inside the folder live in
 * compliance_internal.h.
 */
#ifndef LH_COMPLIANCE_H
#define LH_COMPLIANCE_H

#include "catalog/catalog.h"
#include "core/core.h"
#include "query/query.h"
#include "storage/storage.h"

/* ================================================================ subject ids
 * (shared by subjects and the audit chain: both name their objects after the key)
 *
 * A candidate id is 1..LH_SUBJECT_ID_MAX bytes of valid UTF-8 without control
 * characters. Its storage key keeps ASCII letters, digits, '-' and '_' and turns every
 * other byte into '_', so "W-1" → "W-1", "a.b/c" → "a_b_c", "é" → "__". The mapping is
 * not injective: two ids that map to one key are told apart by the candidate_id stored in
 * the manifest, and the second one is refused (LH_EEXISTS), never merged. */
#define LH_SUBJECT_ID_MAX 200
/* Fills out (>= LH_SUBJECT_ID_MAX + 1 bytes) with id's storage key. LH_EINVAL naming what
 * is wrong when id is not a valid candidate id. */
int lh_subject_key(const char *candidate_id, char *out, size_t cap, lh_error *err);

/* ================================================================ subjects (subjects.c)
 *
 * One manifest per person, `subject_manifest.v1`, stored atomically in the primary bucket
 * under `_catalog/subjects/<key>.json` (docs/AUDIT.md "Subjects"):
 *   schema                 "subject_manifest.v1"
 *   candidate_id           the id as given (the key is derived from it)
 *   status                 Active | Withdrawn | Erased | RetentionExpired
 *   consent                {general {status NotGiven|Given|Withdrawn, given_at,
 *                          withdrawn_at}, biometric {status NeverCollected|Given|Withdrawn,
 *                          version_hash, given_at, withdrawn_at}}
 *   retention              {general_pii_until, biometric_until, last_interaction_at}:
 *                          biometric_until at most 3 years after last_interaction_at (BIPA;
 *                          refused, not clamped)
 *   datasets               [{dataset, key_column, key_value}]
 *   audit_log_chain_root   the audit chain's last row_hmac, or null (set by the audit
 *                          chain through lh_subjects_set_chain_root; read-only for clients)
 *   audit_rows             rows in the chain when the root was set (idem)
 *   biometric_collection   optional, set by the biometric upload (read-only here)
 *   created_at, updated_at RFC 3339 UTC
 * Fields this version does not know are kept.
 *
 * Thread safety: every call may come from any thread. Read-modify-writes of one key are
 * serialised by one of LH_SUBJECT_STRIPES mutexes chosen by the key, so different
 * subjects change in parallel and two ids of one key never race past the collision
 * check. */
typedef struct lh_subjects lh_subjects;

/* Opens the store. st and cat are borrowed and must outlive it. Caller frees with
 * lh_subjects_close. */
lh_subjects *lh_subjects_open(lh_storage *st, lh_catalog *cat, lh_error *err);
void lh_subjects_close(lh_subjects *s);

/* The audit chain's current tip of a subject, asked when a manifest is created so that a
 * subject whose rows were logged before its manifest existed starts mirrored. Returns 0
 * and fills root (>= 65 bytes; "" when there is no chain) and *rows. */
typedef int (*lh_subjects_tip_fn)(void *ctx, const char *candidate_id, char *root, int64_t *rows,
                                  lh_error *err);
void lh_subjects_set_tip_source(lh_subjects *s, lh_subjects_tip_fn fn, void *ctx);

/* PUT /subjects/{id}: creates the manifest or updates it. Top-level fields present in
 * body replace the stored ones (consent.general and consent.biometric each as a whole),
 * absent ones are kept; unknown top-level fields are stored as given. Every known field is
 * validated (LH_EINVAL naming it); read-only fields (schema, candidate_id,
 * audit_log_chain_root, audit_rows, biometric_collection, created_at, updated_at) may be
 * sent only with their current value. LH_EEXISTS when another id owns the key. The
 * journal gets subject.created or subject.updated (actor, target = id). *created tells
 * which; *manifest_out (if not NULL) gets the stored manifest, caller decrefs. A journal
 * failure returns LH_KIND_EVENT_NOT_RECORDED after the manifest was written. */
int lh_subjects_put(lh_subjects *s, const char *candidate_id, const json_t *body, const char *actor,
                    bool *created, json_t **manifest_out, lh_error *err);
/* Copy of a manifest; NULL + LH_ENOTFOUND. Caller decrefs. */
json_t *lh_subjects_get(lh_subjects *s, const char *candidate_id, lh_error *err);
/* {subjects: [manifest...], next_after: key|null}: manifests in key order after `after`
 * (a key from a previous page, or NULL), at most limit, only those with `status` when not
 * NULL (LH_EINVAL for an unknown status). Caller decrefs. */
json_t *lh_subjects_list(lh_subjects *s, const char *status, const char *after, size_t limit,
                         lh_error *err);
/* The audit chain's hook: mirrors the chain root and row count into the manifest (an
 * atomic write). A subject without a manifest is not an error (nothing to mirror: 0). */
int lh_subjects_set_chain_root(lh_subjects *s, const char *candidate_id, const char *root,
                               int64_t rows, lh_error *err);

/* Validation of a manifest as PUT would store it, without storage: `m` is the merged
 * manifest, `body` what the client sent (for the read-only check), `old` the stored one or
 * NULL. cat (may be NULL: dataset entries are then checked for shape only) checks that
 * datasets and key columns exist. Exposed for unit tests. */
int lh_subject_manifest_validate(const json_t *m, const json_t *body, const json_t *old,
                                 lh_catalog *cat, lh_error *err);
/* value without prefix, stripped once ("W-W-1" with "W-" → "W-1"); value itself when it
 * does not start with prefix or prefix is NULL or empty. Borrowed from value. */
const char *lh_subject_strip_prefix(const char *value, const char *prefix);

/* Backfill (POST /subjects/backfill, `lakehouse subjects backfill`): creates a manifest
 * for every distinct id of a dataset's column. */
typedef struct lh_backfill_opts {
    const char *dataset;
    const char *id_column;    /* NULL: the dataset's subject_key_column */
    const char *strip_prefix; /* NULL or "": none; stripped once */
    const char *actor;
    int timeout_ms; /* per batch query */
} lh_backfill_opts;
/* Reads the distinct non-null values of the column through the query engine, in batches
 * (keyset pages of LH_BACKFILL_BATCH values, never every row in memory), strips the
 * prefix once, creates missing manifests with datasets [{dataset, key_column, key_value:
 * the raw value}] and adds that entry to existing ones. Idempotent. Returns
 * {dataset, id_column, strip_prefix, distinct_values, created, existing, datasets_added,
 * refused: [{id, value, reason}] (the first LH_BACKFILL_REFUSED_MAX), refused_total}.
 * One journal event subjects.backfilled with the counts. job (may be NULL) gets progress.
 * Caller decrefs. */
#define LH_BACKFILL_BATCH 4096
#define LH_BACKFILL_REFUSED_MAX 1000
json_t *lh_subjects_backfill(lh_subjects *s, lh_engine *eng, const lh_backfill_opts *o, lh_job *job,
                             lh_error *err);

/* ================================================================ legal endpoint (legal.c)
 *
 * GET /audit/subject/{id} and GET /audit/health (docs/AUDIT.md "Legal endpoint"). Callers
 * prove themselves with the token in the file named by LH_LEGAL_AUDIT_TOKEN_FILE (header
 * X-Lakehouse-Legal-Token) or with a key of role legal (admin keys too). */
typedef struct lh_legal lh_legal;

/* token_file: the configured path, or NULL (copied). subjects and cat are borrowed and
 * must outlive it. Caller frees with lh_legal_close. */
lh_legal *lh_legal_open(lh_subjects *subjects, lh_catalog *cat, const char *token_file);
void lh_legal_close(lh_legal *lg);

/* May this caller use the legal endpoints? who: the bearer key's principal or NULL;
 * presented: the X-Lakehouse-Legal-Token header or NULL. A legal or admin key: yes. Else
 * the token file is read: missing, empty or under 32 bytes → LH_EUNAVAILABLE naming the
 * reason; then the header: missing or wrong → LH_EUNAUTH; another role without a token →
 * LH_EFORBIDDEN. The token is compared in constant time and appears in no message. */
int lh_legal_authorize(lh_legal *lg, const char *presented, const lh_principal *who, lh_error *err);

/* subject_audit_response.v1 of one subject: {schema, response: {...}, signature: null,
 * inclusion_proof: null} (docs/AUDIT.md). from/to: RFC 3339 bounds of the rows returned
 * (inclusive; NULL: open); the chain is verified over the whole log whatever the window.
 * LH_ENOTFOUND when the subject has neither a manifest nor a log. Caller decrefs. */
json_t *lh_legal_subject_response(lh_legal *lg, const char *candidate_id, const char *from,
                                  const char *to, lh_error *err);
/* GET /audit/health: what the legal endpoint relies on. Caller decrefs. */
json_t *lh_legal_health(lh_legal *lg);

#endif
