/*
 * subjects_internal.h: what subjects.c shares with the rest of src/compliance (the legal
 * response). Only src/compliance includes it.
 */
#ifndef LH_SUBJECTS_INTERNAL_H
#define LH_SUBJECTS_INTERNAL_H

#include "compliance.h"

#include <pthread.h>

#define LH_SUBJECT_MANIFEST_SCHEMA "subject_manifest.v1"
#define SUBJECTS_PREFIX "_catalog/subjects/"
#define KEY_VALUE_MAX 1024   /* bytes of a dataset entry's key_value */
#define VERSION_HASH_MAX 128 /* characters of consent.biometric.version_hash */
#define LH_SUBJECT_STRIPES 64

struct lh_subjects {
    lh_storage *st;
    lh_catalog *cat;
    pthread_mutex_t stripes[LH_SUBJECT_STRIPES];
    lh_audit *audit; /* for chain tips; NULL when the server has no audit key */

    /* The chain-root mirror. The audit chain calls the listener after every durable
     * append, on the appender's thread; writing the manifest there would cost two fsyncs
     * per subject per append and undo the chain's group commit (a query returning 1,000
     * people would wait for 2,000 fsyncs). So the listener only records the newest root
     * per subject, and the flusher thread writes them in batches with one durability
     * barrier (lh_storage_put_many). The manifest may lag the log meanwhile (and after a
     * crash): verification tolerates a lagging root (lh_audit_verdict.manifest_lag) and
     * never sees a root ahead of the log, because the row is durable before the call. */
    pthread_mutex_t roots_mu;
    pthread_cond_t roots_work; /* the flusher has something to do, or must stop */
    pthread_cond_t roots_idle; /* a batch finished */
    json_t *roots;             /* candidate_id → newest root not yet written */
    bool roots_flushing, closing;
    uint64_t roots_failures;
    pthread_t flusher;
};

/* subjects.c */
/* id's storage key (lh_subject_key) into key (LH_SUBJECT_KEY_MAX bytes); LH_EINVAL also
 * when the manifest's file name would be too long. */
int lh_subject__key_of(const char *id, char *key, lh_error *err);
/* "_catalog/subjects/<key>.json". Caller frees. */
char *lh_subject__manifest_key(const char *key);
/* The stripe lock of key. */
pthread_mutex_t *lh_subject__stripe(lh_subjects *s, const char *key);
/* The manifest of key owned by id (caller decrefs): NULL with *missing when there is none;
 * NULL + LH_EEXISTS (kind subject_key_collision) when it names another subject. */
json_t *lh_subject__load_owned(lh_subjects *s, const char *id, const char *key, bool *missing,
                               lh_error *err);
/* A new manifest with defaults (status Active, no consent, no dates), seeded with the
 * audit chain's tip when s has an audit. Caller decrefs. */
json_t *lh_subject__new_manifest(lh_subjects *s, const char *id, const char *now);

/* Writes the manifest of key atomically (caller holds the key's stripe); a failure after
 * the rename has the kind LH_KIND_NOT_DURABLE. For the biometric upload's commit and
 * rollback (biometric.c). */
int lh_subject__store(lh_subjects *s, const char *key, const json_t *m, lh_error *err);

/* subject_manifest.c */
/* True for the fields only the server writes (schema, candidate_id, audit_log_chain_root,
 * audit_rows, biometric_collection, created_at, updated_at). */
bool lh_subject__read_only(const char *field);
/* 0, or LH_EINVAL naming the allowed statuses. */
int lh_subject__check_status(const char *status, lh_error *err);

/* Parses an RFC 3339 timestamp ("2026-05-03T12:00:00Z", fraction up to 9 digits, Z or
 * ±HH:MM) into seconds since the epoch. 0, or -1 when s is not one. */
int lh_compliance__parse_ts(const char *s, int64_t *epoch);
/* The same instant `years` calendar years later (Feb 29 → Mar 1 in a common year): the
 * BIPA limit's arithmetic, shared by validation and the retention sweep. */
int64_t lh_compliance__add_years(int64_t epoch, int years);
/* True when status is one of Active, Withdrawn, Erased, RetentionExpired. */
bool lh_subject_status_valid(const char *status);

#endif
