"""End-to-end tests of the foundation: ingest and SQL, errors, restart and shutdown, keys,
roles and the attack corpus, limits. Expected answers are computed here, from the generated
input files, never by asking the server."""
import csv
import decimal
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
import time
import unittest
import urllib.parse

import harness as h
from harness import (ADMIN_KEY, SANITIZER_MARKERS, Base, Server, free_port, make_people,
                     snapshot)

# ------------------------------------------------------------------ ingest and query

class IngestAndQuery(Base):
    def test_01_csv_ingest_answers_sql(self):
        s = self.server
        status, doc = s.ingest("people", self.people_csv)
        self.assertEqual(status, 201, doc)
        m = doc["dataset"]
        self.assertEqual(m["name"], "people")
        self.assertEqual(m["bucket"], "primary")
        self.assertEqual(m["row_count"], len(self.people))
        self.assertGreater(m["size_bytes"], 0)
        self.assertEqual(len(m["files"]), 1)
        self.assertTrue(m["files"][0]["key"].endswith(".parquet"))
        for field in ("id", "created_at", "updated_at", "lineage", "columns", "schema",
                      "description", "owner", "sensitivity", "tags"):
            self.assertIn(field, m)
        self.assertEqual(m["lineage"]["format"], "csv")
        cols = {c["name"]: c for c in m["columns"]}
        self.assertTrue(cols["email"]["is_pii"])
        self.assertEqual(cols["email"]["pii_kind"], "email")
        self.assertTrue(cols["phone"]["is_pii"])
        self.assertTrue(cols["birth_date"]["is_pii"])
        self.assertFalse(cols["city"]["is_pii"])
        self.assertFalse(cols["is_active"]["is_pii"])
        # the Parquet object really exists where the manifest says
        part = os.path.join(self.data, m["files"][0]["key"])
        with open(part, "rb") as f:
            self.assertEqual(f.read(4), b"PAR1")
        self.assertEqual(os.path.getsize(part), m["files"][0]["bytes"])

        self.assertEqual(s.rows("SELECT count(*) FROM people"), [[len(self.people)]])
        want_sum = sum(decimal.Decimal(p["salary"]) for p in self.people)
        got = s.rows("SELECT sum(salary)::DECIMAL(18,2) FROM people")[0][0]
        self.assertEqual(decimal.Decimal(str(got)), want_sum)
        by_city = {}
        for p in self.people:
            by_city[p["city"]] = by_city.get(p["city"], 0) + 1
        got = dict(map(tuple, s.rows("SELECT city, count(*) FROM people GROUP BY city")))
        self.assertEqual(got, by_city)
        active = sum(1 for p in self.people if p["is_active"] == "true")
        self.assertEqual(s.rows("SELECT count(*) FROM people WHERE is_active"), [[active]])
        p7 = self.people[6]
        row = s.rows("SELECT candidate_id, email, birth_date, is_active, notes FROM people "
                     "WHERE candidate_id = 7")[0]
        self.assertEqual(row, [7, p7["email"], p7["birth_date"], p7["is_active"] == "true",
                               p7["notes"] or None])
        # unicode survives
        names = {r[0] for r in s.rows("SELECT DISTINCT first_name FROM people")}
        self.assertEqual(names, {p["first_name"] for p in self.people})

    def test_02_json_shape_and_types(self):
        status, doc = self.server.sql(
            "SELECT 1::INTEGER AS i, 12345678901234::BIGINT AS b, 3.25::DECIMAL(6,2) AS d, "
            "-0.5::DOUBLE AS f, 'nan'::DOUBLE AS n, 'inf'::DOUBLE AS inf, true AS t, "
            "NULL AS z, DATE '2024-02-29' AS dt, TIMESTAMP '2024-01-02 03:04:05' AS ts, "
            "[1,2] AS l, {'a': 1} AS st, 'x\"y' || chr(10) AS s")
        self.assertEqual(status, 200, doc)
        self.assertEqual(list(doc.keys()),
                         ["columns", "rows", "row_count", "truncated", "elapsed_ms"])
        self.assertEqual([c["name"] for c in doc["columns"]],
                         ["i", "b", "d", "f", "n", "inf", "t", "z", "dt", "ts", "l", "st", "s"])
        types = {c["name"]: c["type"] for c in doc["columns"]}
        self.assertEqual(types["i"], "INTEGER")
        self.assertEqual(types["b"], "BIGINT")
        self.assertEqual(types["d"], "DECIMAL(6,2)")
        self.assertEqual(types["dt"], "DATE")
        row = doc["rows"][0]
        self.assertEqual(row[:8], [1, 12345678901234, 3.25, -0.5, "NaN", "Infinity", True, None])
        self.assertEqual(row[8], "2024-02-29")
        self.assertEqual(row[9], "2024-01-02 03:04:05")
        self.assertIsInstance(row[10], str)
        self.assertIsInstance(row[11], str)
        self.assertEqual(row[12], 'x"y\n')
        self.assertEqual(doc["row_count"], 1)
        self.assertIs(doc["truncated"], False)
        self.assertIsInstance(doc["elapsed_ms"], (int, float))

    def test_03_csv_and_ndjson_formats(self):
        s = self.server
        status, hdrs, body = s.sql("SELECT 1 AS a, 'x,y' AS b UNION ALL SELECT 2, 'q\"' "
                                   "ORDER BY a", fmt="csv")
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["Content-Type"].startswith("text/csv"))
        self.assertEqual(list(csv.reader(body.decode().splitlines())),
                         [["a", "b"], ["1", "x,y"], ["2", 'q"']])
        status, hdrs, body = s.sql("SELECT 1 AS a, NULL AS b", fmt="ndjson")
        self.assertEqual(status, 200)
        self.assertEqual([json.loads(l) for l in body.decode().splitlines()],
                         [{"a": 1, "b": None}])

    def test_04_row_cap_and_truncation(self):
        status, doc = self.server.sql("SELECT * FROM range(100)", limit=10)
        self.assertEqual(status, 200)
        self.assertEqual(doc["row_count"], 10)
        self.assertEqual(len(doc["rows"]), 10)
        self.assertIs(doc["truncated"], True)
        status, doc = self.server.sql("SELECT * FROM range(10)", limit=10)
        self.assertIs(doc["truncated"], False)

    def test_05_ndjson_and_parquet_ingest(self):
        s = self.server
        nd = os.path.join(self.tmp, "events.ndjson")
        events = [{"event_id": i, "kind": ["a", "b", "c"][i % 3], "amount": i * 1.5,
                   "tags": ["x"] * (i % 2)} for i in range(1, 301)]
        with open(nd, "w") as f:
            for e in events:
                f.write(json.dumps(e) + "\n")
        status, doc = s.ingest("events", nd, fmt="ndjson")
        self.assertEqual(status, 201, doc)
        self.assertEqual(doc["dataset"]["row_count"], 300)
        self.assertEqual(s.rows("SELECT sum(amount) FROM events")[0][0],
                         sum(e["amount"] for e in events))
        self.assertEqual(s.rows("SELECT count(*) FROM events WHERE kind = 'b'"),
                         [[sum(1 for e in events if e["kind"] == "b")]])
        # a JSON array document
        arr = json.dumps([{"k": 1, "v": "one"}, {"k": 2, "v": "two"}]).encode()
        status, doc = s.ingest("small_json", arr, fmt="json")
        self.assertEqual(status, 201, doc)
        self.assertEqual(s.rows("SELECT k, v FROM small_json ORDER BY k"),
                         [[1, "one"], [2, "two"]])
        # Parquet written by DuckDB outside the server
        pq = os.path.join(self.tmp, "people.parquet")
        subprocess.run([h.MKPARQUET, self.people_csv, pq], check=True)
        status, doc = s.ingest("people_pq", pq, fmt="parquet")
        self.assertEqual(status, 201, doc)
        self.assertEqual(s.rows("SELECT count(*), max(candidate_id) FROM people_pq"),
                         [[len(self.people), self.people[-1]["candidate_id"]]])

    def test_06_append_and_replace(self):
        s = self.server
        a = os.path.join(self.tmp, "a.csv")
        b = os.path.join(self.tmp, "b.csv")
        ra = make_people(a, n=50, seed=1, start_id=1)
        rb = make_people(b, n=30, seed=2, start_id=1001)
        self.assertEqual(s.ingest("staff", a)[0], 201)
        status, doc = s.ingest("staff", b, mode="append")
        self.assertEqual(status, 200, doc)
        m = doc["dataset"]
        self.assertEqual(m["row_count"], 80)
        self.assertEqual(len(m["files"]), 2)
        self.assertEqual([f["kind"] for f in m["files"]], ["base", "append"])
        self.assertEqual(s.rows("SELECT count(*), sum(candidate_id) FROM staff"),
                         [[80, sum(p["candidate_id"] for p in ra + rb)]])
        # append with other columns → refused, nothing changes
        before = snapshot(self.data)
        status, doc = s.ingest("staff", b"x,y\n1,2\n", mode="append")
        self.assertEqual(status, 400, doc)
        self.assertEqual(doc["error"], "schema_mismatch")
        self.assertEqual(snapshot(self.data), before)
        # replace → one file, old parts gone
        old_keys = [f["key"] for f in m["files"]]
        status, doc = s.ingest("staff", b, mode="replace")
        self.assertEqual(status, 201, doc)
        self.assertEqual(doc["dataset"]["row_count"], 30)
        self.assertEqual(len(doc["dataset"]["files"]), 1)
        for k in old_keys:
            self.assertFalse(os.path.exists(os.path.join(self.data, k)), k)
        self.assertEqual(s.rows("SELECT min(candidate_id) FROM staff"), [[1001]])
        # create over an existing one → 409
        status, doc = s.ingest("staff", b)
        self.assertEqual(status, 409)

    def test_07_metadata_patch_survives_reingest(self):
        s = self.server
        p = os.path.join(self.tmp, "m.csv")
        make_people(p, n=20, seed=3)
        self.assertEqual(s.ingest("meta", p)[0], 201)
        patch = {"description": "Candidates from the spring fair", "owner": "hr-data",
                 "tags": ["hr", "fair"], "sensitivity": "PHI",
                 "columns": {"notes": {"is_pii": True, "pii_kind": "free_text",
                                       "sensitivity": "PII", "description": "recruiter notes"},
                             "email": {"is_pii": False}}}
        status, doc = s.json("PATCH", "/catalog/datasets/by-name/meta/metadata", patch)
        self.assertEqual(status, 200, doc)
        status, doc = s.ingest("meta", p, mode="replace")
        self.assertEqual(status, 201, doc)
        m = doc["dataset"]
        self.assertEqual(m["description"], "Candidates from the spring fair")
        self.assertEqual(m["owner"], "hr-data")
        self.assertEqual(m["tags"], ["hr", "fair"])
        self.assertEqual(m["sensitivity"], "PHI")
        cols = {c["name"]: c for c in m["columns"]}
        self.assertTrue(cols["notes"]["is_pii"])
        self.assertEqual(cols["notes"]["pii_kind"], "free_text")
        self.assertFalse(cols["email"]["is_pii"])
        # bad patches
        for bad, what in [({"colour": "red"}, "colour"),
                          ({"columns": {"emial": {"is_pii": True}}}, "emial"),
                          ({"sensitivity": "Secret"}, "sensitivity"),
                          ({"tags": "hr"}, "tags")]:
            status, doc = s.json("PATCH", "/catalog/datasets/by-name/meta/metadata", bad)
            self.assertEqual(status, 400, (bad, doc))
            self.assertIn(what, doc["message"])
        status, doc = s.json("PATCH", "/catalog/datasets/by-name/nope/metadata", {"owner": "x"})
        self.assertEqual(status, 404)

    def test_08_list_get_delete(self):
        s = self.server
        p = os.path.join(self.tmp, "d.csv")
        make_people(p, n=10, seed=4)
        status, doc = s.ingest("doomed", p)
        self.assertEqual(status, 201)
        keys = [f["key"] for f in doc["dataset"]["files"]]
        status, doc = s.json("GET", "/catalog/datasets")
        self.assertEqual(status, 200)
        self.assertIn("doomed", [d["name"] for d in doc["datasets"]])
        status, doc = s.json("GET", "/catalog/datasets/by-name/doomed")
        self.assertEqual((status, doc["dataset"]["row_count"]), (200, 10))
        status, doc = s.json("DELETE", "/catalog/datasets/by-name/doomed")
        self.assertEqual(status, 200, doc)
        self.assertEqual(s.json("GET", "/catalog/datasets/by-name/doomed")[0], 404)
        self.assertFalse(os.path.exists(os.path.join(self.data, "_catalog/datasets/doomed.json")))
        for k in keys:
            self.assertFalse(os.path.exists(os.path.join(self.data, k)))
        status, doc = s.sql("SELECT * FROM doomed")
        self.assertEqual(status, 400)
        self.assertEqual(doc["error"], "sql_error")
        self.assertEqual(s.json("DELETE", "/catalog/datasets/by-name/doomed")[0], 404)

    def test_09_buckets_and_cross_bucket_join(self):
        s = self.server
        status, doc = s.json("GET", "/storage/buckets")
        self.assertEqual(status, 200)
        names = [b["name"] for b in doc["buckets"]]
        self.assertIn("primary", names)
        self.assertIn("rescue", names)
        root = os.path.join(self.tmp, "hr-bucket")
        status, doc = s.json("POST", "/storage/buckets", {"name": "hr", "root": root})
        self.assertEqual(status, 201, doc)
        self.assertTrue(os.path.isdir(root))
        status, doc = s.json("POST", "/storage/buckets", {"name": "hr", "root": root})
        self.assertEqual(status, 409)
        salaries = b"candidate_id,band\n1,A\n2,B\n3,C\n"
        status, doc = s.ingest("bands", salaries, bucket="hr")
        self.assertEqual(status, 201, doc)
        self.assertEqual(doc["dataset"]["bucket"], "hr")
        self.assertTrue(os.path.exists(os.path.join(root, doc["dataset"]["files"][0]["key"])))
        status, doc = s.ingest("ghost", salaries, bucket="nope")
        self.assertEqual(status, 404)
        self.assertIn("primary", doc["message"])
        self.assertIn("hr", doc["message"])
        rows = s.rows("SELECT p.email, b.band FROM people p JOIN bands b USING (candidate_id) "
                      "ORDER BY candidate_id")
        self.assertEqual(rows, [[self.people[i]["email"], "ABC"[i]] for i in range(3)])
        for builtin in ("primary", "rescue"):
            status, doc = s.json("DELETE", f"/storage/buckets/{builtin}")
            self.assertEqual(status, 403, doc)
        status, doc = s.json("DELETE", "/storage/buckets/hr")
        self.assertEqual(status, 409, doc)  # a dataset still lives there
        self.assertIn("bands", doc["message"])
        self.assertEqual(s.json("DELETE", "/catalog/datasets/by-name/bands")[0], 200)
        status, doc = s.json("DELETE", "/storage/buckets/hr")
        self.assertEqual(status, 200, doc)
        status, doc = s.json("DELETE", "/storage/buckets/hr")
        self.assertEqual(status, 404)
        status, doc = s.json("POST", "/storage/buckets", {"name": "../x", "root": root})
        self.assertEqual(status, 400)

    def test_11_replace_while_a_query_streams(self):
        s = self.server
        part = lambda lo: ("id,txt\n" + "".join(f"{i},{'x' * 40}\n"
                                                 for i in range(lo, lo + 20000))).encode()
        self.assertEqual(s.ingest("busy", part(0))[0], 201)
        for k in range(1, 5):
            self.assertEqual(s.ingest("busy", part(k * 20000), mode="append")[0], 200)
        status, doc = s.json("GET", "/catalog/datasets/by-name/busy")
        old_keys = [f["key"] for f in doc["dataset"]["files"]]
        self.assertEqual(len(old_keys), 5)
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
        # ~25 MB of JSON: far more than the query's 1 MiB output budget and the loopback
        # socket buffers, so the query is still streaming (its reader epoch held) when the
        # replace commits; a ~5 MB result could be sent whole before it, once.
        conn.request("POST", "/query/sql",
                     json.dumps({"sql": "SELECT id, txt, txt || txt AS t2, txt || txt || txt AS t3 "
                                        "FROM busy", "limit": 100000}),
                     {"Authorization": f"Bearer {ADMIN_KEY}"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        first = resp.read(64 * 1024)  # the stream has begun on the old parts
        status, doc = s.ingest("busy", part(500000), mode="replace")
        self.assertEqual(status, 201, doc)
        # the old parts stay while the query that may read them runs...
        self.assertTrue(all(os.path.exists(os.path.join(self.data, k)) for k in old_keys))
        rest = resp.read()
        conn.close()
        result = json.loads(first + rest)
        self.assertNotIn("error", result)
        self.assertEqual(result["row_count"], 100000)
        self.assertEqual(sorted(r[0] for r in result["rows"]), list(range(100000)))
        # ...and go once it has ended
        deadline = time.time() + 10
        while time.time() < deadline and any(os.path.exists(os.path.join(self.data, k))
                                             for k in old_keys):
            time.sleep(0.05)
        self.assertFalse(any(os.path.exists(os.path.join(self.data, k)) for k in old_keys))
        self.assertEqual(s.rows("SELECT min(id), count(*) FROM busy"), [[500000, 20000]])

    def test_10_cli(self):
        s = self.server
        env = dict(os.environ, LH_SERVER=s.url, LH_KEY=ADMIN_KEY)
        p = os.path.join(self.tmp, "cli.csv")
        rows = make_people(p, n=25, seed=9)

        def cli(*args, ok=True):
            r = subprocess.run([h.BIN, *args], env=env, capture_output=True, text=True,
                               timeout=120)
            if ok:
                self.assertEqual(r.returncode, 0, (args, r.stdout, r.stderr))
            return r

        r = cli("ingest", p, "--name", "cli_people")
        self.assertIn("cli_people", r.stdout)
        r = cli("sql", "SELECT count(*) AS n, sum(candidate_id) AS s FROM cli_people", "--json")
        doc = json.loads(r.stdout)
        self.assertEqual(doc["rows"], [[25, sum(x["candidate_id"] for x in rows)]])
        r = cli("sql", "SELECT city, count(*) AS n FROM cli_people GROUP BY city ORDER BY city")
        for city in {x["city"] for x in rows}:
            self.assertIn(city, r.stdout)
        self.assertIn("rows", r.stdout)
        r = cli("datasets")
        self.assertIn("cli_people", r.stdout)
        r = cli("datasets", "--json")
        self.assertIn("cli_people", [d["name"] for d in json.loads(r.stdout)["datasets"]])
        r = cli("buckets")
        self.assertIn("primary", r.stdout)
        r = cli("sql", "SELEC 1", ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("sql_error", r.stderr)
        r = cli("keys", "create", "cli_bot", "--role", "agent", "--datasets", "cli_people")
        key = next(l.split(": ", 1)[1] for l in r.stdout.splitlines() if l.startswith("key: "))
        # agents declare a purpose (docs/AUDIT.md "Access auditing"): 400 without
        r = subprocess.run([h.BIN, "sql", "SELECT count(*) FROM cli_people", "--key", key],
                           env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("purpose_required", r.stderr)
        r = subprocess.run([h.BIN, "sql", "SELECT count(*) FROM cli_people", "--json", "--key", key,
                            "--purpose", "cli test", "--trace-id", "t-1"],
                           env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(json.loads(r.stdout)["rows"], [[25]])
        r = subprocess.run([h.BIN, "sql", "SELECT count(*) FROM people", "--key", key,
                            "--purpose", "cli test"],
                           env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("sql_forbidden", r.stderr)
        r = cli("keys", "list")
        self.assertIn("cli_bot", r.stdout)
        self.assertNotIn(key, r.stdout)
        cli("keys", "revoke", "cli_bot")
        r = subprocess.run([h.BIN, "datasets", "--key", key], env=env, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("unauthorized", r.stderr)
        r = cli("keys", "create", "x", ok=False)
        self.assertEqual(r.returncode, 2)
        r = cli("frobnicate", ok=False)
        self.assertEqual(r.returncode, 2)
        r = subprocess.run([h.BIN, "datasets", "--server", "http://127.0.0.1:1"], env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("127.0.0.1:1", r.stderr)


# ------------------------------------------------------------------ errors

class Errors(Base):
    server_env = {"LH_MAX_UPLOAD_BYTES": "100000", "LH_MAX_JSON_BODY": "4096",
                  "LH_QUERY_TIMEOUT_MS": "1000", "LH_QUERY_MAX_ROWS": "50"}

    def failed_ingest(self, name, body, status, error=None, **kw):
        before = snapshot(self.data)
        got, doc = self.server.ingest(name, body, **kw)
        self.assertEqual(got, status, doc)
        self.assertEqual(set(doc.keys()), {"error", "message"})
        if error:
            self.assertEqual(doc["error"], error)
        self.assertTrue(doc["message"])
        if name and status != 409:
            self.assertNoTrace(before, urllib.parse.quote(name, safe=""))
        else:
            self.assertEqual(snapshot(self.data), before)
        return doc

    def test_malformed_csv(self):
        doc = self.failed_ingest("bad_csv", b'a,b\n1,2\n3,"unterminated\n4,5,6,7\n', 400,
                                 "invalid_file")
        self.assertNotIn("_tmp", doc["message"])  # internal paths never leak

    def test_malformed_json_and_parquet(self):
        self.failed_ingest("bad_nd", b'{"a": 1}\n{"a": \n', 400, "invalid_file", fmt="ndjson")
        self.failed_ingest("bad_pq", b"this is not parquet at all", 400, "invalid_file",
                           fmt="parquet")

    def test_empty_body(self):
        self.failed_ingest("empty", b"", 400, "empty_body")

    def test_unknown_format_and_mode(self):
        self.failed_ingest("fmt", b"a\n1\n", 400, "invalid_format", fmt="xml")
        self.failed_ingest("mode", b"a\n1\n", 400, None, mode="upsert")

    def test_invalid_names(self):
        for name in ["../x", "a/b", "", "n" * 129, "a\x01b", "1abc", "__raw__x", "a b",
                     "x;drop", "duckdb_tables", "SQLITE_master", "pg_class"]:
            with self.subTest(name=name):
                self.failed_ingest(name, b"a\n1\n", 400)
        for raw in ["..%2Fx", "a%2Fb", "a%01b", "n" * 129, "%00"]:
            with self.subTest(path=raw):
                status, doc = self.server.json("GET", f"/catalog/datasets/by-name/{raw}")
                self.assertIn(status, (400, 404))
                self.assertEqual(status, 400 if raw != "%00" else status, doc)
                self.assertIn("error", doc)

    def test_oversized_bodies(self):
        big = b"a,b\n" + b"1,2\n" * 30000  # 120 kB > 100 kB cap
        self.failed_ingest("big", big, 413, "payload_too_large")
        # chunked upload (no Content-Length): cut off while streaming
        before = snapshot(self.data)
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        conn.putrequest("POST", "/ingest/file?name=big2&format=csv")
        conn.putheader("Authorization", f"Bearer {ADMIN_KEY}")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        try:
            for _ in range(30):
                chunk = b"1,2\n" * 1000
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 413)
            self.assertEqual(json.loads(resp.read())["error"], "payload_too_large")
        finally:
            conn.close()
        self.assertNoTrace(before, "big2")
        status, doc = self.server.json("POST", "/query/sql", {"sql": "SELECT 1", "pad": "x" * 5000})
        self.assertEqual(status, 413, doc)

    def test_bad_json_and_sql_errors(self):
        s = self.server
        for body, kind in [(b"{not json", "invalid_json"), (b"[1,2]", "invalid_json"),
                           (b"", None), (b'{"sql": 5}', None), (b'{"sql": ""}', None),
                           (b'{"sql": "SELECT 1", "format": "xml"}', None),
                           (b'{"sql": "SELECT 1", "limit": -1}', None),
                           (b'{"sql": "SELECT 1", "limit": 51}', "limit_too_large")]:
            with self.subTest(body=body):
                status, doc = s.json("POST", "/query/sql", body,
                                     {"Content-Type": "application/json"})
                self.assertEqual(status, 400, doc)
                if kind:
                    self.assertEqual(doc["error"], kind)
        status, doc = s.sql("SELECT * FROM no_such_dataset")
        self.assertEqual(status, 400)
        self.assertEqual(doc["error"], "sql_error")
        self.assertIn("no_such_dataset", doc["message"])
        status, doc = s.sql("SELEC 1")
        self.assertEqual((status, doc["error"]), (400, "sql_error"))
        self.assertIn("syntax", doc["message"].lower())

    def test_unknown_routes_and_methods(self):
        status, doc = self.server.json("GET", "/nope")
        self.assertEqual((status, doc["error"]), (404, "not_found"))
        status, doc = self.server.json("PUT", "/catalog/datasets")
        self.assertEqual((status, doc["error"]), (405, "method_not_allowed"))
        status, doc = self.server.json("GET", "/catalog/datasets/by-name/nothing_here")
        self.assertEqual((status, doc["error"]), (404, "not_found"))

    def test_query_time_limit(self):
        t0 = time.time()
        status, doc = self.server.sql(
            "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) "
            "SELECT count(*) FROM r")
        self.assertEqual(status, 408, doc)
        self.assertEqual(doc["error"], "query_timeout")
        self.assertLess(time.time() - t0, 30)
        # and the server still answers
        self.assertEqual(self.server.rows("SELECT 42"), [[42]])

    def test_limit_defaults_to_cap(self):
        status, doc = self.server.sql("SELECT * FROM range(1000)")
        self.assertEqual(status, 200)
        self.assertEqual(doc["row_count"], 50)
        self.assertIs(doc["truncated"], True)


# ------------------------------------------------------------------ restart, shutdown

class Lifecycle(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lh-e2e-life-")
        self.data = os.path.join(self.tmp, "data")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_sigterm_on_a_library_thread_stops_cleanly(self):
        # OpenBLAS starts a thread before main() blocks SIGTERM; a signal the kernel hands
        # to that thread used to take the default action (the process died with -15
        # instead of stopping). Sent to that very thread (tgkill), it must stop cleanly.
        import ctypes
        tgkill = {"x86_64": 234, "aarch64": 131}.get(os.uname().machine)
        if tgkill is None:
            self.skipTest("tgkill's syscall number is not known for this machine")
        s = Server(self.data).start()
        pid = s.proc.pid
        stray = None
        for tid in sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                blocked = int(next(l for l in f if l.startswith("SigBlk:")).split()[1], 16)
            if tid != pid and not blocked & (1 << (signal.SIGTERM - 1)):
                stray = tid
                break
        if stray is None:
            s.stop()
            self.skipTest("no thread of the server leaves SIGTERM unblocked here")
        libc = ctypes.CDLL(None, use_errno=True)
        self.assertEqual(libc.syscall(tgkill, pid, stray, int(signal.SIGTERM)), 0)
        s.stop()  # sends SIGTERM again (harmless) and expects exit 0
        self.assertIn('"server.stopping"', s.last_log)

    def test_restart_keeps_everything(self):
        csv_path = os.path.join(self.tmp, "p.csv")
        people = make_people(csv_path, n=120, seed=11)
        bucket_root = os.path.join(self.tmp, "other")
        s = Server(self.data).start()
        try:
            self.assertEqual(s.ingest("people", csv_path)[0], 201)
            self.assertEqual(s.json("POST", "/storage/buckets",
                                    {"name": "other", "root": bucket_root})[0], 201)
            self.assertEqual(s.ingest("extra", b"candidate_id,x\n1,9\n", bucket="other")[0], 201)
            self.assertEqual(s.json("PATCH", "/catalog/datasets/by-name/people/metadata",
                                    {"owner": "alice", "future_field": None})[0], 400)
            self.assertEqual(s.json("PATCH", "/catalog/datasets/by-name/people/metadata",
                                    {"owner": "alice"})[0], 200)
        finally:
            s.stop()
        # an unknown field written by a newer version survives a later edit
        mpath = os.path.join(self.data, "_catalog/datasets/people.json")
        with open(mpath) as f:
            m = json.load(f)
        m["x_future"] = {"keep": True}
        with open(mpath, "w") as f:
            json.dump(m, f)
        s = Server(self.data).start()
        try:
            want = sum(p["candidate_id"] for p in people)
            self.assertEqual(s.rows("SELECT count(*), sum(candidate_id) FROM people"),
                             [[120, want]])
            self.assertEqual(s.rows("SELECT x FROM extra JOIN people USING (candidate_id)"),
                             [[9]])
            status, doc = s.json("GET", "/catalog/datasets/by-name/people")
            self.assertEqual(doc["dataset"]["owner"], "alice")
            self.assertEqual(s.json("PATCH", "/catalog/datasets/by-name/people/metadata",
                                    {"description": "d"})[0], 200)
            names = [b["name"] for b in s.json("GET", "/storage/buckets")[1]["buckets"]]
            self.assertIn("other", names)
        finally:
            s.stop()
        with open(mpath) as f:
            self.assertEqual(json.load(f)["x_future"], {"keep": True})

    def test_sigterm_lets_inflight_upload_finish(self):
        s = Server(self.data).start()
        stopped = False
        try:
            body = b"id,v\n" + b"".join(b"%d,%d\n" % (i, i * 2) for i in range(20000))
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
            conn.putrequest("POST", "/ingest/file?name=slow&format=csv")
            conn.putheader("Authorization", f"Bearer {ADMIN_KEY}")
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            half = len(body) // 2
            conn.send(body[:half])
            time.sleep(0.5)
            s.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            conn.send(body[half:])
            resp = conn.getresponse()
            doc = json.loads(resp.read())
            self.assertEqual(resp.status, 201, doc)
            self.assertEqual(doc["dataset"]["row_count"], 20000)
            code = s.proc.wait(timeout=60)
            self.assertEqual(code, 0)
            stopped = True
            s.proc = None
            s.log.close()
            log = s.read_log()
            for marker in SANITIZER_MARKERS:
                self.assertNotIn(marker, log)
            self.assertIn("server.stopped", log)
        finally:
            if not stopped:
                s.stop()
        s = Server(self.data).start()
        try:
            self.assertEqual(s.rows("SELECT count(*), sum(v) FROM slow"),
                             [[20000, sum(i * 2 for i in range(20000))]])
        finally:
            s.stop()

    def test_large_upload_streams_in_bounded_memory(self):
        mb = int(os.environ.get("LH_E2E_BIG_MB", "2048"))
        # DuckDB may use its whole memory limit as a buffer pool, and ASan keeps freed
        # memory in a quarantine (256 MB by default): both are capped here so the bound
        # below measures our upload path, not those pools.
        asan = os.environ.get("ASAN_OPTIONS", "")
        s = Server(self.data, {"LH_DUCKDB_MEMORY_MB": "256", "LH_DUCKDB_THREADS": "2",
                               "ASAN_OPTIONS": (asan + ":" if asan else "") +
                               "quarantine_size_mb=32"}).start()
        try:
            line = b"%08d,some repetitive text to make the file large,42\n"
            n_lines = (mb << 20) // len(line % 0)
            chunk_lines = 20000
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=900)
            conn.putrequest("POST", "/ingest/file?name=big&format=csv&header=false")
            conn.putheader("Authorization", f"Bearer {ADMIN_KEY}")
            conn.putheader("Content-Length", str(n_lines * len(line % 0)))
            conn.endheaders()
            i = 0
            while i < n_lines:
                k = min(chunk_lines, n_lines - i)
                conn.send(b"".join(line % j for j in range(i, i + k)))
                i += k
            resp = conn.getresponse()
            doc = json.loads(resp.read())
            self.assertEqual(resp.status, 201, doc)
            self.assertEqual(doc["dataset"]["row_count"], n_lines)
            with open(f"/proc/{s.proc.pid}/status") as f:
                hwm_kb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
            print(f"\n  {mb} MB upload: server peak RSS {hwm_kb // 1024} MB", file=sys.stderr)
            # the body never sits in memory: the peak is bounded by DuckDB's 256 MB limit
            # plus a fixed overhead (ASan's included), whatever the upload's size
            self.assertLess(hwm_kb, 768 * 1024)
            uploads = os.path.join(self.data, "_tmp", "uploads")
            self.assertEqual(os.listdir(uploads), [])
        finally:
            s.stop()


# ------------------------------------------------------------------ security (issue 3)

def load_corpus():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "security",
                        "sql_attacks.txt")
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            expect, sql = line.split("\t", 1)
            out.append((expect, sql))
    return out


class Security(Base):
    server_env = {"LH_QUERY_TIMEOUT_MS": "2000", "LH_QUERY_MAX_ROWS": "1000",
                  "LH_QUERY_DEFAULT_ROWS": "1000", "LH_MAX_SQL_BYTES": "4096"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.server
        assert s.ingest("people", cls.people_csv)[0] == 201
        secret = b"candidate_id,salary,city\n1,99000,Oslo\n2,120000,Paris\n"
        assert s.ingest("secret", secret)[0] == 201
        cls.keys = {}
        for name, role, extra in [("ana", "analyst", {}), ("bot", "agent", {"datasets": ["people"]}),
                                  ("counsel", "legal", {})]:
            status, doc = s.json("POST", "/auth/keys", dict(name=name, role=role, **extra))
            assert status == 201, doc
            cls.keys[role] = doc["key"]

    def as_role(self, role, method, path, body=None):
        return self.server.json(method, path, body, key=self.keys[role])

    def sql_as(self, role, sql, limit=None):
        body = {"sql": sql}
        if limit is not None:
            body["limit"] = limit
        return self.as_role(role, "POST", "/query/sql", body)

    def test_keys_required(self):
        s = self.server
        self.assertEqual(s.json("GET", "/health", key=None)[0], 200)
        status, hdrs, body = s.request("GET", "/catalog/datasets", key=None)
        self.assertEqual(status, 401)
        self.assertEqual(json.loads(body)["error"], "unauthorized")
        self.assertIn("Bearer", hdrs.get("WWW-Authenticate", ""))
        self.assertEqual(s.json("GET", "/catalog/datasets", key="lh_" + "0" * 64)[0], 401)
        self.assertEqual(s.json("GET", "/catalog/datasets", key=ADMIN_KEY + "x")[0], 401)
        status, _, _ = s.request("POST", "/ingest/file?name=x&format=csv", b"a\n1\n",
                                 {"Authorization": "Basic abc"}, key=None)
        self.assertEqual(status, 401)
        # an unauthenticated upload is refused before its body is stored
        self.assertEqual(os.listdir(os.path.join(self.data, "_tmp", "uploads")), [])

    def test_key_listing_never_shows_keys(self):
        status, doc = self.server.json("GET", "/auth/keys")
        self.assertEqual(status, 200)
        names = {k["name"]: k for k in doc["keys"]}
        self.assertEqual(names["ana"]["role"], "analyst")
        self.assertEqual(names["bot"]["datasets"], ["people"])
        text = json.dumps(doc)
        for key in self.keys.values():
            self.assertNotIn(key, text)
            self.assertNotIn(key[3:], text)
        self.assertNotIn("hash", text)
        for k in doc["keys"]:
            self.assertIn("created_at", k)
            self.assertIn("last_used_at", k)
        # the store on disk holds hashes only, in a 0700 folder, 0600 file
        secrets = os.path.join(self.data, "_secrets")
        self.assertEqual(os.stat(secrets).st_mode & 0o777, 0o700)
        with open(os.path.join(secrets, "keys.json")) as f:
            stored = f.read()
        self.assertEqual(os.stat(os.path.join(secrets, "keys.json")).st_mode & 0o777, 0o600)
        for key in self.keys.values():
            self.assertNotIn(key[3:], stored)

    def test_key_validation(self):
        s = self.server
        for body in [{"name": "ana", "role": "analyst"}, {"name": "x", "role": "root"},
                     {"name": "", "role": "analyst"}, {"name": "a b", "role": "analyst"},
                     {"name": "y", "role": "analyst", "datasets": ["people"]},
                     {"name": "z", "role": "agent", "datasets": "people"},
                     {"name": "w", "role": "agent", "colour": 1}]:
            with self.subTest(body=body):
                status, doc = s.json("POST", "/auth/keys", body)
                self.assertIn(status, (400, 409), doc)
        self.assertEqual(s.json("DELETE", "/auth/keys/nobody")[0], 404)
        self.assertEqual(s.json("DELETE", "/auth/keys/env-admin")[0], 403)

    def test_roles(self):
        # analyst: reads datasets, nothing raw, no writes, no keys
        status, doc = self.sql_as("analyst", "SELECT count(*) FROM secret")
        self.assertEqual((status, doc["rows"]), (200, [[2]]))
        status, doc = self.sql_as("analyst", "SELECT * FROM __raw__people")
        self.assertEqual((status, doc["error"]), (403, "sql_forbidden"))
        self.assertEqual(self.as_role("analyst", "GET", "/auth/keys")[0], 403)
        self.assertEqual(self.as_role("analyst", "POST", "/storage/buckets",
                                      {"name": "x", "root": "/tmp/x"})[0], 403)
        self.assertEqual(self.as_role("analyst", "DELETE", "/catalog/datasets/by-name/people")[0], 403)
        status, _, _ = self.server.request("POST", "/ingest/file?name=z&format=csv", b"a\n1\n",
                                           key=self.keys["analyst"])
        self.assertEqual(status, 403)
        # agent: only its grant, everywhere
        status, doc = self.sql_as("agent", "SELECT count(*) FROM people")
        self.assertEqual((status, doc["rows"]), (200, [[len(self.people)]]))
        status, doc = self.sql_as("agent", "SELECT * FROM secret")
        self.assertEqual(status, 403)
        self.assertIn("people", doc["message"])
        status, doc = self.as_role("agent", "GET", "/catalog/datasets")
        self.assertEqual([d["name"] for d in doc["datasets"]], ["people"])
        status, doc = self.as_role("agent", "GET", "/catalog/datasets/by-name/secret")
        self.assertEqual(status, 403)
        self.assertIn("people", doc["message"])
        self.assertEqual(self.as_role("agent", "GET", "/storage/buckets")[0], 403)
        # legal: metadata, no SQL
        self.assertEqual(self.sql_as("legal", "SELECT 1")[0], 403)
        self.assertEqual(self.as_role("legal", "GET", "/catalog/datasets")[0], 200)
        # admin: raw relations
        status, doc = self.server.sql("SELECT count(*) FROM __raw__people")
        self.assertEqual((status, doc["rows"]), (200, [[len(self.people)]]))

    def test_sql_size_cap(self):
        status, doc = self.sql_as("agent", "SELECT " + ",".join(["1"] * 3000))
        self.assertEqual((status, doc["error"]), (413, "payload_too_large"))

    def test_revoke(self):
        s = self.server
        status, doc = s.json("POST", "/auth/keys", {"name": "temp", "role": "analyst"})
        self.assertEqual(status, 201)
        key = doc["key"]
        self.assertTrue(key.startswith("lh_") and len(key) == 67)
        self.assertEqual(s.json("GET", "/catalog/datasets", key=key)[0], 200)
        self.assertEqual(s.json("DELETE", "/auth/keys/temp")[0], 200)
        self.assertEqual(s.json("GET", "/catalog/datasets", key=key)[0], 401)

    def test_attack_corpus(self):
        corpus = load_corpus()
        self.assertGreaterEqual(len(corpus), 60)
        secret_rows = [[1, 99000, "Oslo"], [2, 120000, "Paris"]]
        for expect, sql in corpus:
            for role in ("analyst", "agent"):
                with self.subTest(role=role, sql=sql):
                    status, doc = self.sql_as(role, sql)
                    text = json.dumps(doc)
                    if expect == "forbidden" or (expect == "agent_forbidden" and role == "agent"):
                        self.assertEqual((status, doc.get("error")), (403, "sql_forbidden"), doc)
                    elif expect in ("agent_forbidden", "allowed"):
                        self.assertEqual(status, 200, doc)
                    elif expect == "refused":
                        self.assertIn((status, doc.get("error")),
                                      [(403, "sql_forbidden"), (400, "sql_error")], doc)
                    elif expect == "timeout":
                        self.assertEqual((status, doc.get("error")), (408, "query_timeout"), doc)
                    elif expect == "capped":
                        self.assertTrue(status == 408 or (status == 200 and doc["truncated"]),
                                        doc)
                    else:
                        self.fail(f"unknown expectation {expect}")
                    if status != 200:
                        self.assertTrue(doc["message"])
                    # nothing outside the lake ever comes back
                    self.assertNotIn("root:x:0:0", text)
                    self.assertNotIn("_secrets", text)
                    if role == "agent":
                        self.assertNotIn("120000", text)
        # the server is still up and still right
        self.assertEqual(self.server.rows("SELECT count(*) FROM people"), [[len(self.people)]])
        self.assertEqual(self.server.rows("SELECT * FROM secret ORDER BY 1"), secret_rows)
        status, doc = self.server.json("GET", "/catalog/datasets")
        self.assertEqual(sorted(d["name"] for d in doc["datasets"]), ["people", "secret"])
        log = self.server.read_log()
        for key in self.keys.values():
            self.assertNotIn(key[3:], log)
        self.assertNotIn(ADMIN_KEY, log)


class Limits(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lh-e2e-lim-")
        self.data = os.path.join(self.tmp, "data")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_concurrent_query_cap(self):
        import threading
        s = Server(self.data, {"LH_MAX_CONCURRENT_QUERIES": "1",
                               "LH_QUERY_TIMEOUT_MS": "4000"}).start()
        try:
            results = {}

            def slow():
                results["slow"] = s.sql("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL "
                                        "SELECT i + 1 FROM r) SELECT count(*) FROM r")[0]

            t = threading.Thread(target=slow)
            t.start()
            time.sleep(1.0)
            status, hdrs, body = s.request("POST", "/query/sql", {"sql": "SELECT 1"})
            t.join()
            self.assertEqual(status, 429, body)
            self.assertEqual(json.loads(body)["error"], "too_many_requests")
            self.assertEqual(hdrs.get("Retry-After"), "1")
            self.assertEqual(results["slow"], 408)
            self.assertEqual(s.rows("SELECT 1"), [[1]])
        finally:
            s.stop()

    def test_slow_client_is_disconnected(self):
        s = Server(self.data, {"LH_CONNECTION_TIMEOUT_S": "2"}).start()
        try:
            sock = socket.create_connection(("127.0.0.1", s.port))
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finishes
            sock.settimeout(15)
            t0 = time.time()
            data = sock.recv(100)
            self.assertEqual(data, b"")
            self.assertLess(time.time() - t0, 12)
            sock.close()
            self.assertEqual(s.json("GET", "/health")[0], 200)
        finally:
            s.stop()

    def test_bootstrap_admin_key_file(self):
        env = {"LH_ADMIN_KEY": ""}
        s = Server(self.data, env).start()
        try:
            path = os.path.join(self.data, "_secrets", "admin.key")
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
            self.assertEqual(os.stat(os.path.dirname(path)).st_mode & 0o777, 0o700)
            with open(path) as f:
                key = f.read().strip()
            self.assertEqual(s.json("GET", "/auth/keys", key=key)[0], 200)
            log = s.read_log()
            self.assertIn(path, log)
            self.assertNotIn(key, log)
            self.assertNotIn(key[3:], log)
        finally:
            s.stop()
        s = Server(self.data, env).start()   # a restart keeps the same key
        try:
            with open(path) as f:
                self.assertEqual(f.read().strip(), key)
            self.assertEqual(s.json("GET", "/auth/keys", key=key)[0], 200)
            # the CLI finds it on its own
            r = subprocess.run([h.BIN, "datasets"], capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, LH_SERVER=s.url, LH_DATA=self.data, LH_KEY=""))
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            s.stop()

    def test_short_env_admin_key_refused(self):
        s = Server(self.data, {"LH_ADMIN_KEY": "short"})
        with self.assertRaises(AssertionError) as cm:
            s.start()
        self.assertIn("LH_ADMIN_KEY", str(cm.exception))
        s.proc = None
