/*
 * compliance_internal.h: what the files of src/compliance/ share and nothing else
 * includes. The audit handle's layout and the journal's calls (audit_wal.c) used by the
 * chain code (audit.c).
 *
 * Lock order inside the audit module (never the reverse):
 *   gate (the checkpoint gate: shared by appenders, exclusive for a checkpoint)
 *     → subject stripes, in ascending index order
 *       → wal_mu (the journal's offsets and the group-commit leader flag)
 *       → lw_mu (the log writer's queue; the writer thread takes no other audit lock
 *         while holding it, and wal_mu only with lw_mu released).
 * The root listener runs after every one of them is released.
 */
#ifndef LH_COMPLIANCE_INTERNAL_H
#define LH_COMPLIANCE_INTERNAL_H

#include "compliance.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>

#define AUDIT_STRIPES 256

/* A cached chain tip: the row_hmac of a subject's last row (in the journal, maybe not
 * yet durable nor in the log; see audit.c). */
typedef struct audit_tip {
    struct audit_tip *next;
    uint64_t hash;
    char *key; /* sanitised subject key */
    char hmac[LH_AUDIT_HMAC_HEX];
} audit_tip;

/* One row line queued for the log writer: the subject key and the line (with its
 * newline), both in data[] (key NUL-terminated, then the line). */
typedef struct audit_line {
    struct audit_line *next;
    size_t key_len, len;
    char data[];
} audit_line;

/* A log the writer appended to since the last checkpoint. */
typedef struct audit_wlog {
    char *key;  /* sanitised subject key; NULL: a free slot */
    int fd;     /* an O_APPEND descriptor of the log, or -1 */
    off_t size; /* the log's size after the writer's last append (while fd >= 0) */
} audit_wlog;

/* Appends to the subjects of one stripe are serialised by its mutex, which also guards
 * its part of the tip cache. */
typedef struct audit_stripe {
    pthread_mutex_t mu;
    audit_tip **buckets;
    size_t nbuckets, count;
    /* Hashes of the subjects of this stripe that may have a log (open addressing, 0
     * free): those listed at open and every one given a tip since. A subject not in it
     * has no log, so its first append needs no open() to learn that (audit.c, tip_get). */
    uint64_t *logged;
    size_t logged_cap, logged_n;
} audit_stripe;

struct lh_audit {
    char *subjects_dir; /* <data>/_catalog/subjects */
    char *wal_dir;      /* <data>/_catalog/audit_wal */
    unsigned char key[LH_AUDIT_KEY_MAX];
    size_t key_len;
    crypto_auth_hmacsha256_state keyed; /* HMAC state after the key (derived key material) */
    bool readonly;
    int lock_fd; /* flock on wal_dir/LOCK: one writing process */

    /* The checkpoint gate: appenders are counted in; a checkpoint waits until none is
     * inside and keeps new ones out (so it sees every journal record's log line). */
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cv;
    int gate_active;
    bool gate_closed;

    audit_stripe stripes[AUDIT_STRIPES];

    /* The journal (audit_wal.c). */
    pthread_mutex_t wal_mu;
    pthread_cond_t wal_cv;    /* a sync ended (or the journal changed) */
    pthread_cond_t gather_cv; /* the announced appenders have all written (monotonic) */
    int wal_fd;               /* current journal file, -1 when none (poisoned at open) */
    uint64_t wal_seq;         /* its number */
    uint64_t written;         /* bytes written to it */
    uint64_t synced;          /* bytes known durable */
    uint64_t zeroed;          /* the file holds written zeros from `written` up to here */
    int writing;              /* appenders between the gate and their journal write */
    bool zero_failed;         /* the last zero-fill failed (logged once until one succeeds) */
    bool syncing;             /* a leader is in fdatasync */
    bool gathering;           /* the leader waits on gather_cv for announced appenders */
    bool poisoned;            /* a sync failed: state unknown until a checkpoint replays */
    atomic_bool ckpt_running;
    _Atomic uint64_t wal_max; /* checkpoint past this many journal bytes */

    /* The log writer (audit.c): rows written to the journal are queued here, in journal
     * order, and a background thread appends them to the subjects' logs. lw_queued and
     * lw_done count lines; a reader of a log waits until lw_done reaches lw_queued as
     * it was when it started (audit_logs_settle). */
    pthread_mutex_t lw_mu;
    pthread_cond_t lw_cv;      /* work queued, or stop */
    pthread_cond_t lw_done_cv; /* lw_done moved */
    audit_line *lw_head, **lw_tail;
    uint64_t lw_queued, lw_done;
    bool lw_failed; /* a log write failed: lines are dropped until a checkpoint replays */
    /* The logs the writer appended to since the last checkpoint (open addressing on the
     * key's hash), at most AUDIT_LOG_FDS of them with an open descriptor: a clean
     * checkpoint syncs exactly these. Only the writer thread touches them while the gate
     * is open; a checkpoint or a close, once the writer has settled with the gate closed
     * (or has stopped). */
    audit_wlog *lw_logs;
    size_t lw_logs_cap, lw_logs_n, lw_fds;
    bool lw_stop;
    bool lw_hold; /* tests: the writer takes no batch (audit_log_writer_hold) */
    bool lw_running;
    pthread_t lw_thread;

    lh_audit_root_listener listener;
    void *listener_ctx;
    lh_merkle *merkle; /* the verifiable log (merkle.c) fed after each durable batch, or NULL */

    atomic_uint_fast64_t stat_rows, stat_syncs, stat_checkpoints;
};

/* Path of a subject's log for a sanitised key. Caller frees. */
char *audit_log_path(const lh_audit *a, const char *key);
/* Reads the row_hmac of the last complete row of the log at path into hmac
 * ("GENESIS" for a missing or empty log). A torn last line (no newline) is skipped.
 * LH_EIO when the log cannot be read or its last complete row is not a row. */
int audit_log_last_hmac(const char *path, char *hmac, lh_error *err);
/* Appends one line (with its newline) to a subject's log, creating it 0600. A failed
 * write is cut back off the file; LH_EIO when even that fails (*torn set). */
int audit_log_append(const char *path, const char *line, size_t len, bool *torn, lh_error *err);

/* Returns once every line queued for the log writer when it was called is in its log
 * (or dropped after a failed log write, which poisoned the journal). Call before reading
 * a subject's log; never with lw_mu held. */
void audit_logs_settle(lh_audit *a);
/* Tests only: holding first settles, then the writer takes no batch, so lines queued
 * from then on stay queued (a settle, a checkpoint or a close waits for the release). */
void audit_log_writer_hold(lh_audit *a, bool hold);

/* Journal (audit_wal.c). Writes the records of buf (already framed) at the journal's
 * end; *end gets the offset that must be durable for them. Caller holds the stripes of
 * the rows' subjects. LH_EIO when the write failed (cut back off; nothing acknowledged)
 * or the journal is poisoned. */
int audit_wal_write(lh_audit *a, const void *buf, size_t len, uint64_t *end, lh_error *err);
/* An appender announces its coming audit_wal_write (it has entered the gate and is
 * signing rows), so a group-commit leader may wait a moment for its rows; one that gives
 * up before writing withdraws (audit_wal_write itself ends the announcement). */
void audit_wal_announce(lh_audit *a);
void audit_wal_withdraw(lh_audit *a);
/* Frames one row line as a journal record into buf. */
void audit_wal_frame(lh_buf *buf, const char *line, size_t len);
/* Returns once offset end of the journal is durable: one fdatasync shared by every
 * waiter (the first one syncs for all that wrote before it started). */
int audit_wal_wait_durable(lh_audit *a, uint64_t end, lh_error *err);
/* Replays every journal file into the per-subject logs (idempotently), fsyncs the logs
 * it touched and the folder, starts a new journal and removes the old ones. Caller has
 * the gate closed (or is lh_audit_open). */
int audit_wal_recover(lh_audit *a, lh_error *err);
/* A clean checkpoint's end (every journal row's line is in its log, and the logs are
 * synced): starts a new journal and removes the old ones. Caller has the gate closed.
 * On an error the current journal stays in use. */
int audit_wal_rotate(lh_audit *a, lh_error *err);
/* One subject whose tip a durable batch moved (merkle.c's hook): the tip before the
 * batch, the tip after it, and the batch's rows for that subject. Strings borrowed. */
typedef struct audit_moved {
    const char *candidate_id;
    const char *old_tip;
    const char *new_tip;
    int64_t rows;
} audit_moved;
/* Adds a leaf per moved subject to the Merkle log (merkle.c). Called by append after the
 * batch is durable and every audit lock is released; failures are logged, never the
 * append's (the row is durable; the log catches up at the next batch or open). */
void audit_merkle_note(lh_merkle *m, const audit_moved *moved, size_t n);

/* The verifiable log (merkle.c: the tree; merkle_log.c: its file, subject index and
 * hook). mu guards everything but the fdatasync, which sync_mu serialises. */
#define MERKLE_LEVELS 64
struct subject_leaf;
struct parked_batch;
struct leaf_undo;
struct lh_merkle {
    pthread_mutex_t mu;
    unsigned char *levels[MERKLE_LEVELS]; /* levels[k][i]: the subtree of 2^k leaves at i·2^k */
    size_t cap[MERKLE_LEVELS];            /* hashes allocated per level */
    uint64_t size;                        /* leaves */

    /* persistence (NULL dir: memory only) */
    char *dir, *path;
    int fd;
    uint64_t written_leaves; /* leaves whose line was written */
    uint64_t synced_leaves;  /* leaves known durable */
    pthread_mutex_t sync_mu; /* one fdatasync at a time */

    struct subject_leaf **buckets; /* subject → latest leaf */
    size_t nbuckets, nsubjects;
    lh_audit *audit; /* attached chain, or NULL */
    struct parked_batch *parked;
    size_t nparked;
    /* Leaves added under mu but not yet written (the leaves past written_leaves, with a
     * file): their lines, written in one write by leaves_write before mu is released, and
     * each touched subject's latest leaf before them, to take them back out of memory
     * when that write fails. */
    lh_buf lines;
    struct leaf_undo *undo;
    size_t nundo, undo_cap;
};
/* merkle.c: a zeroed log with its mutexes (fd -1); merkle_free releases the tree and it. */
lh_merkle *merkle_alloc(void);
void merkle_free(lh_merkle *m);
/* Appends a leaf hash to the tree. Caller holds mu (or owns m alone). */
void merkle_tree_append(lh_merkle *m, const unsigned char leaf[LH_MERKLE_HASH]);

/* Bytes in the current journal file. */
uint64_t audit_wal_size(lh_audit *a);
/* True when the journal cannot take appends (a failed sync, or no journal file). */
bool audit_wal_poisoned(lh_audit *a);

#endif
