/*
 * audit_wal.c: the audit chain's write-ahead journal and its group commit (issue 11
 * item 4; format in docs/AUDIT.md, "Journal").
 *
 * Files: <data>/_catalog/audit_wal/<16 hex digits>.log, one current file (the highest
 * number) and, after a failed clean-up, older ones still to replay. A record is
 *   u32 little-endian payload length | 8-byte BLAKE2b of the payload | payload
 * and the payload is one stored row line (the row's RFC 8785 form with row_hmac, no
 * newline). A record whose length or checksum does not hold is a torn tail: it and
 * everything after it in that file were never acknowledged.
 *
 * Invariants:
 *   - Records are written under wal_mu at `written`; a write that fails is cut back off
 *     (ftruncate), so the file is always whole records. A row is acknowledged only when
 *     `synced` (the offset the last successful fdatasync covered) is past its record.
 *   - Group commit: a waiter whose record is not yet durable either becomes the leader
 *     (nobody is syncing: it syncs up to the current `written`, for every record written
 *     so far, with wal_mu released) or waits for the leader's broadcast. One fdatasync
 *     thus serves every appender that wrote before it started. Before syncing, a leader
 *     waits up to WAL_GATHER_US for the appenders already signing their rows (`writing`,
 *     announced after the gate), so their rows ride on this sync instead of the next.
 *   - Preallocation: the file is written with zeros ahead of `written` (up to `zeroed`,
 *     in WAL_ZERO_CHUNK steps), so a record overwrites bytes the file already has and the
 *     fdatasync that makes it durable writes data only, not the inode's new size. A zero
 *     length never frames a record (a row line is never empty), so replay stops at the
 *     zeros as at a torn tail; the zeros after the last record are not reported as one.
 *   - A failed fdatasync poisons the journal: after it Linux may have dropped the dirty
 *     pages, so nothing written since the last good sync may be acknowledged. The next
 *     append first checkpoints (replays the journal into the logs, fsyncs them, starts
 *     a new journal), which restores a known state.
 *   - Replay is idempotent: rows carry their prev_chain_hash and row_hmac, so a row is
 *     appended to its subject's log only after the log's last row (its tip) and only
 *     when it is not in the log yet; a log is fsynced before the journal that holds its
 *     rows is removed.
 */
#include "compliance_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WAL_HDR 12
#define WAL_SUM 8
/* Zeros written ahead of the records at a time (one slower fdatasync per chunk). */
#define WAL_ZERO_CHUNK ((uint64_t)1 << 20)
/* How long a group-commit leader waits for appenders already signing their rows: below
 * one fdatasync of this machine's disk (~150-250 us), so a waiter never loses more than a
 * sync would have cost it. */
#define WAL_GATHER_US 100
/* A row line is far below this (fields and accessor strings are capped in audit.c). */
#define WAL_RECORD_MAX (64u << 20)

void audit_wal_frame(lh_buf *buf, const char *line, size_t len)
{
    unsigned char hdr[WAL_HDR];
    uint32_t n = (uint32_t)len;
    for (int i = 0; i < 4; i++)
        hdr[i] = (unsigned char)(n >> (8 * i));
    crypto_generichash(hdr + 4, WAL_SUM, (const unsigned char *)line, len, NULL, 0);
    lh_buf_append(buf, hdr, sizeof(hdr));
    lh_buf_append(buf, line, len);
}

bool audit_wal_poisoned(lh_audit *a)
{
    pthread_mutex_lock(&a->wal_mu);
    bool p = a->poisoned || a->wal_fd < 0;
    pthread_mutex_unlock(&a->wal_mu);
    return p;
}

uint64_t audit_wal_size(lh_audit *a)
{
    pthread_mutex_lock(&a->wal_mu);
    uint64_t n = a->written;
    pthread_mutex_unlock(&a->wal_mu);
    return n;
}

void audit_wal_announce(lh_audit *a)
{
    pthread_mutex_lock(&a->wal_mu);
    a->writing++;
    pthread_mutex_unlock(&a->wal_mu);
}

/* Ends an announcement. Under wal_mu. */
static void writing_done(lh_audit *a)
{
    if (--a->writing == 0 && a->gathering)
        pthread_cond_signal(&a->gather_cv); /* only the leader: followers sleep on */
}

void audit_wal_withdraw(lh_audit *a)
{
    pthread_mutex_lock(&a->wal_mu);
    writing_done(a);
    pthread_mutex_unlock(&a->wal_mu);
}

/* Writes zeros ahead so that bytes [written, need) exist as zeros. A failure only costs
 * the preallocation (the record is then written past the file's end, as without it); it
 * is logged once until a zero-fill succeeds again. Under wal_mu. */
static void zero_ahead(lh_audit *a, uint64_t need)
{
    uint64_t from = a->zeroed > a->written ? a->zeroed : a->written;
    uint64_t to = (need / WAL_ZERO_CHUNK + 1) * WAL_ZERO_CHUNK, done;
    int rc = lh_fs_zero_fill(a->wal_fd, from, to, &done);
    a->zeroed = done;
    if (rc == 0) {
        a->zero_failed = false;
        return;
    }
    if (!a->zero_failed)
        lh_log(LH_LOG_WARN, "audit.journal_zero_fill_failed", "{s:s}", "message", strerror(errno));
    a->zero_failed = true;
}

int audit_wal_write(lh_audit *a, const void *buf, size_t len, uint64_t *end, lh_error *err)
{
    int rc = 0;
    pthread_mutex_lock(&a->wal_mu);
    writing_done(a);
    if (a->poisoned || a->wal_fd < 0) {
        rc = lh_error_setk(err, LH_EIO, "audit_write_failed",
                           "the audit journal failed earlier and is being recovered; retry");
        goto out;
    }
    if (a->written + len > a->zeroed)
        zero_ahead(a, a->written + len);
    if (lh_fs_write_all(a->wal_fd, buf, len) != 0) {
        int e = errno;
        rc = lh_error_setk(err, LH_EIO, "audit_write_failed", "cannot write the audit journal: %s",
                           strerror(e));
        /* Cut the partial record off so the file stays whole records; if even that
         * fails the offset is unknown: poison. */
        if (ftruncate(a->wal_fd, (off_t)a->written) != 0 ||
            lseek(a->wal_fd, (off_t)a->written, SEEK_SET) < 0)
            a->poisoned = true;
        a->zeroed = a->written; /* the cut took the zeros too */
        goto out;
    }
    a->written += len;
    *end = a->written;
out:
    pthread_mutex_unlock(&a->wal_mu);
    return rc;
}

/* The leader's wait, at most WAL_GATHER_US, for the announced appenders to write their
 * records (writing_done wakes it). Under wal_mu, which the wait releases. */
static void gather(lh_audit *a)
{
    if (a->writing == 0)
        return;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += WAL_GATHER_US * 1000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    a->gathering = true;
    while (a->writing > 0 && pthread_cond_timedwait(&a->gather_cv, &a->wal_mu, &until) == 0)
        ;
    a->gathering = false;
}

int audit_wal_wait_durable(lh_audit *a, uint64_t end, lh_error *err)
{
    pthread_mutex_lock(&a->wal_mu);
    uint64_t seq = a->wal_seq;
    while (a->synced < end && !a->poisoned && a->wal_seq == seq) {
        if (a->syncing) {
            pthread_cond_wait(&a->wal_cv, &a->wal_mu);
            continue;
        }
        /* Leader: sync everything written so far, for every waiter; first let the
         * appenders already signing their rows write them (bounded). */
        a->syncing = true;
        gather(a);
        if (a->wal_seq != seq || a->poisoned) {
            a->syncing = false;
            pthread_cond_broadcast(&a->wal_cv);
            continue;
        }
        uint64_t target = a->written;
        int fd = a->wal_fd;
        pthread_mutex_unlock(&a->wal_mu);
        int rc = lh_sys_fdatasync(fd);
        int e = errno;
        pthread_mutex_lock(&a->wal_mu);
        a->syncing = false;
        if (rc != 0) {
            a->poisoned = true;
            lh_log(LH_LOG_ERROR, "audit.sync_failed", "{s:s}", "message", strerror(e));
        } else {
            if (target > a->synced)
                a->synced = target;
            atomic_fetch_add(&a->stat_syncs, 1);
        }
        pthread_cond_broadcast(&a->wal_cv);
    }
    int rc = 0;
    if (a->synced < end || a->wal_seq != seq)
        rc = lh_error_setk(err, LH_EIO, "audit_write_failed",
                           "the audit journal could not be made durable; the access was not "
                           "recorded");
    pthread_mutex_unlock(&a->wal_mu);
    return rc;
}

/* ---------------------------------------------------------------- replay */

typedef struct wal_row {
    char *key;
    size_t order; /* position in the journal(s): replay keeps it within a subject */
    char *line;
    size_t len;
    char hmac[LH_AUDIT_HMAC_HEX];
    char prev[LH_AUDIT_HMAC_HEX];
} wal_row;

typedef struct wal_rows {
    wal_row *v;
    size_t n, cap;
} wal_rows;

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static int cmp_row(const void *x, const void *y)
{
    const wal_row *a = x, *b = y;
    int c = strcmp(a->key, b->key);
    return c ? c : (a->order < b->order ? -1 : a->order > b->order);
}

/* Reads the whole records of one journal file into rows. */
static int read_journal(const char *path, wal_rows *rows, lh_error *err)
{
    char *data = NULL;
    size_t len = 0;
    int rc = lh_fs_read_all(path, (size_t)1 << 40, &data, &len, err);
    if (rc)
        return rc;
    size_t pos = 0;
    while (len - pos >= WAL_HDR) {
        const unsigned char *h = (const unsigned char *)data + pos;
        uint32_t n =
            (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
        unsigned char sum[WAL_SUM];
        if (n > WAL_RECORD_MAX || n > len - pos - WAL_HDR)
            break;
        crypto_generichash(sum, WAL_SUM, h + WAL_HDR, n, NULL, 0);
        if (memcmp(sum, h + 4, WAL_SUM) != 0)
            break;
        json_t *row = json_loadb(data + pos + WAL_HDR, n, 0, NULL);
        const char *id = lh_json_str(row, "candidate_id"), *hm = lh_json_str(row, "row_hmac");
        const char *pv = lh_json_str(row, "prev_chain_hash");
        char key[LH_SUBJECT_KEY_MAX];
        if (id && hm && pv && strlen(hm) < LH_AUDIT_HMAC_HEX && strlen(pv) < LH_AUDIT_HMAC_HEX &&
            lh_subject_key(id, key, sizeof(key), NULL) == 0) {
            if (rows->n == rows->cap) {
                rows->cap = rows->cap ? rows->cap * 2 : 256;
                rows->v = lh_xrealloc(rows->v, rows->cap * sizeof(*rows->v));
            }
            wal_row *r = &rows->v[rows->n];
            r->key = lh_xstrdup(key);
            r->order = rows->n++;
            r->len = n;
            r->line = lh_xmalloc(n + 1);
            memcpy(r->line, data + pos + WAL_HDR, n);
            r->line[n] = '\n';
            snprintf(r->hmac, sizeof(r->hmac), "%s", hm);
            snprintf(r->prev, sizeof(r->prev), "%s", pv);
        } else {
            lh_log(LH_LOG_ERROR, "audit.journal_bad_record", "{s:I}", "offset", (json_int_t)pos);
        }
        json_decref(row);
        pos += WAL_HDR + n;
    }
    size_t tail = len; /* the zeros of the preallocation after the records are no tail */
    while (tail > pos && data[tail - 1] == 0)
        tail--;
    if (tail != pos)
        lh_log(LH_LOG_WARN, "audit.journal_torn_tail", "{s:I,s:I}", "offset", (json_int_t)pos,
               "bytes", (json_int_t)(tail - pos));
    free(data);
    return 0;
}

/* Cuts a torn last line (no newline) off a log, so appends start on a line boundary. */
static int cut_torn_tail(const char *path, lh_error *err)
{
    int fd = lh_sys_open(path, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0)
        return errno == ENOENT
                   ? 0
                   : lh_error_set(err, LH_EIO, "cannot open an audit log: %s", strerror(errno));
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) != 0)
        goto io;
    off_t end = st.st_size;
    char c[4096];
    while (end > 0) {
        off_t from = end > (off_t)sizeof(c) ? end - (off_t)sizeof(c) : 0;
        ssize_t got = pread(fd, c, (size_t)(end - from), from);
        if (got != end - from)
            goto io;
        ssize_t i = got;
        while (i > 0 && c[i - 1] != '\n')
            i--;
        if (i > 0) {
            end = from + i;
            break;
        }
        end = from;
    }
    if (end != st.st_size) {
        lh_log(LH_LOG_WARN, "audit.log_torn_tail", "{s:I}", "bytes",
               (json_int_t)(st.st_size - end));
        if (ftruncate(fd, end) != 0)
            goto io;
    }
    close(fd);
    return 0;
io:
    rc = lh_error_set(err, LH_EIO, "cannot repair an audit log: %s", strerror(errno));
    close(fd);
    return rc;
}

/* Replays the rows of one subject (r[0..n), journal order) into its log and fsyncs it. */
static int replay_subject(lh_audit *a, wal_row *r, size_t n, size_t *added, lh_error *err)
{
    char *path = audit_log_path(a, r[0].key);
    char tip[LH_AUDIT_HMAC_HEX];
    int rc = cut_torn_tail(path, err);
    if (rc == 0)
        rc = audit_log_last_hmac(path, tip, err);
    if (rc)
        goto out;
    /* Where does the log stand relative to the journal's rows? */
    size_t start = n; /* default: nothing to add (the log already ends past them) */
    if (strcmp(tip, r[0].prev) == 0)
        start = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(tip, r[i].hmac) == 0)
            start = i + 1;
    if (start == n && strcmp(tip, r[n - 1].hmac) != 0 && strcmp(tip, r[0].prev) != 0)
        lh_log(LH_LOG_ERROR, "audit.replay_mismatch", "{s:s,s:i}", "subject_key", r[0].key,
               "journal_rows", (json_int_t)n);
    for (size_t i = start; i < n; i++) {
        bool torn;
        if (i > start && strcmp(r[i].prev, r[i - 1].hmac) != 0)
            break; /* never write a row that does not follow the one before it */
        if ((rc = audit_log_append(path, r[i].line, r[i].len + 1, &torn, err)))
            goto out;
        (*added)++;
    }
    int fd = lh_sys_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        if (errno == ENOENT)
            goto out; /* nothing of it was ever written (see replay_mismatch) */
        rc = lh_error_set(err, LH_EIO, "cannot open an audit log: %s", strerror(errno));
        goto out;
    }
    if (lh_sys_fsync(fd) != 0)
        rc = lh_error_set(err, LH_EIO, "cannot sync an audit log: %s", strerror(errno));
    close(fd);
out:
    free(path);
    return rc;
}

/* The path of journal file seq. Caller frees. */
static char *journal_path(const lh_audit *a, uint64_t seq)
{
    return lh_xasprintf("%s/%016llx.log", a->wal_dir, (unsigned long long)seq);
}

/* The numbers of the journal files in wal_dir, ascending. */
static int journal_list(lh_audit *a, uint64_t **seqs_out, size_t *n_out, lh_error *err)
{
    uint64_t *seqs = NULL;
    size_t nseq = 0, cap = 0;
    DIR *d = opendir(a->wal_dir);
    if (!d)
        return lh_error_set(err, LH_EIO, "cannot list the audit journal: %s", strerror(errno));
    for (struct dirent *de; (de = readdir(d));) {
        char extra;
        unsigned long long s;
        if (strlen(de->d_name) != 20 || sscanf(de->d_name, "%16llx.lo%c", &s, &extra) != 2 ||
            extra != 'g')
            continue;
        if (nseq == cap) {
            cap = cap ? cap * 2 : 8;
            seqs = lh_xrealloc(seqs, cap * sizeof(*seqs));
        }
        seqs[nseq++] = s;
    }
    closedir(d);
    if (nseq)
        qsort(seqs, nseq, sizeof(*seqs), cmp_u64);
    *seqs_out = seqs;
    *n_out = nseq;
    return 0;
}

/* The logs hold every row of the journal files seqs[0..nseq) durably: starts a new
 * journal after them, then drops them (a failure there leaves them for the next replay,
 * which adds nothing). The current journal file, if any, must be among them. */
static int journal_rotate(lh_audit *a, const uint64_t *seqs, size_t nseq, lh_error *err)
{
    uint64_t next = (nseq ? seqs[nseq - 1] : 0) + 1;
    char *np = journal_path(a, next);
    int fd = lh_sys_open(np, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, LH_FILE_MODE);
    free(np);
    if (fd < 0)
        return lh_error_set(err, LH_EIO, "cannot create the audit journal: %s", strerror(errno));
    int rc = lh_fs_fsync_dir(a->wal_dir, err);
    if (rc) {
        close(fd);
        return rc;
    }
    pthread_mutex_lock(&a->wal_mu);
    if (a->wal_fd >= 0)
        close(a->wal_fd);
    a->wal_fd = fd;
    a->wal_seq = next;
    a->written = a->synced = a->zeroed = 0;
    a->zero_failed = false;
    a->poisoned = false;
    pthread_cond_broadcast(&a->wal_cv);
    pthread_mutex_unlock(&a->wal_mu);
    for (size_t i = 0; i < nseq; i++) {
        char *p = journal_path(a, seqs[i]);
        if (lh_sys_unlink(p) != 0)
            lh_log(LH_LOG_WARN, "audit.journal_not_removed", "{s:s}", "message", strerror(errno));
        free(p);
    }
    if (nseq) {
        lh_error e2;
        if (lh_fs_fsync_dir(a->wal_dir, &e2) != 0)
            lh_log(LH_LOG_WARN, "audit.journal_not_removed", "{s:s}", "message", e2.message);
    }
    return 0;
}

int audit_wal_rotate(lh_audit *a, lh_error *err)
{
    uint64_t *seqs = NULL;
    size_t nseq = 0;
    int rc = journal_list(a, &seqs, &nseq, err);
    if (rc == 0)
        rc = journal_rotate(a, seqs, nseq, err);
    free(seqs);
    return rc;
}

int audit_wal_recover(lh_audit *a, lh_error *err)
{
    uint64_t *seqs = NULL;
    size_t nseq = 0;
    wal_rows rows = {0};
    size_t added = 0, subjects = 0;
    int rc = 0;
    pthread_mutex_lock(&a->wal_mu);
    if (a->wal_fd >= 0) {
        close(a->wal_fd);
        a->wal_fd = -1;
    }
    pthread_mutex_unlock(&a->wal_mu);

    if ((rc = journal_list(a, &seqs, &nseq, err)))
        return rc;
    for (size_t i = 0; i < nseq; i++) {
        char *p = journal_path(a, seqs[i]);
        rc = read_journal(p, &rows, err);
        free(p);
        if (rc)
            goto out;
    }
    if (rows.n)
        qsort(rows.v, rows.n, sizeof(*rows.v), cmp_row);
    for (size_t i = 0; i < rows.n;) {
        size_t j = i;
        while (j < rows.n && strcmp(rows.v[j].key, rows.v[i].key) == 0)
            j++;
        if ((rc = replay_subject(a, rows.v + i, j - i, &added, err)))
            goto out;
        subjects++;
        i = j;
    }
    if (rows.n && (rc = lh_fs_fsync_dir(a->subjects_dir, err)))
        goto out;
    /* Rows the logs lacked: a crash (or a failed log write) before the checkpoint. */
    if (added)
        lh_log(LH_LOG_WARN, "audit.replayed", "{s:I,s:I,s:I}", "journal_rows", (json_int_t)rows.n,
               "subjects", (json_int_t)subjects, "rows_added", (json_int_t)added);
    rc = journal_rotate(a, seqs, nseq, err);
out:
    for (size_t i = 0; i < rows.n; i++) {
        free(rows.v[i].key);
        free(rows.v[i].line);
    }
    free(rows.v);
    free(seqs);
    return rc;
}
