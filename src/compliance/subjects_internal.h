/*
 * subjects_internal.h: what subjects.c shares with the rest of src/compliance (the legal
 * response). Only src/compliance includes it.
 */
#ifndef LH_SUBJECTS_INTERNAL_H
#define LH_SUBJECTS_INTERNAL_H

#include "compliance.h"

#define LH_SUBJECT_MANIFEST_SCHEMA "subject_manifest.v1"

/* Parses an RFC 3339 timestamp ("2026-05-03T12:00:00Z", fraction up to 9 digits, Z or
 * ±HH:MM) into seconds since the epoch. 0, or -1 when s is not one. */
int lh_compliance__parse_ts(const char *s, int64_t *epoch);
/* True when status is one of Active, Withdrawn, Erased, RetentionExpired. */
bool lh_subject_status_valid(const char *status);

#endif
