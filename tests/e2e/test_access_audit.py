"""End-to-end tests of access auditing (issue 11 item 5; docs/AUDIT.md "Access auditing"),
against the real server with LH_SUBJECT_AUDIT_KEY: an analyst's query returning N people
leaves exactly one row per returned subject in each subject's chain (fields = the visible
columns, the accessor, purpose and trace id verbatim), every row and chain accepted by an
independent RFC 8785 + HMAC-SHA256 verifier written here; an agent bound to a profile
reading a safe view (hashed key) is audited under the raw keys with its profile and
model; an agent without a purpose gets 400, one selecting no key 403 unattributed_access
(journaled); aggregates leave one journal record and no rows; a failed audit write fails
the read with 500 (LH_FAULT); without an audit key row-level reads are 503; kill -9 of
the server during a stream of audited reads from several threads loses no acknowledged
row and `lakehouse audit verify --all` passes; the audit key and the legal token appear in
no log line."""
import glob
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import ADMIN_KEY, Server

AUDIT_KEY = "e2e-access-audit-key-" + "z" * 30 + "-secret"
TOKEN = "e2e-legal-token-" + "l" * 40
MODEL = "gpt-4o-2024-08-06 <&> ü"
PURPOSE = "screening <&> naïve ✓ 名前 %41"
TRACE = "trace-<b>&amp;-ü-🙂"


# ------------------------------------------------------------------ independent verifier

def _jcs_string(s):
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif c < 0x20:
            out.append({8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}.get(c, "\\u%04x" % c))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jcs(v):
    """RFC 8785 of the JSON values audit rows hold (objects, arrays, strings, integers,
    booleans, null): members sorted by UTF-16 code units, minimal escaping."""
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(_jcs_string(k) + ":" + jcs(v[k]) for k in keys) + "}"
    if isinstance(v, list):
        return "[" + ",".join(jcs(x) for x in v) + "]"
    if isinstance(v, str):
        return _jcs_string(v)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    raise ValueError(f"unexpected value in an audit row: {v!r}")


def no_dupes(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k}")
        d[k] = v
    return d


def verify_log(path, key):
    """Checks every row of one subject log: stored as its canonical form, HMAC, chain.
    Returns the rows."""
    rows, prev = [], "GENESIS"
    with open(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n") or not data, f"{path}: torn last line"
    for n, line in enumerate(data.split(b"\n")[:-1], 1):
        row = json.loads(line.decode("utf-8"), object_pairs_hook=no_dupes)
        assert jcs(row).encode() == line, f"{path} row {n}: not stored in canonical form"
        body = dict(row)
        mac = body.pop("row_hmac")
        want = hmac.new(key, jcs(body).encode("utf-8"), hashlib.sha256).hexdigest()
        assert mac == want, f"{path} row {n}: HMAC mismatch"
        assert row["prev_chain_hash"] == prev, f"{path} row {n}: chain broken"
        assert row["schema"] == "subject_audit_row.v1"
        prev = mac
        rows.append(row)
    return rows


def subject_key(cid):
    """docs/AUDIT.md: [A-Za-z0-9-] kept, '.'/'_' kept after the first byte, the rest %XX."""
    out = []
    for i, b in enumerate(cid.encode("utf-8")):
        ch = chr(b)
        if ch.isascii() and (ch.isalnum() or ch == "-" or (ch in "._" and i > 0)):
            out.append(ch)
        else:
            out.append("%%%02X" % b)
    return "".join(out)


# ------------------------------------------------------------------ data

def make_people(n):
    ids = [f"C-{i}" for i in range(1, n + 1)]
    ids[6] = "Zoë/7"  # an id whose storage key is escaped
    rows = [{"candidate_id": cid, "full_name": f"Person {i}", "email": f"p{i}@example.org",
             "city": ["Lisbon", "Oslo", "Paris"][i % 3]} for i, cid in enumerate(ids, 1)]
    text = "candidate_id,full_name,email,city\n" + "".join(
        f"{r['candidate_id']},{r['full_name']},{r['email']},{r['city']}\n" for r in rows)
    return rows, text.encode("utf-8")


def setup_lake(s, csv_bytes):
    """people (a subject dataset), people_safe (hashed key, masked email), a profile bound
    to the view, and the keys. Returns {name: key}."""
    st, doc = s.ingest("people", csv_bytes)
    assert st == 201, doc
    st, doc = s.json("PATCH", "/catalog/datasets/by-name/people/metadata",
                     {"subject_key_column": "candidate_id"})
    assert st == 200, doc
    st, doc = s.json("POST", "/catalog/views", {
        "name": "people_safe", "base_dataset": "people",
        "columns": ["candidate_id", "email", "city"],
        "column_redactions": {"candidate_id": {"kind": "hash"},
                              "email": {"kind": "mask", "keep_prefix": 1}}})
    assert st == 201, doc
    st, doc = s.json("POST", "/catalog/profiles", {
        "id": "screening", "model_name": MODEL, "bound_datasets": ["people_safe"]})
    assert st == 201, doc
    keys = {}
    for body in ({"name": "ana", "role": "analyst"},
                 {"name": "bot", "role": "agent", "profile": "screening"},
                 {"name": "granted-bot", "role": "agent", "datasets": ["people"]}):
        st, doc = s.json("POST", "/auth/keys", body)
        assert st == 201, doc
        keys[body["name"]] = doc["key"]
    return keys


def query(s, key, sql, purpose=None, trace=None, fmt=None, timeout=120):
    """POST /query/sql with the audit headers as raw UTF-8 bytes (verbatim on the wire)."""
    enc = (lambda v: v.encode("utf-8") if isinstance(v, str) else v)
    h = {"X-Lakehouse-Purpose": enc(purpose), "X-Lakehouse-Trace-Id": enc(trace)}  # None: not sent
    body = {"sql": sql, "limit": 100000}
    if fmt:
        body["format"] = fmt
    st, _, data = s.request("POST", "/query/sql", body, h, key=key, timeout=timeout)
    try:
        doc = json.loads(data) if data else None
    except ValueError:
        doc = data
    return st, doc


def all_events(s, action=None):
    out, since = [], 0
    while True:
        st, doc = s.json("GET", f"/catalog/events?since={since}&limit=1000")
        assert st == 200, doc
        out += doc["events"]
        if not doc["events"]:
            break
        since = doc["next_since"]
    return [e for e in out if action is None or e["action"] == action]


def subjects_dir(data):
    return os.path.join(data, "_catalog", "subjects")


def rows_with_trace(data, key, trace):
    """{candidate_id: [rows]} of every verified log holding a row with this trace id."""
    harness.wait_audit_logs(data)
    out = {}
    for p in glob.glob(os.path.join(subjects_dir(data), "*.audit.jsonl")):
        for r in verify_log(p, key):
            if r["accessor"]["trace_id"] == trace:
                out.setdefault(r["candidate_id"], []).append(r)
    return out


def total_rows(data):
    harness.wait_audit_logs(data)
    n = 0
    for p in glob.glob(os.path.join(subjects_dir(data), "*.audit.jsonl")):
        with open(p, "rb") as f:
            n += f.read().count(b"\n")
    return n


def cli(args, data, keyfile):
    env = dict(os.environ)
    env.pop("LH_SUBJECT_AUDIT_KEY", None)
    if keyfile:
        env["LH_SUBJECT_AUDIT_KEY"] = keyfile
    return subprocess.run([harness.BIN] + args + ["--data", data], env=env, capture_output=True,
                          text=True, timeout=300)


class _Secrets:
    """Collects every server log of a test class, to check no secret is in any line."""

    def assertNoSecrets(self, text):
        self.assertNotIn(AUDIT_KEY, text)
        self.assertNotIn(TOKEN, text)
        for k in getattr(self, "keys", {}).values():
            self.assertNotIn(k, text)


class AccessAudit(unittest.TestCase, _Secrets):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="lh-e2e-access-")
        cls.data = os.path.join(cls.tmp, "data")
        cls.keyfile = os.path.join(cls.tmp, "audit.key")
        with open(cls.keyfile, "w") as f:
            f.write(AUDIT_KEY + "\n")
        cls.key = AUDIT_KEY.encode()
        cls.tokenfile = os.path.join(cls.tmp, "legal.token")
        with open(cls.tokenfile, "w") as f:
            f.write(TOKEN)
        cls.env = {"LH_SUBJECT_AUDIT_KEY": cls.keyfile, "LH_LEGAL_AUDIT_TOKEN_FILE": cls.tokenfile}
        cls.logs = []
        cls.people, csv_bytes = make_people(300)
        cls.server = Server(cls.data, cls.env).start()
        cls.keys = setup_lake(cls.server, csv_bytes)

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.server:
                cls.logs.append(cls.server.read_log())
                cls.server.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_01_analyst_rows_one_per_subject(self):
        s = self.server
        ids = [p["candidate_id"] for p in self.people[:25]]
        sql = ("SELECT candidate_id, email FROM people WHERE candidate_id IN (" +
               ",".join("'" + i + "'" for i in ids) + ") ORDER BY candidate_id")
        trace = TRACE + "-01"
        st, doc = query(s, self.keys["ana"], sql, PURPOSE, trace)
        self.assertEqual(st, 200, doc)
        self.assertEqual(sorted(r[0] for r in doc["rows"]), sorted(ids))
        self.assertNotIn("error", doc)
        got = rows_with_trace(self.data, self.key, trace)
        self.assertEqual(sorted(got), sorted(ids))  # nobody else, every returned subject
        for cid, rows in got.items():
            self.assertEqual(len(rows), 1, cid)  # exactly one row per subject
            r = rows[0]
            self.assertEqual(r["fields_accessed"], ["candidate_id", "email"])
            self.assertEqual(r["result"], "success")
            self.assertEqual(r["accessor"], {"kind": "analyst", "daemon": "ana",
                                             "purpose": PURPOSE, "trace_id": trace})
            self.assertTrue(r["ts"].endswith("Z") and len(r["ts"]) == 30, r["ts"])
        # the escaped id's log is where the sanitiser puts it
        self.assertTrue(os.path.exists(os.path.join(
            subjects_dir(self.data), subject_key("Zoë/7") + ".audit.jsonl")))
        # the legal endpoint verifies the same chain and shows the row verbatim
        st, doc = s.json("GET", "/audit/subject/" + "Zo%C3%AB%2F7",
                         headers={"X-Lakehouse-Legal-Token": TOKEN}, key=None)
        self.assertEqual(st, 200, doc)
        resp = doc["response"]
        self.assertTrue(resp["chain_verified"], resp)
        self.assertEqual([r["accessor"]["trace_id"] for r in resp["rows"]].count(trace), 1)
        # the same query as CSV and NDJSON: audited again, same count
        for i, fmt in enumerate(("csv", "ndjson")):
            t = f"{trace}-{fmt}"
            st, _ = query(s, self.keys["ana"], sql, PURPOSE, t, fmt=fmt)
            self.assertEqual(st, 200)
            self.assertEqual(sorted(rows_with_trace(self.data, self.key, t)), sorted(ids))

    def test_02_agent_profile_safe_view_raw_keys(self):
        s = self.server
        by_hash = {hashlib.sha256(p["candidate_id"].encode()).hexdigest(): p["candidate_id"]
                   for p in self.people}
        trace = "t-02"
        st, doc = query(s, self.keys["bot"],
                        "SELECT candidate_id, email FROM people_safe WHERE city = 'Oslo' "
                        "ORDER BY 1 LIMIT 40", PURPOSE, trace)
        self.assertEqual(st, 200, doc)
        self.assertEqual(len(doc["rows"]), 40)
        returned = sorted(by_hash[r[0]] for r in doc["rows"])  # hashed in the result
        got = rows_with_trace(self.data, self.key, trace)
        self.assertEqual(sorted(got), returned)  # audited under the raw keys
        for cid, rows in got.items():
            self.assertEqual(len(rows), 1)
            self.assertEqual(rows[0]["accessor"], {
                "kind": "agent", "daemon": "bot", "profile": "screening", "model": MODEL,
                "purpose": PURPOSE, "trace_id": trace})
            self.assertEqual(rows[0]["fields_accessed"], ["candidate_id", "email"])
        # an agent with grants (no profile) has no profile/model members
        st, doc = query(s, self.keys["granted-bot"],
                        "SELECT candidate_id FROM people ORDER BY 1 LIMIT 3", "p", "t-02b")
        self.assertEqual(st, 200, doc)
        got = rows_with_trace(self.data, self.key, "t-02b")
        self.assertEqual(len(got), 3)
        for rows in got.values():
            self.assertEqual(set(rows[0]["accessor"]), {"kind", "daemon", "purpose", "trace_id"})

    def test_03_agent_purpose_required_and_header_limits(self):
        s = self.server
        sql = "SELECT candidate_id FROM people_safe LIMIT 1"
        before = total_rows(self.data)
        for purpose in (None, ""):
            st, doc = query(s, self.keys["bot"], sql, purpose)
            self.assertEqual(st, 400, doc)
            self.assertEqual(doc["error"], "purpose_required")
            self.assertIn("X-Lakehouse-Purpose", doc["message"])
        for purpose, trace in ((b"\xff\xfe", None), ("p", b"\xc3\x28"), ("x" * 4097, None),
                               ("p", "y" * 4097)):
            st, doc = query(s, self.keys["bot"], sql, purpose, trace)
            self.assertEqual(st, 400, (purpose[:10], doc))
            self.assertEqual(doc["error"], "invalid_header")
        # exactly 4096 bytes (multi-byte characters) are fine, kept whole
        p4096 = "é" * 2048
        st, doc = query(s, self.keys["bot"], sql, p4096, "t-03")
        self.assertEqual(st, 200, doc)
        self.assertEqual(total_rows(self.data), before + 1)
        got = rows_with_trace(self.data, self.key, "t-03")
        self.assertEqual([r["accessor"]["purpose"] for v in got.values() for r in v], [p4096])
        # analysts may leave the purpose out: written as ""
        st, doc = query(s, self.keys["ana"], "SELECT candidate_id FROM people LIMIT 1",
                        None, "t-03b")
        self.assertEqual(st, 200, doc)
        got = rows_with_trace(self.data, self.key, "t-03b")
        self.assertEqual([r["accessor"]["purpose"] for v in got.values() for r in v], [""])

    def test_04_agent_without_key_refused_and_journaled(self):
        s = self.server
        before_rows = total_rows(self.data)
        before = len(all_events(s, "query.denied"))
        sql = "SELECT email, city FROM people_safe"
        st, doc = query(s, self.keys["bot"], sql, PURPOSE, "t-04")
        self.assertEqual(st, 403, doc)
        self.assertEqual(doc["error"], "unattributed_access")
        # outside the profile: 403 too, journaled too
        st, doc = query(s, self.keys["bot"], "SELECT candidate_id FROM people", PURPOSE, "t-04b")
        self.assertEqual(st, 403, doc)
        evs = all_events(s, "query.denied")[before:]
        self.assertEqual(len(evs), 2, evs)
        d = evs[0]["details"]
        self.assertEqual(evs[0]["actor"], "bot")
        self.assertEqual(d["error"], "unattributed_access")
        self.assertEqual((d["profile"], d["model"], d["purpose"], d["trace_id"]),
                         ("screening", MODEL, PURPOSE, "t-04"))
        self.assertEqual(d["fingerprint"], hashlib.sha256(sql.encode()).hexdigest())
        self.assertEqual(evs[1]["details"]["trace_id"], "t-04b")
        self.assertEqual(total_rows(self.data), before_rows)

    def test_05_aggregate_one_record_no_rows(self):
        s = self.server
        before_rows = total_rows(self.data)
        before = len(all_events(s, "query.dataset_access"))
        sql = "SELECT city, count(*) AS n FROM people GROUP BY city ORDER BY city"
        st, doc = query(s, self.keys["ana"], sql, PURPOSE, "t-05")
        self.assertEqual(st, 200, doc)
        self.assertEqual(sum(r[1] for r in doc["rows"]), len(self.people))
        st, doc = query(s, self.keys["bot"], "SELECT count(*) FROM people_safe", "stats", "t-05b")
        self.assertEqual(st, 200, doc)
        evs = all_events(s, "query.dataset_access")[before:]
        self.assertEqual(len(evs), 2, evs)
        e = evs[0]
        self.assertEqual((e["actor"], e["target"]), ("ana", "people"))
        d = e["details"]
        self.assertEqual((d["kind"], d["role"], d["purpose"], d["trace_id"]),
                         ("aggregate", "analyst", PURPOSE, "t-05"))
        self.assertEqual(d["fingerprint"], hashlib.sha256(sql.encode()).hexdigest())
        self.assertEqual(d["datasets"], ["people"])
        self.assertNotIn("profile", d)
        d = evs[1]["details"]
        self.assertEqual((evs[1]["actor"], d["role"], d["profile"], d["model"]),
                         ("bot", "agent", "screening", MODEL))
        self.assertEqual(total_rows(self.data), before_rows)
        # admins are not audited
        st, doc = query(s, ADMIN_KEY, "SELECT candidate_id FROM people LIMIT 5")
        self.assertEqual(st, 200, doc)
        self.assertEqual(total_rows(self.data), before_rows)
        self.assertEqual(len(all_events(s, "query.dataset_access")), before + 2)

    def test_06_every_chain_verifies(self):
        """The independent verifier accepts every row of every log; the offline command
        agrees beside the running server."""
        harness.wait_audit_logs(self.data)
        logs = glob.glob(os.path.join(subjects_dir(self.data), "*.audit.jsonl"))
        self.assertGreater(len(logs), 25)
        for p in logs:
            verify_log(p, self.key)
        r = cli(["--json", "audit", "verify", "--all"], self.data, self.keyfile)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(json.loads(r.stdout)["not_verified"], 0)

    def test_07_no_secret_in_logs(self):
        self.assertNoSecrets(self.server.read_log())


class AccessAuditFailures(unittest.TestCase, _Secrets):
    """Servers on one data folder restarted with LH_FAULT, and without an audit key."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lh-e2e-access-f-")
        self.data = os.path.join(self.tmp, "data")
        self.keyfile = os.path.join(self.tmp, "audit.key")
        with open(self.keyfile, "w") as f:
            f.write(AUDIT_KEY)
        self.env = {"LH_SUBJECT_AUDIT_KEY": self.keyfile}
        self.people, csv_bytes = make_people(50)
        s = Server(self.data, self.env).start()
        try:
            self.keys = setup_lake(s, csv_bytes)
            self.assertNoSecrets(s.read_log())
        finally:
            s.stop()

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_with(self, env, fn):
        s = Server(self.data, env).start()
        try:
            fn(s)
        finally:
            self.assertNoSecrets(s.read_log())
            s.stop()

    def test_01_failed_audit_write_fails_the_read(self):
        rows_sql = "SELECT candidate_id, email FROM people ORDER BY 1 LIMIT 10"

        def rows_fail(s):
            # the first fsync after start is the audit journal's fdatasync of this read
            st, doc = query(s, self.keys["ana"], rows_sql, "p", "t-f1")
            self.assertEqual(st, 500, doc)
            self.assertEqual(doc["error"], "audit_write_failed")
            self.assertNotIn("rows", doc)
            # the next read recovers (the journal is replayed) and is audited
            st, doc = query(s, self.keys["ana"], rows_sql, "p", "t-f2")
            self.assertEqual(st, 200, doc)
            self.assertEqual(len(rows_with_trace(self.data, AUDIT_KEY.encode(), "t-f2")), 10)

        self.run_with({**self.env, "LH_FAULT": "fsync:1:EIO"}, rows_fail)

        def aggregate_fails(s):
            # the first fsync after start is the event journal's append of this record
            st, doc = query(s, self.keys["ana"], "SELECT count(*) FROM people", "p", "t-f3")
            self.assertEqual(st, 500, doc)
            self.assertEqual(doc["error"], "audit_write_failed")
            self.assertNotIn("rows", doc)
            # an agent's denial is still answered 403 when it cannot be journaled
            st, doc = query(s, self.keys["bot"], "SELECT email FROM people_safe", "p", "t-f4")
            self.assertEqual(st, 403, doc)

        self.run_with({**self.env, "LH_FAULT": "fsync:1:EIO:2"}, aggregate_fails)
        r = cli(["--json", "audit", "verify", "--all"], self.data, self.keyfile)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_02_no_audit_key_row_reads_unavailable(self):
        def check(s):
            st, doc = query(s, self.keys["ana"], "SELECT candidate_id FROM people LIMIT 3")
            self.assertEqual(st, 503, doc)
            self.assertEqual(doc["error"], "audit_unavailable")
            st, doc = query(s, self.keys["bot"], "SELECT candidate_id FROM people_safe", "p")
            self.assertEqual(st, 503, doc)
            before = len(all_events(s, "query.dataset_access"))
            st, doc = query(s, self.keys["ana"], "SELECT count(*) FROM people")
            self.assertEqual(st, 200, doc)
            self.assertEqual(len(all_events(s, "query.dataset_access")), before + 1)

        self.run_with({}, check)


class AccessAuditKill9(unittest.TestCase, _Secrets):
    """kill -9 of the real server at random points during audited reads from several
    threads: every acknowledged row (a 200 whose body arrived whole) is in its subject's
    log after a restart, and every chain verifies."""

    THREADS = 4
    ROUNDS = 4

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lh-e2e-access-k-")
        self.data = os.path.join(self.tmp, "data")
        self.keyfile = os.path.join(self.tmp, "audit.key")
        with open(self.keyfile, "w") as f:
            f.write(AUDIT_KEY + "\n")
        self.env = {"LH_SUBJECT_AUDIT_KEY": self.keyfile}
        self.people, csv_bytes = make_people(200)
        s = Server(self.data, self.env).start()
        try:
            self.keys = setup_lake(s, csv_bytes)
        finally:
            s.stop()

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def reader(self, s, tid, stop, acked, errors):
        rng = random.Random(tid)
        n = 0
        while not stop.is_set():
            n += 1
            ids = rng.sample([p["candidate_id"] for p in self.people], rng.randint(1, 30))
            trace = f"k{tid}-{n}-{rng.random()}"
            sql = ("SELECT candidate_id, city FROM people WHERE candidate_id IN (" +
                   ",".join("'" + i + "'" for i in ids) + ")")
            try:
                st, doc = query(s, self.keys["ana"], sql, "kill-9 test", trace, timeout=30)
            except Exception:  # the server died under us: not acknowledged
                continue
            if st == 200 and isinstance(doc, dict) and "error" not in doc:
                acked.append((trace, sorted(r[0] for r in doc["rows"])))
            elif st != 429:  # busy is fine; anything else is a bug
                errors.append((st, doc))

    def test_kill9_loses_no_acknowledged_row(self):
        rng = random.Random(91)
        acked, errors = [], []
        for rnd in range(self.ROUNDS):
            s = Server(self.data, self.env).start()
            stop = threading.Event()
            threads = [threading.Thread(target=self.reader, args=(s, rnd * 100 + t, stop, acked,
                                                                 errors))
                       for t in range(self.THREADS)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.5, 2.5))
            s.proc.send_signal(signal.SIGKILL)
            s.proc.wait()
            stop.set()
            for t in threads:
                t.join()
            log = s.read_log()
            s.log.close()
            os.unlink(s.log_path)
            s.proc = None
            self.assertNoSecrets(log)
            for marker in harness.SANITIZER_MARKERS:
                self.assertNotIn(marker, log)
        self.assertEqual(errors, [])
        self.assertGreater(len(acked), 10)
        # restart: the journal is replayed into the logs; then every acknowledged row is there
        s = Server(self.data, self.env).start()
        try:
            present = {}
            for p in glob.glob(os.path.join(subjects_dir(self.data), "*.audit.jsonl")):
                for r in verify_log(p, AUDIT_KEY.encode()):
                    present.setdefault(r["accessor"]["trace_id"], set()).add(r["candidate_id"])
            missing = [(t, ids) for t, ids in acked if present.get(t, set()) != set(ids)]
            self.assertEqual(missing, [], f"{len(missing)} of {len(acked)} acknowledged reads "
                                          "lack audit rows")
            self.assertNoSecrets(s.read_log())
        finally:
            s.stop()
        r = cli(["--json", "audit", "verify", "--all"], self.data, self.keyfile)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(json.loads(r.stdout)["not_verified"], 0)


if __name__ == "__main__":
    unittest.main()
