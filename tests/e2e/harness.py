#!/usr/bin/env python3
"""The end-to-end harness: the real `lakehouse` binary on a free loopback port with a
temporary data folder. Test modules (tests/e2e/test_*.py) import what they need from here;
run_e2e.py sets BIN and MKPARQUET before any test runs.

Every server started is stopped with SIGTERM and must exit 0 with no sanitizer report in its
log.
"""
import csv
import decimal
import glob
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

BIN = None
MKPARQUET = None
ADMIN_KEY = "e2e-admin-key-" + "k" * 40
DEFAULT_PURPOSE = "e2e-test"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One lakehouse server process."""

    def __init__(self, data_dir, env=None, wrap=None, umask=None):
        """wrap: a command the server is started through (e.g. unshare); umask: the
        server's umask (default: the test runner's)."""
        self.data_dir = data_dir
        self.extra_env = env or {}
        self.wrap = wrap or []
        self.umask = umask
        self.proc = None
        self.port = None
        self.log_path = None
        self.last_log = ""

    def start(self):
        self.port = free_port()
        env = dict(os.environ)
        env.update({"LH_ADMIN_KEY": ADMIN_KEY, "LH_LOG_LEVEL": "info"})
        env.setdefault("OMP_WAIT_POLICY", "passive")  # as scripts/serve.sh does
        env.update(self.extra_env)
        fd, self.log_path = tempfile.mkstemp(prefix="lh-e2e-", suffix=".log")
        self.log = os.fdopen(fd, "w")
        umask = self.umask
        self.proc = subprocess.Popen(
            self.wrap + [BIN, "serve", "--data", self.data_dir, "--listen",
                         f"127.0.0.1:{self.port}"],
            stdout=self.log, stderr=self.log, env=env,
            preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited at start: {self.read_log()}")
            try:
                status, _, _ = self.request("GET", "/health")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("server did not answer /health within 60 s")

    def read_log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self, expect_code=0):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("server did not stop within 90 s of SIGTERM")
        self.proc = None
        self.log.close()
        log = self.read_log()
        for marker in SANITIZER_MARKERS:
            if marker in log:
                raise AssertionError(f"sanitizer report in server log:\n{log[-6000:]}")
        if code != expect_code:
            raise AssertionError(f"server exited {code}, expected {expect_code}:\n{log[-3000:]}")
        self.last_log = log  # what the stopped process wrote (its file is removed)
        os.unlink(self.log_path)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def request(self, method, path, body=None, headers=None, key=ADMIN_KEY, timeout=120):
        """headers: added to the request; a header given as None is not sent. Every
        request declares a purpose (X-Lakehouse-Purpose, which agents' queries must carry,
        docs/AUDIT.md "Access auditing") unless the test overrides or removes it."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Authorization": f"Bearer {key}"} if key else {}
        h["X-Lakehouse-Purpose"] = DEFAULT_PURPOSE
        if headers:
            h.update(headers)
        h = {k: v for k, v in h.items() if v is not None}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), data
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None, **kw):
        status, hdrs, data = self.request(method, path, body, headers, **kw)
        try:
            doc = json.loads(data) if data else None
        except ValueError:
            raise AssertionError(f"{method} {path}: not JSON ({status}): {data[:300]!r}")
        return status, doc

    def ingest(self, name, path_or_bytes, fmt="csv", mode=None, bucket=None, extra=None):
        q = {"name": name, "format": fmt}
        if mode:
            q["mode"] = mode
        if extra:
            q.update(extra)
        body = path_or_bytes
        if isinstance(path_or_bytes, str):
            with open(path_or_bytes, "rb") as f:
                body = f.read()
        headers = {"X-Lakehouse-Bucket": bucket} if bucket else {}
        return self.json("POST", "/ingest/file?" + urllib.parse.urlencode(q), body, headers)

    def sql(self, sql, fmt=None, limit=None):
        body = {"sql": sql}
        if fmt:
            body["format"] = fmt
        if limit is not None:
            body["limit"] = limit
        if fmt in ("csv", "ndjson"):
            return self.request("POST", "/query/sql", body)
        return self.json("POST", "/query/sql", body)

    def rows(self, sql):
        status, doc = self.sql(sql)
        assert status == 200, (status, doc)
        return doc["rows"]


# ------------------------------------------------------------------ test data

FIRST = ["Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Edsger", "Frances", "Ken",
         "Zoë", "José", "Łukasz"]
CITIES = ["Lisbon", "Paris", "Berlin", "Oslo", "Madrid", "Zürich"]


def make_people(path, n=500, seed=7, start_id=1):
    """Writes a people CSV and returns the rows as dicts (the independent truth)."""
    rnd = random.Random(seed)
    rows = []
    for i in range(start_id, start_id + n):
        first = rnd.choice(FIRST)
        rows.append({
            "candidate_id": i,
            "first_name": first,
            "last_name": f"Doe{i % 37}",
            "email": f"{first.lower()}.{i}@example.org",
            "phone": f"+1-555-{rnd.randint(100, 999)}-{rnd.randint(1000, 9999)}",
            "city": rnd.choice(CITIES),
            "birth_date": f"{rnd.randint(1950, 2004)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}",
            "salary": f"{rnd.randint(20000, 200000)}.{rnd.randint(0, 99):02d}",
            "is_active": rnd.choice(["true", "false"]),
            "notes": rnd.choice(["", "likes \"quotes\"", "a, b, c", "plain", "multi\nline"]),
        })
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    return rows


def snapshot(data_dir):
    """Every file under the data folder with its size (uploads scratch included)."""
    out = {}
    for root, _, files in os.walk(data_dir):
        for name in files:
            p = os.path.join(root, name)
            out[os.path.relpath(p, data_dir)] = os.path.getsize(p)
    return out


class Base(unittest.TestCase):
    server = None
    tmp = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="lh-e2e-")
        cls.data = os.path.join(cls.tmp, "data")
        cls.people_csv = os.path.join(cls.tmp, "people.csv")
        cls.people = make_people(cls.people_csv)
        cls.server = Server(cls.data, getattr(cls, "server_env", None)).start()

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.server:
                cls.server.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def assertNoTrace(self, before, name):
        """A failed ingest left nothing behind: no dataset, no new file anywhere."""
        after = snapshot(self.data)
        self.assertEqual(before, after, "files changed after a failed ingest")
        status, _ = self.server.json("GET", f"/catalog/datasets/by-name/{name}")
        self.assertIn(status, (400, 404))  # 400: the name itself is invalid


# ------------------------------------------------------------------ keep-alive probe

HEALTH_REQ = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class KeepAliveProbe:
    """N keep-alive connections asked /health in turn, one request in flight at a time (so
    a latency is the server's answer time, not a queue the probe built itself), recording
    (sent_at, answered_at) per answer on each connection."""

    def __init__(self, port, n):
        self.conns = []
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            self.conns.append({"sock": s, "i": i, "buf": b"", "answers": []})

    @staticmethod
    def _complete(buf):
        """Length of the first complete response in buf, or 0."""
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return 0
        head = buf[:end].decode("latin-1").lower()
        assert head.startswith("http/1.1 200"), head
        length = 0
        for line in head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip() == "content-length":
                length = int(v)
        total = end + 4 + length
        return total if len(buf) >= total else 0

    def _ask(self, c):
        sent = time.monotonic()
        c["sock"].sendall(HEALTH_REQ)
        while True:
            n = self._complete(c["buf"])
            if n:
                c["buf"] = c["buf"][n:]
                c["answers"].append((sent, time.monotonic()))
                return
            data = c["sock"].recv(65536)
            if not data:
                raise AssertionError(f"connection {c['i']} closed by the server")
            c["buf"] += data

    def run(self, until):
        """Asks on every connection in turn until until() is true."""
        while not until():
            for c in self.conns:
                self._ask(c)

    def close(self):
        for c in self.conns:
            c["sock"].close()


def while_probing(port, n, work):
    """Runs work() on a thread while a KeepAliveProbe of n connections asks /health until
    it returns. Returns (probe, work's result); re-raises work's exception."""
    probe = KeepAliveProbe(port, n)
    result = {}

    def run():
        try:
            result["r"] = work()
        except Exception as e:  # re-raised below
            result["e"] = e

    t = threading.Thread(target=run)
    try:
        t.start()
        probe.run(until=lambda: not t.is_alive())
    finally:
        t.join()
        probe.close()
    if "e" in result:
        raise result["e"]
    return probe, result["r"]


def wait_audit_logs(data, timeout=20.0):
    """Waits until every row of the running server's audit journal is in its subject's log.

    The server writes the per-subject logs from the journal in a background thread, after
    the read that audited the rows has answered, so a test reading the log files beside a
    running server first waits for that writer (a record: u32 LE length, 8-byte checksum,
    the row line)."""
    wal = os.path.join(data, "_catalog", "audit_wal")
    subjects = os.path.join(data, "_catalog", "subjects")
    deadline = time.time() + timeout
    while True:
        want = set()
        for p in glob.glob(os.path.join(wal, "*.log")):
            with open(p, "rb") as f:
                buf = f.read()
            pos = 0
            while len(buf) - pos >= 12:
                n = int.from_bytes(buf[pos:pos + 4], "little")
                if n == 0 or n > len(buf) - pos - 12:  # 0: the preallocated zeros
                    break
                try:
                    want.add(json.loads(buf[pos + 12:pos + 12 + n])["row_hmac"])
                except (ValueError, KeyError):
                    pass
                pos += 12 + n
        have = set()
        if want:
            for p in glob.glob(os.path.join(subjects, "*.audit.jsonl")):
                with open(p, "rb") as f:
                    for line in f:
                        if line.endswith(b"\n"):
                            try:
                                have.add(json.loads(line)["row_hmac"])
                            except (ValueError, KeyError):
                                pass
        if want <= have:
            return
        if time.time() > deadline:
            raise AssertionError("%d journal rows never reached their logs" % len(want - have))
        time.sleep(0.02)


def wait_chain_roots(data, timeout=20.0):
    """Waits until every subject manifest names its audit log's last row as its chain root.

    The server mirrors a chain's new tip into the subject's manifest from a background
    thread (the chain-root flusher), after the audited call has answered, so a test that
    compares manifest bytes before and after something first waits for that mirror."""
    subjects = os.path.join(data, "_catalog", "subjects")
    wait_audit_logs(data, timeout)
    deadline = time.time() + timeout
    while True:
        behind = []
        for p in glob.glob(os.path.join(subjects, "*.audit.jsonl")):
            last = None
            with open(p, "rb") as f:
                for line in f:
                    if line.endswith(b"\n"):
                        last = line
            manifest = p[:-len(".audit.jsonl")] + ".json"
            if last is None or not os.path.exists(manifest):
                continue
            with open(manifest, "rb") as f:
                root = json.loads(f.read()).get("audit_log_chain_root")
            if root != json.loads(last)["row_hmac"]:
                behind.append(os.path.basename(manifest))
        if not behind:
            return
        if time.time() > deadline:
            raise AssertionError("chain roots never mirrored into %s" % ", ".join(behind))
        time.sleep(0.02)
