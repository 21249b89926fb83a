/*
 * merkle_log.c: the verifiable log of subjects' chain tips (issue 12 item 1; docs/AUDIT.md
 * "Verifiable log"): the tree of merkle.c persisted one leaf per line in
 * <data>/_catalog/audit_merkle/leaves.jsonl, the index subject → latest leaf, and the hook
 * the audit chain calls after each durable batch.
 *
 * Invariants:
 *   - The leaves file is the log: the tree in memory is exactly its complete lines once mu
 *     is released. The leaves a section adds under mu (a durable batch's, a catch-up's)
 *     are written in one write before it releases mu, and all taken back when that
 *     fails (they are caught up later). Lines are
 *     written without a sync; lh_merkle_sync makes them durable before a checkpoint is
 *     signed, so what was signed is never lost and the log never forks.
 *   - A subject's leaves only move forward along its chain: a leaf is added when the new
 *     tip directly follows the latest leaf's tip, or when the log, read back, still holds
 *     the latest leaf's tip at its row and the new tip after it. A log cut or replaced
 *     behind the server's back never gets a leaf that would hide it.
 *   - Lock order: the audit chain's locks are never held when m->mu is taken (the hook
 *     runs after the append released them); mu → nothing else, except the audit's stripe
 *     during catch-up (lh_audit_tip), which never calls back. sync_mu → mu.
 */
#include "compliance_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MERKLE_FILE "leaves.jsonl"
/* Batches waiting for the batch they follow (see subject_advance), in all and per
 * subject: more in-flight batches of one subject than appending threads means the batch
 * they wait for will not come (its rows reached the log by a journal replay, unacknowledged). */
#define MERKLE_PARK_MAX 1024
#define MERKLE_PARK_SUBJECT 64

/* The latest leaf of one subject. */
typedef struct subject_leaf {
    struct subject_leaf *next;
    char *id;
    uint64_t index;
    int64_t rows;
    char tip[LH_AUDIT_HMAC_HEX];
} subject_leaf;

/* A durable batch that does not follow its subject's latest leaf (yet). */
typedef struct parked_batch {
    struct parked_batch *next;
    char *id;
    char old_tip[LH_AUDIT_HMAC_HEX], new_tip[LH_AUDIT_HMAC_HEX];
    int64_t rows;
} parked_batch;

/* ---------------------------------------------------------------- subject index */

static uint64_t id_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static subject_leaf *index_find(lh_merkle *m, const char *id)
{
    if (!m->nbuckets)
        return NULL;
    for (subject_leaf *e = m->buckets[id_hash(id) % m->nbuckets]; e; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

static void index_set(lh_merkle *m, const char *id, uint64_t index, int64_t rows, const char *tip)
{
    subject_leaf *e = index_find(m, id);
    if (!e) {
        if (m->nsubjects >= m->nbuckets) {
            size_t nb = m->nbuckets ? m->nbuckets * 2 : 64;
            subject_leaf **b = lh_xcalloc(nb, sizeof(*b));
            for (size_t i = 0; i < m->nbuckets; i++)
                for (subject_leaf *x = m->buckets[i], *next; x; x = next) {
                    next = x->next;
                    size_t j = id_hash(x->id) % nb;
                    x->next = b[j];
                    b[j] = x;
                }
            free(m->buckets);
            m->buckets = b;
            m->nbuckets = nb;
        }
        e = lh_xcalloc(1, sizeof(*e));
        e->id = lh_xstrdup(id);
        size_t j = id_hash(id) % m->nbuckets;
        e->next = m->buckets[j];
        m->buckets[j] = e;
        m->nsubjects++;
    }
    e->index = index;
    e->rows = rows;
    size_t n = strnlen(tip, sizeof(e->tip) - 1);
    memcpy(e->tip, tip, n);
    e->tip[n] = '\0';
}

/* Drops id's entry (a subject whose only leaf was taken back). */
static void index_remove(lh_merkle *m, const char *id)
{
    if (!m->nbuckets)
        return;
    for (subject_leaf **at = &m->buckets[id_hash(id) % m->nbuckets]; *at; at = &(*at)->next)
        if (strcmp((*at)->id, id) == 0) {
            subject_leaf *e = *at;
            *at = e->next;
            free(e->id);
            free(e);
            m->nsubjects--;
            return;
        }
}

/* A subject's latest leaf before the unwritten leaves (lh_merkle.undo). */
typedef struct leaf_undo {
    char *id;
    bool existed;
    uint64_t index;
    int64_t rows;
    char tip[LH_AUDIT_HMAC_HEX];
} leaf_undo;

/* Notes id's latest leaf before unwritten leaves change it. The leaves of one subject are
 * added one after another (every section advances one subject at a time), so only the
 * last note can be id's. */
static void undo_note(lh_merkle *m, const char *id)
{
    if (m->nundo && strcmp(m->undo[m->nundo - 1].id, id) == 0)
        return;
    if (m->nundo == m->undo_cap) {
        m->undo_cap = m->undo_cap ? 2 * m->undo_cap : 64;
        m->undo = lh_xrealloc(m->undo, m->undo_cap * sizeof(*m->undo));
    }
    leaf_undo *u = &m->undo[m->nundo++];
    subject_leaf *e = index_find(m, id);
    *u = (leaf_undo){.id = lh_xstrdup(id), .existed = e != NULL};
    if (e) {
        u->index = e->index;
        u->rows = e->rows;
        memcpy(u->tip, e->tip, sizeof(u->tip));
    }
}

/* ---------------------------------------------------------------- leaves */

/* The canonical leaf data of (id, tip, rows) into b: the RFC 8785 form of
 * {"candidate_id","chain_tip","rows_total","schema"} written directly (the members in
 * their sorted order; a number in its ECMAScript form), as lh_jcs_canonicalize would give
 * it; test_merkle checks every leaf it reads back against that general path. */
static int leaf_data(const char *id, const char *tip, int64_t rows, lh_buf *b, lh_error *err)
{
    char num[32];
    size_t n = strlen(id);
    if (!lh_utf8_valid(id, n))
        return lh_error_set(err, LH_EINVAL, "a Merkle leaf needs a UTF-8 subject id");
    if (lh_jcs_format_number((double)rows, num, sizeof(num)) != 0)
        return lh_error_set(err, LH_EINVAL, "a Merkle leaf's row count is out of range");
    lh_buf_puts(b, "{\"candidate_id\":");
    lh_jcs_put_string(b, id, n);
    lh_buf_puts(b, ",\"chain_tip\":");
    lh_jcs_put_string(b, tip, strlen(tip));
    lh_buf_puts(b, ",\"rows_total\":");
    lh_buf_puts(b, num);
    lh_buf_puts(b, ",\"schema\":");
    lh_jcs_put_string(b, LH_MERKLE_LEAF_SCHEMA, strlen(LH_MERKLE_LEAF_SCHEMA));
    lh_buf_putc(b, '}');
    return 0;
}

/* Parses one stored leaf line; fills id (caller frees), tip, rows. -1 when it is not one. */
static int leaf_parse(const char *line, size_t len, char **id, char *tip, int64_t *rows)
{
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    const char *cid = lh_json_str(o, "candidate_id"), *t = lh_json_str(o, "chain_tip");
    const char *schema = lh_json_str(o, "schema");
    json_t *r = json_object_get(o, "rows_total");
    int rc = -1;
    if (cid && t && strlen(t) == LH_AUDIT_HMAC_HEX - 1 && json_is_integer(r) && schema &&
        strcmp(schema, LH_MERKLE_LEAF_SCHEMA) == 0) {
        *id = lh_xstrdup(cid);
        snprintf(tip, LH_AUDIT_HMAC_HEX, "%s", t);
        *rows = (int64_t)json_integer_value(r);
        rc = 0;
    }
    json_decref(o);
    return rc;
}

/* Adds a leaf (caller holds mu): the tree and the index, and its line to m->lines, which
 * leaves_write puts in the file before mu is released (or takes the leaf back). */
static int leaf_add(lh_merkle *m, const char *id, const char *tip, int64_t rows, lh_error *err)
{
    lh_buf b;
    lh_buf_init(&b);
    int rc = leaf_data(id, tip, rows, &b, err);
    if (rc)
        goto out;
    if (m->fd >= 0) {
        undo_note(m, id);
        lh_buf_append(&m->lines, b.data, b.len);
        lh_buf_putc(&m->lines, '\n');
    }
    unsigned char h[LH_MERKLE_HASH];
    lh_merkle_leaf_hash(b.data, b.len, h);
    merkle_tree_append(m, h);
    index_set(m, id, m->size - 1, rows, tip);
out:
    lh_buf_free(&b);
    return rc;
}

/* Writes the lines of the leaves added since the last call, in one write (caller holds
 * mu; every section that may add leaves ends with it). When that fails, the lines are cut
 * back off the file and the leaves taken back out of memory: the tree to written_leaves
 * (the hashes of those first leaves were not touched), each subject's latest leaf to what
 * it was. Those subjects catch up at their next batch or leaf request, or the next open. */
static void leaves_write(lh_merkle *m)
{
    if (m->lines.len > 0) {
        off_t at = lseek(m->fd, 0, SEEK_END);
        if (lh_fs_write_all(m->fd, m->lines.data, m->lines.len) == 0) {
            m->written_leaves = m->size;
        } else {
            lh_log(LH_LOG_ERROR, "audit.merkle_append_failed", "{s:I,s:s}", "leaves",
                   (json_int_t)(m->size - m->written_leaves), "message", strerror(errno));
            if (at >= 0 && ftruncate(m->fd, at) != 0)
                lh_log(LH_LOG_ERROR, "audit.merkle_not_cut", "{s:s}", "message", strerror(errno));
            m->size = m->written_leaves;
            for (size_t i = m->nundo; i-- > 0;) {
                leaf_undo *u = &m->undo[i];
                if (u->existed)
                    index_set(m, u->id, u->index, u->rows, u->tip);
                else
                    index_remove(m, u->id);
            }
        }
        m->lines.len = 0;
    }
    for (size_t i = 0; i < m->nundo; i++)
        free(m->undo[i].id);
    m->nundo = 0;
}

/* Reads a subject's log to place tips: pos[i] gets the row number of tips[i] (0: not in
 * the log) and *extends whether row known_rows holds known_tip (true when known_rows is 0).
 * The leaves only ever name durable rows, so whatever the log holds up to them is final. */
static int log_scan(lh_merkle *m, const char *id, int64_t known_rows, const char *known_tip,
                    const char *const *tips, size_t ntips, int64_t *pos, bool *extends,
                    lh_error *err)
{
    char key[LH_SUBJECT_KEY_MAX];
    char *data = NULL;
    size_t len = 0;
    for (size_t i = 0; i < ntips; i++)
        pos[i] = 0;
    *extends = known_rows == 0;
    int rc = lh_subject_key(id, key, sizeof(key), err);
    if (rc)
        return rc;
    audit_logs_settle(m->audit); /* lines still queued for the log writer first */
    char *path = audit_log_path(m->audit, key);
    rc = lh_fs_read_all(path, (size_t)4 << 30, &data, &len, err);
    free(path);
    if (rc == LH_ENOTFOUND) {
        lh_error_clear(err);
        return 0;
    }
    if (rc)
        return rc;
    int64_t no = 0;
    for (size_t at = 0; at < len;) {
        char *nl = memchr(data + at, '\n', len - at);
        if (!nl)
            break;
        no++;
        json_t *row = json_loadb(data + at, (size_t)(nl - (data + at)), 0, NULL);
        const char *h = lh_json_str(row, "row_hmac");
        if (h && no == known_rows && strcmp(h, known_tip) == 0)
            *extends = true;
        for (size_t i = 0; h && i < ntips; i++)
            if (strcmp(h, tips[i]) == 0)
                pos[i] = no;
        json_decref(row);
        at = (size_t)(nl - data) + 1;
    }
    free(data);
    return 0;
}

static void leaf_add_logged(lh_merkle *m, const char *id, const char *tip, int64_t rows)
{
    lh_error err;
    if (leaf_add(m, id, tip, rows, &err) != 0)
        lh_log(LH_LOG_ERROR, "audit.merkle_append_failed", "{s:s,s:s}", "candidate_id", id,
               "message", err.message);
}

static void park_drop(lh_merkle *m, parked_batch **at)
{
    parked_batch *p = *at;
    *at = p->next;
    free(p->id);
    free(p);
    m->nparked--;
}

/* Leaves for the parked batches of id that now follow its latest leaf, in chain order. */
static void park_drain(lh_merkle *m, const char *id)
{
    for (bool found = true; found;) {
        found = false;
        subject_leaf *e = index_find(m, id);
        for (parked_batch **at = &m->parked; e && *at; at = &(*at)->next) {
            parked_batch *p = *at;
            if (strcmp(p->id, id) != 0 || strcmp(p->old_tip, e->tip) != 0)
                continue;
            char tip[LH_AUDIT_HMAC_HEX];
            int64_t rows = e->rows + p->rows;
            snprintf(tip, sizeof(tip), "%s", p->new_tip);
            park_drop(m, at);
            leaf_add_logged(m, id, tip, rows);
            found = true;
            break;
        }
    }
}

/* Settles a subject from its log: of tip (NULL: none) and its parked batches' tips, the
 * one furthest down the log gets a leaf, if the log still extends the latest leaf; the
 * parked batches are dropped (covered by that leaf, or older than the latest). */
static void settle_from_log(lh_merkle *m, const char *id, const char *tip)
{
    subject_leaf *e = index_find(m, id);
    const char *known = e ? e->tip : LH_AUDIT_GENESIS;
    int64_t known_rows = e ? e->rows : 0;
    size_t n = tip ? 1 : 0;
    for (parked_batch *p = m->parked; p; p = p->next)
        n += strcmp(p->id, id) == 0;
    if (n == 0)
        return;
    const char **tips = lh_xmalloc(n * sizeof(*tips));
    int64_t *pos = lh_xmalloc(n * sizeof(*pos));
    char *copies = lh_xmalloc(n * LH_AUDIT_HMAC_HEX);
    size_t k = 0;
    if (tip)
        tips[k++] = tip;
    for (parked_batch *p = m->parked; p; p = p->next)
        if (strcmp(p->id, id) == 0) {
            memcpy(copies + k * LH_AUDIT_HMAC_HEX, p->new_tip, LH_AUDIT_HMAC_HEX);
            tips[k] = copies + k * LH_AUDIT_HMAC_HEX;
            k++;
        }
    for (parked_batch **at = &m->parked; *at;)
        if (strcmp((*at)->id, id) == 0)
            park_drop(m, at);
        else
            at = &(*at)->next;
    bool extends = false;
    lh_error err;
    if (log_scan(m, id, known_rows, known, tips, n, pos, &extends, &err) != 0) {
        lh_log(LH_LOG_ERROR, "audit.merkle_catch_up_failed", "{s:s,s:s}", "candidate_id", id,
               "message", err.message);
        goto out;
    }
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (pos[i] > pos[best])
            best = i;
    if (extends && pos[best] <= known_rows)
        goto out; /* batches older than the latest leaf: already covered by it */
    if (!extends || pos[best] == 0) {
        lh_log(LH_LOG_ERROR, "audit.merkle_mismatch", "{s:s,s:I,s:s}", "candidate_id", id,
               "leaf_rows", (json_int_t)known_rows, "message",
               "the subject's audit log no longer extends its latest signed leaf (rows cut or "
               "replaced); no leaf added");
        goto out;
    }
    leaf_add_logged(m, id, tips[best], pos[best]);
out:
    free(tips);
    free(pos);
    free(copies);
}

/* Brings a subject's leaf to tip (caller holds mu). old_tip/count: the tip before the batch
 * and its rows for that subject; count 0 (catch-up): unknown, read the log. A batch that
 * does not follow the latest leaf usually finished its group commit just before the batch
 * it follows: it waits (parked) for that one, which then chains it; parked batches that
 * never get chained are settled from the log (when too many wait, in all or for the
 * subject, or the subject's leaf is asked for). */
static void subject_advance(lh_merkle *m, const char *id, const char *old_tip, const char *tip,
                            int64_t count)
{
    subject_leaf *e = index_find(m, id);
    const char *known = e ? e->tip : LH_AUDIT_GENESIS;
    int64_t known_rows = e ? e->rows : 0;
    if (strcmp(known, tip) == 0)
        return;
    if (count > 0 && old_tip && strcmp(old_tip, known) == 0) {
        leaf_add_logged(m, id, tip, known_rows + count);
        park_drain(m, id);
        return;
    }
    size_t mine = 0;
    for (parked_batch *p = m->parked; p; p = p->next)
        mine += strcmp(p->id, id) == 0;
    if (count > 0 && old_tip && m->nparked < MERKLE_PARK_MAX && mine < MERKLE_PARK_SUBJECT) {
        parked_batch *p = lh_xcalloc(1, sizeof(*p));
        p->id = lh_xstrdup(id);
        snprintf(p->old_tip, sizeof(p->old_tip), "%s", old_tip);
        snprintf(p->new_tip, sizeof(p->new_tip), "%s", tip);
        p->rows = count;
        p->next = m->parked;
        m->parked = p;
        m->nparked++;
        return;
    }
    settle_from_log(m, id, tip);
}

void audit_merkle_note(lh_merkle *m, const audit_moved *moved, size_t n)
{
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < n; i++)
        subject_advance(m, moved[i].candidate_id, moved[i].old_tip, moved[i].new_tip,
                        moved[i].rows);
    leaves_write(m);
    pthread_mutex_unlock(&m->mu);
}

/* ---------------------------------------------------------------- open / attach */

/* Loads the leaves file into m; a torn or unparsable last line is cut off. */
static int merkle_load(lh_merkle *m, lh_error *err)
{
    FILE *f = fopen(m->path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        return lh_error_set(err, LH_EIO, "cannot read the Merkle log: %s", strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    off_t good = 0;
    int rc = 0;
    bool bad = false;
    while ((got = getline(&line, &cap, f)) > 0) {
        char *id = NULL, tip[LH_AUDIT_HMAC_HEX];
        int64_t rows = 0;
        bool complete = line[got - 1] == '\n';
        if (bad || !complete || leaf_parse(line, (size_t)got - 1, &id, tip, &rows) != 0) {
            if (bad) {
                rc = lh_error_set(err, LH_EIO,
                                  "the Merkle log '%s' is damaged before its last line (leaf "
                                  "%llu); it is evidence: keep it and restore it from a backup",
                                  m->path, (unsigned long long)m->size + 1);
                free(id);
                goto out;
            }
            bad = true;
            free(id);
            continue;
        }
        unsigned char h[LH_MERKLE_HASH];
        lh_merkle_leaf_hash(line, (size_t)got - 1, h);
        merkle_tree_append(m, h);
        index_set(m, id, m->size - 1, rows, tip);
        free(id);
        good += got;
    }
    if (bad) {
        lh_log(LH_LOG_WARN, "audit.merkle_torn_tail", "{s:I}", "leaves", (json_int_t)m->size);
        if (truncate(m->path, good) != 0)
            rc = lh_error_set(err, LH_EIO, "cannot cut the torn tail of the Merkle log: %s",
                              strerror(errno));
    }
out:
    free(line);
    fclose(f);
    m->written_leaves = m->synced_leaves = m->size;
    return rc;
}

lh_merkle *lh_merkle_open(const char *data_dir, lh_error *err)
{
    if (sodium_init() < 0) {
        lh_error_set(err, LH_EINTERNAL, "libsodium failed to initialise");
        return NULL;
    }
    lh_merkle *m = merkle_alloc();
    m->dir = lh_xasprintf("%s/_catalog/audit_merkle", data_dir);
    m->path = lh_path_join(m->dir, MERKLE_FILE);
    if (lh_fs_mkdirs(m->dir, LH_DIR_MODE, err) != 0 || merkle_load(m, err) != 0)
        goto fail;
    m->fd = lh_sys_open(m->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, LH_FILE_MODE);
    if (m->fd < 0) {
        lh_error_set(err, LH_EIO, "cannot open the Merkle log: %s", strerror(errno));
        goto fail;
    }
    if (lh_fs_fsync_dir(m->dir, err) != 0)
        goto fail;
    return m;
fail:
    lh_merkle_close(m);
    return NULL;
}

typedef struct catch_up_ctx {
    lh_merkle *m;
    int64_t added;
} catch_up_ctx;

static int catch_up_one(void *arg, const char *id)
{
    catch_up_ctx *c = arg;
    char tip[LH_AUDIT_HMAC_HEX];
    lh_error err;
    if (lh_audit_tip(c->m->audit, id, tip, &err) != 0) {
        lh_log(LH_LOG_ERROR, "audit.merkle_catch_up_failed", "{s:s,s:s}", "candidate_id", id,
               "message", err.message);
        return 0;
    }
    if (strcmp(tip, LH_AUDIT_GENESIS) == 0)
        return 0;
    pthread_mutex_lock(&c->m->mu);
    uint64_t before = c->m->size;
    subject_advance(c->m, id, NULL, tip, 0);
    leaves_write(c->m);
    c->added += (int64_t)(c->m->size - before);
    pthread_mutex_unlock(&c->m->mu);
    return 0;
}

int lh_merkle_attach(lh_merkle *m, lh_audit *audit, lh_error *err)
{
    m->audit = audit;
    catch_up_ctx c = {.m = m};
    int rc = lh_audit_list(audit, catch_up_one, &c, err);
    if (rc)
        return rc;
    if (c.added)
        lh_log(LH_LOG_INFO, "audit.merkle_caught_up", "{s:I}", "leaves", (json_int_t)c.added);
    audit->merkle = m;
    return 0;
}

void lh_merkle_close(lh_merkle *m)
{
    if (!m)
        return;
    if (m->audit && m->audit->merkle == m)
        m->audit->merkle = NULL;
    if (m->fd >= 0) {
        if (lh_sys_fdatasync(m->fd) != 0)
            lh_log(LH_LOG_WARN, "audit.merkle_sync_failed", "{s:s}", "message", strerror(errno));
        close(m->fd);
    }
    for (size_t i = 0; i < m->nbuckets; i++)
        for (subject_leaf *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e->id);
            free(e);
        }
    while (m->parked)
        park_drop(m, &m->parked);
    free(m->undo);
    lh_buf_free(&m->lines);
    free(m->buckets);
    free(m->dir);
    free(m->path);
    merkle_free(m);
}

int lh_merkle_subject_leaf(lh_merkle *m, const char *id, json_t **leaf, uint64_t *index,
                           lh_error *err)
{
    *leaf = NULL;
    int rc = 0;
    pthread_mutex_lock(&m->mu);
    for (parked_batch *p = m->parked; p; p = p->next)
        if (strcmp(p->id, id) == 0) {
            settle_from_log(m, id, NULL);
            leaves_write(m);
            break;
        }
    subject_leaf *e = index_find(m, id);
    if (!e)
        rc = lh_error_set(err, LH_ENOTFOUND, "subject '%s' has no leaf in the Merkle log", id);
    else {
        *leaf = json_pack("{s:s,s:s,s:I,s:s}", "candidate_id", e->id, "chain_tip", e->tip,
                          "rows_total", (json_int_t)e->rows, "schema", LH_MERKLE_LEAF_SCHEMA);
        *index = e->index;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int lh_merkle_sync(lh_merkle *m, uint64_t *size, lh_error *err)
{
    pthread_mutex_lock(&m->sync_mu);
    pthread_mutex_lock(&m->mu);
    uint64_t target = m->fd >= 0 ? m->written_leaves : m->size;
    bool need = m->fd >= 0 && target > m->synced_leaves;
    pthread_mutex_unlock(&m->mu);
    int rc = 0;
    /* Outside mu: appends go on meanwhile; what they add after target is synced next time. */
    if (need && lh_sys_fdatasync(m->fd) != 0)
        rc = lh_error_setk(err, LH_EIO, "audit_write_failed", "cannot sync the Merkle log: %s",
                           strerror(errno));
    pthread_mutex_lock(&m->mu);
    if (rc == 0 && target > m->synced_leaves)
        m->synced_leaves = target;
    *size = m->fd >= 0 ? m->synced_leaves : m->size;
    pthread_mutex_unlock(&m->mu);
    pthread_mutex_unlock(&m->sync_mu);
    return rc;
}
