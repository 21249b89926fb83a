/*
 * compliance: subjects (the people the lake holds data about), their per-subject audit
 * chains and the legal view of them (DESIGN.md §2 "compliance").
 *
 * The module sits beside query and ingest: it may use core, storage, catalog and query,
 * never http. This is its one public header, in sections:
 *   - subject keys: the one sanitiser of subject ids into storage keys (shared);
 *   - audit chain: per-subject HMAC-chained rows with a group-committed write-ahead
 *     journal (src/compliance/audit.c; format in docs/AUDIT.md);
 *   - subjects: manifests, backfill, the legal endpoint (engineer "subjects");
 *   - biometric upload and retention sweep (issue 12: biometric.c, retention.c).
 */
#ifndef LH_COMPLIANCE_H
#define LH_COMPLIANCE_H

#include "core/core.h"
/* the subjects and legal sections: */
#include "catalog/catalog.h"
#include "query/query.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ================================================================ subject keys */

/* A subject id (candidate_id) is 1..LH_SUBJECT_ID_MAX bytes of valid UTF-8 without
 * control characters. */
#define LH_SUBJECT_ID_MAX 256
/* Room for the longest key (every byte %XX-escaped) and its NUL. */
#define LH_SUBJECT_KEY_MAX (3 * LH_SUBJECT_ID_MAX + 1)

/* The storage key of a subject id: bytes [A-Za-z0-9._-] are kept, every other byte
 * (and a leading '.' or '_', so a key is never a hidden file nor one of the module's own
 * '_'-prefixed files) is written %XX (uppercase hex). Since '%' itself is always escaped
 * the mapping is injective by construction: two different ids never share a key.
 * buf must hold LH_SUBJECT_KEY_MAX bytes. Returns 0, or LH_EINVAL for an id that is
 * empty, too long, not UTF-8 or holds control characters. */
int lh_subject_key(const char *id, char *buf, size_t cap, lh_error *err);

/* ================================================================ audit chain */

/*
 * One row per access to one subject's data, appended to that subject's chain:
 *   {schema:"subject_audit_row.v1", ts, candidate_id,
 *    accessor{kind, daemon, [model, profile,] purpose, trace_id}, fields_accessed[], result,
 *    prev_chain_hash, row_hmac}
 * row_hmac = lowercase hex HMAC-SHA256(key, RFC 8785 form of the row without row_hmac);
 * prev_chain_hash = the previous row's row_hmac, "GENESIS" for the first. The key comes
 * from the file named by LH_SUBJECT_AUDIT_KEY.
 *
 * Durability: an append returns only when its rows are in the write-ahead journal and
 * that journal is fdatasync-ed; concurrent appenders share one fdatasync (group commit).
 * Thread-safe: appends to one subject are serialised, different subjects run in parallel.
 */
typedef struct lh_audit lh_audit;

#define LH_AUDIT_SCHEMA "subject_audit_row.v1"
#define LH_AUDIT_GENESIS "GENESIS"
#define LH_AUDIT_HMAC_HEX 65 /* 64 hex characters and the NUL */
#define LH_AUDIT_TS_MAX 32   /* "2026-05-03T12:00:00.000000001Z" and the NUL */
#define LH_AUDIT_KEY_MIN 32  /* bytes */
#define LH_AUDIT_KEY_MAX 4096

/* What a caller supplies for one row. Every string is borrowed for the call and copied
 * verbatim (Unicode, '<>&' kept); NULL accessor fields are written as "". */
typedef struct lh_audit_entry {
    const char *candidate_id;  /* required: the subject */
    const char *accessor_kind; /* "agent", "user", "admin", "legal", "system", ... */
    const char *daemon;        /* the API key name / daemon that made the call */
    const char *purpose;       /* X-Lakehouse-Purpose */
    const char *trace_id;      /* X-Lakehouse-Trace-Id */
    const char *const *fields; /* fields (columns) accessed, n_fields of them */
    size_t n_fields;
    const char *result; /* "success" | "error" | "denied" | "not_found" */
    const char *ts;     /* NULL: now; else an RFC 3339 UTC time with 9 digits */
    /* Optional accessor members, written only when set (non-NULL, non-empty), so rows
     * without them (the known answer) keep their bytes: an agent's model profile id and
     * the profile's model name (EU AI Act Art. 12 logging). */
    const char *profile;
    const char *model;
} lh_audit_entry;

/* Reads the signing key from the file at path: its bytes, minus one trailing "\n" or
 * "\r\n" if present, at least LH_AUDIT_KEY_MIN bytes. The key never appears in a message:
 * errors name the path and the length only. key must hold LH_AUDIT_KEY_MAX bytes; the
 * caller wipes it (sodium_memzero) when done. Returns 0, LH_EINVAL (too short / long) or
 * LH_EIO (unreadable). */
int lh_audit_key_load(const char *path, unsigned char *key, size_t *key_len, lh_error *err);

/* Opens the audit chains of a data folder (<data>/_catalog/subjects/ and the journal
 * <data>/_catalog/audit_wal/) with the key in key_file: replays the journal into the
 * per-subject logs (idempotently), makes them durable and starts a fresh journal.
 * Holds an exclusive lock on the journal folder until lh_audit_close: a second process
 * (the server and an offline `lakehouse audit` command) gets LH_EBUSY; use
 * lh_audit_open_readonly for reading beside a running server.
 * Caller frees with lh_audit_close. */
lh_audit *lh_audit_open(const char *data_dir, const char *key_file, lh_error *err);
/* Opens for reading and verifying only (no journal replay, no lock; appends refused). */
lh_audit *lh_audit_open_readonly(const char *data_dir, const char *key_file, lh_error *err);
/* Checkpoints (per-subject logs fsynced, journal emptied) and frees. Accepts NULL. */
void lh_audit_close(lh_audit *audit);

/* Called after each durable append with the subject's new chain tip (the subject
 * manifest mirrors it as audit_log_chain_root). candidate_id and root are borrowed for
 * the call. Its error is logged (the row itself is durable and the caller's append
 * succeeds): the manifest may lag behind the log, which verify tolerates (see
 * lh_audit_verdict.manifest_lag). Runs on the appender's thread, after every lock of the
 * audit module is released, so it may call into the catalog. */
typedef int (*lh_audit_root_listener)(void *ctx, const char *candidate_id, const char *root,
                                      lh_error *err);
/* Registers the listener (one; NULL removes it). Set it before appends start. */
void lh_audit_set_root_listener(lh_audit *audit, lh_audit_root_listener fn, void *ctx);

/* Appends one row; on success hmac_out (NULL or LH_AUDIT_HMAC_HEX bytes) gets its
 * row_hmac. Returns when the row is durable. Errors: LH_EINVAL (bad entry), LH_EIO (the
 * journal write or sync failed: the row is not acknowledged and never becomes the prev
 * of a later row; after a failed sync the audit refuses appends until reopened, since
 * the journal's state is unknown), LH_EUNAVAILABLE (read-only handle). */
int lh_audit_append(lh_audit *audit, const lh_audit_entry *entry, char *hmac_out, lh_error *err);
/* Appends n rows (any subjects, rows of one subject chained in array order) with one
 * journal write and one (shared) fdatasync; returns when every row is durable. All or
 * nothing as far as acknowledgement goes: on an error no row is acknowledged. */
int lh_audit_append_batch(lh_audit *audit, const lh_audit_entry *entries, size_t n, lh_error *err);

/* The outcome of replaying one subject's chain. */
typedef struct lh_audit_verdict {
    bool verified;         /* every row parses, its HMAC and prev match, root agrees */
    int64_t rows_total;    /* complete rows in the log */
    int64_t first_bad_row; /* 1-based row number of the first problem; 0 when verified */
    const char *reason;    /* static: NULL when verified, else one of "unparsable",
                              "wrong_schema", "wrong_subject", "hmac_mismatch",
                              "prev_mismatch", "truncated_row", "log_missing",
                              "log_empty", "missing_rows" */
    char detail[256];      /* a sentence for people */
    char chain_root[LH_AUDIT_HMAC_HEX]; /* row_hmac of the last row; "" for no rows */
    int64_t manifest_lag;               /* rows after the expected root (the manifest not yet
                                           updated, e.g. a crash between append and mirror); 0 */
} lh_audit_verdict;

/* Replays a subject's whole chain. expected_root (NULL or "" when the manifest knows
 * none) is the manifest's audit_log_chain_root: a log that is missing or empty while a
 * root is expected, or in which the expected root does not occur (rows cut off), is
 * flagged. When rows is not NULL, *rows gets a new JSON array of the rows (objects as
 * stored) whose ts lies in [from, to] (NULL bounds: open; bounds as lh_audit_ts_parse
 * accepts); caller decrefs. Returns 0 whether or not the chain verifies (see the
 * verdict); LH_EINVAL for a bad id or bound, LH_EIO when the log cannot be read.
 * A log that does not exist is not an error: rows_total 0 (and "log_missing" when a root
 * was expected). */
int lh_audit_read(lh_audit *audit, const char *candidate_id, const char *expected_root,
                  const char *from, const char *to, json_t **rows, lh_audit_verdict *v,
                  lh_error *err);
/* lh_audit_read without rows. */
int lh_audit_verify(lh_audit *audit, const char *candidate_id, const char *expected_root,
                    lh_audit_verdict *v, lh_error *err);
/* The current tip of a subject ("GENESIS" when it has no rows) in root_out
 * (LH_AUDIT_HMAC_HEX bytes). O(1) after the first call (reads the log's last line). */
int lh_audit_tip(lh_audit *audit, const char *candidate_id, char *root_out, lh_error *err);
/* Calls fn for the id of every subject that has an audit log (order unspecified);
 * stops at fn's first non-zero return, which it returns. */
int lh_audit_list(lh_audit *audit, int (*fn)(void *ctx, const char *candidate_id), void *ctx,
                  lh_error *err);

/* Normalises an RFC 3339 time ("2026-05-03T14:00:00+02:00", "...Z", with 0..9 fraction
 * digits) to the row form: UTC with nine fraction digits, so rows compare as strings. */
int lh_audit_ts_parse(const char *in, char out[LH_AUDIT_TS_MAX], lh_error *err);
/* The current time in the row form. */
void lh_audit_ts_now(char out[LH_AUDIT_TS_MAX]);

/* The canonical bytes (RFC 8785 of the row without row_hmac) and the row_hmac of an
 * entry chained on prev, with the given key. *canonical: caller frees. The building
 * block of append and of the known answer. */
int lh_audit_row_sign(const unsigned char *key, size_t key_len, const lh_audit_entry *entry,
                      const char *prev, char **canonical, char *hmac_out, lh_error *err);

/* The fixed known-answer row of docs/AUDIT.md and issue 11 (key, then the row). */
#define LH_AUDIT_KA_KEY "lakehouse-known-answer-key-0123456789abcdef"
#define LH_AUDIT_KA_HMAC "d13b874cb2e1ee8fcaa1f558e8fb48926205de7e0c140f5895d8370d6c43cd30"
/* Fills e with the known-answer entry (static strings). */
void lh_audit_known_answer_entry(lh_audit_entry *e);

/* Counters for tests and benchmarks. */
typedef struct lh_audit_stats {
    uint64_t rows;  /* rows acknowledged since open */
    uint64_t syncs; /* journal fdatasyncs */
    uint64_t checkpoints;
} lh_audit_stats;
void lh_audit_get_stats(lh_audit *audit, lh_audit_stats *out);
/* Checkpoints now: every per-subject log written since the last checkpoint is fsynced
 * and the journal restarts empty. Appends wait meanwhile. Happens by itself when the
 * journal passes LH_AUDIT_WAL_MAX bytes. */
#define LH_AUDIT_WAL_MAX (64 * 1024 * 1024)
/* Changes that threshold (tests make checkpoints frequent with it). */
void lh_audit_set_wal_max(lh_audit *audit, uint64_t bytes);
int lh_audit_checkpoint(lh_audit *audit, lh_error *err);

/* ================================================================ Merkle log (merkle.c,
 * merkle_log.c)
 *
 * The verifiable log of issue 12 (docs/AUDIT.md "Verifiable log"): an append-only RFC 6962
 * Merkle tree whose leaves are subjects' chain tips, so that a third party with only the
 * signing public key can check a legal response and notice a cut tail.
 *   leaf hash = SHA-256(0x00 ‖ leaf data), node hash = SHA-256(0x01 ‖ left ‖ right);
 *   leaf data = RFC 8785 bytes of {candidate_id, chain_tip, rows_total,
 *               schema:"audit_merkle_leaf.v1"}.
 * The tree keeps the hash of every complete subtree (2n hashes for n leaves), so a root,
 * an inclusion proof or a consistency proof costs O(log² n) hash lookups and at most
 * O(log n) hashings, whatever n. Thread-safe: one mutex per log. */
#define LH_MERKLE_HASH 32
#define LH_MERKLE_LEAF_SCHEMA "audit_merkle_leaf.v1"
typedef struct lh_merkle lh_merkle;

/* RFC 6962 hashing. */
void lh_merkle_leaf_hash(const void *data, size_t len, unsigned char out[LH_MERKLE_HASH]);
void lh_merkle_node_hash(const unsigned char left[LH_MERKLE_HASH],
                         const unsigned char right[LH_MERKLE_HASH],
                         unsigned char out[LH_MERKLE_HASH]);
/* RFC 9162 §2.1.3.2: true when path (n hashes, leaf to root) proves that leaf is the
 * index-th of a tree of size leaves with root. */
bool lh_merkle_verify_inclusion(uint64_t index, uint64_t size, const unsigned char *leaf,
                                const unsigned char *path, size_t n, const unsigned char *root);
/* RFC 9162 §2.1.4.2: true when proof (n hashes) shows that the tree of size2 with root2
 * extends the tree of size1 (1 <= size1 <= size2) with root1. */
bool lh_merkle_verify_consistency(uint64_t size1, uint64_t size2, const unsigned char *root1,
                                  const unsigned char *root2, const unsigned char *proof, size_t n);

/* A tree in memory only (tests, benchmarks). Caller frees with lh_merkle_close. */
lh_merkle *lh_merkle_new(void);
/* Opens the persisted log of a data folder (<data>/_catalog/audit_merkle/leaves.jsonl, one
 * leaf's data per line), rebuilding the tree and the subject index from it. A torn last
 * line (a crash while appending; never covered by a signed checkpoint, see lh_merkle_sync)
 * is cut off; a damaged line before it is LH_EIO. Caller frees with lh_merkle_close. */
lh_merkle *lh_merkle_open(const char *data_dir, lh_error *err);
/* Detaches from the audit chain (if attached) and frees. Accepts NULL. */
void lh_merkle_close(lh_merkle *m);
/* Appends a leaf hash (memory-only trees: tests, benchmarks). */
void lh_merkle_append_hash(lh_merkle *m, const unsigned char leaf[LH_MERKLE_HASH]);
/* Leaves in the tree. */
uint64_t lh_merkle_size(lh_merkle *m);
/* Root of the first size leaves (1 <= size <= lh_merkle_size); LH_EINVAL otherwise (an
 * empty tree's root is SHA-256 of nothing, asked with size 0). */
int lh_merkle_root(lh_merkle *m, uint64_t size, unsigned char out[LH_MERKLE_HASH], lh_error *err);
/* Inclusion proof of leaf index in the tree of the first size leaves: *path gets *n hashes
 * of LH_MERKLE_HASH bytes (leaf to root), caller frees. LH_EINVAL when index >= size, or
 * size is beyond the tree. */
int lh_merkle_inclusion(lh_merkle *m, uint64_t index, uint64_t size, unsigned char **path,
                        size_t *n, lh_error *err);
/* Consistency proof between the trees of size1 and size2 leaves (RFC 6962 §2.1.2): *proof
 * gets *n hashes, caller frees. LH_EINVAL when size1 is 0 or above size2, LH_ENOTFOUND
 * when size2 is beyond the tree. */
int lh_merkle_consistency(lh_merkle *m, uint64_t size1, uint64_t size2, unsigned char **proof,
                          size_t *n, lh_error *err);

/* Connects the log to the audit chain: first catches up (every subject whose chain tip is
 * not its latest leaf, and whose log still extends that leaf, gets a leaf: rows appended
 * while no log was attached, or whose leaf was lost in a crash), then has every durable
 * append batch add one leaf per subject whose tip moved. A subject whose log no longer
 * extends its latest leaf (rows cut or replaced) gets no leaf and is logged
 * (audit.merkle_mismatch): the signed log keeps the evidence. Call once at start, before
 * appends. */
int lh_merkle_attach(lh_merkle *m, lh_audit *audit, lh_error *err);
/* The latest leaf of a subject: *leaf (caller decrefs) the leaf's data as a JSON object,
 * *index its position. Batches of the subject that finished out of order and still wait
 * for the one they follow are settled from its log first. LH_ENOTFOUND when the subject
 * has no leaf. */
int lh_merkle_subject_leaf(lh_merkle *m, const char *candidate_id, json_t **leaf, uint64_t *index,
                           lh_error *err);
/* Makes every leaf written so far durable (one fdatasync of the leaves file when it grew)
 * and returns in *size how many leaves are durable: only those may be covered by a signed
 * checkpoint, so a crash can never make the log fork from what was signed. */
int lh_merkle_sync(lh_merkle *m, uint64_t *size, lh_error *err);

/* ================================================================ signed notes (checkpoint.c)
 *
 * Ed25519 signing of checkpoints as C2SP signed notes (tlog-checkpoint) and of legal
 * responses. The key comes from the file named by LH_AUDIT_SIGNING_KEY_FILE: a 32-byte
 * Ed25519 seed or libsodium's 64-byte secret key (seed ‖ public key), mode 0600 or
 * stricter. It never appears in a message: errors name the path only. */
typedef struct lh_signer lh_signer;
#define LH_SIGNER_NAME_MAX 256

/* Loads the key. name: the signer name and log origin (NULL: "lakehouse/<hostname>");
 * it must be printable ASCII without spaces or '+' (C2SP key names). LH_EINVAL naming the
 * path for a file that is group/other-accessible, or not 32 or 64 bytes, or whose public
 * half does not match its seed; LH_EIO when unreadable. Caller frees with lh_signer_free. */
lh_signer *lh_signer_load(const char *key_file, const char *name, lh_error *err);
/* From a 32-byte seed (tests, benchmarks). */
lh_signer *lh_signer_from_seed(const unsigned char seed[32], const char *name, lh_error *err);
void lh_signer_free(lh_signer *s);
/* The signer name (borrowed). */
const char *lh_signer_name(const lh_signer *s);
/* The 32-byte public key. */
const unsigned char *lh_signer_public_key(const lh_signer *s);
/* The C2SP key id: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[0..4). */
void lh_signer_key_id(const char *name, const unsigned char pk[32], unsigned char id[4]);
/* The C2SP verifier key "<name>+<key id hex>+<base64(0x01 ‖ public key)>". Caller frees. */
char *lh_signer_vkey(const lh_signer *s);
/* Ed25519 signature (64 bytes) of msg. */
void lh_signer_sign(const lh_signer *s, const void *msg, size_t len, unsigned char sig[64]);
/* The signed checkpoint note: "<origin>\n<size>\n<base64 root>\n\n— <name> <base64(key
 * id ‖ signature)>\n", signed over the text before the blank line (its last newline
 * included). Caller frees. */
char *lh_checkpoint_sign(const lh_signer *s, uint64_t size,
                         const unsigned char root[LH_MERKLE_HASH]);
/* Parses a verifier key: *name (caller frees) and the public key. LH_EINVAL when it is not
 * a well-formed Ed25519 verifier key or its key id does not match. */
int lh_vkey_parse(const char *vkey, char **name, unsigned char pk[32], lh_error *err);
/* Verifies a C2SP signed note against (name, pk) as Go's sumdb/note Open does: the
 * signatures follow the last blank line, each signature line must be well formed, lines of
 * other keys are ignored, and the first line of this name and key id decides (a failed
 * one rejects the note). The text must be UTF-8 without control characters but '\n'.
 * *text_len gets the signed text's length (its final newline included). LH_EINVAL naming
 * what failed. */
int lh_note_verify(const char *note, const char *name, const unsigned char pk[32], size_t *text_len,
                   lh_error *err);
/* Verifies a checkpoint note (lh_note_verify) whose origin is the key's name. Fills *size
 * and root. LH_EINVAL naming what failed. */
int lh_checkpoint_verify(const char *note, const char *name, const unsigned char pk[32],
                         uint64_t *size, unsigned char root[LH_MERKLE_HASH], lh_error *err);
/* Standard base64 (padded) of n bytes. Caller frees. */
char *lh_b64_encode(const unsigned char *data, size_t n);
/* Decodes standard base64 (padded) into out (cap bytes); *n gets the length. -1 when
 * malformed or too long. */
int lh_b64_decode(const char *s, unsigned char *out, size_t cap, size_t *n);

/* The offline check of a signed legal response (`lakehouse audit verify-offline`): the
 * response signature, the checkpoint note, the leaf's inclusion, the leaf against the
 * rows (links, count, tip) and the server's own verdict. *report (caller decrefs) gets
 * {verified, checks: [{check, ok, detail}]}. Returns 0 whether or not it verifies;
 * LH_EINVAL for a response that is not one. (src/compliance/offline.c) */
int lh_audit_verify_response(const json_t *response, const char *signer_name,
                             const unsigned char pk[32], json_t **report, lh_error *err);
/* ================================================================ access auditing (access.c)
 *
 * Issue 11 item 5, docs/AUDIT.md "Access auditing". Every query by an audited caller (not
 * an admin) that reads a subject relation leaves a trace: a row-level result one audit row
 * per returned subject (through the subject sink the query engine calls before those rows
 * can be read), any other read one dataset-level event in the catalog's journal. An
 * agent's refused read is journaled too. A trace that cannot be written fails the read.
 *
 * One lh_access_audit per query: it holds the accessor (copied), so it may outlive the
 * request that made it (the sink runs on every chunk fetch of a streaming result). */
typedef struct lh_access_audit lh_access_audit;

/* X-Lakehouse-Purpose and X-Lakehouse-Trace-Id: at most this many bytes of valid UTF-8,
 * kept verbatim (no percent-decoding, no trimming). */
#define LH_ACCESS_HEADER_MAX 4096
#define LH_ACCESS_ACTION "query.dataset_access"
#define LH_ACCESS_DENIED_ACTION "query.denied"

/* The auditing context of one query by who. purpose and trace_id are the headers' bytes as
 * sent, NULL when absent (an empty value counts as absent). Checks them: each at most
 * LH_ACCESS_HEADER_MAX bytes of valid UTF-8, else LH_EINVAL kind "invalid_header"; agents
 * must give a purpose, else LH_EINVAL kind "purpose_required". For an agent bound to a
 * profile the profile id and its model_name (read from cat now) join the accessor.
 * audit (NULL: the server has no audit key) and cat are borrowed and must outlive the
 * context; everything else is copied. Caller frees with lh_access_audit_free. */
lh_access_audit *lh_access_audit_new(lh_audit *audit, lh_catalog *cat, const lh_principal *who,
                                     const char *purpose, const char *trace_id, lh_error *err);
void lh_access_audit_free(lh_access_audit *a);

/* What lh_query_opts.sink should be for this context: lh_access_sink, or NULL when there
 * is no audit chain (the engine then refuses row-level reads of subject relations by
 * audited callers with 503 audit_unavailable: no silent access). */
lh_subject_sink lh_access_audit_sink(const lh_access_audit *a);

/* The subject sink (ctx: an lh_access_audit): one lh_audit_append_batch of one row per key
 * (candidate_id = the key, result "success", fields_accessed = fields, the accessor);
 * returns when the rows are durable. Any failure is LH_EIO kind "audit_write_failed"
 * (the query then fails: 500). NULL keys are skipped. */
int lh_access_sink(void *ctx, const char *const *keys, size_t n_keys, const char *const *fields,
                   size_t n_fields, lh_error *err);

/* After a query started successfully: for kind AGGREGATE or UNATTRIBUTED, one journal event
 * LH_ACCESS_ACTION (actor: the key; target: the datasets, comma-separated; details:
 * {datasets, kind, role, profile?, model?, purpose, trace_id, fingerprint, reason?}).
 * Nothing for other kinds. LH_EIO kind "audit_write_failed" when the event could not be
 * appended: the read must then fail before any byte is sent. */
int lh_access_record(lh_access_audit *a, const lh_subject_access *acc, lh_error *err);

/* After a query was refused with denial: for an agent refused with LH_EFORBIDDEN (no key
 * selected, a relation outside its profile or grants), one journal event
 * LH_ACCESS_DENIED_ACTION (details as above with the denial's kind and message, and the
 * fingerprint of sql). Nothing otherwise. Returns 0 or the journal's error; the caller
 * still answers the denial. */
int lh_access_record_denied(lh_access_audit *a, const char *sql, const lh_error *denial,
                            lh_error *err);

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
 *                          chain through lh_subjects_root_listener; read-only for clients)
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

/* Connects the store to the audit chain (audit may be NULL: no chain): a manifest created
 * later starts with the subject's current chain tip (rows may be logged before a manifest
 * exists), and the store registers lh_subjects_root_listener with the audit, so every
 * append's new tip is mirrored into the manifest. Call once at start, before appends. */
void lh_subjects_attach_audit(lh_subjects *s, lh_audit *audit);
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
/* The audit chain's hook (an lh_audit_root_listener; ctx is the lh_subjects): records the
 * subject's new chain root and returns at once; a flusher thread writes the newest roots
 * into the manifests' audit_log_chain_root in batches (one durability barrier each), so
 * the mirror never adds fsyncs to an append. A subject without a manifest is skipped.
 * The manifest may lag the log (verification tolerates it: manifest_lag). */
int lh_subjects_root_listener(void *ctx, const char *candidate_id, const char *root, lh_error *err);
/* Waits until every root recorded so far is written (tests, shutdown). LH_EIO when a
 * batch failed meanwhile (it is retried every second). */
int lh_subjects_flush_roots(lh_subjects *s, lh_error *err);

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

/* token_file: the configured path, or NULL (copied). subjects, cat and audit (NULL: the
 * server has no audit key; responses then say the chain could not be read) are borrowed
 * and must outlive it. Caller frees with lh_legal_close. */
lh_legal *lh_legal_open(lh_subjects *subjects, lh_catalog *cat, lh_audit *audit,
                        const char *token_file);
void lh_legal_close(lh_legal *lg);

/* May this caller use the legal endpoints? who: the bearer key's principal or NULL;
 * presented: the X-Lakehouse-Legal-Token header or NULL. A legal or admin key: yes. Else
 * the token file is read: missing, empty or under 32 bytes → LH_EUNAVAILABLE naming the
 * reason; then the header: missing or wrong → LH_EUNAUTH; another role without a token →
 * LH_EFORBIDDEN. The token is compared in constant time and appears in no message. */
int lh_legal_authorize(lh_legal *lg, const char *presented, const lh_principal *who, lh_error *err);

/* subject_audit_response.v1 of one subject: {schema, response: {...}, signature,
 * inclusion_proof} (docs/AUDIT.md; both null without a signer / log). from/to: RFC 3339 bounds of
 * the rows returned (inclusive; NULL: open); the chain is verified over the whole log whatever the
 * window. LH_ENOTFOUND when the subject has neither a manifest nor a log. Caller decrefs. */
json_t *lh_legal_subject_response(lh_legal *lg, const char *candidate_id, const char *from,
                                  const char *to, lh_error *err);
/* GET /audit/health: what the legal endpoint relies on. Caller decrefs. */
json_t *lh_legal_health(lh_legal *lg);

/* ================================================================ biometric upload (biometric.c)
 *
 * POST /biometric/subject/{id}/photo and GET /biometric/health (docs/AUDIT.md "Biometric
 * upload"). A photo is stored outside the data lake under the root named by
 * LH_BIOMETRIC_STORAGE_ROOT as <subject key>/<ts>_<uuid8>.<jpg|png>, folder 0700 and file
 * 0600 from creation; the subject manifest's biometric_collection names it and an audit
 * row (accessor kind "biometric_collection", purpose "photo_upload") records it. All or
 * nothing: a refused or failed upload leaves no file, the manifest as it was and no row.
 *
 * An upload is three calls, so a refusal comes before the body is read: lh_biometric_begin
 * (every check the request alone allows: subject, status, consent, media type, declared
 * size; opens the partial file), lh_biometric_write per piece of the body (size cap and
 * magic bytes checked as the bytes arrive), lh_biometric_commit (checks again under the
 * subject's lock, then file → manifest → audit row). lh_biometric_upload_free removes
 * whatever a refused or failed upload wrote. */
typedef struct lh_biometric lh_biometric;
typedef struct lh_biometric_upload lh_biometric_upload;

#define LH_BIOMETRIC_MAX_BYTES (10 * 1024 * 1024) /* 10 MiB per photo */
#define LH_BIOMETRIC_PURPOSE "photo_upload"
#define LH_BIOMETRIC_ACCESSOR_KIND "biometric_collection"

/* root: the configured folder, or NULL/"" (then every call answers LH_EUNAVAILABLE
 * naming LH_BIOMETRIC_STORAGE_ROOT). A root must lie outside the data folder and every
 * bucket root of storage (neither inside nor around one, checked before anything is
 * created), is created 0700 when missing and must not be open to group or others:
 * LH_EINVAL otherwise, and the server does not start. Buckets added later are not
 * checked against it. Partial files a crash left (".*.part") are
 * removed. subjects and audit (NULL: no audit key, uploads answer 503) are borrowed and
 * must outlive it. Caller frees with lh_biometric_close. */
lh_biometric *lh_biometric_open(const char *root, lh_storage *storage, lh_subjects *subjects,
                                lh_audit *audit, lh_error *err);
void lh_biometric_close(lh_biometric *b);

/* The file extension ("jpg" or "png", static) of a Content-Type: "image/jpeg" or
 * "image/png", case-insensitive, parameters (";...") and surrounding blanks ignored.
 * LH_EUNSUPPORTED (kind unsupported_media_type) otherwise, NULL included. */
int lh_biometric_media_type(const char *content_type, const char **ext, lh_error *err);

/* Starts an upload: LH_EUNAVAILABLE (no root, root unusable, no audit chain),
 * LH_EUNSUPPORTED (media type), LH_ETOOLARGE (content_length over the cap; -1: unknown),
 * LH_EINVAL (bad id; a trace_id that is not UTF-8 of at most 4096 bytes), LH_ENOTFOUND (no
 * such subject), LH_EFORBIDDEN (the subject is
 * Withdrawn, Erased or RetentionExpired, or its biometric consent is not Given: the message
 * names the current status), LH_EIO. Creates the subject's folder (0700) and the partial
 * file (O_EXCL, 0600). Caller frees with lh_biometric_upload_free. */
lh_biometric_upload *lh_biometric_begin(lh_biometric *b, const char *candidate_id,
                                        const char *content_type, int64_t content_length,
                                        const char *daemon, const char *trace_id, lh_error *err);
/* Appends body bytes. LH_ETOOLARGE past LH_BIOMETRIC_MAX_BYTES, LH_EUNSUPPORTED (kind
 * photo_type_mismatch) once the first bytes are not the declared type's magic (JPEG FF D8
 * FF, PNG 89 50 4E 47 0D 0A 1A 0A), LH_EIO; after an error the partial file is already
 * gone and every later call fails. */
int lh_biometric_write(lh_biometric_upload *up, const void *data, size_t len, lh_error *err);
/* Removes the partial file now (a refused request; also done by free). Idempotent. */
void lh_biometric_discard(lh_biometric_upload *up);
/* Commits a finished upload: re-checks the subject under its lock, renames the photo to
 * its final name (fsync of file and folder), writes the manifest's biometric_collection
 * {data_path, template_hash, collected_at, consent_version_hash, classifications,
 * content_type, bytes}, appends the audit row (daemon: who uploaded, NULL for the legal
 * token; trace_id: NULL or X-Lakehouse-Trace-Id; both given to begin) and removes a photo
 * it supersedes. A manifest write that fails removes the photo;
 * an audit append that fails removes the photo, restores the manifest and returns LH_EIO
 * kind audit_write_failed. Returns {candidate_id, biometric_collection, audit_row_hmac,
 * superseded} (caller decrefs) or NULL with err. Call once. */
json_t *lh_biometric_commit(lh_biometric_upload *up, lh_error *err);
/* Removes the partial file unless committed and frees. Accepts NULL. */
void lh_biometric_upload_free(lh_biometric_upload *up);
/* GET /biometric/health: {schema "biometric_health.v1", status ok|unavailable,
 * storage_root {configured, usable, problem}, audit_chain {configured}, limits,
 * counts {subject_folders, photos, bytes, partial}}. Caller decrefs. */
json_t *lh_biometric_health(lh_biometric *b);

/* ================================================================ retention sweep (retention.c)
 *
 * `lakehouse retention-sweep`: an offline read of every subject manifest of a data folder
 * against both retention clocks (docs/AUDIT.md "Retention sweep"). It never changes a
 * manifest; the report may be written as _catalog/subjects/_retention_sweep_<date>.jsonl,
 * a name no listing of manifests or audit logs takes for its own ('_'-prefixed). */
#define LH_RETENTION_SCHEMA "retention_sweep.v1"
/* BIPA: biometric data is kept at most this many years after the last interaction. */
#define LH_BIPA_MAX_YEARS 3

typedef struct lh_retention_opts {
    const char *data_dir;     /* required */
    const char *as_of;        /* RFC 3339 instant; NULL: the last second of today (UTC) */
    const char *storage_root; /* NULL: photo files are not looked for */
} lh_retention_opts;

/* Reads every manifest (key order) and returns {summary, subjects: [...]}, each member
 * one line of the report (docs/AUDIT.md has the schema). LH_EINVAL for a bad as_of,
 * LH_EIO when the manifests cannot be listed. Caller decrefs. */
json_t *lh_retention_sweep(const lh_retention_opts *o, lh_error *err);
/* The report as JSON lines (summary first, then one line per subject, each compact with
 * sorted keys: the same findings give the same bytes). Caller frees. */
char *lh_retention_render(const json_t *report);
/* Writes the report atomically (0600) as <data>/_catalog/subjects/_retention_sweep_
 * <summary.date>.jsonl; *path_out (may be NULL) gets its path, caller frees. */
int lh_retention_write(const char *data_dir, const json_t *report, char **path_out, lh_error *err);
/* Issue 12: the verifiable log and the signing key (both borrowed; either may be NULL: no
 * audit chain, no signing key). With both, responses are signed and carry the subject's
 * latest leaf with its inclusion proof against a fresh signed checkpoint; without a
 * signer they stay unsigned (signature null) and /audit/checkpoint, /audit/consistency and
 * /audit/pubkey answer 503. Call once at start. */
void lh_legal_attach_log(lh_legal *lg, lh_merkle *merkle, lh_signer *signer);
/* GET /audit/checkpoint: {checkpoint: the signed note, origin, tree_size, root_hash}
 * over every durable leaf. LH_EUNAVAILABLE (kind audit_signing_unconfigured) without a
 * signer or a log. Caller decrefs. */
json_t *lh_legal_checkpoint(lh_legal *lg, lh_error *err);
/* GET /audit/consistency?from=N&to=M: {from, to, hashes: [base64]}, the RFC 6962
 * consistency proof between the trees of N and M leaves. from/to as the query gives them:
 * LH_EINVAL unless both are decimal with 1 <= N <= M; LH_ENOTFOUND when M is beyond the
 * durable log. Caller decrefs. */
json_t *lh_legal_consistency(lh_legal *lg, const char *from, const char *to, lh_error *err);
/* GET /audit/pubkey (public): {algorithm, signer, key_id, public_key (base64),
 * verifier_key (C2SP)}. LH_EUNAVAILABLE without a signer. Caller decrefs. */
json_t *lh_legal_pubkey(lh_legal *lg, lh_error *err);

#endif
