#!/usr/bin/env python3
"""A STAND-IN embedding server on loopback, for tests: it is neither Ollama nor an
OpenAI-compatible server, it only speaks their wire formats exactly.

    POST /api/embed      {model, input: str | [str], keep_alive?}    (Ollama)
                         → {model, embeddings: [[...]], total_duration, load_duration,
                            prompt_eval_count}; an empty input answers {model, embeddings: []}
    POST /v1/embeddings  {model, input: str | [str], encoding_format?} (OpenAI, vLLM,
                         llama.cpp server) → {object: "list", data: [{object: "embedding",
                            index, embedding}], model, usage}

Every answer carries `Server: lakehouse-embed-standin`, and the server says what it is on
stderr when it starts. Embeddings are deterministic: the `hash` embedder of lakehouse
(docs/VECTORS.md §Embedders; hash_embed below is its reference implementation in Python)
of the text, with the dimension taken from the model name's "-<digits>" suffix (default
32), so a test can predict every vector.

Test control (not part of either API):

    POST /_control {reset?, fail_status?, fail_count?, retry_after?, delay_ms?,
                    require_key?, shuffle?, wrong_count?, wrong_dim?, models?}
        fail_status/fail_count: the next fail_count API requests answer fail_status (429
        with `Retry-After: retry_after` when given); delay_ms: every API request waits that
        long first (0 to stop); require_key: answer 401 unless `Authorization: Bearer
        <key>` (null to stop; the 401 body echoes the presented token, as some servers do,
        so tests prove the client scrubs it); shuffle: the OpenAI data array comes back in
        reverse order; wrong_count / wrong_dim: the next N answers drop one embedding / cut
        the first vector short; models: a list of the only model names served (others
        answer 404 as Ollama does for a model not pulled; null: every name). reset: all of
        that off and the request log emptied.
    GET /_requests → [{path, model, inputs, keep_alive (absent: no key), auth: bool,
                       status, at}] — whether an Authorization header came, never its value.

Unit tests run under it:  python3 tests/embedserver.py run -- build-san/test_vector_embed
(the base URL is in LH_TEST_EMBED_URL). e2e tests import it:

    with EmbedServer() as es:  es.url, es.control(fail_status=500, fail_count=2),
                               es.requests(), es.reset()
"""
import json
import os
import math
import re
import subprocess
import sys
import threading
import time
import unicodedata
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.request import Request, urlopen

FNV64_OFFSET = 0xCBF29CE484222325
FNV64_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1
DEFAULT_DIM = 32


def _fnv1a(h, data):
    for b in data:
        h = ((h ^ b) * FNV64_PRIME) & MASK64
    return h


def normalize(text):
    """NFKC + full case folding (what utf8proc_map(STABLE|COMPAT|COMPOSE|CASEFOLD) does)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def tokens(text):
    """Maximal runs of code points of general category L*, M* or N*."""
    out, cur = [], []
    for ch in text:
        if unicodedata.category(ch)[0] in "LMN":
            cur.append(ch)
        elif cur:
            out.append("".join(cur))
            cur = []
    if cur:
        out.append("".join(cur))
    return out


def hash_embed(text, dim):
    """lakehouse's `hash` embedder (src/vector/embed_hash.c), for a str."""
    toks = tokens(normalize(text))
    counts = {}

    def add(feature):
        h = _fnv1a(FNV64_OFFSET, feature.encode("utf-8"))
        counts[h] = counts.get(h, 0) + 1

    for i, w in enumerate(toks):
        add("w:" + w)
        if i + 1 < len(toks):
            add("b:" + w + " " + toks[i + 1])
        padded = "<" + w + ">"
        for j in range(len(padded) - 2):
            add("c:" + padded[j:j + 3])
    v = [0.0] * dim
    for h, tf in counts.items():
        w = 1.0 + math.log(tf)
        v[(h >> 1) % dim] += -w if h & 1 else w
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v] if n > 0 else v


def dim_of(model):
    m = re.search(r"-(\d+)$", model or "")
    return int(m.group(1)) if m else DEFAULT_DIM


class _State:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.fail_status = 0
        self.fail_count = 0
        self.retry_after = None
        self.delay_ms = 0
        self.require_key = None
        self.shuffle = False
        self.wrong_count = 0
        self.wrong_dim = 0
        self.models = None
        self.log = []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return "lakehouse-embed-standin"

    def log_message(self, fmt, *args):  # quiet: the request log is /_requests
        pass

    def _send(self, status, obj, headers=None):
        body = json.dumps(obj).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return None

    def do_GET(self):
        st = self.server.state
        if self.path == "/_requests":
            with st.lock:
                self._send(200, list(st.log))
            return
        self._send(404, {"error": "not found"})

    def do_POST(self):
        st = self.server.state
        body = self._body()
        if self.path == "/_control":
            if not isinstance(body, dict):
                self._send(400, {"error": "control body must be a JSON object"})
                return
            with st.lock:
                if body.get("reset"):
                    st.reset()
                for k in ("fail_status", "fail_count", "retry_after", "delay_ms",
                          "require_key", "shuffle", "wrong_count", "wrong_dim", "models"):
                    if k in body:
                        setattr(st, k, body[k])
            self._send(200, {"ok": True})
            return
        if self.path not in ("/api/embed", "/v1/embeddings"):
            self._send(404, {"error": f"unknown path {self.path}"})
            return
        if not isinstance(body, dict):
            self._send(400, {"error": "invalid JSON body"})
            return
        inp = body.get("input", [])
        texts = [inp] if isinstance(inp, str) else inp
        entry = {"path": self.path, "model": body.get("model"),
                 "inputs": len(texts) if isinstance(texts, list) else None,
                 "auth": "Authorization" in self.headers, "at": time.time()}
        if "keep_alive" in body:
            entry["keep_alive"] = body["keep_alive"]
        with st.lock:
            delay = st.delay_ms
            fail = None
            if st.fail_count > 0:
                st.fail_count -= 1
                fail = (st.fail_status, st.retry_after)
            want_key = st.require_key
            wrong_count = st.wrong_count > 0
            st.wrong_count = max(0, st.wrong_count - 1)
            wrong_dim = st.wrong_dim > 0
            st.wrong_dim = max(0, st.wrong_dim - 1)
            shuffle = st.shuffle
            models = st.models
        if delay:
            time.sleep(delay / 1000.0)

        def answer(status, obj, headers=None):
            entry["status"] = status
            with st.lock:
                st.log.append(entry)
            self._send(status, obj, headers)

        if want_key is not None:
            got = self.headers.get("Authorization", "")
            if got != f"Bearer {want_key}":
                presented = got[len("Bearer "):] if got.startswith("Bearer ") else got
                answer(401, {"error": {"message": f"Incorrect API key provided: {presented}",
                                       "type": "invalid_request_error"}})
                return
        if fail:
            status, retry_after = fail
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
            answer(status, {"error": f"stand-in told to fail with {status}"}, headers)
            return
        model = body.get("model")
        if not isinstance(model, str) or not model:
            answer(400, {"error": "model is required"})
            return
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            answer(400, {"error": "input must be a string or an array of strings"})
            return
        if models is not None and model not in models:
            if self.path == "/api/embed":
                answer(404, {"error": f"model '{model}' not found"})
            else:
                answer(404, {"error": {"message": f"The model `{model}` does not exist.",
                                       "type": "invalid_request_error",
                                       "code": "model_not_found"}})
            return
        dim = dim_of(model)
        vecs = [hash_embed(t, dim) for t in texts]
        if wrong_count and vecs:
            vecs = vecs[:-1]
        if wrong_dim and vecs:
            vecs[0] = vecs[0][:-1]
        if self.path == "/api/embed":
            answer(200, {"model": model, "embeddings": vecs, "total_duration": 1000,
                         "load_duration": 100, "prompt_eval_count": len(texts)})
        else:
            data = [{"object": "embedding", "index": i, "embedding": v}
                    for i, v in enumerate(vecs)]
            if shuffle:
                data.reverse()
            answer(200, {"object": "list", "data": data, "model": model,
                         "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)}})


class EmbedServer:
    """The stand-in on 127.0.0.1 (a free port unless given), in a thread of this process."""

    def __init__(self, port=0):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = _State()
        self.thread = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self):
        sys.stderr.write(f"embedserver: STAND-IN embedding server (Ollama and OpenAI wire "
                         f"formats, deterministic lexical vectors, not a model) on {self.url}\n")
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.thread:
            self.httpd.shutdown()
            self.thread.join()
            self.thread = None
        self.httpd.server_close()

    def _post(self, path, obj):
        req = Request(self.url + path, data=json.dumps(obj).encode(),
                      headers={"Content-Type": "application/json"}, method="POST")
        with urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def control(self, **kw):
        return self._post("/_control", kw)

    def reset(self):
        return self.control(reset=True)

    def requests(self):
        with urlopen(self.url + "/_requests", timeout=10) as r:
            return json.loads(r.read())

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv):
    if len(argv) >= 2 and argv[1] == "serve":
        port = int(argv[2]) if len(argv) > 2 else 0
        es = EmbedServer(port).start()
        print(es.url, flush=True)
        try:
            es.thread.join()
        except KeyboardInterrupt:
            es.stop()
        return 0
    if len(argv) < 3 or argv[1] != "run" or "--" not in argv:
        sys.stderr.write("usage: embedserver.py run -- COMMAND [ARGS...] | serve [PORT]\n")
        return 2
    cmd = argv[argv.index("--") + 1:]

    with EmbedServer() as es:
        return subprocess.run(cmd, env=dict(os.environ, LH_TEST_EMBED_URL=es.url)).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
