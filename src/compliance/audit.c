/*
 * audit.c: the per-subject audit chain (DESIGN.md §2, issue 11 item 3; format in
 * docs/AUDIT.md).
 *
 * Each subject has one append-only log, <data>/_catalog/subjects/<key>.audit.jsonl, one
 * row per line, each row stored in its RFC 8785 form (row_hmac included), chained by
 * prev_chain_hash = the previous row's row_hmac ("GENESIS" first).
 *
 * Invariants:
 *   - Appends to one subject are serialised by its stripe mutex, held from reading the
 *     tip to writing the row into the journal and queueing its line for the log writer,
 *     so no two rows ever share a prev and each subject's lines are queued in chain
 *     order. Different stripes append in parallel.
 *   - An append is O(1): the tip is cached (loaded once from the log's last line), the
 *     row is one journal record; nothing is rewritten.
 *   - Acknowledged = durable: a row is acknowledged only after the journal holding it is
 *     fdatasync-ed (group commit, audit_wal.c). The subject's log line is written by the
 *     log writer thread, off the append's path, in batches (one write per subject per
 *     batch, queue order), without a sync, through descriptors it keeps until the next
 *     checkpoint. A checkpoint drains the writer, then fsyncs the logs it wrote (clean:
 *     nothing failed since the last one) or replays the journal into the logs (after a
 *     failure; also at open), before the journal is dropped.
 *   - Whatever reads a log (lh_audit_read/verify, lh_audit_list, the Merkle log's scan)
 *     first waits until the writer has written every line queued before the call
 *     (audit_logs_settle), so no lag is visible. tip_get reads the log only for a subject
 *     without a cached tip, which has no queued line: tips are dropped only by a
 *     checkpoint, after it drained the writer with the gate closed.
 *   - A row that failed (journal write failed, sync failed) is never the prev of a later
 *     row: the cached tip is restored under the stripe lock on a write failure, and a
 *     failed sync poisons the journal so no append is acknowledged until a checkpoint has
 *     replayed the journal and reloaded every tip from the logs. A failed log write (in
 *     the writer) poisons the journal too and the writer drops every later line until
 *     that checkpoint, so no log ever gets a line after a hole; the rows stay durable in
 *     the journal, whose replay writes them.
 *   - The key never leaves this file: messages name the key file and lengths only.
 */
#include "compliance_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define AUDIT_MAX_FIELDS 4096
#define AUDIT_MAX_STR 4096
#define AUDIT_LOG_SUFFIX ".audit.jsonl"
/* The largest log lh_audit_read loads (a subject with ~10 million rows). */
#define AUDIT_LOG_READ_MAX ((size_t)4 << 30)
/* The log writer keeps at most this many logs open between checkpoints. */
#define AUDIT_LOG_FDS 128

/* ---------------------------------------------------------------- subject keys */

int lh_subject_key(const char *id, char *buf, size_t cap, lh_error *err)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > LH_SUBJECT_ID_MAX)
        return lh_error_set(err, LH_EINVAL, "a subject id must be 1 to %d bytes long",
                            LH_SUBJECT_ID_MAX);
    if (!lh_utf8_valid(id, n))
        return lh_error_set(err, LH_EINVAL, "a subject id must be valid UTF-8");
    if (cap < n * 3 + 1)
        return lh_error_set(err, LH_EINTERNAL, "subject key buffer too small");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c < 0x20 || c == 0x7F)
            return lh_error_set(err, LH_EINVAL, "a subject id must not hold control characters");
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || ((c == '.' || c == '_') && i > 0);
        if (keep) {
            buf[k++] = (char)c;
        } else {
            buf[k++] = '%';
            buf[k++] = hex[c >> 4];
            buf[k++] = hex[c & 15];
        }
    }
    buf[k] = '\0';
    return 0;
}

/* The inverse of lh_subject_key, for names found on disk. NULL when name is not a key. */
static char *subject_key_decode(const char *name, size_t n)
{
    char *id = lh_xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (name[i] != '%') {
            id[k++] = name[i];
            continue;
        }
        unsigned v;
        if (i + 2 >= n + 0 || sscanf(name + i + 1, "%2X", &v) != 1) {
            free(id);
            return NULL;
        }
        id[k++] = (char)v;
        i += 2;
    }
    id[k] = '\0';
    return id;
}

/* ---------------------------------------------------------------- keys and time */

int lh_audit_key_load(const char *path, unsigned char *key, size_t *key_len, lh_error *err)
{
    char *data = NULL;
    size_t n = 0;
    int rc;
    if (!path || !*path)
        return lh_error_set(err, LH_EINVAL, "no audit key file given (LH_SUBJECT_AUDIT_KEY)");
    rc = lh_fs_read_all(path, LH_AUDIT_KEY_MAX + 2, &data, &n, err);
    if (rc == LH_ETOOLARGE)
        return lh_error_set(err, LH_EINVAL,
                            "the audit key file '%s' is longer than %d bytes; use a key of 32 "
                            "to %d bytes",
                            path, LH_AUDIT_KEY_MAX, LH_AUDIT_KEY_MAX);
    if (rc)
        return lh_error_set(err, rc == LH_ENOTFOUND ? LH_EINVAL : LH_EIO,
                            "cannot read the audit key file '%s' (LH_SUBJECT_AUDIT_KEY)", path);
    if (n > 0 && data[n - 1] == '\n')
        n--;
    if (n > 0 && data[n - 1] == '\r')
        n--;
    if (n < LH_AUDIT_KEY_MIN || n > LH_AUDIT_KEY_MAX) {
        rc = lh_error_set(err, LH_EINVAL,
                          "the audit key file '%s' holds %zu bytes (without its trailing "
                          "newline); a key of at least %d bytes is required",
                          path, n, LH_AUDIT_KEY_MIN);
        goto out;
    }
    memcpy(key, data, n);
    *key_len = n;
out:
    sodium_memzero(data, n);
    free(data);
    return rc;
}

/* The second a run of timestamps is in, formatted once ("" before the first). */
typedef struct ts_cache {
    time_t sec;
    char secs[LH_AUDIT_TS_MAX];
} ts_cache;

/* The current time as a row's ts: the date and time from c when still in its second,
 * the nanoseconds always. */
static void ts_now(ts_cache *c, char out[LH_AUDIT_TS_MAX])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (!c->secs[0] || c->sec != ts.tv_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        c->secs[strftime(c->secs, LH_AUDIT_TS_MAX - 11, "%Y-%m-%dT%H:%M:%S", &tm)] = '\0';
        c->sec = ts.tv_sec;
    }
    size_t n = strlen(c->secs);
    memcpy(out, c->secs, n);
    out[n] = '.';
    long ns = (long)ts.tv_nsec;
    for (int i = 9; i >= 1; i--, ns /= 10)
        out[n + (size_t)i] = (char)('0' + ns % 10);
    memcpy(out + n + 10, "Z", 2);
}

void lh_audit_ts_now(char out[LH_AUDIT_TS_MAX])
{
    ts_cache c = {0};
    ts_now(&c, out);
}

int lh_audit_ts_parse(const char *in, char out[LH_AUDIT_TS_MAX], lh_error *err)
{
    struct tm tm = {0};
    int used = 0;
    long nanos = 0;
    if (!in ||
        sscanf(in, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used) != 6 ||
        used != 19)
        goto bad;
    const char *p = in + used;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 9)
                nanos = nanos * 10 + (*p - '0');
        if (digits == 0 || digits > 9)
            goto bad;
        for (; digits < 9; digits++)
            nanos *= 10;
    }
    long offset = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        offset = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int hh = 0, mm = 0;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 23 || mm > 59)
            goto bad;
        offset = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
    } else {
        goto bad;
    }
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        goto bad;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm) - offset;
    struct tm u;
    gmtime_r(&t, &u);
    size_t n = strftime(out, LH_AUDIT_TS_MAX, "%Y-%m-%dT%H:%M:%S", &u);
    snprintf(out + n, LH_AUDIT_TS_MAX - n, ".%09ldZ", nanos);
    return 0;
bad:
    return lh_error_set(err, LH_EINVAL,
                        "'%s' is not an RFC 3339 time (e.g. 2026-05-03T12:00:00Z or "
                        "2026-05-03T14:00:00.5+02:00)",
                        in ? in : "");
}

/* ---------------------------------------------------------------- rows */

static const char *const audit_results[] = {"success", "error", "denied", "not_found"};

static void put_member(lh_buf *b, const char *name, const char *v)
{
    lh_buf_puts(b, name); /* '"key":' (ASCII, already in canonical form) */
    v = v ? v : "";
    lh_jcs_put_string(b, v, strlen(v));
}

static bool str_ok(const char *s)
{
    return !s || (strlen(s) <= AUDIT_MAX_STR && lh_utf8_valid(s, strlen(s)));
}

/* What the rows of one batch share, kept between them (a query returning people signs one
 * row per person, all naming the same accessor strings and the same fields array): the
 * canonical bytes of the accessor member and of the fields list, reused (without
 * checking the strings again) while an entry names the very same strings as the entry
 * they were made from, and the second its timestamps are in. */
typedef struct row_memo {
    const lh_audit_entry *accessor_of, *fields_of; /* NULL: nothing kept */
    lh_buf accessor, fields;
    ts_cache ts;
} row_memo;

static void row_memo_free(row_memo *m)
{
    lh_buf_free(&m->accessor);
    lh_buf_free(&m->fields);
}

static bool same_accessor(const lh_audit_entry *a, const lh_audit_entry *b)
{
    return a && a->accessor_kind == b->accessor_kind && a->daemon == b->daemon &&
           a->purpose == b->purpose && a->trace_id == b->trace_id && a->profile == b->profile &&
           a->model == b->model;
}

static bool same_fields(const lh_audit_entry *a, const lh_audit_entry *b)
{
    return a && a->fields == b->fields && a->n_fields == b->n_fields;
}

/* Writes the canonical (RFC 8785) bytes of the row without row_hmac straight into b, with
 * no intermediate JSON value: the members in their sorted order (all keys are ASCII, so
 * UTF-16 order is byte order), strings through the canonicaliser's own escaper. *split
 * gets the offset of ',"schema":' where row_hmac belongs in the stored line. Every row
 * verify reads is re-canonicalised the general way (jansson + lh_jcs_canonicalize), so
 * the tests cross-check this writer on every row they append. m carries what
 * the rows of one batch share (a zeroed row_memo for a lone row). */
static int row_canonical(const lh_audit_entry *e, const char *prev, lh_buf *b, size_t *split,
                         row_memo *m, lh_error *err)
{
    char key[LH_SUBJECT_KEY_MAX], ts[LH_AUDIT_TS_MAX];
    if (lh_subject_key(e->candidate_id, key, sizeof(key), err))
        return LH_EINVAL;
    bool result_ok = false;
    for (size_t i = 0; i < sizeof(audit_results) / sizeof(audit_results[0]); i++)
        result_ok |= e->result && strcmp(e->result, audit_results[i]) == 0;
    if (!result_ok)
        return lh_error_set(err, LH_EINVAL,
                            "audit result must be one of success, error, denied, not_found");
    if (e->n_fields > AUDIT_MAX_FIELDS)
        return lh_error_set(err, LH_EINVAL, "an audit row names at most %d fields",
                            AUDIT_MAX_FIELDS);
    if (e->ts) {
        if (lh_audit_ts_parse(e->ts, ts, err))
            return LH_EINVAL;
        if (strcmp(ts, e->ts) != 0)
            return lh_error_set(err, LH_EINVAL,
                                "an audit row time must be UTC with nine fraction digits "
                                "(2026-05-03T12:00:00.000000001Z)");
    } else {
        ts_now(&m->ts, ts);
    }
    if (!same_accessor(m->accessor_of, e)) {
        if (!str_ok(e->accessor_kind) || !str_ok(e->daemon) || !str_ok(e->purpose) ||
            !str_ok(e->trace_id) || !str_ok(e->profile) || !str_ok(e->model))
            return lh_error_set(err, LH_EINVAL,
                                "audit accessor fields must be valid UTF-8 of at most %d bytes",
                                AUDIT_MAX_STR);
        m->accessor.len = 0;
        put_member(&m->accessor, "{\"accessor\":{\"daemon\":", e->daemon);
        put_member(&m->accessor, ",\"kind\":", e->accessor_kind);
        /* optional members, in their sorted place (kind < model < profile < purpose) */
        if (e->model && *e->model)
            put_member(&m->accessor, ",\"model\":", e->model);
        if (e->profile && *e->profile)
            put_member(&m->accessor, ",\"profile\":", e->profile);
        put_member(&m->accessor, ",\"purpose\":", e->purpose);
        put_member(&m->accessor, ",\"trace_id\":", e->trace_id);
        m->accessor_of = e;
    }
    if (!same_fields(m->fields_of, e)) {
        for (size_t i = 0; i < e->n_fields; i++)
            if (!e->fields[i] || !str_ok(e->fields[i]))
                return lh_error_set(err, LH_EINVAL,
                                    "audit field %zu is missing, too long or not UTF-8", i + 1);
        m->fields.len = 0;
        lh_buf_puts(&m->fields, ",\"fields_accessed\":[");
        for (size_t i = 0; i < e->n_fields; i++)
            put_member(&m->fields, i ? "," : "", e->fields[i]);
        lh_buf_putc(&m->fields, ']');
        m->fields_of = e;
    }
    lh_buf_append(b, m->accessor.data, m->accessor.len);
    put_member(b, "},\"candidate_id\":", e->candidate_id);
    lh_buf_append(b, m->fields.data, m->fields.len);
    put_member(b, ",\"prev_chain_hash\":", prev);
    put_member(b, ",\"result\":", e->result);
    *split = b->len;
    put_member(b, ",\"schema\":", LH_AUDIT_SCHEMA);
    put_member(b, ",\"ts\":", ts);
    lh_buf_putc(b, '}');
    return 0;
}

/* HMAC-SHA256 of msg in hex, from a state already keyed (crypto_auth_hmacsha256_init
 * done once per key: it hashes the padded key twice, a fifth of a short row's cost). */
static void hmac_hex(const crypto_auth_hmacsha256_state *keyed, const char *msg, size_t len,
                     char *out)
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st = *keyed;
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof(st));
    sodium_bin2hex(out, LH_AUDIT_HMAC_HEX, mac, sizeof(mac));
}

/* Signs an entry chained on prev: canonical bytes, their HMAC, and the stored line (the
 * canonical row with row_hmac at its sorted place, between "result" and "schema"). */
static int row_build(const crypto_auth_hmacsha256_state *keyed, const lh_audit_entry *entry,
                     const char *prev, row_memo *memo, lh_buf *canonical, char *hmac_out,
                     lh_buf *line, lh_error *err)
{
    size_t split = 0;
    int rc = row_canonical(entry, prev, canonical, &split, memo, err);
    if (rc)
        return rc;
    hmac_hex(keyed, canonical->data, canonical->len, hmac_out);
    if (line) {
        lh_buf_append(line, canonical->data, split);
        lh_buf_puts(line, ",\"row_hmac\":\"");
        lh_buf_puts(line, hmac_out);
        lh_buf_putc(line, '"');
        lh_buf_append(line, canonical->data + split, canonical->len - split);
    }
    return 0;
}

int lh_audit_row_sign(const unsigned char *key, size_t key_len, const lh_audit_entry *entry,
                      const char *prev, char **canonical, char *hmac_out, lh_error *err)
{
    lh_buf b;
    lh_buf_init(&b);
    *canonical = NULL;
    crypto_auth_hmacsha256_state keyed;
    crypto_auth_hmacsha256_init(&keyed, key, key_len);
    row_memo memo = {0};
    int rc = row_build(&keyed, entry, prev, &memo, &b, hmac_out, NULL, err);
    row_memo_free(&memo);
    sodium_memzero(&keyed, sizeof(keyed));
    if (rc) {
        lh_buf_free(&b);
        return rc;
    }
    lh_buf_putc(&b, '\0');
    *canonical = b.data;
    return 0;
}

void lh_audit_known_answer_entry(lh_audit_entry *e)
{
    static const char *const fields[] = {"candidate_id", "email"};
    memset(e, 0, sizeof(*e));
    e->candidate_id = "WORKER-1";
    e->accessor_kind = "agent";
    e->daemon = "gateway";
    e->purpose = "validator_worker_lookup";
    e->trace_id = "t-1";
    e->fields = fields;
    e->n_fields = 2;
    e->result = "success";
    e->ts = "2026-05-03T12:00:00.000000001Z";
}

/* ---------------------------------------------------------------- logs */

char *audit_log_path(const lh_audit *a, const char *key)
{
    return lh_xasprintf("%s/%s" AUDIT_LOG_SUFFIX, a->subjects_dir, key);
}

/* row_hmac of a stored line, or NULL when the line is not a JSON object with one. */
static const char *line_hmac(json_t *row)
{
    const char *h = lh_json_str(row, "row_hmac");
    return h && strlen(h) == LH_AUDIT_HMAC_HEX - 1 ? h : NULL;
}

int audit_log_last_hmac(const char *path, char *hmac, lh_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf = NULL;
    int rc = 0;
    if (fd < 0) {
        if (errno == ENOENT) {
            snprintf(hmac, LH_AUDIT_HMAC_HEX, "%s", LH_AUDIT_GENESIS);
            return 0;
        }
        return lh_error_set(err, LH_EIO, "cannot open an audit log: %s", strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = lh_error_set(err, LH_EIO, "cannot stat an audit log: %s", strerror(errno));
        goto out;
    }
    /* Read backwards in growing windows until the window holds the whole last complete
     * line (a newline before it, or the start of the file). */
    off_t size = st.st_size;
    for (size_t win = 4096;; win *= 4) {
        off_t from = size > (off_t)win ? size - (off_t)win : 0;
        size_t n = (size_t)(size - from);
        buf = lh_xrealloc(buf, n + 1);
        ssize_t got = pread(fd, buf, n, from);
        if (got != (ssize_t)n) {
            rc = lh_error_set(err, LH_EIO, "cannot read an audit log");
            goto out;
        }
        buf[n] = '\0';
        /* end: one past the last newline (a torn tail after it is not a row) */
        size_t end = n;
        while (end > 0 && buf[end - 1] != '\n')
            end--;
        if (end == 0 && from == 0) {
            snprintf(hmac, LH_AUDIT_HMAC_HEX, "%s", LH_AUDIT_GENESIS);
            goto out;
        }
        size_t start = end > 0 ? end - 1 : 0;
        while (start > 0 && buf[start - 1] != '\n')
            start--;
        if (end == 0 || (start == 0 && from > 0))
            continue; /* the last line starts before the window */
        json_t *row = json_loadb(buf + start, end - 1 - start, 0, NULL);
        const char *h = line_hmac(row);
        if (h)
            snprintf(hmac, LH_AUDIT_HMAC_HEX, "%s", h);
        else
            rc = lh_error_set(err, LH_EIO,
                              "the last row of an audit log is damaged; run `lakehouse audit "
                              "verify` to locate it");
        json_decref(row);
        goto out;
    }
out:
    free(buf);
    close(fd);
    return rc;
}

int audit_log_append(const char *path, const char *line, size_t len, bool *torn, lh_error *err)
{
    *torn = false;
    int fd = lh_sys_open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, LH_FILE_MODE);
    if (fd < 0)
        return lh_error_setk(err, LH_EIO, "audit_write_failed", "cannot open an audit log: %s",
                             strerror(errno));
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = lh_error_setk(err, LH_EIO, "audit_write_failed", "cannot stat an audit log: %s",
                           strerror(errno));
        goto out;
    }
    if (lh_fs_write_all(fd, line, len) != 0) {
        int e = errno;
        rc = lh_error_setk(err, LH_EIO, "audit_write_failed", "cannot write an audit log: %s",
                           strerror(e));
        if (ftruncate(fd, st.st_size) != 0)
            *torn = true;
    }
out:
    close(fd);
    return rc;
}

/* ---------------------------------------------------------------- tip cache */

static uint64_t key_hash(const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 1099511628211ULL;
    return h;
}

static audit_stripe *stripe_of(lh_audit *a, uint64_t h)
{
    return &a->stripes[h % AUDIT_STRIPES];
}

/* The "may have a log" set of a stripe (audit_stripe.logged). Hash 0 is stored as 1. */
static bool logged_maybe(const audit_stripe *s, uint64_t h)
{
    h = h ? h : 1;
    if (!s->logged_cap)
        return false;
    for (size_t i = (h / AUDIT_STRIPES) & (s->logged_cap - 1);; i = (i + 1) & (s->logged_cap - 1)) {
        if (s->logged[i] == h)
            return true;
        if (!s->logged[i])
            return false;
    }
}

static void logged_add(audit_stripe *s, uint64_t h)
{
    h = h ? h : 1;
    if (logged_maybe(s, h))
        return;
    if (2 * (s->logged_n + 1) > s->logged_cap) { /* at most half full */
        size_t cap = s->logged_cap ? 2 * s->logged_cap : 64;
        uint64_t *old = s->logged, *v = lh_xcalloc(cap, sizeof(*v));
        size_t old_cap = s->logged_cap;
        s->logged = v;
        s->logged_cap = cap;
        s->logged_n = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i])
                logged_add(s, old[i]);
        free(old);
    }
    size_t i = (h / AUDIT_STRIPES) & (s->logged_cap - 1);
    while (s->logged[i])
        i = (i + 1) & (s->logged_cap - 1);
    s->logged[i] = h;
    s->logged_n++;
}

/* Calls fn with the name of each log in the subjects folder and the length of its key
 * (the name without AUDIT_LOG_SUFFIX) until fn returns non-zero, which it returns. */
static int logs_each(lh_audit *a, int (*fn)(void *ctx, const char *name, size_t key_len), void *ctx,
                     lh_error *err)
{
    DIR *d = opendir(a->subjects_dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return lh_error_set(err, LH_EIO, "cannot list the audit logs: %s", strerror(errno));
    }
    int rc = 0;
    size_t sl = strlen(AUDIT_LOG_SUFFIX);
    for (struct dirent *de; rc == 0 && (de = readdir(d));) {
        size_t n = strlen(de->d_name);
        if (n > sl && strcmp(de->d_name + n - sl, AUDIT_LOG_SUFFIX) == 0)
            rc = fn(ctx, de->d_name, n - sl);
    }
    closedir(d);
    return rc;
}

static int logged_note(void *ctx, const char *name, size_t key_len)
{
    lh_audit *a = ctx;
    char key[LH_SUBJECT_KEY_MAX];
    if (key_len < sizeof(key)) {
        memcpy(key, name, key_len);
        key[key_len] = '\0';
        uint64_t h = key_hash(key);
        logged_add(stripe_of(a, h), h);
    }
    return 0;
}

/* Fills the stripes' "may have a log" sets from the logs in the folder. At a writing
 * open, after the journal's replay (which may create logs), before any append; only this
 * process writes logs then (the journal's lock), so the sets stay complete. */
static int logged_load(lh_audit *a, lh_error *err)
{
    return logs_each(a, logged_note, a, err);
}

/* The cached tip of key, loaded from its log on first use. Caller holds the stripe. */
static audit_tip *tip_get(lh_audit *a, audit_stripe *s, const char *key, uint64_t h, lh_error *err)
{
    if (s->nbuckets) {
        for (audit_tip *t = s->buckets[(h / AUDIT_STRIPES) % s->nbuckets]; t; t = t->next)
            if (t->hash == h && strcmp(t->key, key) == 0)
                return t;
    }
    char hmac[LH_AUDIT_HMAC_HEX];
    if (a->readonly || logged_maybe(s, h)) { /* a read-only handle has no set: it reads */
        char *path = audit_log_path(a, key);
        int rc = audit_log_last_hmac(path, hmac, err);
        free(path);
        if (rc)
            return NULL;
    } else {
        /* No log: a new subject. Skipping the open() matters when many are new at once
         * (a query over people never read before): each open() of a missing name waited
         * for the directory lock behind the log writer creating the logs of the last. */
        snprintf(hmac, sizeof(hmac), "%s", LH_AUDIT_GENESIS);
    }
    logged_add(s, h); /* the log writer creates its log */
    if (s->count >= s->nbuckets) {
        size_t nb = s->nbuckets ? s->nbuckets * 2 : 16;
        audit_tip **b = lh_xcalloc(nb, sizeof(*b));
        for (size_t i = 0; i < s->nbuckets; i++)
            for (audit_tip *t = s->buckets[i], *next; t; t = next) {
                next = t->next;
                size_t j = (t->hash / AUDIT_STRIPES) % nb;
                t->next = b[j];
                b[j] = t;
            }
        free(s->buckets);
        s->buckets = b;
        s->nbuckets = nb;
    }
    audit_tip *t = lh_xcalloc(1, sizeof(*t));
    t->hash = h;
    t->key = lh_xstrdup(key);
    snprintf(t->hmac, sizeof(t->hmac), "%s", hmac);
    size_t j = (h / AUDIT_STRIPES) % s->nbuckets;
    t->next = s->buckets[j];
    s->buckets[j] = t;
    s->count++;
    return t;
}

static void stripe_clear(audit_stripe *s)
{
    for (size_t i = 0; i < s->nbuckets; i++)
        for (audit_tip *t = s->buckets[i], *next; t; t = next) {
            next = t->next;
            free(t->key);
            free(t);
        }
    free(s->buckets);
    s->buckets = NULL;
    s->nbuckets = s->count = 0;
}

/* ---------------------------------------------------------------- the log writer */

/* The writer's logs (lh_audit.lw_logs): the entry of key, added (fd -1) when missing. */
static audit_wlog *wlog_entry(lh_audit *a, const char *key)
{
    if (2 * (a->lw_logs_n + 1) > a->lw_logs_cap) { /* at most half full */
        size_t old_cap = a->lw_logs_cap, cap = old_cap ? 2 * old_cap : 64;
        audit_wlog *old = a->lw_logs;
        a->lw_logs = lh_xcalloc(cap, sizeof(*a->lw_logs));
        a->lw_logs_cap = cap;
        for (size_t i = 0; i < old_cap; i++) {
            if (!old[i].key)
                continue;
            size_t j = key_hash(old[i].key) & (cap - 1);
            while (a->lw_logs[j].key)
                j = (j + 1) & (cap - 1);
            a->lw_logs[j] = old[i];
        }
        free(old);
    }
    size_t j = key_hash(key) & (a->lw_logs_cap - 1);
    for (; a->lw_logs[j].key; j = (j + 1) & (a->lw_logs_cap - 1))
        if (strcmp(a->lw_logs[j].key, key) == 0)
            return &a->lw_logs[j];
    a->lw_logs[j] = (audit_wlog){.key = lh_xstrdup(key), .fd = -1};
    a->lw_logs_n++;
    return &a->lw_logs[j];
}

static void wlog_close(lh_audit *a, audit_wlog *w)
{
    if (w->key && w->fd >= 0) { /* a free slot is all zeros */
        close(w->fd);
        w->fd = -1;
        a->lw_fds--;
    }
}

/* An open descriptor of key's log (created 0600 when missing), and its entry. When
 * AUDIT_LOG_FDS are open, they are all closed first. */
static audit_wlog *wlog_open(lh_audit *a, const char *key, lh_error *err)
{
    audit_wlog *w = wlog_entry(a, key);
    if (w->fd >= 0)
        return w;
    if (a->lw_fds >= AUDIT_LOG_FDS)
        for (size_t i = 0; i < a->lw_logs_cap; i++)
            wlog_close(a, &a->lw_logs[i]);
    char *path = audit_log_path(a, key);
    int fd = lh_sys_open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, LH_FILE_MODE);
    free(path);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        lh_error_setk(err, LH_EIO, "audit_write_failed", "cannot open an audit log: %s",
                      strerror(e));
        return NULL;
    }
    w->fd = fd;
    w->size = st.st_size;
    a->lw_fds++;
    return w;
}

/* Forgets the writer's logs, closing their descriptors. */
static void wlog_clear(lh_audit *a)
{
    for (size_t i = 0; i < a->lw_logs_cap; i++) {
        wlog_close(a, &a->lw_logs[i]);
        free(a->lw_logs[i].key);
    }
    free(a->lw_logs);
    a->lw_logs = NULL;
    a->lw_logs_cap = a->lw_logs_n = 0;
}

/* A clean checkpoint's sync: every log the writer appended to since the last one, then
 * the subjects folder (which may have new logs). Caller has the gate closed and the
 * writer settled. */
static int wlog_sync(lh_audit *a, lh_error *err)
{
    for (size_t i = 0; i < a->lw_logs_cap; i++) {
        audit_wlog *w = &a->lw_logs[i];
        if (!w->key)
            continue;
        int fd = w->fd;
        if (fd < 0) {
            char *path = audit_log_path(a, w->key);
            fd = lh_sys_open(path, O_RDONLY | O_CLOEXEC, 0);
            free(path);
        }
        if (fd < 0 || lh_sys_fsync(fd) != 0) {
            int e = errno;
            if (fd >= 0 && fd != w->fd)
                close(fd);
            return lh_error_set(err, LH_EIO, "cannot sync an audit log: %s", strerror(e));
        }
        if (fd != w->fd)
            close(fd);
    }
    return a->lw_logs_n ? lh_fs_fsync_dir(a->subjects_dir, err) : 0;
}

typedef struct line_ref {
    audit_line *l;
    size_t order;
} line_ref;

static int cmp_line_ref(const void *x, const void *y)
{
    const line_ref *a = x, *b = y;
    int c = strcmp(a->l->data, b->l->data);
    return c ? c : (a->order < b->order ? -1 : a->order > b->order);
}

/* Appends a batch of queued lines (queue order) to their logs: the lines of each subject
 * gathered in order into one write, through the writer's descriptors. Stops at the first
 * failure, whose write is cut back off the log. Borrows v. */
static int lines_write(lh_audit *a, audit_line *const *v, size_t n, lh_error *err)
{
    line_ref *r = lh_xmalloc(n * sizeof(*r));
    lh_buf buf;
    lh_buf_init(&buf);
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        r[i] = (line_ref){v[i], i};
    qsort(r, n, sizeof(*r), cmp_line_ref);
    for (size_t i = 0, j; i < n && rc == 0; i = j) {
        buf.len = 0;
        for (j = i; j < n && strcmp(r[j].l->data, r[i].l->data) == 0; j++)
            lh_buf_append(&buf, r[j].l->data + r[j].l->key_len + 1, r[j].l->len);
        audit_wlog *w = wlog_open(a, r[i].l->data, err);
        if (!w) {
            rc = LH_EIO;
            break;
        }
        if (lh_fs_write_all(w->fd, buf.data, buf.len) != 0) {
            rc = lh_error_setk(err, LH_EIO, "audit_write_failed", "cannot write an audit log: %s",
                               strerror(errno));
            if (ftruncate(w->fd, w->size) != 0)
                lh_log(LH_LOG_ERROR, "audit.log_not_cut", "{s:s}", "message", strerror(errno));
            wlog_close(a, w);
            break;
        }
        w->size += (off_t)buf.len;
    }
    lh_buf_free(&buf);
    free(r);
    return rc;
}

/* The log writer thread: takes everything queued, writes it, counts it done; exits when
 * told to stop and the queue is empty. After a failed write it poisons the journal and
 * drops lines (counting them done) until a checkpoint clears lw_failed. */
static void *log_writer(void *arg)
{
    lh_audit *a = arg;
    audit_line **v = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&a->lw_mu);
    for (;;) {
        while ((!a->lw_head || a->lw_hold) && !a->lw_stop)
            pthread_cond_wait(&a->lw_cv, &a->lw_mu);
        if (!a->lw_head)
            break;
        audit_line *batch = a->lw_head;
        a->lw_head = NULL;
        a->lw_tail = &a->lw_head;
        bool failed = a->lw_failed;
        pthread_mutex_unlock(&a->lw_mu);

        size_t n = 0;
        for (audit_line *l = batch; l; l = l->next) {
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                v = lh_xrealloc(v, cap * sizeof(*v));
            }
            v[n++] = l;
        }
        lh_error err;
        int rc = failed ? 0 : lines_write(a, v, n, &err);
        if (rc) {
            /* The next row of that subject must not reach its log before the missing
             * one: poison (appends refused until a checkpoint replays the journal). */
            pthread_mutex_lock(&a->wal_mu);
            a->poisoned = true;
            pthread_mutex_unlock(&a->wal_mu);
            lh_log(LH_LOG_ERROR, "audit.log_write_failed", "{s:s}", "message", err.message);
        }
        for (size_t i = 0; i < n; i++)
            free(v[i]);

        pthread_mutex_lock(&a->lw_mu);
        if (rc)
            a->lw_failed = true;
        a->lw_done += n;
        pthread_cond_broadcast(&a->lw_done_cv);
    }
    pthread_mutex_unlock(&a->lw_mu);
    free(v);
    return NULL;
}

void audit_logs_settle(lh_audit *a)
{
    pthread_mutex_lock(&a->lw_mu);
    uint64_t target = a->lw_queued;
    while (a->lw_done < target && a->lw_running)
        pthread_cond_wait(&a->lw_done_cv, &a->lw_mu);
    pthread_mutex_unlock(&a->lw_mu);
}

void audit_log_writer_hold(lh_audit *a, bool hold)
{
    if (hold)
        audit_logs_settle(a); /* what was queued before is written first */
    pthread_mutex_lock(&a->lw_mu);
    a->lw_hold = hold;
    pthread_cond_signal(&a->lw_cv);
    pthread_mutex_unlock(&a->lw_mu);
}

/* Drains the writer and joins it. */
static void log_writer_stop(lh_audit *a)
{
    pthread_mutex_lock(&a->lw_mu);
    bool running = a->lw_running;
    a->lw_stop = true;
    pthread_cond_signal(&a->lw_cv);
    pthread_mutex_unlock(&a->lw_mu);
    if (!running)
        return;
    pthread_join(a->lw_thread, NULL);
    pthread_mutex_lock(&a->lw_mu);
    a->lw_running = false;
    pthread_cond_broadcast(&a->lw_done_cv);
    pthread_mutex_unlock(&a->lw_mu);
}

/* ---------------------------------------------------------------- open / close */

static lh_audit *audit_new(const char *data_dir, const char *key_file, bool readonly, lh_error *err)
{
    lh_audit *a = lh_xcalloc(1, sizeof(*a));
    a->lock_fd = -1;
    a->wal_fd = -1;
    a->readonly = readonly;
    atomic_store(&a->wal_max, LH_AUDIT_WAL_MAX);
    a->subjects_dir = lh_xasprintf("%s/_catalog/subjects", data_dir);
    a->wal_dir = lh_xasprintf("%s/_catalog/audit_wal", data_dir);
    pthread_mutex_init(&a->gate_mu, NULL);
    pthread_cond_init(&a->gate_cv, NULL);
    pthread_mutex_init(&a->wal_mu, NULL);
    pthread_cond_init(&a->wal_cv, NULL);
    pthread_condattr_t mono; /* the leader's bounded wait is on the monotonic clock */
    pthread_condattr_init(&mono);
    pthread_condattr_setclock(&mono, CLOCK_MONOTONIC);
    pthread_cond_init(&a->gather_cv, &mono);
    pthread_condattr_destroy(&mono);
    pthread_mutex_init(&a->lw_mu, NULL);
    pthread_cond_init(&a->lw_cv, NULL);
    pthread_cond_init(&a->lw_done_cv, NULL);
    a->lw_tail = &a->lw_head;
    for (int i = 0; i < AUDIT_STRIPES; i++)
        pthread_mutex_init(&a->stripes[i].mu, NULL);
    if (sodium_init() < 0 || lh_audit_key_load(key_file, a->key, &a->key_len, err) != 0) {
        if (err && err->code == 0)
            lh_error_set(err, LH_EINTERNAL, "libsodium failed to initialise");
        lh_audit_close(a);
        return NULL;
    }
    crypto_auth_hmacsha256_init(&a->keyed, a->key, a->key_len);
    return a;
}

lh_audit *lh_audit_open_readonly(const char *data_dir, const char *key_file, lh_error *err)
{
    return audit_new(data_dir, key_file, true, err);
}

lh_audit *lh_audit_open(const char *data_dir, const char *key_file, lh_error *err)
{
    lh_audit *a = audit_new(data_dir, key_file, false, err);
    if (!a)
        return NULL;
    if (lh_fs_mkdirs(a->subjects_dir, LH_DIR_MODE, err) ||
        lh_fs_mkdirs(a->wal_dir, LH_DIR_MODE, err))
        goto fail;
    char *lock = lh_path_join(a->wal_dir, "LOCK");
    a->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, LH_FILE_MODE);
    free(lock);
    if (a->lock_fd < 0) {
        lh_error_set(err, LH_EIO, "cannot open the audit journal lock: %s", strerror(errno));
        goto fail;
    }
    if (flock(a->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        lh_error_set(err, LH_EBUSY,
                     "the audit journal of this data folder is in use by another process (a "
                     "running server?); read-only commands still work");
        goto fail;
    }
    if (audit_wal_recover(a, err) || logged_load(a, err))
        goto fail;
    if (pthread_create(&a->lw_thread, NULL, log_writer, a) != 0) {
        lh_error_set(err, LH_EINTERNAL, "cannot start the audit log writer thread");
        goto fail;
    }
    a->lw_running = true;
    return a;
fail:
    lh_audit_close(a);
    return NULL;
}

void lh_audit_close(lh_audit *a)
{
    if (!a)
        return;
    if (!a->readonly && a->wal_fd >= 0) {
        lh_error err;
        if (lh_audit_checkpoint(a, &err) != 0)
            lh_log(LH_LOG_WARN, "audit.checkpoint_failed", "{s:s}", "message", err.message);
    }
    /* Lines still queued (no checkpoint ran, or it failed) are written now; the journal
     * holds them anyway for the next open's replay. */
    log_writer_stop(a);
    wlog_clear(a);
    if (a->wal_fd >= 0)
        close(a->wal_fd);
    if (a->lock_fd >= 0)
        close(a->lock_fd);
    for (int i = 0; i < AUDIT_STRIPES; i++) {
        stripe_clear(&a->stripes[i]);
        free(a->stripes[i].logged);
        pthread_mutex_destroy(&a->stripes[i].mu);
    }
    pthread_mutex_destroy(&a->gate_mu);
    pthread_cond_destroy(&a->gate_cv);
    pthread_mutex_destroy(&a->wal_mu);
    pthread_cond_destroy(&a->wal_cv);
    pthread_cond_destroy(&a->gather_cv);
    pthread_mutex_destroy(&a->lw_mu);
    pthread_cond_destroy(&a->lw_cv);
    pthread_cond_destroy(&a->lw_done_cv);
    sodium_memzero(a->key, sizeof(a->key));
    sodium_memzero(&a->keyed, sizeof(a->keyed));
    free(a->subjects_dir);
    free(a->wal_dir);
    free(a);
}

void lh_audit_set_root_listener(lh_audit *a, lh_audit_root_listener fn, void *ctx)
{
    a->listener = fn;
    a->listener_ctx = ctx;
}

void lh_audit_set_wal_max(lh_audit *a, uint64_t bytes)
{
    atomic_store(&a->wal_max, bytes);
}

void lh_audit_get_stats(lh_audit *a, lh_audit_stats *out)
{
    out->rows = atomic_load(&a->stat_rows);
    out->syncs = atomic_load(&a->stat_syncs);
    out->checkpoints = atomic_load(&a->stat_checkpoints);
}

/* ---------------------------------------------------------------- the gate */

static void gate_enter(lh_audit *a)
{
    pthread_mutex_lock(&a->gate_mu);
    while (a->gate_closed)
        pthread_cond_wait(&a->gate_cv, &a->gate_mu);
    a->gate_active++;
    pthread_mutex_unlock(&a->gate_mu);
}

static void gate_leave(lh_audit *a)
{
    pthread_mutex_lock(&a->gate_mu);
    if (--a->gate_active == 0)
        pthread_cond_broadcast(&a->gate_cv);
    pthread_mutex_unlock(&a->gate_mu);
}

int lh_audit_checkpoint(lh_audit *a, lh_error *err)
{
    if (a->readonly)
        return lh_error_set(err, LH_EUNAVAILABLE, "this audit handle is read-only");
    pthread_mutex_lock(&a->gate_mu);
    while (a->gate_closed)
        pthread_cond_wait(&a->gate_cv, &a->gate_mu);
    a->gate_closed = true;
    while (a->gate_active > 0)
        pthread_cond_wait(&a->gate_cv, &a->gate_mu);
    pthread_mutex_unlock(&a->gate_mu);

    /* No appender is inside: once the writer has drained, every journal record's line
     * has been written, or a log write failed and poisoned the journal. Clean (nothing
     * failed): syncing the logs the writer touched makes the journal redundant, and a new
     * one starts. Otherwise, or when that fails, the journal is replayed: that appends
     * what a failure left out of a log (nothing else), syncs, and starts a new journal.
     * Either way the tips are reloaded from the logs afterwards. */
    audit_logs_settle(a);
    bool clean = !audit_wal_poisoned(a); /* wal_mu and lw_mu are never nested */
    pthread_mutex_lock(&a->lw_mu);
    clean = clean && !a->lw_failed;
    pthread_mutex_unlock(&a->lw_mu);
    lh_error ce;
    int rc = clean ? wlog_sync(a, &ce) : LH_EIO;
    if (rc == 0)
        rc = audit_wal_rotate(a, &ce);
    if (rc != 0) {
        if (clean)
            lh_log(LH_LOG_WARN, "audit.checkpoint_replays", "{s:s}", "message", ce.message);
        rc = audit_wal_recover(a, err);
    }
    pthread_mutex_lock(&a->lw_mu);
    a->lw_failed = false; /* the replay wrote what the writer dropped */
    wlog_clear(a);        /* every log written before the checkpoint is synced */
    pthread_mutex_unlock(&a->lw_mu);
    for (int i = 0; i < AUDIT_STRIPES; i++)
        stripe_clear(&a->stripes[i]);
    atomic_fetch_add(&a->stat_checkpoints, 1);

    pthread_mutex_lock(&a->gate_mu);
    a->gate_closed = false;
    pthread_cond_broadcast(&a->gate_cv);
    pthread_mutex_unlock(&a->gate_mu);
    return rc;
}

/* ---------------------------------------------------------------- append */

typedef struct pending {
    char key[LH_SUBJECT_KEY_MAX];
    uint64_t hash;
    audit_tip *tip;
    char old_tip[LH_AUDIT_HMAC_HEX];
    char hmac[LH_AUDIT_HMAC_HEX];
    char *line;
    size_t len;
} pending;

/* Queues the lines of p[0..n) for the log writer (queue order = p order) and takes them
 * (each p[i].line is freed, set NULL). Caller holds the stripes of their subjects. */
static void lines_queue(lh_audit *a, pending *p, size_t n)
{
    audit_line *head = NULL, **tail = &head;
    for (size_t i = 0; i < n; i++) {
        size_t kl = strlen(p[i].key);
        audit_line *l = lh_xmalloc(sizeof(*l) + kl + 1 + p[i].len);
        l->next = NULL;
        l->key_len = kl;
        l->len = p[i].len;
        memcpy(l->data, p[i].key, kl + 1);
        memcpy(l->data + kl + 1, p[i].line, p[i].len);
        free(p[i].line);
        p[i].line = NULL;
        *tail = l;
        tail = &l->next;
    }
    pthread_mutex_lock(&a->lw_mu);
    *a->lw_tail = head;
    a->lw_tail = tail;
    a->lw_queued += n;
    pthread_cond_signal(&a->lw_cv);
    pthread_mutex_unlock(&a->lw_mu);
}

static int cmp_size(const void *x, const void *y)
{
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    return a < b ? -1 : a > b;
}

/* By subject key, then batch order: each subject's rows of the batch together, in order. */
static int cmp_pending_order(const void *x, const void *y)
{
    const pending *const *a = x, *const *b = y;
    int c = strcmp((*a)->key, (*b)->key);
    return c ? c : (*a < *b ? -1 : *a > *b);
}

/* Tells the listener each distinct subject's current tip, after every lock is released.
 * order: the batch's rows by cmp_pending_order. */
static void notify_roots(lh_audit *a, pending *const *order, size_t n, const pending *p,
                         const lh_audit_entry *entries)
{
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && strcmp(order[i]->key, order[i + 1]->key) == 0)
            continue;
        audit_stripe *s = stripe_of(a, order[i]->hash);
        char root[LH_AUDIT_HMAC_HEX];
        lh_error err;
        pthread_mutex_lock(&s->mu);
        audit_tip *t = tip_get(a, s, order[i]->key, order[i]->hash, &err);
        snprintf(root, sizeof(root), "%s", t ? t->hmac : order[i]->hmac);
        pthread_mutex_unlock(&s->mu);
        const char *id = entries[order[i] - p].candidate_id;
        if (a->listener(a->listener_ctx, id, root, &err) != 0)
            lh_log(LH_LOG_WARN, "audit.root_not_mirrored", "{s:s,s:s}", "candidate_id", id,
                   "message", err.message);
    }
}

/* Issue 12: one Merkle leaf per subject whose tip the durable batch moved (its tip before
 * the batch, its last row, its row count), after every lock is released. order: as for
 * notify_roots. */
static void note_leaves(lh_audit *a, pending *const *order, size_t n, const pending *p,
                        const lh_audit_entry *entries)
{
    audit_moved *moved = lh_xmalloc(n * sizeof(*moved));
    size_t k = 0;
    for (size_t i = 0, first = 0; i < n; i++) {
        if (i + 1 < n && strcmp(order[i]->key, order[i + 1]->key) == 0)
            continue;
        moved[k++] = (audit_moved){entries[order[i] - p].candidate_id, order[first]->old_tip,
                                   order[i]->hmac, (int64_t)(i - first + 1)};
        first = i + 1;
    }
    audit_merkle_note(a->merkle, moved, k);
    free(moved);
}

/* The durable batch's hooks: the listener's roots and the Merkle leaves, both over the
 * batch's rows sorted once by subject. */
static void after_durable(lh_audit *a, pending *p, size_t n, const lh_audit_entry *entries)
{
    if (!a->listener && !a->merkle)
        return;
    pending **order = lh_xmalloc(n * sizeof(*order));
    for (size_t i = 0; i < n; i++)
        order[i] = &p[i];
    qsort(order, n, sizeof(*order), cmp_pending_order);
    if (a->listener)
        notify_roots(a, order, n, p, entries);
    if (a->merkle)
        note_leaves(a, order, n, p, entries);
    free(order);
}

/* Appends n rows; hmacs (NULL or n * LH_AUDIT_HMAC_HEX bytes) gets their row_hmacs. */
static int append_rows(lh_audit *a, const lh_audit_entry *entries, size_t n, char *hmacs,
                       lh_error *err)
{
    if (a->readonly)
        return lh_error_set(err, LH_EUNAVAILABLE, "this audit handle is read-only");
    if (n == 0)
        return 0;
    pending *p = lh_xcalloc(n, sizeof(*p));
    size_t *stripes = lh_xmalloc(n * sizeof(*stripes));
    size_t nstripes = 0, signed_n = 0;
    lh_buf wal, canon;
    lh_buf_init(&wal);
    lh_buf_init(&canon);
    row_memo memo = {0}; /* what the batch's rows share */
    uint64_t end = 0;
    int rc = 0;
    bool entered = false, announced = false;
    for (size_t i = 0; i < n; i++) {
        if ((rc = lh_subject_key(entries[i].candidate_id, p[i].key, sizeof(p[i].key), err)))
            goto out;
        p[i].hash = key_hash(p[i].key);
        stripes[i] = p[i].hash % AUDIT_STRIPES;
    }
    qsort(stripes, n, sizeof(*stripes), cmp_size);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || stripes[i] != stripes[i - 1])
            stripes[nstripes++] = stripes[i];

    /* A failed sync poisons the journal; a checkpoint replays it and reloads the tips,
     * after which appends are acknowledged again. */
    if (audit_wal_poisoned(a)) {
        lh_error ck;
        if (lh_audit_checkpoint(a, &ck) != 0)
            lh_log(LH_LOG_ERROR, "audit.recovery_failed", "{s:s}", "message", ck.message);
    }
    gate_enter(a);
    entered = true;
    audit_wal_announce(a);
    announced = true;
    for (size_t i = 0; i < nstripes; i++)
        pthread_mutex_lock(&a->stripes[stripes[i]].mu);

    for (size_t i = 0; i < n; i++) {
        audit_stripe *s = stripe_of(a, p[i].hash);
        p[i].tip = tip_get(a, s, p[i].key, p[i].hash, err);
        if (!p[i].tip) {
            rc = err ? err->code : LH_EIO;
            goto rollback;
        }
        lh_buf line;
        lh_buf_init(&line);
        canon.len = 0;
        rc =
            row_build(&a->keyed, &entries[i], p[i].tip->hmac, &memo, &canon, p[i].hmac, &line, err);
        if (rc) {
            lh_buf_free(&line);
            goto rollback;
        }
        audit_wal_frame(&wal, line.data, line.len);
        lh_buf_putc(&line, '\n');
        p[i].line = line.data;
        p[i].len = line.len;
        memcpy(p[i].old_tip, p[i].tip->hmac, sizeof(p[i].old_tip));
        memcpy(p[i].tip->hmac, p[i].hmac, sizeof(p[i].hmac));
        signed_n = i + 1;
    }
    announced = false; /* the write ends the announcement, whatever its outcome */
    if ((rc = audit_wal_write(a, wal.data, wal.len, &end, err)))
        goto rollback;
    /* The rows are in the journal: queue their lines for the log writer, still under the
     * stripes, so each subject's lines are queued in chain order. */
    lines_queue(a, p, n);
    for (size_t i = nstripes; i-- > 0;)
        pthread_mutex_unlock(&a->stripes[stripes[i]].mu);
    rc = audit_wal_wait_durable(a, end, err);
    goto out;

rollback:
    if (announced)
        audit_wal_withdraw(a);
    /* Nothing of this batch reached the journal: restore the tips, newest first, so
     * each subject's tip is what it was before the batch. */
    for (size_t i = signed_n; i-- > 0;)
        memcpy(p[i].tip->hmac, p[i].old_tip, sizeof(p[i].old_tip));
    for (size_t i = nstripes; i-- > 0;)
        pthread_mutex_unlock(&a->stripes[stripes[i]].mu);
out:
    if (entered)
        gate_leave(a);
    if (rc == 0) {
        atomic_fetch_add(&a->stat_rows, n);
        after_durable(a, p, n, entries);
        if (hmacs)
            for (size_t i = 0; i < n; i++)
                memcpy(hmacs + i * LH_AUDIT_HMAC_HEX, p[i].hmac, LH_AUDIT_HMAC_HEX);
        if (audit_wal_size(a) > atomic_load(&a->wal_max) &&
            !atomic_exchange(&a->ckpt_running, true)) {
            lh_error ck;
            if (lh_audit_checkpoint(a, &ck) != 0)
                lh_log(LH_LOG_WARN, "audit.checkpoint_failed", "{s:s}", "message", ck.message);
            atomic_store(&a->ckpt_running, false);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(p[i].line);
    free(p);
    free(stripes);
    lh_buf_free(&wal);
    lh_buf_free(&canon);
    row_memo_free(&memo);
    return rc;
}

int lh_audit_append_batch(lh_audit *a, const lh_audit_entry *entries, size_t n, lh_error *err)
{
    return append_rows(a, entries, n, NULL, err);
}

int lh_audit_append(lh_audit *a, const lh_audit_entry *entry, char *hmac_out, lh_error *err)
{
    return append_rows(a, entry, 1, hmac_out, err);
}

/* ---------------------------------------------------------------- read and verify */

static void verdict_bad(lh_audit_verdict *v, int64_t row, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void verdict_bad(lh_audit_verdict *v, int64_t row, const char *reason, const char *fmt, ...)
{
    if (v->reason)
        return; /* the first problem wins */
    v->verified = false;
    v->first_bad_row = row;
    v->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->detail, sizeof(v->detail), fmt, ap);
    va_end(ap);
}

/* Checks one complete line (row number no, previous row_hmac prev). On success copies
 * its row_hmac to hmac_out and returns the parsed row (caller decrefs). */
static json_t *check_row(lh_audit *a, const char *id, const char *line, size_t len, int64_t no,
                         const char *prev, char *hmac_out, lh_audit_verdict *v)
{
    json_t *row = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    const char *h = json_is_object(row) ? line_hmac(row) : NULL;
    if (!h) {
        verdict_bad(v, no, "unparsable", "row %lld is not a JSON audit row with a row_hmac",
                    (long long)no);
        json_decref(row);
        return NULL;
    }
    snprintf(hmac_out, LH_AUDIT_HMAC_HEX, "%s", h);
    const char *schema = lh_json_str(row, "schema"), *cid = lh_json_str(row, "candidate_id");
    const char *rprev = lh_json_str(row, "prev_chain_hash");
    if (!schema || strcmp(schema, LH_AUDIT_SCHEMA) != 0) {
        verdict_bad(v, no, "wrong_schema", "row %lld is not a %s row", (long long)no,
                    LH_AUDIT_SCHEMA);
        return row;
    }
    if (!cid || strcmp(cid, id) != 0) {
        verdict_bad(v, no, "wrong_subject", "row %lld belongs to another subject", (long long)no);
        return row;
    }
    /* Recompute the HMAC over the canonical form of the row without row_hmac. */
    json_t *bare = json_copy(row);
    json_object_del(bare, "row_hmac");
    lh_buf b;
    lh_buf_init(&b);
    lh_error err;
    char want[LH_AUDIT_HMAC_HEX];
    int rc = lh_jcs_canonicalize_value(bare, &b, &err);
    json_decref(bare);
    if (rc == 0)
        hmac_hex(&a->keyed, b.data, b.len, want);
    lh_buf_free(&b);
    if (rc != 0 || sodium_memcmp(want, hmac_out, LH_AUDIT_HMAC_HEX - 1) != 0) {
        verdict_bad(v, no, "hmac_mismatch",
                    "row %lld was changed: its row_hmac does not match its content", (long long)no);
        return row;
    }
    if (!rprev || strcmp(rprev, prev) != 0)
        verdict_bad(v, no, "prev_mismatch",
                    "row %lld does not follow row %lld: its prev_chain_hash is not the "
                    "previous row's row_hmac (a row deleted, inserted or moved)",
                    (long long)no, (long long)no - 1);
    return row;
}

int lh_audit_read(lh_audit *a, const char *id, const char *expected_root, const char *from,
                  const char *to, json_t **rows, lh_audit_verdict *v, lh_error *err)
{
    char key[LH_SUBJECT_KEY_MAX], lo[LH_AUDIT_TS_MAX] = "", hi[LH_AUDIT_TS_MAX] = "";
    char *data = NULL, *path = NULL;
    size_t len = 0;
    int rc;
    memset(v, 0, sizeof(*v));
    if (rows)
        *rows = NULL;
    if ((rc = lh_subject_key(id, key, sizeof(key), err)))
        return rc;
    if (from && *from && (rc = lh_audit_ts_parse(from, lo, err)))
        return rc;
    if (to && *to && (rc = lh_audit_ts_parse(to, hi, err)))
        return rc;
    bool expect = expected_root && *expected_root && strcmp(expected_root, LH_AUDIT_GENESIS);
    audit_logs_settle(a);
    path = audit_log_path(a, key);
    rc = lh_fs_read_all(path, AUDIT_LOG_READ_MAX, &data, &len, err);
    free(path);
    if (rc == LH_ENOTFOUND) {
        lh_error_clear(err);
        rc = 0;
        v->verified = true;
        if (expect)
            verdict_bad(v, 1, "log_missing",
                        "the subject's manifest expects chain root %.16s… but the audit log "
                        "does not exist",
                        expected_root);
        if (rows)
            *rows = json_array();
        return 0;
    }
    if (rc)
        return lh_error_set(err, rc == LH_ETOOLARGE ? LH_ETOOLARGE : LH_EIO,
                            "cannot read the audit log of subject '%s'", id);
    if (rows)
        *rows = json_array();
    v->verified = true;
    char prev[LH_AUDIT_HMAC_HEX] = LH_AUDIT_GENESIS, hmac[LH_AUDIT_HMAC_HEX];
    int64_t expected_at = 0;
    size_t pos = 0;
    while (pos < len) {
        char *nl = memchr(data + pos, '\n', len - pos);
        int64_t no = v->rows_total + 1;
        if (!nl) {
            verdict_bad(v, no, "truncated_row", "row %lld is cut off (no end of line)",
                        (long long)no);
            break;
        }
        size_t n = (size_t)(nl - (data + pos));
        v->rows_total = no;
        hmac[0] = '\0';
        json_t *row = check_row(a, id, data + pos, n, no, prev, hmac, v);
        if (row && rows) {
            const char *ts = lh_json_str(row, "ts");
            if (ts && (!lo[0] || strcmp(ts, lo) >= 0) && (!hi[0] || strcmp(ts, hi) <= 0))
                json_array_append(*rows, row);
        }
        json_decref(row);
        if (expect && strcmp(hmac, expected_root) == 0)
            expected_at = no;
        snprintf(prev, sizeof(prev), "%s", hmac);
        snprintf(v->chain_root, sizeof(v->chain_root), "%s", hmac);
        pos += n + 1;
    }
    if (expect && v->rows_total == 0)
        verdict_bad(v, 1, "log_empty",
                    "the subject's manifest expects chain root %.16s… but the audit log is "
                    "empty",
                    expected_root);
    else if (expect && expected_at == 0)
        verdict_bad(v, v->rows_total + 1, "missing_rows",
                    "the subject's manifest expects chain root %.16s…, which no row of the "
                    "log has: rows after row %lld were removed",
                    expected_root, (long long)v->rows_total);
    else if (expect)
        v->manifest_lag = v->rows_total - expected_at;
    free(data);
    return 0;
}

int lh_audit_verify(lh_audit *a, const char *id, const char *expected_root, lh_audit_verdict *v,
                    lh_error *err)
{
    return lh_audit_read(a, id, expected_root, NULL, NULL, NULL, v, err);
}

int lh_audit_tip(lh_audit *a, const char *id, char *root_out, lh_error *err)
{
    char key[LH_SUBJECT_KEY_MAX];
    int rc = lh_subject_key(id, key, sizeof(key), err);
    if (rc)
        return rc;
    uint64_t h = key_hash(key);
    audit_stripe *s = stripe_of(a, h);
    pthread_mutex_lock(&s->mu);
    audit_tip *t = tip_get(a, s, key, h, err);
    if (t)
        snprintf(root_out, LH_AUDIT_HMAC_HEX, "%s", t->hmac);
    pthread_mutex_unlock(&s->mu);
    return t ? 0 : (err ? err->code : LH_EIO);
}

typedef struct list_ctx {
    int (*fn)(void *ctx, const char *candidate_id);
    void *ctx;
} list_ctx;

static int list_one(void *ctx, const char *name, size_t key_len)
{
    list_ctx *l = ctx;
    int rc = 0;
    char *id = subject_key_decode(name, key_len);
    char check[LH_SUBJECT_KEY_MAX];
    /* only names that are exactly the key of their id (no stray files) */
    if (id && lh_subject_key(id, check, sizeof(check), NULL) == 0 && strlen(check) == key_len &&
        memcmp(check, name, key_len) == 0)
        rc = l->fn(l->ctx, id);
    free(id);
    return rc;
}

int lh_audit_list(lh_audit *a, int (*fn)(void *ctx, const char *candidate_id), void *ctx,
                  lh_error *err)
{
    audit_logs_settle(a);
    list_ctx l = {fn, ctx};
    return logs_each(a, list_one, &l, err);
}
