/*
 * client.c: the CLI's HTTP client, a thin layer over one libcurl easy handle.
 *
 * Invariants:
 *   - an upload is streamed from disk through a read callback with its size announced up
 *     front (Content-Length), so a file of any size costs a fixed amount of memory;
 *   - a 2xx body may stream to a FILE (query results as CSV/NDJSON); error bodies are
 *     always buffered so they can be turned into "error: <code>: <message>";
 *   - the API key only ever goes into the Authorization header, never into a message.
 */
#include "cli/cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct lh_client {
    char *server;      /* base URL without trailing '/' */
    char *auth_header; /* "Authorization: Bearer …" or NULL */
    CURL *curl;        /* reused, so consecutive requests share a connection */
};

/* ---------------------------------------------------------------- configuration */

char *lh_client_resolve_server(const char *flag)
{
    const char *env = getenv("LH_SERVER");
    const char *url = flag && *flag ? flag : env && *env ? env : LH_CLI_DEFAULT_SERVER;
    char *out = lh_xstrdup(url);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
    return out;
}

/* First line of the admin key file, which `lakehouse serve` writes on first start. Read
 * only when no key was given, so a user on the server's machine needs no setup. */
static char *key_from_data_dir(void)
{
    const char *data = getenv("LH_DATA");
    char *secrets = lh_path_join(data && *data ? data : "./data", "_secrets");
    char *path = lh_path_join(secrets, "admin.key");
    char *text = NULL, *key = NULL;
    size_t len = 0;
    if (lh_fs_read_all(path, 4096, &text, &len, NULL) != 0)
        goto out;
    size_t n = strcspn(text, "\r\n");
    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t'))
        n--;
    if (n > 0)
        key = lh_xasprintf("%.*s", (int)n, text);
out:
    free(text);
    free(path);
    free(secrets);
    return key;
}

char *lh_client_resolve_key(const char *flag)
{
    if (flag && *flag)
        return lh_xstrdup(flag);
    const char *env = getenv("LH_KEY");
    if (env && *env)
        return lh_xstrdup(env);
    return key_from_data_dir();
}

lh_client *lh_client_new(const char *server_url, const char *api_key, lh_error *err)
{
    /* Reference-counted by libcurl; paired with curl_global_cleanup in lh_client_free. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        lh_error_set(err, LH_EINTERNAL, "libcurl could not be initialised");
        return NULL;
    }
    lh_client *c = lh_xcalloc(1, sizeof(*c));
    c->curl = curl_easy_init();
    if (!c->curl) {
        lh_error_set(err, LH_EINTERNAL, "libcurl could not create a handle");
        lh_client_free(c);
        return NULL;
    }
    c->server = lh_client_resolve_server(server_url);
    if (api_key && *api_key)
        c->auth_header = lh_xasprintf("Authorization: Bearer %s", api_key);
    return c;
}

void lh_client_free(lh_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    if (c->auth_header) {
        /* The key should not linger in freed heap memory. */
        memset(c->auth_header, 0, strlen(c->auth_header));
        free(c->auth_header);
    }
    free(c->server);
    free(c);
    curl_global_cleanup();
}

const char *lh_client_server(const lh_client *c)
{
    return c->server;
}

char *lh_client_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    lh_buf b;
    lh_buf_init(&b);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool unreserved = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                          (*p >= '0' && *p <= '9') || strchr("-._~", *p);
        if (unreserved) {
            lh_buf_putc(&b, (char)*p);
        } else {
            char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            lh_buf_append(&b, enc, 3);
        }
    }
    lh_buf_putc(&b, '\0');
    return b.data;
}

/* ---------------------------------------------------------------- responses */

void lh_response_init(lh_response *r)
{
    r->status = 0;
    r->content_type = NULL;
    lh_buf_init(&r->body);
}

void lh_response_free(lh_response *r)
{
    if (!r)
        return;
    free(r->content_type);
    r->content_type = NULL;
    lh_buf_free(&r->body);
}

bool lh_response_ok(const lh_response *r)
{
    return r->status >= 200 && r->status < 300;
}

static const struct {
    long status;
    int code;
} status_codes[] = {
    {400, LH_EINVAL},   {401, LH_EUNAUTH},   {403, LH_EFORBIDDEN},   {404, LH_ENOTFOUND},
    {408, LH_ETIMEOUT}, {409, LH_EEXISTS},   {413, LH_ETOOLARGE},    {415, LH_EUNSUPPORTED},
    {429, LH_EBUSY},    {500, LH_EINTERNAL}, {503, LH_EUNAVAILABLE},
};

static int code_of_status(long status)
{
    for (size_t i = 0; i < sizeof(status_codes) / sizeof(status_codes[0]); i++)
        if (status_codes[i].status == status)
            return status_codes[i].code;
    return status >= 500 ? LH_EINTERNAL : LH_EINVAL;
}

int lh_response_error(const lh_response *r, lh_error *err)
{
    int code = code_of_status(r->status);
    json_t *doc = NULL;
    if (r->body.len > 0)
        doc = json_loadb(r->body.data, r->body.len, 0, NULL);
    const char *kind = doc ? lh_json_str(doc, "error") : NULL;
    const char *message = doc ? lh_json_str(doc, "message") : NULL;
    if (kind) {
        lh_error_set(err, code, "%s: %s", kind, message ? message : "(no message)");
    } else {
        /* Not our server's error shape (a proxy, or a crash mid-response): show the
         * start of what came back rather than nothing. */
        size_t n = r->body.len;
        while (n > 0 && (r->body.data[n - 1] == '\n' || r->body.data[n - 1] == '\r'))
            n--;
        lh_error_set(err, code, "http_%ld: %.*s", r->status, (int)(n > 300 ? 300 : n),
                     n ? r->body.data : "(empty response)");
    }
    json_decref(doc);
    return code;
}

/* ---------------------------------------------------------------- transfer */

typedef struct transfer {
    CURL *curl;
    lh_response *resp;
    FILE *sink;
    FILE *upload;
    int upload_errno; /* set when reading the upload failed */
    bool sink_failed;
} transfer;

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    transfer *t = userdata;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    if (t->sink && status >= 200 && status < 300) {
        if (fwrite(data, 1, n, t->sink) != n) {
            t->sink_failed = true;
            return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
        }
        return n;
    }
    lh_buf_append(&t->resp->body, data, n);
    return n;
}

static size_t on_read(char *buffer, size_t size, size_t nitems, void *userdata)
{
    transfer *t = userdata;
    size_t n = fread(buffer, 1, size * nitems, t->upload);
    if (n == 0 && ferror(t->upload)) {
        t->upload_errno = errno ? errno : EIO;
        return CURL_READFUNC_ABORT;
    }
    return n;
}

/* libcurl rewinds the body when it must resend it (e.g. after a 100-continue refusal on a
 * reused connection); without this callback such a retry fails. */
static int on_seek(void *userdata, curl_off_t offset, int origin)
{
    transfer *t = userdata;
    return fseeko(t->upload, (off_t)offset, origin) == 0 ? CURL_SEEKFUNC_OK
                                                         : CURL_SEEKFUNC_CANTSEEK;
}

/* Errors meaning nothing answered at that address, as opposed to a transfer that
 * started and broke. */
static const CURLcode unreachable_codes[] = {
    CURLE_COULDNT_CONNECT,    CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY,
    CURLE_OPERATION_TIMEDOUT, CURLE_URL_MALFORMAT,        CURLE_UNSUPPORTED_PROTOCOL,
};

static bool is_unreachable(CURLcode rc, long status)
{
    if (status != 0)
        return false;
    for (size_t i = 0; i < sizeof(unreachable_codes) / sizeof(unreachable_codes[0]); i++)
        if (unreachable_codes[i] == rc)
            return true;
    return false;
}

int lh_client_send(lh_client *c, const lh_request *req, lh_response *resp, lh_error *err)
{
    int rc = 0;
    struct curl_slist *headers = NULL;
    char *url = lh_xasprintf("%s%s", c->server, req->path);
    char curl_msg[CURL_ERROR_SIZE] = "";
    transfer t = {.curl = c->curl, .resp = resp, .sink = req->sink};
    CURL *h = c->curl;

    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "lakehouse-cli/" LH_VERSION);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_msg);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    if (c->auth_header)
        headers = curl_slist_append(headers, c->auth_header);
    headers = curl_slist_append(headers, "Accept: application/json");

    if (req->upload_path) {
        struct stat st;
        t.upload = fopen(req->upload_path, "rb");
        if (!t.upload || fstat(fileno(t.upload), &st) != 0) {
            rc = lh_error_set(err, LH_EIO, "cannot read %s: %s", req->upload_path, strerror(errno));
            goto out;
        }
        if (!S_ISREG(st.st_mode)) {
            rc = lh_error_set(err, LH_EINVAL, "%s is not a regular file", req->upload_path);
            goto out;
        }
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.st_size);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &t);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
        headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
    } else if (req->json_body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->json_body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(req->json_body));
        headers = curl_slist_append(headers, "Content-Type: application/json");
    }
    for (const char *const *x = req->extra_headers; x && *x; x++)
        headers = curl_slist_append(headers, *x);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);

    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    char *ctype = NULL;
    if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype) == CURLE_OK && ctype)
        resp->content_type = lh_xstrdup(ctype);
    const char *why = curl_msg[0] ? curl_msg : curl_easy_strerror(cc);

    if (cc == CURLE_OK)
        goto out;
    if (t.upload_errno) {
        rc = lh_error_set(err, LH_EIO, "cannot read %s: %s", req->upload_path,
                          strerror(t.upload_errno));
    } else if (t.sink_failed) {
        rc = lh_error_set(err, LH_EIO, "cannot write the result: %s", strerror(errno));
    } else if (is_unreachable(cc, resp->status)) {
        rc = lh_error_setk(err, LH_EUNAVAILABLE, "unreachable",
                           "the server is not reachable at %s (%s); start one with "
                           "`lakehouse serve`, or point --server or LH_SERVER at a running "
                           "server",
                           c->server, why);
    } else if (resp->status >= 400 && resp->body.len > 0) {
        /* The server refused the request before reading the whole upload and closed
         * the connection: its answer is what matters, not the broken send. */
        rc = 0;
    } else {
        rc = lh_error_set(err, LH_EIO, "the exchange with %s broke off: %s", c->server, why);
    }
out:
    curl_slist_free_all(headers);
    if (t.upload)
        fclose(t.upload);
    free(url);
    return rc;
}
