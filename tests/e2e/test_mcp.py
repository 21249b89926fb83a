"""End-to-end tests of agents over MCP (issue 15; docs/AGENTS.md), against the real server.

The official MCP TypeScript SDK client (tests/mcp/client.mjs: Client +
StreamableHTTPClientTransport, @modelcontextprotocol/sdk pinned in tests/mcp) connects with
an agent key bound to a profile: it negotiates the protocol and a session, lists only the
profile's datasets (a safe view and a notes dataset), queries, searches and gets one record,
and every person it received has an audit row (profile, model, purpose, trace id) that the legal endpoint
shows; it is refused elsewhere with a tool error naming what it may read, and the refusal
is journaled. Raw HTTP checks the transport's rules (405 for GET, 400/404 for sessions,
JSON-RPC error codes, 202 for notifications, 403 for admin/legal keys, Origin), the rate
limit (429 with a JSON-RPC body) and `lakehouse mcp-config`."""
import glob
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

import harness
from harness import ADMIN_KEY, Server

HERE = os.path.dirname(os.path.abspath(__file__))
MCP_DIR = os.path.join(os.path.dirname(HERE), "mcp")
AUDIT_KEY = "e2e-mcp-audit-key-" + "m" * 30
TOKEN = "e2e-mcp-legal-token-" + "t" * 40
MODEL = "claude-e2e-model"
PURPOSE = "candidate_screening"
VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26"]


def run_client(url, key, steps, terminate=False, timeout=120):
    """Runs the SDK client with a plan; returns its JSON report."""
    if not os.path.isdir(os.path.join(MCP_DIR, "node_modules", "@modelcontextprotocol")):
        raise AssertionError("the MCP SDK is not installed: run `npm ci` in tests/mcp "
                             "(scripts/test.sh does)")
    plan = {"url": url + "/mcp", "key": key, "steps": steps, "terminate": terminate}
    p = subprocess.run(["node", os.path.join(MCP_DIR, "client.mjs")], input=json.dumps(plan),
                       capture_output=True, text=True, timeout=timeout, cwd=MCP_DIR)
    if p.returncode != 0:
        raise AssertionError(f"client failed ({p.returncode}): {p.stderr[-3000:]}")
    return json.loads(p.stdout)


def tool_value(step):
    """A successful tools/call step's result."""
    assert step["ok"], step
    return step["value"]


def make_people(n):
    rows = [{"candidate_id": f"C-{i}", "full_name": f"Person {i}",
             "email": f"p{i}@example.org", "city": ["Lisbon", "Oslo", "Paris"][i % 3]}
            for i in range(1, n + 1)]
    text = "candidate_id,full_name,email,city\n" + "".join(
        f"{r['candidate_id']},{r['full_name']},{r['email']},{r['city']}\n" for r in rows)
    return rows, text.encode()


CITIES = ["Denver", "Oslo", "Lyon"]
JOBS = ["nurse working night shifts", "software engineer building compilers",
        "truck driver on long routes", "pastry chef baking bread"]
NOTES = [{"candidate_id": f"C-{i}", "city": CITIES[i % 3],
          "note": f"{JOBS[i % 4]} in {CITIES[i % 3]}"} for i in range(1, 41)]


def audit_rows(data, trace):
    """{candidate_id: [rows]} of the audit rows carrying this trace id."""
    harness.wait_audit_logs(data)
    out = {}
    for p in glob.glob(os.path.join(data, "_catalog", "subjects", "*.audit.jsonl")):
        with open(p, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                if r["accessor"].get("trace_id") == trace:
                    out.setdefault(r["candidate_id"], []).append(r)
    return out


def events(s, action):
    out, since = [], 0
    while True:
        st, doc = s.json("GET", f"/catalog/events?since={since}&limit=1000")
        assert st == 200, doc
        out += doc["events"]
        if not doc["events"]:
            break
        since = doc["next_since"]
    return [e for e in out if e["action"] == action]


class Mcp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="lh-e2e-mcp-")
        cls.data = os.path.join(cls.tmp, "data")
        keyfile = os.path.join(cls.tmp, "audit.key")
        with open(keyfile, "w") as f:
            f.write(AUDIT_KEY + "\n")
        tokenfile = os.path.join(cls.tmp, "legal.token")
        with open(tokenfile, "w") as f:
            f.write(TOKEN)
        cls.env = {"LH_SUBJECT_AUDIT_KEY": keyfile, "LH_LEGAL_AUDIT_TOKEN_FILE": tokenfile,
                   "LH_MCP_MAX_ROWS": "50"}
        cls.server = s = Server(cls.data, cls.env).start()
        cls.people, csv = make_people(60)
        st, doc = s.ingest("people", csv)
        assert st == 201, doc
        st, doc = s.json("PATCH", "/catalog/datasets/by-name/people/metadata",
                         {"subject_key_column": "candidate_id",
                          "description": "job candidates"})
        assert st == 200, doc
        st, doc = s.ingest("salaries", b"candidate_id,salary\nC-1,100\nC-2,200\n")
        assert st == 201, doc
        st, doc = s.json("POST", "/catalog/views", {
            "name": "people_safe", "base_dataset": "people",
            "columns": ["candidate_id", "email", "city"],
            "column_redactions": {"candidate_id": {"kind": "hash"},
                                  "email": {"kind": "mask", "keep_prefix": 1}},
            "description": "candidates for the screening agent"})
        assert st == 201, doc
        # notes: a subject dataset with a text column, bound directly, searchable
        notes = "candidate_id,city,note\n" + "".join(
            f"{n['candidate_id']},{n['city']},{n['note']}\n" for n in NOTES)
        st, doc = s.ingest("notes", notes.encode())
        assert st == 201, doc
        st, doc = s.json("PATCH", "/catalog/datasets/by-name/notes/metadata",
                         {"subject_key_column": "candidate_id"})
        assert st == 200, doc
        for name, ds, col in (("notes_ix", "notes", "note"), ("secret_ix", "people",
                                                               "full_name")):
            st, doc = s.json("POST", "/vectors/indexes", {
                "name": name, "dataset": ds, "id_column": "candidate_id", "text_column": col,
                "kind": "flat"})
            assert st == 201, doc
        st, doc = s.json("POST", "/catalog/profiles", {
            "id": "screening", "model_name": MODEL,
            "bound_datasets": ["people_safe", "notes"]})
        assert st == 201, doc
        cls.keys = {}
        for body in ({"name": "bot", "role": "agent", "profile": "screening"},
                     {"name": "ana", "role": "analyst"},
                     {"name": "lea", "role": "legal"}):
            st, doc = s.json("POST", "/auth/keys", body)
            assert st == 201, doc
            cls.keys[body["name"]] = doc["key"]

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # -------------------------------------------------------------- raw HTTP helpers

    def post(self, body, key=None, session=None, headers=None, raw=None):
        h = {"Accept": "application/json, text/event-stream",
             "Content-Type": "application/json", "X-Lakehouse-Purpose": None}
        if session:
            h["Mcp-Session-Id"] = session
        h.update(headers or {})
        data = raw if raw is not None else json.dumps(body).encode()
        st, hdrs, out = self.server.request("POST", "/mcp", data, h,
                                            key=key or self.keys["bot"])
        return st, {k.lower(): v for k, v in hdrs.items()}, (json.loads(out) if out else None)

    def initialize(self, key=None, version="2025-06-18"):
        st, hdrs, doc = self.post({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                   "params": {"protocolVersion": version, "capabilities": {},
                                              "clientInfo": {"name": "raw", "version": "0"}}},
                                  key=key)
        self.assertEqual(st, 200, doc)
        return hdrs["mcp-session-id"], doc

    # -------------------------------------------------------------- the SDK client

    def test_01_sdk_connects_and_sees_only_its_profile(self):
        r = run_client(self.server.url, self.keys["bot"], [
            {"op": "listTools"},
            {"op": "call", "name": "list_datasets"},
            {"op": "listResources"},
            {"op": "readResource", "uri": "lakehouse://datasets/people_safe"},
            {"op": "readResource", "uri": "lakehouse://datasets/people"},
            {"op": "call", "name": "describe_dataset", "arguments": {"name": "people_safe"}},
            {"op": "ping"},
        ], terminate=True)
        self.assertNotIn("connectError", r)
        self.assertEqual(r["protocolVersion"], VERSIONS[0])  # the SDK's newest, which we speak
        self.assertEqual(r["server"]["name"], "lakehouse")
        self.assertRegex(r["sessionId"], r"^[0-9a-f]{64}$")
        self.assertIn("list_datasets", r["instructions"])
        tools, ds, res, read_ok, read_denied, desc, ping = r["steps"]
        names = {t["name"] for t in tool_value(tools)["tools"]}
        self.assertEqual(names, {"list_datasets", "describe_dataset", "query_sql", "get_record",
                                 "search"})
        for t in tool_value(tools)["tools"]:
            self.assertEqual(t["inputSchema"]["type"], "object", t)
            self.assertFalse(t["inputSchema"]["additionalProperties"], t)
        q = next(t for t in tool_value(tools)["tools"] if t["name"] == "query_sql")
        self.assertEqual(sorted(q["inputSchema"]["required"]), ["purpose", "sql"])
        self.assertEqual(q["inputSchema"]["properties"]["limit"]["maximum"], 50)
        # only the profile's binding, described with PII flags and redactions; not its base
        d = tool_value(ds)
        self.assertFalse(d["isError"])
        listed = d["structuredContent"]["datasets"]
        self.assertEqual([x["name"] for x in listed], ["notes", "people_safe"])
        self.assertEqual(json.loads(d["content"][0]["text"]), d["structuredContent"])
        self.assertEqual(listed[0]["kind"], "dataset")
        v = listed[1]
        self.assertEqual(v["kind"], "view")
        self.assertNotIn("base_dataset", v)
        self.assertEqual(v["key_column"], "candidate_id")
        cols = {c["name"]: c for c in v["columns"]}
        self.assertEqual(sorted(cols), ["candidate_id", "city", "email"])
        self.assertTrue(cols["email"]["is_pii"])
        self.assertEqual(cols["email"]["redaction"], "mask")
        self.assertEqual(cols["candidate_id"]["redaction"], "hash")
        self.assertNotIn("redaction", cols["city"])
        self.assertEqual([x["uri"] for x in tool_value(res)["resources"]],
                         ["lakehouse://datasets/notes", "lakehouse://datasets/people_safe"])
        body = json.loads(tool_value(read_ok)["contents"][0]["text"])
        self.assertEqual(body["name"], "people_safe")
        self.assertFalse(read_denied["ok"])
        self.assertEqual(read_denied["code"], -32002)
        self.assertIn("people_safe", read_denied["error"])
        self.assertEqual(tool_value(desc)["structuredContent"]["dataset"]["name"], "people_safe")
        self.assertTrue(ping["ok"])
        self.assertTrue(r["terminated"])
        # the session ended with the DELETE: its id is unknown now
        st, _, doc = self.post({"jsonrpc": "2.0", "id": 2, "method": "ping"},
                               session=r["sessionId"])
        self.assertEqual(st, 404, doc)

    def test_02_query_sql_is_audited_per_person(self):
        trace = "trace-mcp-02"
        r = run_client(self.server.url, self.keys["bot"], [
            {"op": "call", "name": "query_sql",
             "arguments": {"sql": "SELECT candidate_id, email FROM people_safe "
                                  "WHERE city = 'Oslo' ORDER BY 1 LIMIT 5",
                           "purpose": PURPOSE},
             "meta": {"lakehouse/trace_id": trace}},
        ])
        res = tool_value(r["steps"][0])
        self.assertFalse(res["isError"], res)
        t = res["structuredContent"]
        self.assertEqual(t["columns"], ["candidate_id", "email"])
        self.assertEqual(t["row_count"], 5)
        self.assertFalse(t["truncated"])
        self.assertEqual(res["_meta"]["lakehouse/trace_id"], trace)
        by_hash = {hashlib.sha256(p["candidate_id"].encode()).hexdigest(): p["candidate_id"]
                   for p in self.people}
        seen = sorted(by_hash[row[0]] for row in t["rows"])  # the view hashes the key
        for row in t["rows"]:
            self.assertRegex(row[1], r"^p\*+$")  # masked email
        got = audit_rows(self.data, trace)
        self.assertEqual(sorted(got), seen)  # every person received, nobody else
        for cid, rows in got.items():
            self.assertEqual(len(rows), 1)
            self.assertEqual(rows[0]["accessor"], {
                "kind": "agent", "daemon": "bot", "profile": "screening", "model": MODEL,
                "purpose": PURPOSE, "trace_id": trace})
            self.assertEqual(rows[0]["fields_accessed"], ["candidate_id", "email"])
        # the legal endpoint shows the row
        st, doc = self.server.json("GET", "/audit/subject/" + seen[0],
                                   headers={"X-Lakehouse-Legal-Token": TOKEN}, key=None)
        self.assertEqual(st, 200, doc)
        self.assertTrue(doc["response"]["chain_verified"])
        self.assertIn(trace, [x["accessor"]["trace_id"] for x in doc["response"]["rows"]])

    def test_03_get_record_through_the_view(self):
        cid = "C-7"
        h = hashlib.sha256(cid.encode()).hexdigest()
        r = run_client(self.server.url, self.keys["bot"], [
            {"op": "call", "name": "get_record",
             "arguments": {"dataset": "people_safe", "key": h, "purpose": PURPOSE}},
            {"op": "call", "name": "get_record",
             "arguments": {"dataset": "people_safe", "key": "nobody", "purpose": PURPOSE}},
        ])
        found, missing = (tool_value(s) for s in r["steps"])
        self.assertFalse(found["isError"], found)
        rec = found["structuredContent"]
        self.assertTrue(rec["found"])
        self.assertEqual(rec["record"]["candidate_id"], h)
        self.assertEqual(rec["record"]["email"], "p" + "*" * (len("p7@example.org") - 1))
        self.assertNotIn("full_name", rec["record"])  # not a column of the view
        trace = found["_meta"]["lakehouse/trace_id"]  # generated when the call gave none
        self.assertRegex(trace, r"^[0-9a-f]{32}$")
        self.assertEqual(sorted(audit_rows(self.data, trace)), [cid])
        self.assertFalse(missing["isError"])
        self.assertFalse(missing["structuredContent"]["found"])
        self.assertIsNone(missing["structuredContent"]["record"])
        # an analyst reads the dataset itself, by its raw key
        r = run_client(self.server.url, self.keys["ana"], [
            {"op": "call", "name": "get_record",
             "arguments": {"dataset": "people", "key": cid, "purpose": PURPOSE}}])
        rec = tool_value(r["steps"][0])["structuredContent"]["record"]
        self.assertEqual(rec["full_name"], "Person 7")
        # a dataset with no key column: a tool error pointing to query_sql; once its
        # tombstones name a key column, that column is its key
        get = {"op": "call", "name": "get_record",
               "arguments": {"dataset": "salaries", "key": "C-1", "purpose": PURPOSE}}
        res = tool_value(run_client(self.server.url, self.keys["ana"], [get])["steps"][0])
        self.assertTrue(res["isError"])
        self.assertIn("query_sql", res["content"][0]["text"])
        st, doc = self.server.json("POST", "/catalog/datasets/by-name/salaries/tombstone",
                                   {"row_key_column": "candidate_id", "row_key_values": ["C-2"]})
        self.assertEqual(st, 200, doc)
        res = tool_value(run_client(self.server.url, self.keys["ana"], [get])["steps"][0])
        self.assertEqual(res["structuredContent"]["record"], {"candidate_id": "C-1",
                                                              "salary": 100})

    def test_04_denials_are_tool_errors_and_journaled(self):
        before = len(events(self.server, "query.denied"))
        r = run_client(self.server.url, self.keys["bot"], [
            {"op": "call", "name": "query_sql",
             "arguments": {"sql": "SELECT * FROM salaries", "purpose": PURPOSE}},
            {"op": "call", "name": "get_record",
             "arguments": {"dataset": "people", "key": "C-1", "purpose": PURPOSE}},
            {"op": "call", "name": "describe_dataset", "arguments": {"name": "salaries"}},
        ])
        for step in r["steps"]:
            res = tool_value(step)
            self.assertTrue(res["isError"], res)
            self.assertIn("people_safe", res["content"][0]["text"])  # names what is allowed
        evs = events(self.server, "query.denied")[before:]
        self.assertEqual(len(evs), 3, evs)
        self.assertTrue(all(e["actor"] == "bot" for e in evs))
        self.assertEqual(evs[0]["details"]["profile"], "screening")
        self.assertEqual(evs[0]["details"]["purpose"], PURPOSE)

    def test_05_bad_arguments_say_how_to_fix_the_call(self):
        cases = [
            ({"sql": "SELECT 1"}, "purpose"),
            ({"sqll": "SELECT 1", "purpose": PURPOSE}, "arguments: sql, purpose, limit"),
            ({"sql": 42, "purpose": PURPOSE}, "non-empty string"),
            ({"sql": "SELECT city FROM people_safe", "purpose": PURPOSE, "limit": 51},
             "cap of 50"),
            # rows of people without their key: an agent's read must be attributable
            ({"sql": "SELECT city FROM people_safe", "purpose": PURPOSE}, "key"),
            ({"sql": "SELEC 1", "purpose": PURPOSE}, "syntax"),
        ]
        r = run_client(self.server.url, self.keys["bot"], [
            {"op": "call", "name": "query_sql", "arguments": a} for a, _ in cases] + [
            {"op": "call", "name": "no_such_tool", "arguments": {}}])
        for (args, want), step in zip(cases, r["steps"]):
            res = tool_value(step)
            self.assertTrue(res["isError"], (args, res))
            self.assertIn(want, res["content"][0]["text"], args)
        self.assertFalse(r["steps"][-1]["ok"])  # an unknown tool is a protocol error
        self.assertEqual(r["steps"][-1]["code"], -32602)

    def test_05b_search_is_audited_and_scoped(self):
        """search over the profile's notes dataset: hits come back best first, each person
        among them gets an audit row with the call's trace id; a filter narrows; an index
        the key may not search is a tool error naming the allowed ones."""
        trace = "trace-mcp-09"
        r = run_client(self.server.url, self.keys["bot"], [
            {"op": "listTools"},
            {"op": "call", "name": "describe_dataset", "arguments": {"name": "notes"}},
            {"op": "call", "name": "search",
             "arguments": {"query": "nurse Denver night shifts", "purpose": PURPOSE, "k": 3},
             "meta": {"lakehouse/trace_id": trace}},
            {"op": "call", "name": "search",
             "arguments": {"query": "nurse", "purpose": PURPOSE, "k": 5,
                           "filter": "city = 'Oslo'"}},
            {"op": "call", "name": "search",
             "arguments": {"query": "x", "purpose": PURPOSE, "index": "secret_ix"}},
            {"op": "call", "name": "search", "arguments": {"query": "nurse"}},
        ])
        tools, desc, hits, filtered, denied, no_purpose = r["steps"]
        self.assertIn("search", {t["name"] for t in tool_value(tools)["tools"]})
        self.assertEqual([x["index"] for x in
                          tool_value(desc)["structuredContent"]["dataset"]["search_indexes"]],
                         ["notes_ix"])
        res = tool_value(hits)
        self.assertFalse(res["isError"], res)
        got = res["structuredContent"]["hits"]
        self.assertEqual(len(got), 3)
        self.assertIn("Denver", got[0]["text"])
        scores = [h["score"] for h in got]
        self.assertEqual(scores, sorted(scores, reverse=True))
        self.assertEqual(sorted(audit_rows(self.data, trace)), sorted({h["doc_id"] for h in got}))
        res = tool_value(filtered)
        self.assertFalse(res["isError"], res)
        oslo = {n["candidate_id"] for n in NOTES if n["city"] == "Oslo"}
        self.assertTrue(res["structuredContent"]["hits"])
        self.assertTrue({h["doc_id"] for h in res["structuredContent"]["hits"]} <= oslo)
        res = tool_value(denied)
        self.assertTrue(res["isError"])
        self.assertIn("notes_ix", res["content"][0]["text"])
        self.assertTrue(tool_value(no_purpose)["isError"])

    # -------------------------------------------------------------- the transport's rules

    def test_06_transport(self):
        s = self.server
        st, _, _ = s.request("GET", "/mcp", key=self.keys["bot"],
                             headers={"Accept": "text/event-stream"})
        self.assertEqual(st, 405)  # no SSE stream; the SDK tolerates 405
        for who, want in (("lea", 403), (None, 403)):  # legal and admin keys
            st, _, _ = s.request("POST", "/mcp", b"{}", key=self.keys[who] if who else ADMIN_KEY)
            self.assertEqual(st, want)
        st, _, _ = s.request("POST", "/mcp", b"{}", key=None)
        self.assertEqual(st, 401)
        sid, doc = self.initialize()
        self.assertRegex(sid, r"^[0-9a-f]{64}$")
        self.assertEqual(doc["result"]["protocolVersion"], "2025-06-18")
        _, doc2 = self.initialize(version="1999-01-01")
        self.assertEqual(doc2["result"]["protocolVersion"], VERSIONS[0])
        ping = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
        st, _, doc = self.post(ping)
        self.assertEqual((st, doc["error"]["code"]), (400, -32600))  # no session
        st, _, doc = self.post(ping, session="0" * 64)
        self.assertEqual((st, doc["error"]["code"]), (404, -32600))  # unknown session
        st, _, doc = self.post(ping, session=sid, key=self.keys["ana"])
        self.assertEqual(st, 404)  # another key's session looks unknown
        st, _, doc = self.post(ping, session=sid)
        self.assertEqual((st, doc), (200, {"jsonrpc": "2.0", "id": 7, "result": {}}))
        st, _, doc = self.post(ping, session=sid, headers={"MCP-Protocol-Version": "2000-01-01"})
        self.assertEqual(st, 400)
        st, _, doc = self.post(None, session=sid, raw=b'{"jsonrpc": "2.0", "id": 1, ')
        self.assertEqual((st, doc["error"]["code"], doc["id"]), (400, -32700, None))
        st, _, doc = self.post({"jsonrpc": "1.0", "id": 1, "method": "ping"}, session=sid)
        self.assertEqual((st, doc["error"]["code"]), (400, -32600))
        st, _, doc = self.post([ping], session=sid)
        self.assertEqual((st, doc["error"]["code"]), (400, -32600))
        st, _, doc = self.post({"jsonrpc": "2.0", "id": "x", "method": "prompts/list"},
                               session=sid)
        self.assertEqual((st, doc["error"]["code"], doc["id"]), (200, -32601, "x"))
        st, _, doc = self.post({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                "params": {"arguments": {}}}, session=sid)
        self.assertEqual(doc["error"]["code"], -32602)
        st, _, doc = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"},
                               session=sid)
        self.assertEqual((st, doc), (202, None))
        st, _, doc = self.post(ping, session=sid, headers={"Origin": "http://evil.example"})
        self.assertEqual(st, 403)
        # a body over LH_MAX_JSON_BODY (1 MiB): refused from its Content-Length, unread
        with socket.create_connection(("127.0.0.1", s.port), timeout=30) as sock:
            sock.sendall((f"POST /mcp HTTP/1.1\r\nHost: x\r\n"
                          f"Authorization: Bearer {self.keys['bot']}\r\n"
                          f"Mcp-Session-Id: {sid}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {(1 << 20) + 1}\r\n\r\n").encode())
            head = sock.recv(65536).decode(errors="replace")
        self.assertTrue(head.startswith("HTTP/1.1 413"), head[:200])
        st, _, _ = s.request("DELETE", "/mcp", key=self.keys["bot"],
                             headers={"Mcp-Session-Id": sid})
        self.assertEqual(st, 204)
        st, _, _ = self.post(ping, session=sid)
        self.assertEqual(st, 404)

    def test_07_mcp_config(self):
        p = subprocess.run([harness.BIN, "mcp-config", "--key", "k-123", "--url",
                            self.server.url], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        doc = json.loads(p.stdout)
        self.assertEqual(doc, {"mcpServers": {"lakehouse": {
            "type": "http", "url": self.server.url + "/mcp",
            "headers": {"Authorization": "Bearer k-123"}}}})
        env = dict(os.environ, LH_API_KEY="k-env")
        p = subprocess.run([harness.BIN, "mcp-config", "--url", self.server.url + "/"],
                           capture_output=True, text=True, timeout=30, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        srv = json.loads(p.stdout)["mcpServers"]["lakehouse"]
        self.assertEqual(srv["headers"]["Authorization"], "Bearer k-env")
        self.assertEqual(srv["url"], self.server.url + "/mcp")
        p = subprocess.run([harness.BIN, "mcp-config"], capture_output=True, text=True,
                           timeout=30, env={k: v for k, v in os.environ.items()
                                            if k != "LH_API_KEY"})
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--key", p.stderr)

    def test_08_failed_audit_fails_the_call(self):
        """A read whose audit row cannot be written returns nothing: a JSON-RPC internal
        error, not a result (LH_FAULT: the first fsync after start is the audit journal's
        fdatasync of this read). The next call recovers and is audited. No key or secret
        reaches the log."""
        type(self).server.stop()
        s = Server(self.data, {**self.env, "LH_FAULT": "fsync:1:EIO"}).start()
        try:
            sql = "SELECT candidate_id, email FROM people_safe ORDER BY 1 LIMIT 3"
            r = run_client(s.url, self.keys["bot"], [
                {"op": "call", "name": "query_sql",
                 "arguments": {"sql": sql, "purpose": PURPOSE},
                 "meta": {"lakehouse/trace_id": "t-08-a"}},
                {"op": "call", "name": "query_sql",
                 "arguments": {"sql": sql, "purpose": PURPOSE},
                 "meta": {"lakehouse/trace_id": "t-08-b"}}])
            failed, ok = r["steps"]
            self.assertFalse(failed["ok"], failed)
            self.assertEqual(failed["code"], -32603)
            self.assertIn("audit", failed["error"])
            self.assertNotIn("p*", failed["error"])
            self.assertFalse(tool_value(ok)["isError"])
            self.assertEqual(len(audit_rows(self.data, "t-08-b")), 3)
            log = s.read_log()
            for secret in (self.keys["bot"], AUDIT_KEY, TOKEN):
                self.assertNotIn(secret, log)
        finally:
            s.stop()
            type(self).server = Server(self.data, self.env).start()


class McpRateLimit(unittest.TestCase):
    def test_rate_limit_is_429_with_a_jsonrpc_error(self):
        tmp = tempfile.mkdtemp(prefix="lh-e2e-mcp-rl-")
        s = Server(os.path.join(tmp, "data"), {"LH_MCP_CALLS_PER_MINUTE": "4"}).start()
        try:
            st, doc = s.json("POST", "/auth/keys", {"name": "ana", "role": "analyst"})
            self.assertEqual(st, 201, doc)
            key = doc["key"]
            # initialize + 3 pings take the 4 tokens; the 4th ping is refused
            r = run_client(s.url, key, [{"op": "ping"}] * 4)
            self.assertEqual([x["ok"] for x in r["steps"]], [True, True, True, False])
            self.assertEqual(r["steps"][3]["code"], 429, r["steps"][3])
            self.assertIn("-32000", r["steps"][3]["error"])
            st, hdrs, data = s.request(
                "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 9, "method": "ping"}).encode(),
                {"Mcp-Session-Id": r["sessionId"]}, key=key)
            self.assertEqual(st, 429)
            doc = json.loads(data)
            self.assertEqual((doc["id"], doc["error"]["code"]), (9, -32000))
            self.assertIn("4 MCP requests per minute", doc["error"]["message"])
            self.assertGreaterEqual(int(hdrs["Retry-After"]), 1)
            # another key has its own bucket
            st, doc = s.json("POST", "/auth/keys", {"name": "ana2", "role": "analyst"})
            r = run_client(s.url, doc["key"], [{"op": "ping"}])
            self.assertTrue(r["steps"][0]["ok"])
        finally:
            s.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
