/*
 * embed_http.c: the `ollama` and `openai` embedders over libcurl (docs/VECTORS.md
 * §Embedders).
 *
 *   ollama: POST {base}/api/embed      {model, input: [...], keep_alive?} → {embeddings: [[...]]}
 *   openai: POST {base}/v1/embeddings  {model, input: [...]} → {data: [{index, embedding}]}
 *
 * Texts go in batches of LH_EMBED_BATCH. Each request has a total timeout
 * (LH_EMBED_TIMEOUT_MS) and a connect timeout; a 429, a 5xx or a connection failure is
 * retried up to LH_EMBED_RETRIES times after an exponential backoff with jitter, or after
 * the server's Retry-After (capped). A timeout is not retried (it already waited long):
 * LH_ETIMEOUT. Cancellation (lh_job_cancelled) is polled between batches, during backoff
 * sleeps and, through curl's progress callback, during a transfer.
 *
 * Every error names the endpoint as scheme://host:port/path (never the userinfo of the
 * base URL, never the key) with the status and a short, escaped excerpt of the body; the
 * key is also scrubbed from every message in case a server echoes it back.
 *
 * Secrets: the OpenAI key is read once, at open, from LH_EMBED_OPENAI_KEY_FILE, kept in
 * one buffer (the "Authorization: Bearer" header line) and wiped when the embedder is
 * freed. It reaches curl through a header list built on the stack, so curl holds no copy
 * of ours; libcurl's own transient request buffer is outside our control.
 */
#include "vector/vector_internal.h"

#include <curl/curl.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <utf8proc.h>

#define LH_EMBED_BACKOFF_BASE_MS 250
#define LH_EMBED_BACKOFF_MAX_MS 10000
#define LH_EMBED_RETRY_AFTER_MAX_MS 30000
#define LH_EMBED_MAX_RESPONSE (256u << 20)
#define LH_EMBED_EXCERPT 200
#define LH_EMBED_KEY_MAX 4096

struct lh_embed_http {
    bool is_ollama;
    char *kind;
    char *model;
    char *url;         /* base + path: what curl gets */
    char *endpoint;    /* scheme://host:port/path: what messages show */
    char *auth_header; /* "Authorization: Bearer <key>" (secret) or NULL */
    char *keep_alive;  /* ollama keep_alive for loads and embeds, or NULL */
    int timeout_ms, connect_timeout_ms, batch, retries;
};

/* ---------------------------------------------------------------- open / free */

/* The display form of url (scheme://host:port/path, no userinfo, no query), or NULL +
 * LH_EINVAL naming `var` when url is not an http(s) URL. Caller frees. */
static char *endpoint_of(const char *url, const char *var, lh_error *err)
{
    char *out = NULL, *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    CURLU *u = curl_url();
    if (!u)
        abort();
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        /* the URL itself may carry a password: name the variable, not its value */
        lh_error_set(err, LH_EINVAL, "%s is not an http:// or https:// URL", var);
        goto out;
    }
    out = lh_xasprintf("%s://%s:%s%s", scheme, host, port, path);
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return out;
}

/* Reads the key file into the Authorization header line. Messages never hold its bytes. */
static int read_key(const char *path, char **header, lh_error *err)
{
    char *data = NULL;
    size_t len = 0;
    lh_error e2;
    struct stat st;
    int rc = 0;
    /* as for the audit signing key: a key others can read is refused, not used */
    if (stat(path, &st) == 0 && (st.st_mode & 077)) {
        rc = lh_error_set(err, LH_EINVAL,
                          "LH_EMBED_OPENAI_KEY_FILE is accessible to group or others (mode "
                          "%04o): chmod 600 it",
                          (unsigned)(st.st_mode & 07777));
        goto out;
    }
    rc = lh_fs_read_all(path, LH_EMBED_KEY_MAX, &data, &len, &e2);
    if (rc) {
        /* e2 names the path, which is configuration, not a secret */
        rc = lh_error_set(err, rc == LH_ENOTFOUND ? LH_EINVAL : rc,
                          "LH_EMBED_OPENAI_KEY_FILE cannot be read: %s", e2.message);
        goto out;
    }
    size_t b = 0, e = len;
    while (b < e && (data[b] == ' ' || data[b] == '\t' || data[b] == '\r' || data[b] == '\n'))
        b++;
    while (e > b && (data[e - 1] == ' ' || data[e - 1] == '\t' || data[e - 1] == '\r' ||
                     data[e - 1] == '\n'))
        e--;
    if (b == e) {
        rc = lh_error_set(err, LH_EINVAL, "LH_EMBED_OPENAI_KEY_FILE is empty");
        goto out;
    }
    for (size_t i = b; i < e; i++)
        if ((unsigned char)data[i] < 0x21 || (unsigned char)data[i] > 0x7e) {
            rc = lh_error_set(err, LH_EINVAL,
                              "LH_EMBED_OPENAI_KEY_FILE holds a character not allowed in an "
                              "HTTP header (the key must be printable ASCII without spaces)");
            goto out;
        }
    *header = lh_xasprintf("Authorization: Bearer %.*s", (int)(e - b), data + b);
out:
    if (data) {
        sodium_memzero(data, len);
        free(data);
    }
    return rc;
}

lh_embed_http *lh_embed_http_open(const lh_config *cfg, const char *kind, const char *model,
                                  lh_error *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        lh_error_set(err, LH_EINTERNAL, "libcurl could not be initialised");
        return NULL;
    }
    lh_embed_http *h = lh_xcalloc(1, sizeof(*h));
    h->is_ollama = strcmp(kind, "ollama") == 0;
    h->kind = lh_xstrdup(kind);
    h->model = lh_xstrdup(model);
    /* zeroes (a hand-built lh_config) mean the documented defaults */
    h->timeout_ms = cfg && cfg->embed_timeout_ms > 0 ? cfg->embed_timeout_ms : 30000;
    h->connect_timeout_ms =
        cfg && cfg->embed_connect_timeout_ms > 0 ? cfg->embed_connect_timeout_ms : 5000;
    h->batch = cfg && cfg->embed_batch > 0 ? cfg->embed_batch : 64;
    h->retries = cfg && cfg->embed_retries >= 0 ? cfg->embed_retries : 3;
    const char *base, *var;
    if (h->is_ollama) {
        var = "LH_EMBED_OLLAMA_URL";
        base = cfg && cfg->embed_ollama_url ? cfg->embed_ollama_url : "http://127.0.0.1:11434";
        if (cfg && cfg->embed_keep_alive)
            h->keep_alive = lh_xstrdup(cfg->embed_keep_alive);
    } else {
        var = "LH_EMBED_OPENAI_URL";
        base = cfg && cfg->embed_openai_url ? cfg->embed_openai_url : "http://127.0.0.1:8000";
    }
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    h->url = lh_xasprintf("%.*s%s", (int)bl, base, h->is_ollama ? "/api/embed" : "/v1/embeddings");
    if (!(h->endpoint = endpoint_of(h->url, var, err)))
        goto fail;
    if (!h->is_ollama && cfg && cfg->embed_openai_key_file &&
        read_key(cfg->embed_openai_key_file, &h->auth_header, err) != 0)
        goto fail;
    return h;
fail:
    lh_embed_http_free(h);
    return NULL;
}

void lh_embed_http_free(lh_embed_http *h)
{
    if (!h)
        return;
    lh_secret_free(h->auth_header);
    free(h->kind);
    free(h->model);
    free(h->url);
    free(h->endpoint);
    free(h->keep_alive);
    free(h);
    curl_global_cleanup();
}

/* ---------------------------------------------------------------- one request */

typedef struct {
    lh_buf body;
    bool too_large;
    double retry_after_ms; /* < 0: none */
    lh_job *job;
} xfer;

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    xfer *x = ctx;
    size_t len = n * size;
    if (len > LH_EMBED_MAX_RESPONSE - x->body.len) {
        x->too_large = true;
        return 0;
    }
    lh_buf_append(&x->body, p, len);
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    xfer *x = ctx;
    size_t len = n * size;
    static const char name[] = "retry-after:";
    if (len > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
        char v[64];
        size_t vl = len - (sizeof(name) - 1);
        if (vl >= sizeof(v))
            vl = sizeof(v) - 1;
        memcpy(v, p + sizeof(name) - 1, vl);
        v[vl] = '\0';
        char *end;
        double secs = strtod(v, &end);
        while (*end == ' ' || *end == '\r' || *end == '\n')
            end++;
        if (end != v && !*end && secs >= 0 && isfinite(secs)) {
            x->retry_after_ms = secs * 1000.0;
        } else {
            /* an HTTP date */
            time_t when = curl_getdate(v, NULL);
            if (when != -1)
                x->retry_after_ms = difftime(when, time(NULL)) * 1000.0;
        }
    }
    return len;
}

static int on_progress(void *ctx, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
    (void)dlt, (void)dln, (void)ult, (void)uln;
    xfer *x = ctx;
    return lh_job_cancelled(x->job) ? 1 : 0;
}

/* A short, escaped excerpt of a response body for messages. Caller frees. */
static char *excerpt(const lh_buf *b)
{
    size_t n = b->len < LH_EMBED_EXCERPT ? b->len : lh_utf8_cut(b->data, LH_EMBED_EXCERPT);
    char *e = lh_escape(b->data ? b->data : "", n, true);
    if (n < b->len) {
        char *e2 = lh_xasprintf("%s...", e);
        free(e);
        e = e2;
    }
    return e;
}

/* Sleeps ms in short slices, polling the job. LH_ECANCELLED when it was cancelled. */
static int sleep_ms(double ms, lh_job *job, lh_error *err)
{
    int64_t until = lh_now_ms() + (int64_t)ms;
    for (;;) {
        if (lh_job_cancelled(job))
            return lh_error_set(err, LH_ECANCELLED, "embedding was cancelled");
        int64_t left = until - lh_now_ms();
        if (left <= 0)
            return 0;
        struct timespec ts = {0, (left > 50 ? 50 : left) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Transport failures worth another attempt: the server was not there or went away. Bad
 * URLs, TLS verification failures and the like fail at once. */
static bool transient(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

/* Posts body to the endpoint with retries. On success *resp holds the 2xx body (caller
 * frees with lh_buf_free). */
static int post(lh_embed_http *h, const char *body, size_t body_len, lh_job *job, lh_buf *resp,
                lh_error *err)
{
    int rc = 0;
    xfer x = {.job = job};
    lh_buf_init(&x.body);
    lh_buf_init(resp);
    CURL *c = curl_easy_init();
    if (!c) {
        rc = lh_error_set(err, LH_EINTERNAL, "libcurl could not create a handle");
        goto out;
    }
    /* A header list of our own nodes: curl reads it, never frees nor copies it. */
    struct curl_slist hdr[4];
    size_t nh = 0;
    hdr[nh++].data = (char *)"Content-Type: application/json";
    hdr[nh++].data = (char *)"Accept: application/json";
    hdr[nh++].data = (char *)"Expect:";
    if (h->auth_header)
        hdr[nh++].data = h->auth_header;
    for (size_t i = 0; i < nh; i++)
        hdr[i].next = i + 1 < nh ? &hdr[i + 1] : NULL;

    for (int attempt = 0;; attempt++) {
        if (lh_job_cancelled(job)) {
            rc = lh_error_set(err, LH_ECANCELLED, "embedding was cancelled");
            goto out;
        }
        curl_easy_reset(c);
        lh_buf_free(&x.body);
        lh_buf_init(&x.body);
        x.too_large = false;
        x.retry_after_ms = -1;
        curl_easy_setopt(c, CURLOPT_URL, h->url);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)h->connect_timeout_ms);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
        CURLcode cc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        bool last = attempt >= h->retries;
        if (cc == CURLE_ABORTED_BY_CALLBACK) {
            rc = lh_error_set(err, LH_ECANCELLED, "embedding was cancelled");
            goto out;
        }
        if (cc == CURLE_WRITE_ERROR && x.too_large) {
            rc = lh_error_setk(err, LH_EUPSTREAM, "embedder_error",
                               "embedder %s at %s sent a response over %u bytes", h->kind,
                               h->endpoint, LH_EMBED_MAX_RESPONSE);
            goto out;
        }
        if (cc == CURLE_OPERATION_TIMEDOUT) {
            rc = lh_error_setk(err, LH_ETIMEOUT, "embedder_timeout",
                               "embedder %s at %s did not answer within %d ms "
                               "(LH_EMBED_TIMEOUT_MS)",
                               h->kind, h->endpoint, h->timeout_ms);
            goto out;
        }
        if (cc != CURLE_OK) {
            if (last || !transient(cc)) {
                rc = lh_error_setk(err, LH_EUPSTREAM, "embedder_error",
                                   "embedder %s at %s cannot be reached: %s (%d attempt%s)",
                                   h->kind, h->endpoint, curl_easy_strerror(cc), attempt + 1,
                                   attempt ? "s" : "");
                goto out;
            }
        } else if (status >= 200 && status < 300) {
            *resp = x.body;
            lh_buf_init(&x.body);
            goto out;
        } else if (status != 429 && status < 500) {
            char *ex = excerpt(&x.body);
            rc = lh_error_setk(err, LH_EUPSTREAM, "embedder_error",
                               "embedder %s at %s answered %ld: %s", h->kind, h->endpoint, status,
                               ex);
            free(ex);
            goto out;
        } else if (last) {
            char *ex = excerpt(&x.body);
            rc = lh_error_setk(err, LH_EUPSTREAM, "embedder_error",
                               "embedder %s at %s answered %ld after %d attempt%s: %s", h->kind,
                               h->endpoint, status, attempt + 1, attempt ? "s" : "", ex);
            free(ex);
            goto out;
        }
        /* retry: exponential backoff with jitter in [d/2, d], or the server's Retry-After */
        double d = LH_EMBED_BACKOFF_BASE_MS * (double)(1u << (attempt < 16 ? attempt : 16));
        if (d > LH_EMBED_BACKOFF_MAX_MS)
            d = LH_EMBED_BACKOFF_MAX_MS;
        d = d / 2 + (double)randombytes_uniform((uint32_t)(d / 2) + 1);
        if (x.retry_after_ms >= 0)
            d = x.retry_after_ms < LH_EMBED_RETRY_AFTER_MAX_MS ? x.retry_after_ms
                                                               : LH_EMBED_RETRY_AFTER_MAX_MS;
        lh_log(LH_LOG_WARN, "embedder_retry", "{s:s,s:s,s:i,s:i,s:i}", "kind", h->kind, "endpoint",
               h->endpoint, "status", (int)status, "attempt", attempt + 1, "delay_ms", (int)d);
        if ((rc = sleep_ms(d, job, err)))
            goto out;
    }
out:
    if (c)
        curl_easy_cleanup(c);
    lh_buf_free(&x.body);
    if (rc && h->auth_header)
        lh_error_scrub(err, h->auth_header + strlen("Authorization: Bearer "), "[redacted]");
    return rc;
}

/* ---------------------------------------------------------------- the wire formats */

/* A JSON string of text; bytes that are not valid UTF-8 (JSON cannot carry them) become
 * U+FFFD, as lh_buf_json_string does. */
static json_t *json_text(const char *text)
{
    size_t len = strlen(text);
    json_t *j = json_stringn(text, len);
    if (j)
        return j;
    lh_buf b;
    lh_buf_init(&b);
    for (size_t at = 0; at < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)text + at,
                                              len - at > 4 ? 4 : (utf8proc_ssize_t)(len - at), &cp);
        if (k > 0) {
            lh_buf_append(&b, text + at, (size_t)k);
            at += (size_t)k;
        } else {
            lh_buf_append(&b, "\xef\xbf\xbd", 3);
            at++;
        }
    }
    j = json_stringn(b.data ? b.data : "", b.len);
    lh_buf_free(&b);
    return j;
}

static char *request_body(const lh_embed_http *h, const char *const *texts, size_t n,
                          bool with_keep_alive, const char *keep_alive)
{
    json_t *input = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(input, json_text(texts[i]));
    json_t *req = json_pack("{s:s,s:o}", "model", h->model, "input", input);
    if (with_keep_alive && keep_alive) {
        char *end;
        long long secs = strtoll(keep_alive, &end, 10);
        /* a bare number is seconds (Ollama reads it as such); anything else a duration */
        json_object_set_new(req, "keep_alive",
                            *end || end == keep_alive ? json_string(keep_alive)
                                                      : json_integer(secs));
    }
    char *s = lh_json_dumps(req);
    json_decref(req);
    return s;
}

static int bad_response(const lh_embed_http *h, lh_error *err, const char *what)
{
    return lh_error_setk(err, LH_EUPSTREAM, "embedder_error",
                         "embedder %s at %s sent a malformed response: %s", h->kind, h->endpoint,
                         what);
}

/* Copies one embedding (a JSON array of numbers) into row, L2-normalised; *dim learns the
 * length when 0, else must match it. */
static int take_row(const lh_embed_http *h, const json_t *arr, int *dim, float *row, lh_error *err)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return bad_response(h, err, "an embedding is not a non-empty array of numbers");
    size_t d = json_array_size(arr);
    if (*dim == 0) {
        if (d > LH_EMBED_DIM_MAX)
            return bad_response(h, err, "an embedding has more than 16384 values");
        *dim = (int)d;
    } else if (d != (size_t)*dim) {
        return lh_error_setk(err, LH_EUPSTREAM, "embedder_error",
                             "embedder %s at %s returned a vector of %zu values, expected %d "
                             "(model '%s')",
                             h->kind, h->endpoint, d, *dim, h->model);
    }
    if (!row)
        return 0;
    double norm2 = 0;
    for (size_t i = 0; i < d; i++) {
        const json_t *v = json_array_get(arr, i);
        if (!json_is_number(v))
            return bad_response(h, err, "an embedding holds a value that is not a number");
        double x = json_number_value(v);
        row[i] = (float)x;
        norm2 += x * x;
    }
    if (norm2 > 0) {
        double inv = 1.0 / sqrt(norm2);
        for (size_t i = 0; i < d; i++)
            row[i] = (float)(row[i] * inv);
    }
    return 0;
}

/* One batch: texts[0..n) → out (n × *dim; out NULL only for the probe, which learns
 * *dim). */
static int embed_batch(lh_embed_http *h, const char *const *texts, size_t n, int *dim, float *out,
                       lh_job *job, lh_error *err)
{
    int rc = 0;
    lh_buf resp;
    json_t *doc = NULL;
    char *body = request_body(h, texts, n, h->is_ollama, h->keep_alive);
    if ((rc = post(h, body, strlen(body), job, &resp, err)))
        goto out;
    json_error_t je;
    doc = json_loadb(resp.data ? resp.data : "", resp.len, 0, &je);
    lh_buf_free(&resp);
    if (!json_is_object(doc)) {
        rc = bad_response(h, err, "not a JSON object");
        goto out;
    }
    if (h->is_ollama) {
        const json_t *embs = json_object_get(doc, "embeddings");
        if (!json_is_array(embs)) {
            rc = bad_response(h, err, "no \"embeddings\" array");
            goto out;
        }
        if (json_array_size(embs) != n) {
            rc = lh_error_setk(err, LH_EUPSTREAM, "embedder_error",
                               "embedder %s at %s returned %zu embeddings for %zu inputs", h->kind,
                               h->endpoint, json_array_size(embs), n);
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            if ((rc = take_row(h, json_array_get(embs, i), dim, out ? out + i * (size_t)*dim : NULL,
                               err)))
                goto out;
    } else {
        const json_t *data = json_object_get(doc, "data");
        if (!json_is_array(data)) {
            rc = bad_response(h, err, "no \"data\" array");
            goto out;
        }
        if (json_array_size(data) != n) {
            rc = lh_error_setk(err, LH_EUPSTREAM, "embedder_error",
                               "embedder %s at %s returned %zu embeddings for %zu inputs", h->kind,
                               h->endpoint, json_array_size(data), n);
            goto out;
        }
        /* rows come back in any order: place each by its index, each index once */
        bool *seen = lh_xcalloc(n ? n : 1, sizeof(*seen));
        for (size_t i = 0; i < n && !rc; i++) {
            const json_t *item = json_array_get(data, i);
            const json_t *ix = json_object_get(item, "index");
            if (!json_is_integer(ix) || json_integer_value(ix) < 0 ||
                (size_t)json_integer_value(ix) >= n || seen[json_integer_value(ix)]) {
                rc = bad_response(h, err, "the \"index\" fields are not 0..n-1, each once");
                break;
            }
            size_t at = (size_t)json_integer_value(ix);
            seen[at] = true;
            rc = take_row(h, json_object_get(item, "embedding"), dim,
                          out ? out + at * (size_t)*dim : NULL, err);
        }
        free(seen);
    }
out:
    json_decref(doc);
    free(body);
    return rc;
}

int lh_embed_http_probe_dim(lh_embed_http *h, int *dim, lh_error *err)
{
    const char *probe = "dimension probe";
    *dim = 0;
    return embed_batch(h, &probe, 1, dim, NULL, NULL, err);
}

int lh_embed_http_embed(lh_embed_http *h, const char *const *texts, size_t n, int dim, float *out,
                        lh_job *job, lh_error *err)
{
    for (size_t at = 0; at < n; at += (size_t)h->batch) {
        if (lh_job_cancelled(job))
            return lh_error_set(err, LH_ECANCELLED, "embedding was cancelled");
        size_t m = n - at < (size_t)h->batch ? n - at : (size_t)h->batch;
        int d = dim;
        int rc = embed_batch(h, texts + at, m, &d, out + at * (size_t)dim, job, err);
        if (rc)
            return rc;
    }
    return 0;
}

int lh_embed_http_load(lh_embed_http *h, bool load, lh_error *err)
{
    if (!h->is_ollama)
        return 0;
    int rc = 0;
    lh_buf resp;
    /* An empty input loads the model (keep_alive: the configured one, else the server's
       default) or, with keep_alive 0, unloads it; the answer has no embedding. */
    char *body = request_body(h, NULL, 0, true, load ? h->keep_alive : "0");
    if ((rc = post(h, body, strlen(body), NULL, &resp, err)) == 0)
        lh_buf_free(&resp);
    free(body);
    return rc;
}
