/*
 * fuzz_request_path: request lines and headers, as the real server sees them.
 *
 * The real server (lh_serve: libmicrohttpd, the route table, authentication, prechecks,
 * handlers, error rendering, request logs) runs in this process on a loopback port with a
 * scratch data folder. Each input becomes one raw HTTP/1.1 request sent over a socket:
 *
 *   byte 0         flags: bits 0-1 the key (none, a wrong one, the admin key), bit 2 a
 *                  "Content-Length: 0" header
 *   then, split on '\n':  method, path, query string, and any number of "name:value"
 *                  header lines
 *
 * Bytes that would break the framing (space, CR and LF in the request line; ':' in header
 * names; CR and LF in values) become '_'; everything else, invalid UTF-8 included, is sent
 * as it is. Headers that change the framing (Connection, Content-Length,
 * Transfer-Encoding, Expect) are dropped: every request is one exchange on its own
 * connection. No body is sent, so handlers that take one fail on it rather than change
 * much.
 *
 * Oracles:
 *   - every reply of ours (Content-Type application/json) is one JSON object; an error
 *     reply (status >= 400) has string "error" and "message" members, and the message is
 *     never the "cannot render" fallback;
 *   - every log line (read through lh_log_set_sink, on whichever server thread wrote it)
 *     is one JSON object with an "event"; an http.request line has every field (method,
 *     path, actor, status, ms) and its method and path hold no control characters.
 * A violation aborts, which libFuzzer reports with the input.
 */
#include "core/core.h"
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define ADMIN_KEY "fuzz-admin-key-0123456789abcdef0123456789abcdef"

static lh_config cfg;
static pthread_t server_thread;
static atomic_int server_port;
static char *scratch;

static void die(const char *what, const char *detail, size_t len)
{
    fprintf(stderr, "fuzz_request_path: %s\n%.*s\n", what, (int)(len > 2000 ? 2000 : len),
            detail ? detail : "");
    abort();
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Every log line, on the thread that wrote it. */
static void check_log_line(const char *line, size_t len, void *ctx)
{
    (void)ctx;
    json_error_t jerr;
    json_t *j = json_loadb(line, len, 0, &jerr);
    if (!json_is_object(j) || !json_is_string(json_object_get(j, "event")))
        die("a log line is not a JSON object with an event", line, len);
    const char *event = json_string_value(json_object_get(j, "event"));
    if (strcmp(event, "server.listening") == 0)
        atomic_store(&server_port, (int)lh_json_int(j, "port", 0));
    if (strcmp(event, "http.request") == 0) {
        static const char *const fields[] = {"method", "path", "actor"};
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
            if (!json_is_string(json_object_get(j, fields[i])))
                die("an http.request line lost a field", line, len);
        if (!json_is_integer(json_object_get(j, "status")) ||
            !json_is_integer(json_object_get(j, "ms")))
            die("an http.request line lost its status or ms", line, len);
        if (has_control(lh_json_str(j, "method")) || has_control(lh_json_str(j, "path")))
            die("a raw control character reached a log line", line, len);
    }
    json_decref(j);
}

static void *serve_main(void *arg)
{
    (void)arg;
    if (lh_serve(&cfg) != 0)
        die("the server did not start", NULL, 0);
    return NULL;
}

static void stop_server(void)
{
    pthread_kill(server_thread, SIGTERM); /* lh_serve's sigwait takes it */
    pthread_join(server_thread, NULL);
    lh_log_set_sink(NULL, NULL);
    lh_fs_remove_tree(scratch, NULL);
    free(scratch);
    lh_config_free(&cfg);
}

static void start_server(void)
{
    lh_error err;
    char tmpl[] = "/tmp/fuzz-request-path-XXXXXX";
    if (!mkdtemp(tmpl))
        die("mkdtemp failed", NULL, 0);
    scratch = lh_xstrdup(tmpl);
    char *data = lh_path_join(scratch, "data");
    if (lh_config_load(&cfg, &err) != 0 || lh_config_set_data_dir(&cfg, data, &err) != 0 ||
        lh_config_set_listen(&cfg, "127.0.0.1:0", &err) != 0)
        die("configuration", err.message, strlen(err.message));
    free(data);
    free(cfg.admin_key);
    cfg.admin_key = lh_xstrdup(ADMIN_KEY);
    cfg.http_threads = 2;
    cfg.duckdb_threads = 1;
    cfg.duckdb_memory_mb = 256;
    cfg.connection_timeout_s = 5;
    lh_log_set_level(LH_LOG_INFO); /* http.request lines are info */
    lh_log_set_sink(check_log_line, NULL);
    /* SIGTERM stays blocked here too, so only lh_serve's sigwait ever takes it. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if (pthread_create(&server_thread, NULL, serve_main, NULL) != 0)
        die("cannot start the server thread", NULL, 0);
    for (int i = 0; i < 6000 && atomic_load(&server_port) == 0; i++)
        usleep(10 * 1000);
    if (atomic_load(&server_port) == 0)
        die("the server did not listen within 60 s", NULL, 0);
    atexit(stop_server);
}

/* Appends s[0..n) with the bytes in `bad` replaced by '_'. */
static void put_clean(lh_buf *b, const uint8_t *s, size_t n, const char *bad)
{
    for (size_t i = 0; i < n; i++)
        lh_buf_putc(b, s[i] && strchr(bad, s[i]) ? '_' : (char)s[i]);
}

/* Splits data on '\n'; returns the next field and advances. */
static const uint8_t *next_field(const uint8_t **p, const uint8_t *end, size_t *len)
{
    const uint8_t *start = *p;
    const uint8_t *nl = memchr(start, '\n', (size_t)(end - start));
    const uint8_t *stop = nl ? nl : end;
    *len = (size_t)(stop - start);
    *p = nl ? nl + 1 : end;
    return start;
}

static const char *const framing_headers[] = {"connection", "content-length", "transfer-encoding",
                                              "expect"};

static bool is_framing_header(const uint8_t *name, size_t n)
{
    for (size_t i = 0; i < sizeof(framing_headers) / sizeof(framing_headers[0]); i++)
        if (strlen(framing_headers[i]) == n &&
            strncasecmp((const char *)name, framing_headers[i], n) == 0)
            return true;
    return false;
}

/* Builds the request; returns true when its method is HEAD (a reply without a body). */
static bool build_request(lh_buf *req, const uint8_t *data, size_t size)
{
    uint8_t flags = size ? data[0] : 0;
    const uint8_t *p = size ? data + 1 : data, *end = data + size;
    size_t n;
    const uint8_t *f = next_field(&p, end, &n);
    if (n == 0)
        lh_buf_puts(req, "GET");
    put_clean(req, f, n, " \r\n");
    bool head = strcmp(req->data, "HEAD") == 0;
    lh_buf_putc(req, ' ');
    f = next_field(&p, end, &n);
    if (n == 0 || f[0] != '/')
        lh_buf_putc(req, '/');
    put_clean(req, f, n, " \r\n");
    f = next_field(&p, end, &n);
    if (n > 0) {
        lh_buf_putc(req, '?');
        put_clean(req, f, n, " \r\n");
    }
    lh_buf_puts(req, " HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n");
    switch (flags & 3) {
    case 1:
        lh_buf_puts(req, "Authorization: Bearer not-a-key\r\n");
        break;
    case 2:
    case 3:
        lh_buf_puts(req, "Authorization: Bearer " ADMIN_KEY "\r\n");
        break;
    }
    if (flags & 4)
        lh_buf_puts(req, "Content-Length: 0\r\n");
    for (int i = 0; p < end && i < 16; i++) {
        f = next_field(&p, end, &n);
        const uint8_t *colon = memchr(f, ':', n);
        if (!colon || colon == f || is_framing_header(f, (size_t)(colon - f)))
            continue;
        put_clean(req, f, (size_t)(colon - f), " \r\n\t:");
        lh_buf_putc(req, ':');
        put_clean(req, colon + 1, n - (size_t)(colon - f) - 1, "\r\n");
        lh_buf_puts(req, "\r\n");
    }
    lh_buf_puts(req, "\r\n");
    return head;
}

/* connect(2) that survives a signal: libFuzzer's timer (SIGALRM, every second) may
 * interrupt it, and the connection then completes in the background, so wait for it and
 * read its outcome instead of calling connect again. Returns 0, or -1 with errno set. */
static int connect_retrying(int fd, const struct sockaddr_in *sa)
{
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
        return 0;
    if (errno != EINTR)
        return -1;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int n;
    while ((n = poll(&p, 1, 30000)) < 0 && errno == EINTR)
        ;
    if (n <= 0) {
        errno = n == 0 ? ETIMEDOUT : errno;
        return -1;
    }
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0)
        return -1;
    errno = so_error;
    return so_error ? -1 : 0;
}

/* Sends req and reads the whole reply (the server closes the connection). Every call is
 * retried on EINTR, for the same reason as connect_retrying. */
static void exchange(const lh_buf *req, lh_buf *reply)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket failed", NULL, 0);
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect_retrying(fd, &sa) != 0) {
        const char *why = strerror(errno);
        die("cannot connect to the server", why, strlen(why));
    }
    size_t off = 0;
    while (off < req->len) {
        ssize_t w = send(fd, req->data + off, req->len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* the server may answer and close before reading everything */
        off += (size_t)w;
    }
    char buf[16384];
    ssize_t r;
    while ((r = recv(fd, buf, sizeof(buf), 0)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0)
            lh_buf_append(reply, buf, (size_t)r);
    close(fd);
}

static void check_reply(const lh_buf *reply, bool head_request)
{
    if (reply->len == 0)
        return; /* the server may drop a request it cannot parse */
    const char *sep = reply->data ? strstr(reply->data, "\r\n\r\n") : NULL;
    if (!sep || strncmp(reply->data, "HTTP/1.", 7) != 0)
        die("a reply without a status line and headers", reply->data, reply->len);
    int status = atoi(reply->data + 9);
    size_t head_len = (size_t)(sep - reply->data);
    char *head = lh_xmalloc(head_len + 1);
    memcpy(head, reply->data, head_len);
    head[head_len] = '\0';
    bool ours = strstr(head, "Content-Type: application/json") != NULL;
    bool chunked = strstr(head, "chunked") != NULL;
    free(head);
    if (!ours || chunked || head_request)
        return; /* libmicrohttpd's own replies; query streams are checked elsewhere */
    const char *body = sep + 4;
    size_t body_len = reply->len - (size_t)(body - reply->data);
    json_error_t jerr;
    json_t *j = json_loadb(body, body_len, 0, &jerr);
    if (!json_is_object(j))
        die("a JSON reply is not a JSON object", reply->data, reply->len);
    if (status >= 400) {
        if (!json_is_string(json_object_get(j, "error")) ||
            !json_is_string(json_object_get(j, "message")))
            die("an error reply without error and message", reply->data, reply->len);
        if (strcmp(lh_json_str(j, "message"), "cannot render") == 0)
            die("an error reply was replaced by \"cannot render\"", reply->data, reply->len);
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (atomic_load(&server_port) == 0)
        start_server();
    if (size > 4096)
        return 0;
    lh_buf req, reply;
    lh_buf_init(&req);
    lh_buf_init(&reply);
    bool head = build_request(&req, data, size);
    exchange(&req, &reply);
    check_reply(&reply, head);
    lh_buf_free(&req);
    lh_buf_free(&reply);
    return 0;
}
