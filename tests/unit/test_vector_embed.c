/*
 * test_vector_embed.c: the embedders of src/vector/ (embed.c, embed_hash.c, embed_http.c).
 *
 * The hash embedder: its known-answer vectors (docs/VECTORS.md §Embedders), determinism,
 * unit norm, zero rows, that a paraphrase sharing words scores above an unrelated text,
 * the dimension option. The ollama and openai embedders run against the stand-in server
 * (tests/embedserver.py, which CMake starts around this binary and whose URL arrives in
 * LH_TEST_EMBED_URL): batching, ordering by index, retries with backoff on 429 and 500,
 * exhausted retries naming the endpoint, timeouts, a wrong key that never shows in the
 * error, the learned dimension, malformed answers, a 404 not retried, four threads on one
 * embedder, cancellation during a transfer and the load / unload bodies. The stand-in's
 * vectors are the hash embedder's, computed by its Python reference implementation, so
 * every HTTP result is checked value by value against lh_hash_embed — which also
 * cross-checks the documented algorithm.
 */
#include "testutil.h"

#include "vector/vector_internal.h"

#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- the hash embedder */

/* docs/VECTORS.md §Embedders: the known-answer text and vectors. */
static const char KA_TEXT[] = "Registered Nurse (ICU), nurse educator \xe2\x80\x94 8 years; "
                              "Stra\xc3\x9f"
                              "e \xef\xac\x81xes, Denver nurse";

static void test_hash_known_answer(void **state)
{
    (void)state;
    float v8[8];
    lh_hash_embed(KA_TEXT, strlen(KA_TEXT), 8, v8);
    static const float want8[8] = {-0.01279084f, -0.12970842f, 0.25941683f, 0.06289647f,
                                   -0.79104135f, -0.51883367f, 0.0f,        0.12970842f};
    for (int i = 0; i < 8; i++)
        if (fabsf(v8[i] - want8[i]) > 1e-6f)
            fail_msg("dim 8, value %d: %.8f, want %.8f", i, v8[i], want8[i]);
    /* dim 384: the first 8 non-zero entries and how many there are */
    float *v = lh_xmalloc(384 * sizeof(float));
    lh_hash_embed(KA_TEXT, strlen(KA_TEXT), 384, v);
    static const int want_ix[8] = {23, 28, 36, 38, 39, 41, 51, 58};
    static const float want_v[8] = {-0.11460663f, -0.22921325f, -0.24051487f, -0.11460663f,
                                    0.11460663f,  0.11460663f,  -0.11460663f, 0.11460663f};
    int k = 0, nonzero = 0;
    for (int i = 0; i < 384; i++) {
        if (v[i] == 0.0f)
            continue;
        nonzero++;
        if (k < 8) {
            assert_int_equal(i, want_ix[k]);
            if (fabsf(v[i] - want_v[k]) > 1e-6f)
                fail_msg("dim 384, value %d: %.8f, want %.8f", i, v[i], want_v[k]);
            k++;
        }
    }
    assert_int_equal(nonzero, 62);
    free(v);
}

static double dot(const float *a, const float *b, int dim)
{
    double s = 0;
    for (int i = 0; i < dim; i++)
        s += (double)a[i] * b[i];
    return s;
}

static void test_hash_deterministic_unit_norm_and_zero_row(void **state)
{
    (void)state;
    enum { D = 384 };
    float a[D], b[D];
    const char *t = "Senior data engineer: Spark, Kafka, dbt, 6 years in Berlin";
    lh_hash_embed(t, strlen(t), D, a);
    lh_hash_embed(t, strlen(t), D, b);
    assert_memory_equal(a, b, sizeof(a));
    assert_true(fabs(dot(a, a, D) - 1.0) < 1e-5);
    /* normalisation is applied first: case and compatibility forms do not matter */
    const char *t2 = "SENIOR DATA ENGINEER: SPARK, KAFKA, DBT, \xef\xbc\x96 YEARS IN BERLIN";
    lh_hash_embed(t2, strlen(t2), D, b);
    assert_memory_equal(a, b, sizeof(a));
    /* no word character: a zero row */
    const char *none = " ,.;!? \xe2\x80\x94 ";
    lh_hash_embed(none, strlen(none), D, b);
    for (int i = 0; i < D; i++)
        assert_true(b[i] == 0.0f);
    lh_hash_embed("", 0, D, b);
    for (int i = 0; i < D; i++)
        assert_true(b[i] == 0.0f);
    /* invalid bytes are separators, not a failure */
    lh_hash_embed("data\xff"
                  "engineer",
                  13, D, b);
    lh_hash_embed("data engineer", 13, D, a);
    assert_memory_equal(a, b, sizeof(a));
}

static void test_hash_paraphrase_beats_unrelated(void **state)
{
    (void)state;
    enum { D = 384 };
    float q[D], para[D], other[D];
    const char *query = "registered nurse with intensive care experience in Denver";
    const char *p = "Experienced ICU nurse (registered), intensive care, based in Denver";
    const char *o = "Backend software developer writing Go microservices in Lisbon";
    lh_hash_embed(query, strlen(query), D, q);
    lh_hash_embed(p, strlen(p), D, para);
    lh_hash_embed(o, strlen(o), D, other);
    double sp = dot(q, para, D), so = dot(q, other, D);
    if (!(sp > so + 0.2))
        fail_msg("paraphrase %.3f vs unrelated %.3f", sp, so);
}

static void test_hash_embedder_open_and_dim(void **state)
{
    (void)state;
    lh_error err;
    lh_embedder_spec spec = {.kind = "hash"};
    lh_embedder *e = lh_embedder_open(NULL, &spec, &err);
    assert_non_null(e);
    assert_string_equal(lh_embedder_kind(e), "hash");
    assert_string_equal(lh_embedder_model(e), "");
    assert_int_equal(lh_embedder_dim(e), 384);
    const char *texts[] = {"alpha beta", "gamma"};
    float *out = lh_xmalloc(2 * 384 * sizeof(float));
    assert_int_equal(lh_embedder_embed(e, texts, 2, out, NULL, &err), 0);
    float one[384];
    lh_hash_embed("gamma", 5, 384, one);
    assert_memory_equal(out + 384, one, sizeof(one));
    assert_int_equal(lh_embedder_load(e, true, &err), 0); /* nothing to load */
    free(out);
    lh_embedder_free(e);

    spec.dim = 64;
    e = lh_embedder_open(NULL, &spec, &err);
    assert_int_equal(lh_embedder_dim(e), 64);
    lh_embedder_free(e);
    /* the same text at another dimension is another vector, still of unit norm */
    float v64[64];
    lh_hash_embed("alpha beta", 10, 64, v64);
    assert_true(fabs(dot(v64, v64, 64) - 1.0) < 1e-5);

    spec.dim = 4;
    assert_null(lh_embedder_open(NULL, &spec, &err));
    assert_int_equal(err.code, LH_EINVAL);
    assert_non_null(strstr(err.message, "dim"));
    spec.dim = 5000;
    assert_null(lh_embedder_open(NULL, &spec, &err));
    spec = (lh_embedder_spec){.kind = "hash", .model = "x"};
    assert_null(lh_embedder_open(NULL, &spec, &err));
    spec = (lh_embedder_spec){.kind = "word2vec"};
    assert_null(lh_embedder_open(NULL, &spec, &err));
    assert_non_null(strstr(err.message, "hash, ollama, openai"));
    spec = (lh_embedder_spec){.kind = "ollama"};
    assert_null(lh_embedder_open(NULL, &spec, &err));
    assert_non_null(strstr(err.message, "model"));
}

/* ---------------------------------------------------------------- configuration */

static void test_config_embed_settings(void **state)
{
    (void)state;
    static const char *vars[] = {"LH_EMBED_OLLAMA_URL",      "LH_EMBED_OPENAI_URL",
                                 "LH_EMBED_OPENAI_KEY_FILE", "LH_EMBED_KEEP_ALIVE",
                                 "LH_EMBED_TIMEOUT_MS",      "LH_EMBED_CONNECT_TIMEOUT_MS",
                                 "LH_EMBED_BATCH",           "LH_EMBED_RETRIES"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(*vars); i++)
        unsetenv(vars[i]);
    lh_config cfg;
    lh_error err;
    assert_int_equal(lh_config_load(&cfg, &err), 0);
    assert_string_equal(cfg.embed_ollama_url, "http://127.0.0.1:11434");
    assert_string_equal(cfg.embed_openai_url, "http://127.0.0.1:8000");
    assert_null(cfg.embed_openai_key_file);
    assert_null(cfg.embed_keep_alive);
    assert_int_equal(cfg.embed_timeout_ms, 30000);
    assert_int_equal(cfg.embed_connect_timeout_ms, 5000);
    assert_int_equal(cfg.embed_batch, 64);
    assert_int_equal(cfg.embed_retries, 3);
    lh_config_free(&cfg);

    setenv("LH_EMBED_OLLAMA_URL", "http://gpu-box:11434", 1);
    setenv("LH_EMBED_OPENAI_URL", "https://vllm.internal", 1);
    setenv("LH_EMBED_OPENAI_KEY_FILE", "/run/secrets/openai", 1);
    setenv("LH_EMBED_KEEP_ALIVE", "30m", 1);
    setenv("LH_EMBED_TIMEOUT_MS", "1500", 1);
    setenv("LH_EMBED_BATCH", "16", 1);
    setenv("LH_EMBED_RETRIES", "0", 1);
    assert_int_equal(lh_config_load(&cfg, &err), 0);
    assert_string_equal(cfg.embed_ollama_url, "http://gpu-box:11434");
    assert_string_equal(cfg.embed_openai_url, "https://vllm.internal");
    assert_string_equal(cfg.embed_openai_key_file, "/run/secrets/openai");
    assert_string_equal(cfg.embed_keep_alive, "30m");
    assert_int_equal(cfg.embed_timeout_ms, 1500);
    assert_int_equal(cfg.embed_batch, 16);
    assert_int_equal(cfg.embed_retries, 0);
    lh_config_free(&cfg);

    setenv("LH_EMBED_BATCH", "0", 1);
    assert_int_equal(lh_config_load(&cfg, &err), LH_EINVAL);
    assert_non_null(strstr(err.message, "LH_EMBED_BATCH"));
    lh_config_free(&cfg);
    for (size_t i = 0; i < sizeof(vars) / sizeof(*vars); i++)
        unsetenv(vars[i]);
}

/* ---------------------------------------------------------------- the stand-in server */

static const char *standin_url(void)
{
    const char *u = getenv("LH_TEST_EMBED_URL");
    if (!u || !*u)
        fail_msg("LH_TEST_EMBED_URL is not set: run through tests/embedserver.py run -- ...");
    return u;
}

static size_t sink(char *p, size_t size, size_t n, void *ctx)
{
    lh_buf_append(ctx, p, size * n);
    return size * n;
}

/* A request to the stand-in's control side; returns the JSON answer (caller decrefs). */
static json_t *standin(const char *path, const char *body)
{
    char *url = lh_xasprintf("%s%s", standin_url(), path);
    lh_buf b;
    lh_buf_init(&b);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    json_error_t je;
    json_t *j = json_loadb(b.data, b.len, 0, &je);
    assert_non_null(j);
    lh_buf_free(&b);
    free(url);
    return j;
}

static void control(const char *body)
{
    json_decref(standin("/_control", body));
}

static int setup(void **state)
{
    (void)state;
    control("{\"reset\":true}");
    return 0;
}

/* A hand-built configuration pointing both embedders at the stand-in. */
static void cfg_init(lh_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->embed_ollama_url = lh_xstrdup(standin_url());
    cfg->embed_openai_url = lh_xasprintf("%s/", standin_url()); /* a trailing / is fine */
    cfg->embed_timeout_ms = 10000;
    cfg->embed_connect_timeout_ms = 2000;
    cfg->embed_batch = 4;
    cfg->embed_retries = 3;
}

static void cfg_free(lh_config *cfg)
{
    free(cfg->embed_ollama_url);
    free(cfg->embed_openai_url);
    free(cfg->embed_openai_key_file);
    free(cfg->embed_keep_alive);
}

static lh_embedder *open_http(const lh_config *cfg, const char *kind, const char *model, int dim)
{
    lh_error err;
    lh_embedder_spec spec = {.kind = kind, .model = model, .dim = dim};
    lh_embedder *e = lh_embedder_open(cfg, &spec, &err);
    if (!e)
        fail_msg("open %s: %s", kind, err.message);
    return e;
}

static size_t n_requests(void)
{
    json_t *r = standin("/_requests", NULL);
    size_t n = json_array_size(r);
    json_decref(r);
    return n;
}

/* Ten texts embedded in batches of 4 (3 requests), each row equal to lh_hash_embed's. */
static void batching_case(const char *kind)
{
    lh_config cfg;
    cfg_init(&cfg);
    control("{\"reset\":true,\"shuffle\":true}"); /* openai: data comes back reversed */
    lh_embedder *e = open_http(&cfg, kind, "mini-16", 16);
    assert_int_equal(n_requests(), 0); /* a known dim: no probe */
    /* an empty text, non-ASCII, and invalid UTF-8 (sent as U+FFFD, a separator for the
       stand-in as an invalid byte is for lh_hash_embed) */
    const char *texts[10] = {"nurse",
                             "ICU nurse in Denver",
                             "data engineer",
                             "Stra\xc3\x9f"
                             "e",
                             "",
                             "welder\xff"
                             "fitter",
                             "chef de partie",
                             "a b c",
                             "pilot, A320",
                             "teacher of maths"};
    float out[10 * 16], want[16];
    lh_error err;
    if (lh_embedder_embed(e, texts, 10, out, NULL, &err) != 0)
        fail_msg("%s: %s", kind, err.message);
    for (int i = 0; i < 10; i++) {
        lh_hash_embed(texts[i], strlen(texts[i]), 16, want);
        for (int d = 0; d < 16; d++)
            if (fabsf(out[i * 16 + d] - want[d]) > 1e-6f)
                fail_msg("%s: text %d value %d: %.7f, want %.7f", kind, i, d, out[i * 16 + d],
                         want[d]);
    }
    json_t *r = standin("/_requests", NULL);
    assert_int_equal(json_array_size(r), 3);
    static const int sizes[3] = {4, 4, 2};
    for (size_t i = 0; i < 3; i++) {
        json_t *q = json_array_get(r, i);
        assert_int_equal(json_integer_value(json_object_get(q, "inputs")), sizes[i]);
        assert_string_equal(lh_json_str(q, "model"), "mini-16");
        assert_string_equal(lh_json_str(q, "path"),
                            strcmp(kind, "ollama") == 0 ? "/api/embed" : "/v1/embeddings");
        assert_false(json_is_true(json_object_get(q, "auth")));
        assert_null(json_object_get(q, "keep_alive"));
    }
    json_decref(r);
    lh_embedder_free(e);
    cfg_free(&cfg);
}

static void test_http_batching(void **state)
{
    (void)state;
    batching_case("ollama");
    batching_case("openai");
}

static void test_http_dimension_learned(void **state)
{
    (void)state;
    lh_config cfg;
    cfg_init(&cfg);
    lh_embedder *e = open_http(&cfg, "openai", "probe-24", 0);
    assert_int_equal(lh_embedder_dim(e), 24);
    assert_string_equal(lh_embedder_model(e), "probe-24");
    json_t *r = standin("/_requests", NULL);
    assert_int_equal(json_array_size(r), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 0), "inputs")), 1);
    json_decref(r);
    lh_embedder_free(e);
    /* a server answering a different dimension than the index expects is an error */
    e = open_http(&cfg, "ollama", "probe-24", 32);
    const char *t = "x";
    float out[32];
    lh_error err;
    assert_int_equal(lh_embedder_embed(e, &t, 1, out, NULL, &err), LH_EUPSTREAM);
    assert_non_null(strstr(err.message, "24 values, expected 32"));
    lh_embedder_free(e);
    cfg_free(&cfg);
}

static void test_http_retry_429_then_success(void **state)
{
    (void)state;
    lh_config cfg;
    cfg_init(&cfg);
    lh_embedder *e = open_http(&cfg, "ollama", "m-8", 8);
    control("{\"fail_status\":429,\"fail_count\":1,\"retry_after\":1}");
    const char *t = "retry me";
    float out[8];
    lh_error err;
    int64_t t0 = lh_now_ms();
    if (lh_embedder_embed(e, &t, 1, out, NULL, &err) != 0)
        fail_msg("%s", err.message);
    int64_t ms = lh_now_ms() - t0;
    assert_true(ms >= 1000); /* Retry-After: 1 was honoured */
    assert_int_equal(n_requests(), 2);

    /* 500 twice, no Retry-After: exponential backoff with jitter, at least
       250/2 + 500/2 ms */
    control("{\"reset\":true,\"fail_status\":500,\"fail_count\":2}");
    t0 = lh_now_ms();
    if (lh_embedder_embed(e, &t, 1, out, NULL, &err) != 0)
        fail_msg("%s", err.message);
    ms = lh_now_ms() - t0;
    assert_true(ms >= 375);
    json_t *r = standin("/_requests", NULL);
    assert_int_equal(json_array_size(r), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 0), "status")), 500);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 2), "status")), 200);
    json_decref(r);
    float want[8];
    lh_hash_embed(t, strlen(t), 8, want);
    for (int d = 0; d < 8; d++)
        assert_true(fabsf(out[d] - want[d]) < 1e-6f);
    lh_embedder_free(e);
    cfg_free(&cfg);
}

static void test_http_500_exhausted_names_endpoint(void **state)
{
    (void)state;
    lh_config cfg;
    cfg_init(&cfg);
    cfg.embed_retries = 2;
    /* a base URL with a password: it must never appear in a message */
    free(cfg.embed_ollama_url);
    cfg.embed_ollama_url =
        lh_xasprintf("http://lh:hunter2-secret@%s", standin_url() + strlen("http://"));
    lh_embedder *e = open_http(&cfg, "ollama", "m-8", 8);
    control("{\"fail_status\":503,\"fail_count\":10}");
    const char *t = "never";
    float out[8];
    lh_error err;
    assert_int_equal(lh_embedder_embed(e, &t, 1, out, NULL, &err), LH_EUPSTREAM);
    assert_string_equal(lh_error_kind(&err), "embedder_error");
    char *endpoint = lh_xasprintf("%s/api/embed", standin_url());
    if (!strstr(err.message, endpoint) || !strstr(err.message, "503") ||
        !strstr(err.message, "3 attempts") || !strstr(err.message, "stand-in told to fail"))
        fail_msg("message: %s", err.message);
    assert_null(strstr(err.message, "hunter2"));
    assert_int_equal(n_requests(), 3); /* 1 + 2 retries */
    free(endpoint);
    lh_embedder_free(e);

    /* nothing listening: a connection error, retried, then named */
    free(cfg.embed_ollama_url);
    cfg.embed_ollama_url = lh_xstrdup("http://127.0.0.1:9");
    cfg.embed_retries = 1;
    e = open_http(&cfg, "ollama", "m-8", 8);
    assert_int_equal(lh_embedder_embed(e, &t, 1, out, NULL, &err), LH_EUPSTREAM);
    if (!strstr(err.message, "http://127.0.0.1:9/api/embed") || !strstr(err.message, "2 attempts"))
        fail_msg("message: %s", err.message);
    lh_embedder_free(e);

    /* a base URL that is not http(s) is refused at open, by variable name */
    free(cfg.embed_ollama_url);
    cfg.embed_ollama_url = lh_xstrdup("ftp://u:secretpw@example.com/");
    lh_embedder_spec spec = {.kind = "ollama", .model = "m", .dim = 8};
    assert_null(lh_embedder_open(&cfg, &spec, &err));
    assert_int_equal(err.code, LH_EINVAL);
    assert_non_null(strstr(err.message, "LH_EMBED_OLLAMA_URL"));
    assert_null(strstr(err.message, "secretpw"));
    cfg_free(&cfg);
}

static void test_http_timeout(void **state)
{
    (void)state;
    lh_config cfg;
    cfg_init(&cfg);
    cfg.embed_timeout_ms = 300;
    lh_embedder *e = open_http(&cfg, "openai", "m-8", 8);
    control("{\"delay_ms\":3000}");
    const char *t = "slow";
    float out[8];
    lh_error err;
    int64_t t0 = lh_now_ms();
    assert_int_equal(lh_embedder_embed(e, &t, 1, out, NULL, &err), LH_ETIMEOUT);
    int64_t ms = lh_now_ms() - t0;
    assert_true(ms < 2500); /* not retried, not waited for (3 s) */
    assert_non_null(strstr(err.message, "/v1/embeddings"));
    assert_non_null(strstr(err.message, "300 ms"));
    control("{\"delay_ms\":0}");
    lh_embedder_free(e);
    cfg_free(&cfg);
}

static void capture_log(const char *line, size_t len, void *ctx)
{
    lh_buf_append(ctx, line, len);
    lh_buf_putc(ctx, '\n');
}

static void test_http_key_never_in_errors(void **state)
{
    (void)state;
    const char *key = "sk-test-correct-horse-battery";
    char *dir = lh_test_tmpdir("embedkey");
    char *path = lh_path_join(dir, "openai.key");
    char *text = lh_xasprintf("%s\n", key);
    lh_test_write_file(path, text);
    free(text);
    chmod(path, 0600);
    lh_config cfg;
    cfg_init(&cfg);
    cfg.embed_openai_key_file = lh_xstrdup(path);
    lh_embedder *e = open_http(&cfg, "openai", "m-8", 8);
    const char *t = "hello";
    float out[8];
    lh_error err;

    /* the right key: accepted after a 429 (the retry is logged), and the request log
       shows an Authorization header; no log line holds the key */
    json_t *ctl = json_pack("{s:s,s:i,s:i,s:i}", "require_key", key, "fail_status", 429,
                            "fail_count", 1, "retry_after", 0);
    char *body = lh_json_dumps(ctl);
    control(body);
    free(body);
    json_decref(ctl);
    lh_buf logs;
    lh_buf_init(&logs);
    lh_log_set_sink(capture_log, &logs);
    int rc = lh_embedder_embed(e, &t, 1, out, NULL, &err);
    lh_log_set_sink(NULL, NULL);
    if (rc != 0)
        fail_msg("%s", err.message);
    lh_buf_putc(&logs, '\0');
    assert_non_null(strstr(logs.data, "embedder_retry"));
    assert_null(strstr(logs.data, "correct-horse"));
    lh_buf_free(&logs);
    json_t *r = standin("/_requests", NULL);
    assert_int_equal(json_array_size(r), 2);
    assert_true(json_is_true(json_object_get(json_array_get(r, 1), "auth")));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 1), "status")), 200);
    json_decref(r);

    /* a server wanting another key answers 401 and echoes ours: the error names the
       endpoint and the status, and never holds the key */
    control("{\"require_key\":\"sk-some-other-key\"}");
    assert_int_equal(lh_embedder_embed(e, &t, 1, out, NULL, &err), LH_EUPSTREAM);
    if (!strstr(err.message, "401") || !strstr(err.message, "/v1/embeddings") ||
        !strstr(err.message, "[redacted]"))
        fail_msg("message: %s", err.message);
    assert_null(strstr(err.message, key));
    assert_null(strstr(err.message, "correct-horse"));
    assert_int_equal(n_requests(), 3); /* a 401 is not retried */
    lh_embedder_free(e);

    /* a key file others may read is refused */
    lh_embedder_spec spec = {.kind = "openai", .model = "m-8", .dim = 8};
    chmod(path, 0640);
    assert_null(lh_embedder_open(&cfg, &spec, &err));
    assert_non_null(strstr(err.message, "chmod 600"));
    assert_null(strstr(err.message, "correct-horse"));
    chmod(path, 0600);

    /* an empty or missing key file is refused at open, without its content */
    lh_test_write_file(path, "  \n");
    assert_null(lh_embedder_open(&cfg, &spec, &err));
    assert_non_null(strstr(err.message, "LH_EMBED_OPENAI_KEY_FILE is empty"));
    lh_test_write_file(path, "sk-with\ra-cr");
    assert_null(lh_embedder_open(&cfg, &spec, &err));
    assert_null(strstr(err.message, "sk-with"));
    free(cfg.embed_openai_key_file);
    cfg.embed_openai_key_file = lh_path_join(dir, "absent.key");
    assert_null(lh_embedder_open(&cfg, &spec, &err));
    assert_non_null(strstr(err.message, "LH_EMBED_OPENAI_KEY_FILE"));
    free(path);
    lh_test_rmdir(dir);
    cfg_free(&cfg);
}

static void test_http_malformed_answers(void **state)
{
    (void)state;
    lh_config cfg;
    cfg_init(&cfg);
    const char *texts[3] = {"a", "b", "c"};
    float out[3 * 8];
    lh_error err;
    for (int k = 0; k < 2; k++) {
        lh_embedder *e = open_http(&cfg, k ? "openai" : "ollama", "m-8", 8);
        control("{\"wrong_count\":1}");
        assert_int_equal(lh_embedder_embed(e, texts, 3, out, NULL, &err), LH_EUPSTREAM);
        assert_non_null(strstr(err.message, "returned 2 embeddings for 3 inputs"));
        control("{\"wrong_dim\":1}");
        assert_int_equal(lh_embedder_embed(e, texts, 3, out, NULL, &err), LH_EUPSTREAM);
        assert_non_null(strstr(err.message, "7 values, expected 8"));
        lh_embedder_free(e);
    }
    cfg_free(&cfg);
}

/* The documented algorithm, two implementations: lh_hash_embed (C, utf8proc) and the
 * stand-in's Python reference (unicodedata), on text in many scripts — case folding
 * (Turkish dotted I, Greek final sigma, German sharp s), compatibility forms, combining
 * marks (Devanagari, decomposed Latin), CJK, Arabic, digits of other scripts, emoji. */
static void test_http_multilingual_matches_reference(void **state)
{
    (void)state;
    static const char *texts[] = {
        "İstanbul'da yaşayan hemşire, İYİ ıı",
        "Νοσηλευτής ΟΣΣΟΣ",
        "Krankenpfleger in München, STRASSE und Straße, ẞ",
        "नर्स दिल्ली",
        "看護師 東京都 ＩＣＵ ｶﾞ",
        "ممرضة ١٢ سنة",
        "Café naïve ﬁﬂ ①½ x²",
        "nurse 👩‍⚕️ ICU ÅΩ",
        "Cafe\u0301 e\u0301le\u0300ve",
    };
    enum { N = sizeof(texts) / sizeof(*texts), D = 64 };
    lh_config cfg;
    cfg_init(&cfg);
    lh_embedder *e = open_http(&cfg, "openai", "ref-64", D);
    float out[N * D], want[D];
    lh_error err;
    if (lh_embedder_embed(e, texts, N, out, NULL, &err) != 0)
        fail_msg("%s", err.message);
    for (size_t i = 0; i < N; i++) {
        lh_hash_embed(texts[i], strlen(texts[i]), D, want);
        for (int d = 0; d < D; d++)
            if (fabsf(out[i * D + d] - want[d]) > 1e-6f)
                fail_msg("text %zu (%s) value %d: python %.7f, C %.7f", i, texts[i], d,
                         out[i * D + d], want[d]);
    }
    lh_embedder_free(e);
    cfg_free(&cfg);
}

/* One embedder, four threads at once (the interface says thread-safe): every row is the
 * right one. */
typedef struct {
    lh_embedder *e;
    int id, rc;
    float out[12 * 8];
} par_ctx;

static void par_text(int id, int i, char *buf, size_t cap)
{
    snprintf(buf, cap, "thread %d text %d welder nurse", id, i);
}

static void *par_run(void *p)
{
    par_ctx *c = p;
    char bufs[12][64];
    const char *texts[12];
    for (int i = 0; i < 12; i++) {
        par_text(c->id, i, bufs[i], sizeof(bufs[i]));
        texts[i] = bufs[i];
    }
    lh_error err;
    c->rc = lh_embedder_embed(c->e, texts, 12, c->out, NULL, &err);
    return NULL;
}

static void test_http_concurrent_callers(void **state)
{
    (void)state;
    lh_config cfg;
    cfg_init(&cfg);
    lh_embedder *e = open_http(&cfg, "openai", "m-8", 8);
    par_ctx ctx[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        ctx[t] = (par_ctx){.e = e, .id = t};
        assert_int_equal(pthread_create(&th[t], NULL, par_run, &ctx[t]), 0);
    }
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < 4; t++) {
        assert_int_equal(ctx[t].rc, 0);
        for (int i = 0; i < 12; i++) {
            char buf[64];
            float want[8];
            par_text(t, i, buf, sizeof(buf));
            lh_hash_embed(buf, strlen(buf), 8, want);
            for (int d = 0; d < 8; d++)
                assert_true(fabsf(ctx[t].out[i * 8 + d] - want[d]) < 1e-6f);
        }
    }
    assert_int_equal(n_requests(), 4 * 3); /* batches of 4 */
    lh_embedder_free(e);
    cfg_free(&cfg);
}

/* A 4xx other than 429 (here Ollama's 404 for a model not pulled) fails at once, with
 * the server's words. */
static void test_http_unknown_model_not_retried(void **state)
{
    (void)state;
    lh_config cfg;
    cfg_init(&cfg);
    control("{\"models\":[\"known-8\"]}");
    lh_embedder *e = open_http(&cfg, "ollama", "absent-8", 8);
    const char *t = "x";
    float out[8];
    lh_error err;
    assert_int_equal(lh_embedder_embed(e, &t, 1, out, NULL, &err), LH_EUPSTREAM);
    if (!strstr(err.message, "answered 404") || !strstr(err.message, "model 'absent-8' not found"))
        fail_msg("message: %s", err.message);
    assert_int_equal(n_requests(), 1);
    lh_embedder_free(e);
    cfg_free(&cfg);
}

typedef struct {
    lh_embedder *e;
    int rc;
    char message[LH_ERROR_MSG_MAX];
} cancel_ctx;

static int cancel_run(lh_job *job, void *ctx, lh_error *err)
{
    cancel_ctx *c = ctx;
    const char *texts[8] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    float out[8 * 8];
    c->rc = lh_embedder_embed(c->e, texts, 8, out, job, err);
    snprintf(c->message, sizeof(c->message), "%s", c->rc ? err->message : "");
    return c->rc;
}

static void test_http_cancellation(void **state)
{
    (void)state;
    lh_config cfg;
    cfg_init(&cfg);
    cfg.embed_batch = 1;
    lh_error err;
    cancel_ctx c = {.e = open_http(&cfg, "ollama", "m-8", 8)};
    control("{\"delay_ms\":4000}"); /* each of 8 requests would take 4 s */
    lh_jobs *jobs = lh_jobs_open(1, &err);
    assert_non_null(jobs);
    char id[LH_JOB_ID_LEN + 1];
    assert_int_equal(lh_jobs_submit(jobs, "embed", "test", cancel_run, NULL, &c, id, &err), 0);
    usleep(400 * 1000);
    int64_t t0 = lh_now_ms();
    assert_int_equal(lh_jobs_cancel(jobs, id, "test", &err), 0);
    lh_jobs_close(jobs); /* waits for the job */
    int64_t ms = lh_now_ms() - t0;
    /* stopped during the first transfer (the progress callback), not after it */
    if (ms > 2500)
        fail_msg("cancellation took %lld ms", (long long)ms);
    assert_int_equal(c.rc, LH_ECANCELLED);
    control("{\"delay_ms\":0}");
    lh_embedder_free(c.e);
    cfg_free(&cfg);
}

static void test_http_load_unload(void **state)
{
    (void)state;
    lh_config cfg;
    cfg_init(&cfg);
    lh_error err;
    lh_embedder *e = open_http(&cfg, "ollama", "m-8", 8);
    assert_int_equal(lh_embedder_load(e, true, &err), 0);
    assert_int_equal(lh_embedder_load(e, false, &err), 0);
    lh_embedder_free(e);
    cfg.embed_keep_alive = lh_xstrdup("30m");
    e = open_http(&cfg, "ollama", "m-8", 8);
    assert_int_equal(lh_embedder_load(e, true, &err), 0);
    lh_embedder_free(e);
    free(cfg.embed_keep_alive);
    cfg.embed_keep_alive = lh_xstrdup("-1");
    e = open_http(&cfg, "ollama", "m-8", 8);
    assert_int_equal(lh_embedder_load(e, true, &err), 0);
    lh_embedder_free(e);
    /* openai: nothing to load, nothing sent */
    e = open_http(&cfg, "openai", "m-8", 8);
    assert_int_equal(lh_embedder_load(e, false, &err), 0);
    lh_embedder_free(e);

    json_t *r = standin("/_requests", NULL);
    assert_int_equal(json_array_size(r), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *q = json_array_get(r, i);
        assert_string_equal(lh_json_str(q, "path"), "/api/embed");
        assert_int_equal(json_integer_value(json_object_get(q, "inputs")), 0);
        assert_string_equal(lh_json_str(q, "model"), "m-8");
    }
    /* load: keep_alive absent (the server's default); unload: 0; configured: as given,
       a bare number as a number */
    assert_null(json_object_get(json_array_get(r, 0), "keep_alive"));
    json_t *ka = json_object_get(json_array_get(r, 1), "keep_alive");
    assert_true(json_is_integer(ka) && json_integer_value(ka) == 0);
    assert_string_equal(lh_json_str(json_array_get(r, 2), "keep_alive"), "30m");
    ka = json_object_get(json_array_get(r, 3), "keep_alive");
    assert_true(json_is_integer(ka) && json_integer_value(ka) == -1);
    json_decref(r);

    /* the configured keep_alive also rides on every embed request */
    e = open_http(&cfg, "ollama", "m-8", 8);
    const char *t = "x";
    float out[8];
    assert_int_equal(lh_embedder_embed(e, &t, 1, out, NULL, &err), 0);
    r = standin("/_requests", NULL);
    ka = json_object_get(json_array_get(r, 4), "keep_alive");
    assert_true(json_is_integer(ka) && json_integer_value(ka) == -1);
    json_decref(r);
    lh_embedder_free(e);
    cfg_free(&cfg);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_known_answer),
        cmocka_unit_test(test_hash_deterministic_unit_norm_and_zero_row),
        cmocka_unit_test(test_hash_paraphrase_beats_unrelated),
        cmocka_unit_test(test_hash_embedder_open_and_dim),
        cmocka_unit_test(test_config_embed_settings),
        cmocka_unit_test_setup(test_http_batching, setup),
        cmocka_unit_test_setup(test_http_dimension_learned, setup),
        cmocka_unit_test_setup(test_http_retry_429_then_success, setup),
        cmocka_unit_test_setup(test_http_500_exhausted_names_endpoint, setup),
        cmocka_unit_test_setup(test_http_timeout, setup),
        cmocka_unit_test_setup(test_http_key_never_in_errors, setup),
        cmocka_unit_test_setup(test_http_malformed_answers, setup),
        cmocka_unit_test_setup(test_http_unknown_model_not_retried, setup),
        cmocka_unit_test_setup(test_http_concurrent_callers, setup),
        cmocka_unit_test_setup(test_http_multilingual_matches_reference, setup),
        cmocka_unit_test_setup(test_http_cancellation, setup),
        cmocka_unit_test_setup(test_http_load_unload, setup),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
