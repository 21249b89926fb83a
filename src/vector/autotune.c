/*
 * autotune.c: the tuning glue (docs/VECTORS.md §Tuning): an index's eval set and trial
 * journal in its data folder, the bounded grid of POST /vectors/autotune/{index}, the
 * promotion of a champion, and the opt-in background agent.
 *
 * Files, in the index's data folder (h3's sweep spares them):
 *   evalset.json   written atomically (lh_fs_write_atomic); rebuilt when the index's
 *                  vector count or dimension no longer matches it (a refresh changed it)
 *   trials.jsonl   one JSON object per line, appended with O_APPEND, one write and an
 *                  fsync per trial; a torn last line (a crash mid-append) is cut at the
 *                  next read, so the journal is always whole lines
 * journal_mu serialises every read-cut and append of any journal in this process (trials
 * are seconds apart; one lock is simpler than one per index and never held across a
 * trial).
 *
 * Champions compete only with trials of the same eval set (same seed and vector count):
 * a trial measured before a refresh is history, not a rival.
 *
 * The agent: one thread that sleeps on a condition variable and, when the rate limit
 * allows (at most max_per_hour trial starts in any hour, cooldown_s after the previous
 * trial ended), submits ONE trial as a job of kind "vector_tune" for the next index in
 * name order. The job proposes (lh_tune_propose), measures, appends, and promotes a new
 * champion through lh_vindex_set_ann. lh_vtune_agent_stop cancels a queued or running
 * trial, waits for its end and joins the thread; it runs before the job pool closes.
 */
#include "vector/vector_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LH_TUNE_EVAL_QUERIES 200
#define LH_TUNE_EVAL_K 10
#define LH_TUNE_EVAL_SEED 14
#define LH_TUNE_JOURNAL_MAX (64u << 20)
#define LH_TUNE_EVALSET_MAX (256u << 20)
#define LH_TUNE_MAX_TRIALS 100

static pthread_mutex_t journal_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---------------------------------------------------------------- the files */

/* Reads the journal (an array, empty when the file is absent), cutting a torn last line.
 * Caller holds journal_mu and decrefs. */
static json_t *journal_read_locked(const char *path, lh_error *err)
{
    char *data = NULL;
    size_t len = 0;
    json_t *out = NULL;
    if (!lh_fs_exists(path))
        return json_array();
    if (lh_fs_read_all(path, LH_TUNE_JOURNAL_MAX, &data, &len, err) != 0)
        return NULL;
    out = json_array();
    size_t line = 0;
    while (line < len) {
        char *nl = memchr(data + line, '\n', len - line);
        if (nl == NULL) {
            /* A torn append: cut it so the next append starts on a line of its own. */
            if (truncate(path, (off_t)line) != 0) {
                lh_error_set(err, LH_EIO, "cutting the torn last line of a trial journal: %s",
                             strerror(errno));
                json_decref(out);
                out = NULL;
                goto out;
            }
            lh_log(LH_LOG_WARN, "vector.tune.journal_cut", "{s:I}", "bytes",
                   (json_int_t)(len - line));
            break;
        }
        json_error_t je;
        json_t *t = json_loadb(data + line, (size_t)(nl - (data + line)), 0, &je);
        if (json_is_object(t))
            json_array_append_new(out, t);
        else {
            json_decref(t);
            lh_log(LH_LOG_WARN, "vector.tune.journal_bad_line", "{s:I}", "offset",
                   (json_int_t)line);
        }
        line = (size_t)(nl - data) + 1;
    }
out:
    free(data);
    return out;
}

static json_t *journal_read(const char *path, lh_error *err)
{
    pthread_mutex_lock(&journal_mu);
    json_t *j = journal_read_locked(path, err);
    pthread_mutex_unlock(&journal_mu);
    return j;
}

/* Appends one trial as a line: one write, then fsync; a failed write is cut back so the
 * journal stays whole lines. */
static int journal_append(const char *path, const json_t *trial, lh_error *err)
{
    int rc = 0, fd = -1;
    char *line = json_dumps(trial, JSON_COMPACT);
    size_t n = strlen(line);
    line[n] = '\0';
    char *buf = lh_xmalloc(n + 1);
    memcpy(buf, line, n);
    buf[n] = '\n';
    pthread_mutex_lock(&journal_mu);
    json_t *cur = journal_read_locked(path, err); /* cuts a torn tail first */
    if (cur == NULL) {
        rc = err->code;
        goto out;
    }
    json_decref(cur);
    int64_t before = lh_fs_size(path);
    fd = lh_sys_open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, LH_FILE_MODE);
    if (fd < 0) {
        rc = lh_error_set(err, LH_EIO, "opening the trial journal: %s", strerror(errno));
        goto out;
    }
    if (lh_fs_write_all(fd, buf, n + 1) != 0 || lh_sys_fsync(fd) != 0) {
        rc = lh_error_set(err, LH_EIO, "appending to the trial journal: %s", strerror(errno));
        if (ftruncate(fd, before > 0 ? before : 0) != 0)
            lh_log(LH_LOG_WARN, "vector.tune.journal_cut_failed", "{s:s}", "error",
                   strerror(errno));
        goto out;
    }
    if (before <= 0) {
        /* The file is new: make its name durable too. */
        char *slash = strrchr(path, '/');
        char *dir = slash ? strndup(path, (size_t)(slash - path)) : lh_xstrdup(".");
        rc = lh_fs_fsync_dir(dir, err);
        free(dir);
    }
out:
    pthread_mutex_unlock(&journal_mu);
    if (fd >= 0)
        close(fd);
    free(line);
    free(buf);
    return rc;
}

/* The index's eval set: the stored one when it still matches the warm vectors, else a
 * new one written atomically. Caller decrefs. */
static json_t *evalset_get(const char *path, const lh_tune_matrix *m, lh_error *err)
{
    char *data = NULL;
    size_t len = 0;
    if (lh_fs_exists(path) && lh_fs_read_all(path, LH_TUNE_EVALSET_MAX, &data, &len, err) == 0) {
        json_error_t je;
        json_t *es = json_loadb(data, len, 0, &je);
        free(data);
        if (json_is_object(es) && lh_json_int(es, "n", -1) == (json_int_t)m->n &&
            lh_json_int(es, "dim", -1) == m->dim)
            return es;
        json_decref(es);
    }
    size_t nq = m->n < LH_TUNE_EVAL_QUERIES ? m->n : LH_TUNE_EVAL_QUERIES;
    json_t *es = lh_tune_evalset(m, nq, LH_TUNE_EVAL_K, LH_TUNE_EVAL_SEED, err);
    if (es == NULL)
        return NULL;
    char *text = json_dumps(es, JSON_COMPACT);
    int rc = lh_fs_write_atomic(path, text, strlen(text), err);
    free(text);
    if (rc != 0 && !lh_error_not_durable(err)) {
        json_decref(es);
        return NULL;
    }
    return es;
}

/* ---------------------------------------------------------------- shared steps */

/* What a tuning run needs of an index: its definition, warm vectors and file paths. */
typedef struct tune_ctx {
    json_t *def;
    lh_vwarm *w;
    char *evalset_path, *journal_path;
    lh_tune_matrix m;
} tune_ctx;

static void tune_ctx_free(tune_ctx *c)
{
    json_decref(c->def);
    if (c->w)
        lh_vwarm_release(c->w);
    free(c->evalset_path);
    free(c->journal_path);
}

static int tune_ctx_open(lh_vectors *v, const char *index, tune_ctx *c, lh_error *err)
{
    memset(c, 0, sizeof *c);
    int rc;
    if (!(c->def = lh_vindex_def(v, index, err)))
        return err->code;
    if ((rc = lh_vindex_warm(v, index, &c->w, err)) != 0)
        return rc;
    if (c->w->n == 0)
        return lh_error_set(err, LH_ECONFLICT,
                            "vector index '%s' has no vectors to tune on; refresh it first", index);
    const char *dir = lh_json_str(c->def, "dir");
    c->evalset_path = lh_path_join(dir, "evalset.json");
    c->journal_path = lh_path_join(dir, "trials.jsonl");
    c->m = (lh_tune_matrix){
        .n = c->w->n, .dim = c->w->dim, .vecs = c->w->vecs, .labels = c->w->labels};
    return 0;
}

/* Trials of the journal measured on eval set es. */
static json_t *same_evalset(const json_t *journal, const json_t *es)
{
    json_t *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(journal, i, t)
    {
        if (lh_json_int(t, "evalset_seed", -1) == lh_json_int(es, "seed", -2) &&
            lh_json_int(t, "n", -1) == lh_json_int(es, "n", -2))
            json_array_append(out, t);
    }
    return out;
}

/* Runs one trial of (kind, p), stamps it and appends it. Caller decrefs *out. */
static int run_trial(tune_ctx *c, const json_t *es, lh_ann_kind kind, const lh_ann_params *p,
                     const char *source, const char *actor, lh_job *job, json_t **out,
                     lh_error *err)
{
    json_t *t = lh_tune_trial(&c->m, es, kind, p, job, err);
    if (t == NULL)
        return err->code;
    json_object_set_new(t, "evalset_seed", json_integer(lh_json_int(es, "seed", 0)));
    json_object_set_new(t, "source", json_string(source));
    json_object_set_new(t, "actor", json_string(actor ? actor : ""));
    int rc = journal_append(c->journal_path, t, err);
    if (rc != 0) {
        json_decref(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* Promotes champion (borrowed) unless it is already the index's structure. *promoted says
 * whether it did. */
static int promote(lh_vectors *v, const char *index, const tune_ctx *c, const json_t *champion,
                   const char *actor, lh_job *job, bool *promoted, lh_error *err)
{
    *promoted = false;
    lh_ann_kind kind;
    lh_ann_params p;
    if (lh_ann_kind_parse(lh_json_str(champion, "kind"), &kind, err) != 0)
        return err->code;
    lh_ann_params_default(kind, c->m.dim, c->m.n, &p);
    if (lh_ann_params_from_json(kind, json_object_get(champion, "params"), &p, err) != 0)
        return err->code;
    const char *cur_kind = lh_json_str(c->def, "kind");
    json_t *want = lh_ann_params_json(kind, &p);
    bool same = cur_kind && strcmp(cur_kind, lh_ann_kind_name(kind)) == 0 &&
                json_equal(json_object_get(c->def, "params"), want);
    json_decref(want);
    if (same)
        return 0;
    int rc = lh_vindex_set_ann(v, index, kind, &p, json_deep_copy(champion), actor, job, err);
    if (rc == 0) {
        *promoted = true;
        lh_log(LH_LOG_INFO, "vector.tune.promoted", "{s:s,s:s,s:O,s:f,s:I}", "index", index, "kind",
               lh_ann_kind_name(kind), "params", json_object_get(champion, "params"), "recall",
               json_number_value(json_object_get(champion, "recall_at_10")), "p95_us",
               lh_json_int(champion, "p95_us", 0));
    }
    return rc;
}

/* ---------------------------------------------------------------- POST /vectors/autotune */

/* The bounded grid of a request: the kind's axes (spec.grid overrides any of them), the
 * index's current parameters for the rest. */
typedef struct req_grid {
    int n_axes;
    const char *key[3];
    json_t *vals[3]; /* arrays of integers */
} req_grid;

static int parse_spec(const json_t *spec, const json_t *def, int dim, size_t n, lh_ann_kind *kind,
                      double *target, int *max_trials, req_grid *g, lh_ann_params *base,
                      lh_error *err)
{
    static const char *known[] = {"kind", "recall_target", "max_trials", "grid", "wait"};
    const char *key;
    json_t *val;
    memset(g, 0, sizeof *g);
    if (spec && !json_is_object(spec))
        return lh_error_set(err, LH_EINVAL, "the autotune body must be an object");
    json_object_foreach((json_t *)spec, key, val)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof *known; i++)
            ok |= strcmp(known[i], key) == 0;
        if (!ok)
            return lh_error_set(err, LH_EINVAL,
                                "unknown autotune field '%s' (fields: kind, recall_target, "
                                "max_trials, grid, wait)",
                                key);
    }
    const json_t *jk = json_object_get(spec, "kind");
    if (jk && !json_is_string(jk))
        return lh_error_set(err, LH_EINVAL, "kind must be one of hnsw, ivfpq, flat");
    if (lh_ann_kind_parse(jk ? json_string_value(jk) : lh_json_str(def, "kind"), kind, err) != 0)
        return err->code;
    const json_t *jt = json_object_get(spec, "recall_target");
    *target = 0.95;
    if (jt && (!json_is_number(jt) || json_number_value(jt) <= 0 || json_number_value(jt) > 1))
        return lh_error_set(err, LH_EINVAL, "recall_target must be a number in (0, 1]");
    if (jt)
        *target = json_number_value(jt);
    const json_t *jm = json_object_get(spec, "max_trials");
    *max_trials = 12;
    if (jm && (!json_is_integer(jm) || json_integer_value(jm) < 1 ||
               json_integer_value(jm) > LH_TUNE_MAX_TRIALS))
        return lh_error_set(err, LH_EINVAL, "max_trials must be an integer in [1, %d]",
                            LH_TUNE_MAX_TRIALS);
    if (jm)
        *max_trials = (int)json_integer_value(jm);

    /* The base: the index's parameters when the kind is its own, else the defaults. */
    lh_ann_params_default(*kind, dim, n, base);
    const char *cur = lh_json_str(def, "kind");
    if (cur && strcmp(cur, lh_ann_kind_name(*kind)) == 0)
        lh_ann_params_from_json(*kind, json_object_get(def, "params"), base, err);

    /* Default axes: HNSW M × efSearch at efConstruction 200; IVF-PQ nlist × nprobe. */
    if (*kind == LH_ANN_HNSW) {
        g->n_axes = 2;
        g->key[0] = "M";
        g->vals[0] = json_pack("[i,i]", 16, 32);
        g->key[1] = "efSearch";
        g->vals[1] = json_pack("[i,i,i,i,i,i]", 16, 32, 64, 128, 256, 512);
        if (!json_object_get(spec, "grid"))
            base->hnsw_ef_construction = 200; /* the default grid's; a given grid keeps
                                                 the index's own */
    } else if (*kind == LH_ANN_IVFPQ) {
        int c = base->ivf_nlist;
        g->n_axes = 2;
        g->key[0] = "nlist";
        g->vals[0] = json_pack("[i,i]", c, c * 2 > 65536 ? c : c * 2);
        g->key[1] = "nprobe";
        g->vals[1] = json_pack("[i,i,i,i,i,i]", 1, 4, 8, 16, 32, 64);
    }
    const json_t *grid = json_object_get(spec, "grid");
    if (grid && !json_is_object(grid))
        return lh_error_set(err, LH_EINVAL, "grid must be an object of parameter: [values]");
    json_object_foreach((json_t *)grid, key, val)
    {
        /* Each value is checked through the kind's own parameter rules. */
        if (!json_is_array(val) || json_array_size(val) == 0 || json_array_size(val) > 16)
            return lh_error_set(err, LH_EINVAL, "grid.%s must be an array of 1 to 16 integers",
                                key);
        size_t i;
        json_t *x;
        json_array_foreach(val, i, x)
        {
            lh_ann_params probe = *base;
            json_t *one = json_pack("{s:O}", key, x);
            int rc = lh_ann_params_from_json(*kind, one, &probe, err);
            json_decref(one);
            if (rc != 0)
                return rc;
        }
        int a = 0;
        while (a < g->n_axes && strcmp(g->key[a], key) != 0)
            a++;
        if (a == g->n_axes) {
            if (g->n_axes == 3)
                return lh_error_set(err, LH_EINVAL, "grid may vary at most three parameters");
            g->n_axes++;
        }
        json_decref(g->vals[a]);
        g->key[a] = key;
        g->vals[a] = json_incref(val);
    }
    return 0;
}

static void req_grid_free(req_grid *g)
{
    for (int a = 0; a < 3; a++)
        json_decref(g->vals[a]);
}

int lh_vectors_autotune(lh_vectors *v, const char *index, const json_t *spec, const char *actor,
                        lh_job *job, json_t **out, lh_error *err)
{
    tune_ctx c;
    req_grid g = {0};
    json_t *es = NULL, *trials = json_array();
    int rc = tune_ctx_open(v, index, &c, err);
    if (rc != 0)
        goto out;
    lh_ann_kind kind = LH_ANN_FLAT;
    double target = 0.95;
    int max_trials = 12;
    lh_ann_params base;
    if ((rc = parse_spec(spec, c.def, c.m.dim, c.m.n, &kind, &target, &max_trials, &g, &base,
                         err)) != 0)
        goto out;
    if (!(es = evalset_get(c.evalset_path, &c.m, err))) {
        rc = err->code;
        goto out;
    }
    size_t total = 1;
    for (int a = 0; a < g.n_axes; a++)
        total *= json_array_size(g.vals[a]);
    size_t runs = total < (size_t)max_trials ? total : (size_t)max_trials;
    for (size_t code = 0; code < runs; code++) {
        if (lh_job_cancelled(job)) {
            rc = lh_error_set(err, LH_ECANCELLED, "autotune of '%s' was cancelled", index);
            goto out;
        }
        lh_job_progress(job, (int64_t)code, (int64_t)runs);
        lh_ann_params p = base;
        size_t rest = code;
        for (int a = 0; a < g.n_axes; a++) {
            size_t len = json_array_size(g.vals[a]);
            json_t *one = json_pack("{s:O}", g.key[a], json_array_get(g.vals[a], rest % len));
            rest /= len;
            rc = lh_ann_params_from_json(kind, one, &p, err);
            json_decref(one);
            if (rc != 0)
                goto out;
        }
        json_t *t = NULL;
        if ((rc = run_trial(&c, es, kind, &p, "autotune", actor, job, &t, err)) != 0)
            goto out;
        json_array_append_new(trials, t);
    }
    lh_job_progress(job, (int64_t)runs, (int64_t)runs);
    const json_t *champion = lh_tune_champion(trials, target);
    bool promoted = false;
    if (champion && (rc = promote(v, index, &c, champion, actor, job, &promoted, err)) != 0)
        goto out;
    *out = json_pack("{s:s,s:O,s:O,s:b,s:f,s:I}", "index", index, "trials", trials, "champion",
                     champion ? (json_t *)champion : json_null(), "promoted", promoted,
                     "recall_target", target, "evalset_queries",
                     (json_int_t)json_array_size(json_object_get(es, "queries")));
out:
    json_decref(es);
    json_decref(trials);
    req_grid_free(&g);
    tune_ctx_free(&c);
    return rc;
}

json_t *lh_vectors_trials(lh_vectors *v, const char *index, lh_error *err)
{
    json_t *def = lh_vindex_def(v, index, err);
    if (def == NULL)
        return NULL;
    char *path = lh_path_join(lh_json_str(def, "dir"), "trials.jsonl");
    json_t *journal = journal_read(path, err), *out = NULL;
    free(path);
    if (journal != NULL) {
        json_t *champion = json_object_get(def, "champion");
        out = json_pack("{s:s,s:s?,s:O?,s:O,s:o}", "index", index, "kind", lh_json_str(def, "kind"),
                        "params", json_object_get(def, "params"), "champion",
                        champion ? champion : json_null(), "trials", journal);
    }
    json_decref(def);
    return out;
}

/* ---------------------------------------------------------------- the background agent */

#define LH_TUNE_AGENT_TARGET 0.95
#define LH_TUNE_HOUR_MS 3600000LL

struct lh_vtune_agent {
    lh_vectors *v;
    lh_jobs *jobs;
    int max_per_hour, cooldown_s;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    bool stopping, in_flight;
    char job_id[LH_JOB_ID_LEN + 1];
    int64_t *starts; /* lh_now_ms of the trials started in the last hour, oldest first */
    size_t n_starts;
    int64_t last_end_ms; /* 0: no trial yet */
    char *last_index;    /* round robin over names */
    pthread_t th;
    atomic_long trials_run; /* for tests */
};

typedef struct agent_job {
    lh_vtune_agent *a;
    char *index;
} agent_job;

/* One agent trial on index: propose around the champion, measure, append, promote. */
static int agent_step(lh_vectors *v, const char *index, lh_job *job, lh_error *err)
{
    tune_ctx c;
    json_t *es = NULL, *journal = NULL, *rivals = NULL, *t = NULL;
    int rc = tune_ctx_open(v, index, &c, err);
    if (rc != 0)
        goto out;
    lh_ann_kind kind;
    if ((rc = lh_ann_kind_parse(lh_json_str(c.def, "kind"), &kind, err)) != 0)
        goto out;
    if (!(es = evalset_get(c.evalset_path, &c.m, err)) ||
        !(journal = journal_read(c.journal_path, err))) {
        rc = err->code;
        goto out;
    }
    rivals = same_evalset(journal, es);
    lh_ann_params p;
    rc = lh_tune_propose(rivals, kind, c.m.dim, c.m.n, &p, err);
    if (rc == LH_ENOTFOUND) {
        lh_log(LH_LOG_INFO, "vector.tune.exhausted", "{s:s,s:s}", "index", index, "kind",
               lh_ann_kind_name(kind));
        rc = 0;
        goto out;
    }
    if (rc != 0 || (rc = run_trial(&c, es, kind, &p, "agent", "vector-tune-agent", job, &t, err)))
        goto out;
    json_array_append(rivals, t);
    const json_t *champion = lh_tune_champion(rivals, LH_TUNE_AGENT_TARGET);
    bool promoted = false;
    if (champion)
        rc = promote(v, index, &c, champion, "vector-tune-agent", job, &promoted, err);
    lh_job_set_result(job,
                      json_pack("{s:s,s:O,s:b}", "index", index, "trial", t, "promoted", promoted));
out:
    json_decref(es);
    json_decref(journal);
    json_decref(rivals);
    json_decref(t);
    tune_ctx_free(&c);
    return rc;
}

static int agent_job_run(lh_job *job, void *ctx, lh_error *err)
{
    agent_job *j = ctx;
    int rc = agent_step(j->a->v, j->index, job, err);
    if (rc != 0)
        lh_log(LH_LOG_WARN, "vector.tune.trial_failed", "{s:s,s:s,s:s}", "index", j->index, "error",
               lh_error_kind(err), "message", err->message);
    return rc;
}

static void agent_job_done(void *ctx, int rc)
{
    (void)rc;
    agent_job *j = ctx;
    lh_vtune_agent *a = j->a;
    pthread_mutex_lock(&a->mu);
    a->in_flight = false;
    a->last_end_ms = lh_now_ms();
    atomic_fetch_add(&a->trials_run, 1);
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    free(j->index);
    free(j);
}

/* The next ready index with vectors after a->last_index in name order (wrapping), or NULL.
 * Caller frees. */
static char *agent_pick(lh_vtune_agent *a, const char *last)
{
    json_t *list = lh_vectors_list(a->v);
    char *first = NULL, *next = NULL;
    size_t i;
    json_t *ix;
    json_array_foreach(list, i, ix)
    {
        const char *name = lh_json_str(ix, "name");
        const char *state = lh_json_str(ix, "state");
        if (!name || (state && strcmp(state, "ready") != 0) || lh_json_int(ix, "chunks", 0) <= 0)
            continue;
        if (!first)
            first = lh_xstrdup(name);
        if (!next && last && strcmp(name, last) > 0)
            next = lh_xstrdup(name);
    }
    json_decref(list);
    if (next) {
        free(first);
        return next;
    }
    return first;
}

static void wait_until(lh_vtune_agent *a, int64_t deadline_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = lh_now_ms(), wait_ms = deadline_ms - now;
    if (wait_ms <= 0)
        return;
    ts.tv_sec += wait_ms / 1000;
    ts.tv_nsec += (wait_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&a->cv, &a->mu, &ts);
}

static void *agent_main(void *arg)
{
    lh_vtune_agent *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stopping) {
        int64_t now = lh_now_ms();
        size_t drop = 0;
        while (drop < a->n_starts && a->starts[drop] <= now - LH_TUNE_HOUR_MS)
            drop++;
        memmove(a->starts, a->starts + drop, (a->n_starts - drop) * sizeof *a->starts);
        a->n_starts -= drop;
        if (a->in_flight) {
            pthread_cond_wait(&a->cv, &a->mu);
            continue;
        }
        if (a->n_starts >= (size_t)a->max_per_hour) {
            wait_until(a, a->starts[0] + LH_TUNE_HOUR_MS);
            continue;
        }
        if (a->last_end_ms && now < a->last_end_ms + a->cooldown_s * 1000LL) {
            wait_until(a, a->last_end_ms + a->cooldown_s * 1000LL);
            continue;
        }
        char *last = a->last_index ? lh_xstrdup(a->last_index) : NULL;
        pthread_mutex_unlock(&a->mu);
        char *index = agent_pick(a, last);
        free(last);
        pthread_mutex_lock(&a->mu);
        if (a->stopping) {
            free(index);
            break;
        }
        if (index == NULL) { /* nothing to tune yet: look again after a cooldown */
            wait_until(a, lh_now_ms() + (a->cooldown_s > 0 ? a->cooldown_s : 1) * 1000LL);
            continue;
        }
        free(a->last_index);
        a->last_index = lh_xstrdup(index);
        agent_job *j = lh_xcalloc(1, sizeof *j);
        j->a = a;
        j->index = index;
        lh_error err;
        a->in_flight = true;
        a->starts[a->n_starts++] = lh_now_ms();
        if (lh_jobs_submit(a->jobs, "vector_tune", "vector-tune-agent", agent_job_run,
                           agent_job_done, j, a->job_id, &err) != 0) {
            a->in_flight = false;
            free(j->index);
            free(j);
            break; /* the pool is closing */
        }
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

lh_vtune_agent *lh_vtune_agent_start(lh_vectors *v, int max_per_hour, int cooldown_s, lh_error *err)
{
    const lh_vectors_config *vc = lh_vectors_handles(v);
    if (max_per_hour < 1 || cooldown_s < 0) {
        lh_error_set(err, LH_EINVAL, "the tuning agent needs max_per_hour >= 1, cooldown >= 0");
        return NULL;
    }
    lh_vtune_agent *a = lh_xcalloc(1, sizeof *a);
    a->v = v;
    a->jobs = vc->jobs;
    a->max_per_hour = max_per_hour;
    a->cooldown_s = cooldown_s;
    a->starts = lh_xcalloc((size_t)max_per_hour, sizeof *a->starts);
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&a->th, NULL, agent_main, a) != 0) {
        lh_error_set(err, LH_EINTERNAL, "starting the tuning agent: %s", strerror(errno));
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        free(a->starts);
        free(a);
        return NULL;
    }
    lh_log(LH_LOG_INFO, "vector.tune.agent_started", "{s:i,s:i}", "max_per_hour", max_per_hour,
           "cooldown_s", cooldown_s);
    return a;
}

void lh_vtune_agent_stop(lh_vtune_agent *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->th, NULL);
    pthread_mutex_lock(&a->mu);
    if (a->in_flight) {
        char id[LH_JOB_ID_LEN + 1];
        memcpy(id, a->job_id, sizeof id);
        pthread_mutex_unlock(&a->mu);
        lh_error ignored;
        lh_jobs_cancel(a->jobs, id, "vector-tune-agent", &ignored);
        pthread_mutex_lock(&a->mu);
        while (a->in_flight)
            pthread_cond_wait(&a->cv, &a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a->starts);
    free(a->last_index);
    free(a);
}

long lh_vtune_agent_trials(lh_vtune_agent *a)
{
    return a ? atomic_load(&a->trials_run) : 0;
}
