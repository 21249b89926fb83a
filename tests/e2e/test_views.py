"""End-to-end tests of AI-safe views and caller attributes (docs/GOVERNANCE.md): an agent
granted only a view sees masked ids, hashed emails and no phone, and reaches no base column
by any SQL; recruiter keys with different `region` attributes each see their own rows; the
namespace, validation, broken bases and restarts. Expected values are computed here."""
import csv
import hashlib
import json
import os
import random
import subprocess
import unittest

import harness as h
from harness import ADMIN_KEY, Base, Server

REGIONS = ["CO", "US", "MX"]


def make_candidates(path, n=300, seed=11):
    rnd = random.Random(seed)
    rows = []
    for i in range(1, n + 1):
        rows.append({
            "candidate_id": f"C{i:06d}",
            "full_name": rnd.choice(["Ana Gómez", "Bo Li", "Zoë Ünal", "Al"]) + f" {i}",
            "email": f"person{i}.{rnd.randint(1000, 9999)}@mail.example",
            "phone": f"+1 555 {rnd.randint(100, 999)} {rnd.randint(1000, 9999)}",
            "region": REGIONS[i % 3],
            "score": str(rnd.randint(0, 100)),
        })
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    return rows


def mask(v, p, s):
    if v is None:
        return None
    if len(v) <= p + s:
        return "*" * len(v)
    return v[:p] + "*" * (len(v) - p - s) + (v[len(v) - s:] if s else "")


SAFE = {
    "name": "candidates_safe",
    "base_dataset": "candidates",
    "columns": ["candidate_id", "full_name", "email", "phone", "region", "score"],
    "column_redactions": {
        "candidate_id": {"kind": "mask", "keep_prefix": 1, "keep_suffix": 2},
        "email": {"kind": "hash"},
        "phone": {"kind": "null"},
    },
    "description": "candidates for agents",
}

REGIONAL = {
    "name": "candidates_regional",
    "base_dataset": "candidates",
    "columns": ["candidate_id", "region", "score"],
    "row_filter": "region = caller_attribute('region')",
}


class Views(Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cand_csv = os.path.join(cls.tmp, "candidates.csv")
        cls.cands = make_candidates(cls.cand_csv)
        s = cls.server
        st, doc = s.ingest("candidates", cls.cand_csv)
        assert st == 201, doc
        st, doc = s.ingest("people", cls.people_csv)
        assert st == 201, doc
        for spec in (SAFE, REGIONAL):
            st, doc = s.json("POST", "/catalog/views", spec)
            assert st == 201, (st, doc)
        cls.keys = {}
        for name, body in {
            "agent-view": {"role": "agent", "datasets": ["candidates_safe"]},
            "rec-co": {"role": "agent", "datasets": ["candidates_regional"],
                       "attributes": {"region": "CO"}},
            "rec-us": {"role": "agent", "datasets": ["candidates_regional"],
                       "attributes": {"region": "US"}},
            "rec-none": {"role": "agent", "datasets": ["candidates_regional"]},
            "ana": {"role": "analyst"},
        }.items():
            st, doc = s.json("POST", "/auth/keys", dict(body, name=name))
            assert st == 201, (st, doc)
            cls.keys[name] = doc["key"]

    def q(self, key, sql):
        return self.server.json("POST", "/query/sql", {"sql": sql, "limit": 100000},
                                key=self.keys[key])

    def secrets(self):
        """Values of the base columns the view hides: raw ids, emails, phones."""
        out = set()
        for c in self.cands:
            out.update((c["email"], c["phone"]))
        return out

    def assert_no_secret(self, data, what):
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        for v in self.secrets():
            self.assertNotIn(v, text, f"{what}: leaked {v!r}")
        for c in self.cands[:50]:
            self.assertNotIn('"' + c["candidate_id"] + '"', text, f"{what}: raw id")

    # ------------------------------------------------------------ redactions

    def test_01_redactions_as_documented(self):
        st, doc = self.q("agent-view", "SELECT candidate_id, full_name, email, phone, region, "
                                       "score FROM candidates_safe ORDER BY score, full_name")
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["row_count"], len(self.cands))
        types = {c["name"]: c["type"] for c in doc["columns"]}
        self.assertEqual(types["phone"], "VARCHAR")  # null keeps the type
        self.assertEqual(types["score"], "BIGINT")
        by_name = {c["full_name"]: c for c in self.cands}
        for cid, name, email, phone, region, score in doc["rows"]:
            c = by_name[name]
            self.assertEqual(cid, mask(c["candidate_id"], 1, 2))
            self.assertEqual(email, hashlib.sha256(c["email"].encode()).hexdigest())
            self.assertIsNone(phone)
            self.assertEqual(region, c["region"])
        self.assert_no_secret(doc, "view rows")

    def test_02_hash_joins_and_matches_analyst_sha256(self):
        # an analyst computing sha256 of the base column gets the same values
        st, doc = self.q("ana", "SELECT count(*) FROM candidates_safe v JOIN candidates c "
                                "ON v.email = sha256(c.email)")
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["rows"], [[len(self.cands)]])

    # ------------------------------------------------------------ attack corpus

    ATTACKS = [
        "SELECT * FROM candidates",
        "SELECT email FROM CANDIDATES",
        'SELECT email FROM "candidates"',
        'SELECT email FROM "Candidates"',
        "SELECT * FROM __raw__candidates",
        "SELECT * FROM __raw__candidates_safe",
        "SELECT * FROM main.candidates",
        "SELECT * FROM memory.main.candidates",
        "SELECT (SELECT max(email) FROM candidates) FROM candidates_safe",
        "SELECT * FROM candidates_safe WHERE EXISTS (SELECT 1 FROM candidates)",
        "SELECT * FROM candidates_safe UNION ALL SELECT candidate_id, full_name, email, phone, "
        "region, score FROM candidates",
        "SELECT * FROM duckdb_views()",
        "SELECT sql FROM duckdb_views()",
        "SELECT * FROM duckdb_columns()",
        "SELECT * FROM duckdb_tables",
        "SELECT * FROM information_schema.columns",
        "SELECT * FROM query('SELECT email FROM candidates')",
        "SELECT * FROM query_table('candidates')",
        "SELECT * FROM sql('SELECT email FROM candidates')",
        "SELECT unnest([(SELECT email FROM candidates LIMIT 1)])",
        "SELECT struct_pack(e := (SELECT email FROM candidates LIMIT 1))",
        "SELECT getvariable('lh_attr_region')",
        "SELECT caller_attribute('region')",
        "SET VARIABLE lh_attr_region = 'US'",
        "SELECT * FROM candidates_safe; SELECT * FROM candidates",
        "SELECT * FROM read_parquet('datasets/candidates/*/*.parquet')",
        "SELECT * FROM 'datasets/candidates/x.parquet'",
        "DESCRIBE candidates",
        "SHOW TABLES",
        "PRAGMA show_tables",
        "WITH RECURSIVE candidates AS (SELECT * FROM candidates UNION SELECT * FROM candidates) "
        "SELECT * FROM candidates",
        "SELECT * FROM candidates_safe AT (VERSION => 1)",
    ]

    # answered, but over the caller's own CTE: the name never reaches the base
    HARMLESS = [
        "WITH candidates AS (SELECT 1) SELECT * FROM candidates, (SELECT * FROM candidates) x",
        "WITH candidates AS (SELECT * FROM candidates_safe) SELECT email FROM candidates",
    ]

    def test_03_view_only_agent_reaches_no_base_column(self):
        for sql in self.HARMLESS:
            with self.subTest(sql=sql):
                st, hdrs, data = self.server.request("POST", "/query/sql", {"sql": sql},
                                                     key=self.keys["agent-view"])
                self.assertEqual(st, 200, data[:200])
                self.assert_no_secret(data.decode("utf-8", "replace"), sql)
        for sql in self.ATTACKS:
            with self.subTest(sql=sql):
                st, hdrs, data = self.server.request(
                    "POST", "/query/sql", {"sql": sql},
                    key=self.keys["agent-view"])
                self.assertIn(st, (400, 403), f"{sql!r} answered {st}: {data[:200]!r}")
                self.assert_no_secret(data.decode("utf-8", "replace"), sql)

    def test_04_view_only_agent_catalog(self):
        st, doc = self.server.json("GET", "/catalog/views", key=self.keys["agent-view"])
        self.assertEqual(st, 200)
        self.assertEqual([v["name"] for v in doc["views"]], ["candidates_safe"])
        st, _ = self.server.json("GET", "/catalog/views/candidates_regional",
                                 key=self.keys["agent-view"])
        self.assertEqual(st, 403)
        st, _ = self.server.json("GET", "/catalog/datasets/by-name/candidates",
                                 key=self.keys["agent-view"])
        self.assertEqual(st, 403)
        st, doc = self.server.json("GET", "/catalog/views")
        self.assertEqual({v["name"] for v in doc["views"]},
                         {"candidates_safe", "candidates_regional"})
        self.assertTrue(all(v["status"] == "ok" for v in doc["views"]), doc)

    # ------------------------------------------------------------ caller attributes

    def test_05_each_recruiter_sees_its_region(self):
        for key, region in (("rec-co", "CO"), ("rec-us", "US")):
            st, doc = self.q(key, "SELECT region, count(*) FROM candidates_regional GROUP BY 1")
            self.assertEqual(st, 200, doc)
            want = sum(1 for c in self.cands if c["region"] == region)
            self.assertEqual(doc["rows"], [[region, want]])
        # no attribute: no row, never all rows
        st, doc = self.q("rec-none", "SELECT count(*) FROM candidates_regional")
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["rows"], [[0]])
        # the same SQL text, alternating callers (cached verdicts, inline path)
        for _ in range(3):
            for key, region in (("rec-co", "CO"), ("rec-us", "US"), ("rec-none", None)):
                st, doc = self.q(key, "SELECT DISTINCT region FROM candidates_regional")
                self.assertEqual(doc["rows"], [[region]] if region else [], key)

    def test_06_user_sql_cannot_forge_attributes(self):
        forged = [
            "SET VARIABLE lh_attr_region = 'US'",
            "SELECT * FROM candidates_regional WHERE getvariable('lh_attr_region') IS NULL",
            "SELECT caller_attribute('region')",
            "SELECT * FROM candidates_regional, (SELECT caller_attribute('region'))",
            "RESET VARIABLE lh_attr_region",
            "SELECT 1; SET VARIABLE lh_attr_region = 'US'",
        ]
        for sql in forged:
            with self.subTest(sql=sql):
                st, doc = self.q("rec-co", sql)
                self.assertIn(st, (400, 403), (sql, doc))
        st, doc = self.q("rec-co", "SELECT DISTINCT region FROM candidates_regional")
        self.assertEqual(doc["rows"], [["CO"]])

    def test_07_patch_attributes(self):
        s = self.server
        st, doc = s.json("PATCH", "/auth/keys/rec-none", {"attributes": {"region": "MX"}})
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["key"]["attributes"], {"region": "MX"})
        st, doc = self.q("rec-none", "SELECT DISTINCT region FROM candidates_regional")
        self.assertEqual(doc["rows"], [["MX"]])
        st, doc = s.json("GET", "/auth/keys")
        attrs = {k["name"]: k["attributes"] for k in doc["keys"]}
        self.assertEqual(attrs["rec-co"], {"region": "CO"})
        for bad in ({"attributes": {"Region": "x"}}, {"attributes": {"region": 5}},
                    {"attributes": []}, {"attrs": {}}):
            st, _ = s.json("PATCH", "/auth/keys/rec-none", bad)
            self.assertEqual(st, 400, bad)
        st, _ = s.json("PATCH", "/auth/keys/nobody", {"attributes": {}})
        self.assertEqual(st, 404)
        st, _ = s.json("PATCH", "/auth/keys/rec-none", {"attributes": {}},
                       key=self.keys["ana"])
        self.assertEqual(st, 403)
        st, doc = s.json("PATCH", "/auth/keys/rec-none", {"attributes": {}})
        self.assertEqual(st, 200)
        st, doc = self.q("rec-none", "SELECT count(*) FROM candidates_regional")
        self.assertEqual(doc["rows"], [[0]])

    # ------------------------------------------------------------ validation, namespace

    def test_08_validation(self):
        s = self.server
        base = {"name": "v_bad", "base_dataset": "candidates", "columns": ["region"]}
        bad = [
            dict(base, base_dataset="nope"),
            dict(base, base_dataset="candidates_safe"),
            dict(base, columns=[]),
            dict(base, columns=["emial"]),
            dict(base, columns=["region", "REGION"]),
            dict(base, column_redactions={"email": {"kind": "hash"}}),
            dict(base, column_redactions={"region": {"kind": "blur"}}),
            dict(base, column_redactions={"region": {"kind": "mask", "keep_prefix": -1}}),
            dict(base, column_redactions={"region": {"kind": "mask", "keep_suffix": 1.5}}),
            dict(base, column_redactions={"region": {"kind": "hash", "keep_prefix": 1}}),
            dict(base, row_filter="region = 'CO') UNION (SELECT * FROM candidates"),
            dict(base, row_filter="1=1) LIMIT (1"),
            dict(base, row_filter="region IN (SELECT city FROM people)"),
            dict(base, row_filter="region = 'CO'; DROP VIEW candidates"),
            dict(base, row_filter="region = getvariable('x')"),
            dict(base, row_filter="read_text('/etc/passwd') IS NOT NULL"),
            dict(base, row_filter="no_such_column = 1"),
            dict(base, row_filter=""),
            dict(base, extra=1),
            dict(base, name="__raw__x"),
        ]
        for spec in bad:
            with self.subTest(spec=spec):
                st, doc = s.json("POST", "/catalog/views", spec)
                self.assertEqual(st, 400, doc)
        st, doc = s.json("GET", "/catalog/views/v_bad")
        self.assertEqual(st, 404)
        # a comment cannot swallow the closing parenthesis
        st, doc = s.json("POST", "/catalog/views",
                         dict(base, name="v_comment", row_filter="region = 'CO' --"))
        self.assertEqual(st, 201, doc)
        self.assertEqual(s.rows("SELECT DISTINCT region FROM v_comment"), [["CO"]])
        st, _ = s.json("DELETE", "/catalog/views/v_comment")
        self.assertEqual(st, 200)

    def test_09_one_namespace(self):
        s = self.server
        st, doc = s.json("POST", "/catalog/views",
                         {"name": "PEOPLE", "base_dataset": "candidates", "columns": ["region"]})
        self.assertEqual(st, 409, doc)
        st, doc = s.json("POST", "/catalog/views", dict(SAFE, name="Candidates_Safe"))
        self.assertEqual(st, 409, doc)
        st, doc = s.ingest("candidates_SAFE", self.cand_csv)
        self.assertEqual(st, 409, doc)
        st, doc = s.ingest("candidates_safe", self.cand_csv, mode="replace")
        self.assertEqual(st, 409, doc)
        self.assertEqual(s.rows("SELECT count(*) FROM candidates_safe"), [[len(self.cands)]])

    # ------------------------------------------------------------ broken base, restart

    def test_10_broken_base_then_back_then_restart(self):
        s = self.server
        st, doc = s.ingest("temp_base", self.cand_csv)
        self.assertEqual(st, 201, doc)
        st, doc = s.json("POST", "/catalog/views",
                         {"name": "temp_view", "base_dataset": "temp_base",
                          "columns": ["candidate_id", "email"],
                          "column_redactions": {"email": {"kind": "mask", "keep_prefix": 2}}})
        self.assertEqual(st, 201, doc)
        st, _ = s.json("DELETE", "/catalog/datasets/by-name/temp_base")
        self.assertEqual(st, 200)
        st, doc = s.json("GET", "/catalog/views/temp_view")
        self.assertEqual(st, 200)
        self.assertEqual(doc["view"]["status"], "broken")
        self.assertIn("temp_base", doc["view"]["problem"])
        st, doc = s.sql("SELECT * FROM temp_view")
        self.assertEqual(st, 400, doc)
        st, doc = s.ingest("temp_base", self.cand_csv)
        self.assertEqual(st, 201, doc)
        st, doc = s.json("GET", "/catalog/views/temp_view")
        self.assertEqual(doc["view"]["status"], "ok", doc)
        self.assertEqual(s.rows("SELECT count(*) FROM temp_view"), [[len(self.cands)]])
        st, _ = s.json("DELETE", "/catalog/datasets/by-name/temp_base")
        self.assertEqual(st, 200)

        before = s.rows("SELECT candidate_id, email FROM candidates_safe ORDER BY 1, 2")
        s.stop()
        s.start()
        self.assertEqual(s.rows("SELECT candidate_id, email FROM candidates_safe ORDER BY 1, 2"),
                         before)
        st, doc = s.json("GET", "/catalog/views/temp_view")
        self.assertEqual(doc["view"]["status"], "broken", doc)
        st, doc = self.q("rec-co", "SELECT DISTINCT region FROM candidates_regional")
        self.assertEqual(doc["rows"], [["CO"]])
        st, doc = s.json("DELETE", "/catalog/views/temp_view")
        self.assertEqual(st, 200, doc)
        # the verdict cached for this text before the delete is not served after it: the
        # firewall runs again and says the name is no relation
        st, doc = s.sql("SELECT count(*) FROM candidates_safe")
        self.assertEqual(st, 200, doc)
        st, doc = s.json("DELETE", "/catalog/views/candidates_safe")
        self.assertEqual(st, 200, doc)
        st, doc = s.sql("SELECT count(*) FROM candidates_safe")
        self.assertEqual(st, 400, doc)
        self.assertIn("no dataset named", doc["message"])
        st, doc = self.q("agent-view", "SELECT count(*) FROM candidates_safe")
        self.assertEqual(st, 403, doc)
        st, doc = s.json("POST", "/catalog/views", SAFE)
        self.assertEqual(st, 201, doc)
        self.assertEqual(self.q("agent-view", "SELECT count(*) FROM candidates_safe")[1]["rows"],
                         [[len(self.cands)]])
        st, _ = s.json("DELETE", "/catalog/views/temp_view")
        self.assertEqual(st, 404)
        self.assertFalse(os.path.exists(os.path.join(self.data, "_catalog/views/temp_view.json")))

    # ------------------------------------------------------------ CLI

    def test_11_cli(self):
        env = dict(os.environ, LH_SERVER=self.server.url, LH_KEY=ADMIN_KEY)

        def cli(*args, code=0):
            r = subprocess.run([h.BIN, *args], env=env, capture_output=True, text=True,
                               timeout=120)
            self.assertEqual(r.returncode, code, (args, r.stdout, r.stderr))
            return r

        spec = os.path.join(self.tmp, "spec.json")
        with open(spec, "w") as f:
            json.dump({"base_dataset": "candidates", "columns": ["candidate_id", "email"],
                       "column_redactions": {"email": {"kind": "null"}}}, f)
        cli("views", "create", "cli_file", "--file", spec)
        cli("views", "create", "cli_flags", "--base", "candidates", "--columns",
            "candidate_id,region", "--redact", "candidate_id:mask:0:3", "--filter",
            "region = 'US'")
        r = cli("views", "list")
        self.assertIn("cli_file", r.stdout)
        self.assertIn("candidate_id(mask)", r.stdout)
        r = cli("views", "show", "cli_flags", "--json")
        self.assertEqual(json.loads(r.stdout)["view"]["row_filter"], "region = 'US'")
        got = self.server.rows("SELECT DISTINCT region, length(candidate_id) FROM cli_flags")
        self.assertEqual(got, [["US", 7]])
        self.assertEqual(self.server.rows("SELECT count(email) FROM cli_file"), [[0]])
        r = cli("views", "create", "bad", "--base", "candidates", "--columns", "nope", code=1)
        self.assertIn("nope", r.stderr)
        cli("views", "create", "bad", "--redact", "x:blur:1", code=2)
        cli("views", "delete", "cli_file")
        cli("views", "delete", "cli_flags")
        cli("views", "show", "cli_file", code=1)
        cli("keys", "create", "cli-rec", "--role", "agent", "--datasets",
            "candidates_regional", "--attributes", "region=MX")
        cli("keys", "attributes", "cli-rec", "--attributes", "region=CO,team=a")
        st, doc = self.server.json("GET", "/auth/keys")
        attrs = {k["name"]: k["attributes"] for k in doc["keys"]}
        self.assertEqual(attrs["cli-rec"], {"region": "CO", "team": "a"})

    # ------------------------------------------------------------ event journal

    def test_12_journal(self):
        st, doc = self.server.json("GET", "/catalog/events?since=0&limit=1000")
        self.assertEqual(st, 200, doc)
        ev = doc["events"]
        created = [e for e in ev if e["action"] == "view.created"]
        safe = [e for e in created if e["target"] == "candidates_safe"]
        self.assertEqual(len(safe), 2)  # created, deleted and created again in test_10
        self.assertTrue(any(e["action"] == "view.deleted" and e["target"] == "candidates_safe"
                            for e in ev))
        self.assertEqual(safe[0]["details"]["base_dataset"], "candidates")
        self.assertEqual(safe[0]["details"]["column_redactions"]["email"]["kind"], "hash")
        self.assertTrue(any(e["action"] == "view.deleted" and e["target"] == "temp_view"
                            for e in ev))
        attrs = [e for e in ev if e["action"] == "key.attributes_set"
                 and e["target"] == "rec-none"]
        self.assertEqual(attrs[0]["details"], {"attributes": {"region": "MX"}})
        keyc = [e for e in ev if e["action"] == "key.created" and e["target"] == "rec-co"]
        self.assertEqual(keyc[0]["details"]["attributes"], {"region": "CO"})
        for key in self.keys.values():
            self.assertNotIn(key, json.dumps(ev))


if __name__ == "__main__":
    unittest.main()
