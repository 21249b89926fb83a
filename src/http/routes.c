/*
 * routes.c: the route table. One line per endpoint with the roles that may call it;
 * docs/API.md documents each, docs/SECURITY.md the role matrix.
 */
#include "http_internal.h"

#define ADMIN LH_ROLE_BIT(LH_ROLE_ADMIN)
#define ANALYST LH_ROLE_BIT(LH_ROLE_ANALYST)
#define AGENT LH_ROLE_BIT(LH_ROLE_AGENT)
#define LEGAL LH_ROLE_BIT(LH_ROLE_LEGAL)
#define PUBLIC 0u

const lh_route lh_routes[] = {
    {"GET", "/health", LH_BODY_NONE, lh_h_health, NULL, PUBLIC},
    {"GET", "/storage/buckets", LH_BODY_NONE, lh_h_buckets_list, NULL, ADMIN | ANALYST},
    {"POST", "/storage/buckets", LH_BODY_JSON, lh_h_buckets_add, NULL, ADMIN},
    {"DELETE", "/storage/buckets/{name}", LH_BODY_NONE, lh_h_buckets_remove, NULL, ADMIN},
    {"GET", "/catalog/datasets", LH_BODY_NONE, lh_h_datasets_list, NULL,
     ADMIN | ANALYST | AGENT | LEGAL},
    {"GET", "/catalog/datasets/by-name/{name}", LH_BODY_NONE, lh_h_dataset_get, NULL,
     ADMIN | ANALYST | AGENT | LEGAL},
    {"DELETE", "/catalog/datasets/by-name/{name}", LH_BODY_NONE, lh_h_dataset_delete, NULL, ADMIN},
    {"PATCH", "/catalog/datasets/by-name/{name}/metadata", LH_BODY_JSON, lh_h_dataset_patch, NULL,
     ADMIN},
    {"POST", "/ingest/file", LH_BODY_UPLOAD, lh_h_ingest_file, lh_pre_ingest_file, ADMIN},
    /* database syncs (issue 13; docs/INGEST.md "Syncs"): the roles of file ingest */
    {"POST", "/ingest/postgres", LH_BODY_JSON, lh_h_ingest_postgres, NULL, ADMIN},
    {"POST", "/ingest/mysql", LH_BODY_JSON, lh_h_ingest_mysql, NULL, ADMIN},
    {"POST", "/query/sql", LH_BODY_JSON, lh_h_query_sql, NULL, ADMIN | ANALYST | AGENT},
    {"GET", "/auth/keys", LH_BODY_NONE, lh_h_keys_list, NULL, ADMIN},
    {"POST", "/auth/keys", LH_BODY_JSON, lh_h_keys_create, NULL, ADMIN},
    {"DELETE", "/auth/keys/{name}", LH_BODY_NONE, lh_h_keys_revoke, NULL, ADMIN},
    {"GET", "/jobs/{id}", LH_BODY_NONE, lh_h_job_get, NULL, ADMIN},
    /* issue 13: cancel a job (job_routes.c; the handler lets a non-admin stop only its own) */
    {"POST", "/jobs/{id}/cancel", LH_BODY_NONE, lh_h_job_cancel, NULL,
     ADMIN | ANALYST | AGENT | LEGAL},
    /* issue 13: named database sources (source_routes.c); admin only, even to read: the
     * locations are infrastructure (docs/SECURITY.md "Database sources") */
    {"POST", "/sources", LH_BODY_JSON, lh_h_sources_create, NULL, ADMIN},
    {"GET", "/sources", LH_BODY_NONE, lh_h_sources_list, NULL, ADMIN},
    {"GET", "/sources/{name}", LH_BODY_NONE, lh_h_source_get, NULL, ADMIN},
    {"DELETE", "/sources/{name}", LH_BODY_NONE, lh_h_source_delete, NULL, ADMIN},
    /* AI-safe views and caller attributes (view_routes.c, auth_routes.c) */
    {"POST", "/catalog/views", LH_BODY_JSON, lh_h_views_create, NULL, ADMIN},
    {"GET", "/catalog/views", LH_BODY_NONE, lh_h_views_list, NULL, ADMIN | ANALYST | AGENT | LEGAL},
    {"GET", "/catalog/views/{name}", LH_BODY_NONE, lh_h_view_get, NULL,
     ADMIN | ANALYST | AGENT | LEGAL},
    {"DELETE", "/catalog/views/{name}", LH_BODY_NONE, lh_h_view_delete, NULL, ADMIN},
    {"PATCH", "/auth/keys/{name}", LH_BODY_JSON, lh_h_keys_patch, NULL, ADMIN},
    /* erasure */
    {"POST", "/catalog/datasets/by-name/{name}/tombstone", LH_BODY_JSON, lh_h_tombstone_add, NULL,
     ADMIN},
    {"GET", "/catalog/datasets/by-name/{name}/tombstone", LH_BODY_NONE, lh_h_tombstone_list, NULL,
     ADMIN | LEGAL},
    {"DELETE", "/catalog/datasets/by-name/{name}/tombstone", LH_BODY_JSON, lh_h_tombstone_remove,
     NULL, ADMIN},
    {"POST", "/query/compact", LH_BODY_JSON, lh_h_compact, NULL, ADMIN},
    /* event journal (docs/GOVERNANCE.md) */
    {"GET", "/catalog/events", LH_BODY_NONE, lh_h_events_list, NULL, ADMIN | LEGAL},
    /* model profiles (docs/GOVERNANCE.md) */
    {"GET", "/catalog/profiles", LH_BODY_NONE, lh_h_profiles_list, NULL, ADMIN | ANALYST | LEGAL},
    {"POST", "/catalog/profiles", LH_BODY_JSON, lh_h_profile_create, NULL, ADMIN},
    {"GET", "/catalog/profiles/{id}", LH_BODY_NONE, lh_h_profile_get, NULL,
     ADMIN | ANALYST | LEGAL},
    {"DELETE", "/catalog/profiles/{id}", LH_BODY_NONE, lh_h_profile_delete, NULL, ADMIN},
    {"POST", "/catalog/migrate-buckets", LH_BODY_NONE, lh_h_migrate_buckets, NULL, ADMIN},
    /* subjects (issue 11; docs/AUDIT.md "Subjects") */
    {"GET", "/subjects", LH_BODY_NONE, lh_h_subjects_list, NULL, ADMIN | LEGAL},
    {"POST", "/subjects/backfill", LH_BODY_JSON, lh_h_subjects_backfill, NULL, ADMIN},
    {"PUT", "/subjects/{id}", LH_BODY_JSON, lh_h_subject_put, NULL, ADMIN},
    {"GET", "/subjects/{id}", LH_BODY_NONE, lh_h_subject_get, NULL, ADMIN | LEGAL},
    /* legal audit endpoint (issue 11): public here, the handler checks the legal token or
     * a legal/admin key (compliance/legal.c) */
    {"GET", "/audit/subject/{id}", LH_BODY_NONE, lh_h_audit_subject, NULL, PUBLIC},
    {"GET", "/audit/health", LH_BODY_NONE, lh_h_audit_health, NULL, PUBLIC},
    /* biometric photos (issue 12; docs/AUDIT.md "Biometric upload"): public here like the
     * legal routes, the precheck and handler take the legal token or a legal/admin key */
    {"POST", "/biometric/subject/{id}/photo", LH_BODY_SINK, lh_h_biometric_photo,
     lh_pre_biometric_photo, PUBLIC},
    {"GET", "/biometric/health", LH_BODY_NONE, lh_h_biometric_health, NULL, PUBLIC},
    /* the signed audit log (issue 12; docs/AUDIT.md "Verifiable log"): checkpoint and
     * consistency as the legal endpoint; the public key is public */
    {"GET", "/audit/checkpoint", LH_BODY_NONE, lh_h_audit_checkpoint, NULL, PUBLIC},
    {"GET", "/audit/consistency", LH_BODY_NONE, lh_h_audit_consistency, NULL, PUBLIC},
    {"GET", "/audit/pubkey", LH_BODY_NONE, lh_h_audit_pubkey, NULL, PUBLIC},
    /* issue 14: vector indexes (vector_routes.c; docs/API.md "Vectors") */
    {"POST", "/vectors/indexes", LH_BODY_JSON, lh_h_vector_index_create, NULL, ADMIN},
    {"GET", "/vectors/indexes", LH_BODY_NONE, lh_h_vector_indexes_list, NULL,
     ADMIN | ANALYST | AGENT},
    {"GET", "/vectors/indexes/{name}", LH_BODY_NONE, lh_h_vector_index_get, NULL,
     ADMIN | ANALYST | AGENT},
    {"DELETE", "/vectors/indexes/{name}", LH_BODY_NONE, lh_h_vector_index_delete, NULL, ADMIN},
    {"POST", "/vectors/refresh/{dataset}", LH_BODY_JSON, lh_h_vectors_refresh, NULL, ADMIN},
    {"GET", "/vectors/stale", LH_BODY_NONE, lh_h_vectors_stale, NULL, ADMIN | ANALYST},
    /* vector search and model-profile activation (issue 14; vector_search_routes.c):
     * the module decides which indexes a caller may search */
    {"POST", "/vectors/search/{index}", LH_BODY_JSON, lh_h_vector_search, NULL,
     ADMIN | ANALYST | AGENT},
    {"POST", "/vectors/profile/{id}/search", LH_BODY_JSON, lh_h_vector_profile_search, NULL,
     ADMIN | ANALYST | AGENT},
    {"POST", "/vectors/profile/{id}/activate", LH_BODY_NONE, lh_h_vector_profile_activate, NULL,
     ADMIN},
    {"POST", "/vectors/profile/{id}/deactivate", LH_BODY_NONE, lh_h_vector_profile_deactivate, NULL,
     ADMIN},
    {"GET", "/vectors/profile/active", LH_BODY_NONE, lh_h_vector_profile_active, NULL,
     ADMIN | ANALYST},
    /* issue 14: tuning (vector_tune_routes.c; docs/VECTORS.md "Tuning") */
    {"POST", "/vectors/autotune/{index}", LH_BODY_JSON, lh_h_vector_autotune, NULL, ADMIN},
    {"GET", "/vectors/trials/{index}", LH_BODY_NONE, lh_h_vector_trials, NULL, ADMIN | ANALYST},
    /* agents over MCP (issue 15; docs/AGENTS.md): agent and analyst keys only; GET answers
     * 405 (no SSE stream), as the Streamable HTTP transport allows */
    {"POST", "/mcp", LH_BODY_JSON, lh_h_mcp_post, NULL, ANALYST | AGENT},
    {"DELETE", "/mcp", LH_BODY_NONE, lh_h_mcp_delete, NULL, ANALYST | AGENT},
};
const size_t lh_routes_count = sizeof(lh_routes) / sizeof(lh_routes[0]);
