/*
 * config.c: server configuration from defaults and LH_* environment variables. Command
 * line flags (parsed by the CLI) override both.
 */
#include "core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int env_int64(const char *name, int64_t min, int64_t max, int64_t *out, lh_error *err)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || x < min || x > max)
        return lh_error_set(err, LH_EINVAL, "%s must be an integer from %lld to %lld", name,
                            (long long)min, (long long)max);
    *out = x;
    return 0;
}

static int env_int(const char *name, int min, int max, int *out, lh_error *err)
{
    int64_t x = *out;
    int rc = env_int64(name, min, max, &x, err);
    *out = (int)x;
    return rc;
}

int lh_config_set_listen(lh_config *cfg, const char *listen, lh_error *err)
{
    const char *colon = strrchr(listen, ':');
    const char *port_s = colon ? colon + 1 : listen;
    char *end;
    errno = 0;
    long port = strtol(port_s, &end, 10);
    if (errno || *end || !*port_s || port < 0 || port > 65535)
        return lh_error_set(err, LH_EINVAL, "listen address '%s' is not HOST:PORT", listen);
    if (colon && colon != listen) {
        free(cfg->listen_host);
        cfg->listen_host = lh_xasprintf("%.*s", (int)(colon - listen), listen);
    }
    cfg->listen_port = (int)port;
    return 0;
}

int lh_config_set_data_dir(lh_config *cfg, const char *dir, lh_error *err)
{
    char *abs = lh_path_absolute(dir, err);
    if (!abs)
        return err ? err->code : LH_EINVAL;
    free(cfg->data_dir);
    cfg->data_dir = abs;
    return 0;
}

int lh_config_load(lh_config *cfg, lh_error *err)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen_host = lh_xstrdup("127.0.0.1");
    cfg->listen_port = 8470;
    cfg->http_threads = 0; /* unset: see below */
    cfg->job_threads = 2;
    cfg->connection_timeout_s = 60;
    cfg->max_connections = 256;
    cfg->max_upload_bytes = 8LL << 30;
    cfg->max_json_body = 1LL << 20;
    cfg->max_sql_bytes = 64LL << 10;
    cfg->query_max_rows = 100000;
    cfg->query_default_rows = 1000;
    cfg->query_timeout_ms = 30000;
    cfg->max_concurrent_queries = 8;
    cfg->embed_timeout_ms = 30000;
    cfg->embed_connect_timeout_ms = 5000;
    cfg->embed_batch = 64;
    cfg->embed_retries = 3;
    int rc = lh_config_set_data_dir(
        cfg, getenv("LH_DATA") && *getenv("LH_DATA") ? getenv("LH_DATA") : "./data", err);
    if (rc)
        return rc;
    const char *listen = getenv("LH_LISTEN");
    if (listen && *listen && (rc = lh_config_set_listen(cfg, listen, err)))
        return rc;
    if ((rc = env_int("LH_HTTP_THREADS", 1, 1024, &cfg->http_threads, err)) ||
        (rc = env_int("LH_JOB_THREADS", 1, 1024, &cfg->job_threads, err)) ||
        (rc = env_int("LH_CONNECTION_TIMEOUT_S", 1, 86400, &cfg->connection_timeout_s, err)) ||
        (rc = env_int("LH_MAX_CONNECTIONS", 1, 65536, &cfg->max_connections, err)) ||
        (rc = env_int64("LH_MAX_UPLOAD_BYTES", 1, INT64_MAX, &cfg->max_upload_bytes, err)) ||
        (rc = env_int64("LH_MAX_JSON_BODY", 64, 1LL << 30, &cfg->max_json_body, err)) ||
        (rc = env_int64("LH_MAX_SQL_BYTES", 16, 1LL << 30, &cfg->max_sql_bytes, err)) ||
        (rc = env_int64("LH_QUERY_MAX_ROWS", 1, 1LL << 40, &cfg->query_max_rows, err)) ||
        (rc = env_int64("LH_QUERY_DEFAULT_ROWS", 1, 1LL << 40, &cfg->query_default_rows, err)) ||
        (rc = env_int("LH_QUERY_TIMEOUT_MS", 1, 86400000, &cfg->query_timeout_ms, err)) ||
        (rc = env_int("LH_MAX_CONCURRENT_QUERIES", 1, 1024, &cfg->max_concurrent_queries, err)) ||
        (rc = env_int64("LH_DUCKDB_MEMORY_MB", 0, 1LL << 30, &cfg->duckdb_memory_mb, err)) ||
        (rc = env_int("LH_DUCKDB_THREADS", 0, 1024, &cfg->duckdb_threads, err)) ||
        (rc = env_int("LH_EMBED_TIMEOUT_MS", 1, 3600000, &cfg->embed_timeout_ms, err)) ||
        (rc = env_int("LH_EMBED_CONNECT_TIMEOUT_MS", 1, 600000, &cfg->embed_connect_timeout_ms,
                      err)) ||
        (rc = env_int("LH_EMBED_BATCH", 1, 4096, &cfg->embed_batch, err)) ||
        (rc = env_int("LH_EMBED_RETRIES", 0, 20, &cfg->embed_retries, err)))
        return rc;
    if (cfg->query_default_rows > cfg->query_max_rows)
        cfg->query_default_rows = cfg->query_max_rows;
    /* At least one HTTP worker per query slot: a query whose statement the firewall already
     * allowed starts on its worker (up to LH_QUERY_INLINE_BUDGET_MS), holding up that
     * worker's other connections meanwhile; with a worker per slot, every running query can
     * start without holding up another's. bench/http_load, 16 slots and 16 clients, 16
     * workers against 8: ahead in nine paired rounds of nine, by 3-10%. */
    if (cfg->http_threads == 0)
        cfg->http_threads = cfg->max_concurrent_queries > 8 ? cfg->max_concurrent_queries : 8;
    /* issue 14: the background tuning agent of vector indexes (docs/VECTORS.md §Tuning) */
    cfg->vector_tune_max_per_hour = 6;
    cfg->vector_tune_cooldown_s = 300;
    if ((rc = env_int("LH_VECTOR_TUNE_AGENT", 0, 1, &cfg->vector_tune_agent, err)) ||
        (rc = env_int("LH_VECTOR_TUNE_MAX_PER_HOUR", 1, 3600, &cfg->vector_tune_max_per_hour,
                      err)) ||
        (rc = env_int("LH_VECTOR_TUNE_COOLDOWN_S", 0, 86400, &cfg->vector_tune_cooldown_s, err)))
        return rc;
    /* issue 15: agents over MCP */
    cfg->mcp_calls_per_minute = 120;
    cfg->mcp_session_idle_s = 1800;
    cfg->mcp_max_sessions = 1024;
    cfg->mcp_max_rows = 500;
    if ((rc = env_int("LH_MCP_CALLS_PER_MINUTE", 1, 1000000, &cfg->mcp_calls_per_minute, err)) ||
        (rc = env_int("LH_MCP_SESSION_IDLE_S", 1, 86400 * 30, &cfg->mcp_session_idle_s, err)) ||
        (rc = env_int("LH_MCP_MAX_SESSIONS", 1, 1000000, &cfg->mcp_max_sessions, err)) ||
        (rc = env_int64("LH_MCP_MAX_ROWS", 1, 1LL << 40, &cfg->mcp_max_rows, err)))
        return rc;
    const char *origins = getenv("LH_MCP_ALLOWED_ORIGINS");
    if (origins && *origins)
        cfg->mcp_allowed_origins = lh_xstrdup(origins);
    const char *key = getenv("LH_ADMIN_KEY");
    if (key && *key)
        cfg->admin_key = lh_xstrdup(key);
    const char *legal = getenv("LH_LEGAL_AUDIT_TOKEN_FILE");
    if (legal && *legal)
        cfg->legal_token_file = lh_xstrdup(legal);
    const char *audit_key = getenv("LH_SUBJECT_AUDIT_KEY");
    if (audit_key && *audit_key)
        cfg->audit_key_file = lh_xstrdup(audit_key);
    const char *bio_root = getenv("LH_BIOMETRIC_STORAGE_ROOT");
    if (bio_root && *bio_root)
        cfg->biometric_root = lh_xstrdup(bio_root);
    const char *signing = getenv("LH_AUDIT_SIGNING_KEY_FILE");
    if (signing && *signing)
        cfg->audit_signing_key = lh_xstrdup(signing);
    const char *origin = getenv("LH_AUDIT_LOG_ORIGIN");
    if (origin && *origin)
        cfg->audit_origin = lh_xstrdup(origin);
    const char *ollama = getenv("LH_EMBED_OLLAMA_URL");
    cfg->embed_ollama_url = lh_xstrdup(ollama && *ollama ? ollama : "http://127.0.0.1:11434");
    const char *openai = getenv("LH_EMBED_OPENAI_URL");
    cfg->embed_openai_url = lh_xstrdup(openai && *openai ? openai : "http://127.0.0.1:8000");
    const char *openai_key = getenv("LH_EMBED_OPENAI_KEY_FILE");
    if (openai_key && *openai_key)
        cfg->embed_openai_key_file = lh_xstrdup(openai_key);
    const char *keep_alive = getenv("LH_EMBED_KEEP_ALIVE");
    if (keep_alive && *keep_alive)
        cfg->embed_keep_alive = lh_xstrdup(keep_alive);
    const char *lvl = getenv("LH_LOG_LEVEL");
    if (lvl) {
        static const char *names[] = {"debug", "info", "warn", "error"};
        for (int i = 0; i < 4; i++)
            if (strcmp(lvl, names[i]) == 0)
                lh_log_set_level((lh_log_level)i);
    }
    return 0;
}

void lh_config_free(lh_config *cfg)
{
    free(cfg->data_dir);
    free(cfg->listen_host);
    free(cfg->legal_token_file);
    free(cfg->audit_key_file);
    free(cfg->biometric_root);
    free(cfg->audit_signing_key);
    free(cfg->audit_origin);
    free(cfg->embed_ollama_url);
    free(cfg->embed_openai_url);
    free(cfg->embed_openai_key_file);
    free(cfg->embed_keep_alive);
    free(cfg->mcp_allowed_origins); /* issue 15 */
    if (cfg->admin_key) {
        memset(cfg->admin_key, 0, strlen(cfg->admin_key));
        free(cfg->admin_key);
    }
    memset(cfg, 0, sizeof(*cfg));
}
