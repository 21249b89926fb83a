"""End-to-end tests of model profiles and agents bound to them (docs/GOVERNANCE.md, "Model
profiles"): creation and validation, persistence across a restart, an agent that reads
exactly its profile's bindings in SQL and in listings (403 naming them otherwise), the
grants rule (a key has a profile or explicit grants, never both), delete refused while
keys are bound, and the journal events of profile changes."""
import json

from harness import Base

SALARIES = b"emp_id,amount\n1,100\n2,200\n"
ORDERS = b"order_id,candidate_id\n10,1\n11,2\n12,3\n"


class Profiles(Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.server
        assert s.ingest("people", cls.people_csv)[0] == 201
        assert s.ingest("orders", ORDERS)[0] == 201
        assert s.ingest("salaries", SALARIES)[0] == 201

    def key(self, name, role, expect=201, **extra):
        status, doc = self.server.json("POST", "/auth/keys", {"name": name, "role": role, **extra})
        self.assertEqual(status, expect, doc)
        return doc.get("key") if status == 201 else doc

    def sql_as(self, key, sql):
        return self.server.json("POST", "/query/sql", {"sql": sql}, key=key)

    def test_01_create_validate_get(self):
        s = self.server
        body = {"id": "screening", "model_name": "gpt-4o-2024-08-06",
                "description": "CV screening", "bound_datasets": ["people", "orders"],
                "index_config": {"chunk": 512}, "embed_model": "bge-small"}
        status, doc = s.json("POST", "/catalog/profiles", body)
        self.assertEqual(status, 201, doc)
        p = doc["profile"]
        self.assertEqual(p["id"], "screening")
        self.assertEqual(p["bucket"], "primary")
        self.assertEqual(p["created_by"], "env-admin")
        self.assertEqual(p["bound_datasets"], ["people", "orders"])
        self.assertEqual(p["unresolved"], [])
        status, doc = s.json("POST", "/catalog/profiles", body)
        self.assertEqual(status, 409, doc)
        bad = [
            ({**body, "id": "Not_A_Slug"}, 400),
            ({**body, "id": "x", "bound_datasets": ["ghost"]}, 400),
            ({**body, "id": "x", "bound_datasets": []}, 400),
            ({**body, "id": "x", "bucket": "nowhere"}, 404),
            ({**body, "id": "x", "model_name": ""}, 400),
            ({**body, "id": "x", "surprise": 1}, 400),
        ]
        for b, want in bad:
            status, doc = s.json("POST", "/catalog/profiles", b)
            self.assertEqual(status, want, (b, doc))
        status, doc = s.json("POST", "/catalog/profiles", {**body, "id": "x",
                                                           "bound_datasets": ["ghost"]})
        self.assertIn("ghost", doc["message"])
        status, doc = s.json("GET", "/catalog/profiles/screening")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["profile"]["embed_model"], "bge-small")
        status, doc = s.json("GET", "/catalog/profiles/nope")
        self.assertEqual(status, 404, doc)
        status, doc = s.json("GET", "/catalog/profiles")
        self.assertEqual([p["id"] for p in doc["profiles"]], ["screening"])
        legal = self.key("legal1", "legal")
        status, doc = s.json("GET", "/catalog/profiles", key=legal)
        self.assertEqual(status, 200, doc)
        status, doc = s.json("POST", "/catalog/profiles", {**body, "id": "y"}, key=legal)
        self.assertEqual(status, 403, doc)

    def test_02_grants_rule(self):
        # A key has a profile or explicit grants, never both; the profile must exist.
        doc = self.key("both", "agent", expect=400, profile="screening", datasets=["people"])
        self.assertIn("not both", doc["message"])
        doc = self.key("ghostly", "agent", expect=404, profile="no-such-profile")
        self.assertIn("screening", doc["message"])  # names the profiles that exist
        self.key("analyst-with-profile", "analyst", expect=400, profile="screening")
        # Grants keep working for keys without a profile.
        granted = self.key("granted", "agent", datasets=["salaries"])
        status, doc = self.sql_as(granted, "SELECT sum(amount) FROM salaries")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["rows"], [[300]])
        status, doc = self.sql_as(granted, "SELECT count(*) FROM people")
        self.assertEqual(status, 403, doc)

    def test_03_bound_agent_reads_exactly_its_bindings(self):
        s = self.server
        bot = self.key("bot", "agent", profile="screening")
        status, doc = self.sql_as(bot, "SELECT count(*) FROM people")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["rows"], [[len(self.people)]])
        status, doc = self.sql_as(
            bot, "SELECT count(*) FROM people p JOIN orders o USING (candidate_id)")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["rows"], [[3]])
        for sql in ("SELECT * FROM salaries",
                    "SELECT * FROM people WHERE candidate_id IN (SELECT emp_id FROM salaries)",
                    "SELECT * FROM __raw__people",
                    "SELECT * FROM read_parquet('datasets/*/*/*.parquet')",
                    "SELECT * FROM not_a_dataset"):
            status, doc = self.sql_as(bot, sql)
            self.assertEqual(status, 403, (sql, doc))
        status, doc = self.sql_as(bot, "SELECT * FROM salaries")
        self.assertIn("people", doc["message"])
        self.assertIn("orders", doc["message"])
        # listings show only the bindings
        status, doc = s.json("GET", "/catalog/datasets", key=bot)
        self.assertEqual(status, 200, doc)
        self.assertEqual(sorted(d["name"] for d in doc["datasets"]), ["orders", "people"])
        status, doc = s.json("GET", "/catalog/datasets/by-name/people", key=bot)
        self.assertEqual(status, 200, doc)
        status, doc = s.json("GET", "/catalog/datasets/by-name/salaries", key=bot)
        self.assertEqual(status, 403, doc)
        self.assertIn("people", doc["message"])
        status, doc = s.json("GET", "/health", key=bot)
        self.assertEqual(doc["datasets"], 2)
        # agents do not read profile definitions
        status, doc = s.json("GET", "/catalog/profiles", key=bot)
        self.assertEqual(status, 403, doc)

    def test_04_unresolved_binding_and_delete_guard(self):
        s = self.server
        assert s.ingest("temp", b"a\n1\n")[0] == 201
        status, doc = s.json("POST", "/catalog/profiles",
                             {"id": "tmp-prof", "model_name": "m", "bound_datasets": ["temp"]})
        self.assertEqual(status, 201, doc)
        tbot = self.key("tbot", "agent", profile="tmp-prof")
        self.assertEqual(self.sql_as(tbot, "SELECT count(*) FROM temp")[0], 200)
        self.assertEqual(s.json("DELETE", "/catalog/datasets/by-name/temp")[0], 200)
        status, doc = s.json("GET", "/catalog/profiles/tmp-prof")
        self.assertEqual(doc["profile"]["unresolved"], ["temp"])
        status, doc = self.sql_as(tbot, "SELECT count(*) FROM temp")
        self.assertEqual(status, 403, doc)
        status, doc = s.json("DELETE", "/catalog/profiles/tmp-prof")
        self.assertEqual(status, 409, doc)
        self.assertIn("tbot", doc["message"])
        self.assertEqual(s.json("DELETE", "/auth/keys/tbot")[0], 200)
        status, doc = s.json("DELETE", "/catalog/profiles/tmp-prof")
        self.assertEqual(status, 200, doc)
        self.assertEqual(s.json("GET", "/catalog/profiles/tmp-prof")[0], 404)

    def test_05_survives_restart_and_journal(self):
        s = self.server
        s.stop()
        s.start()
        status, doc = s.json("GET", "/catalog/profiles")
        self.assertEqual([p["id"] for p in doc["profiles"]], ["screening"])
        self.assertEqual(doc["profiles"][0]["index_config"], {"chunk": 512})
        status, doc = s.json("GET", "/catalog/events?limit=1000")
        acts = [(e["action"], e["target"]) for e in doc["events"]]
        self.assertIn(("profile.created", "screening"), acts)
        self.assertIn(("profile.created", "tmp-prof"), acts)
        self.assertIn(("profile.deleted", "tmp-prof"), acts)
        ev = [e for e in doc["events"] if e["action"] == "key.created" and e["target"] == "bot"]
        self.assertEqual(ev[0]["details"]["profile"], "screening")

    def test_06_cli(self):
        import os
        import subprocess
        import harness
        env = dict(os.environ, LH_SERVER=self.server.url, LH_KEY=harness.ADMIN_KEY)

        def cli(*args):
            p = subprocess.run([harness.BIN, *args], env=env, capture_output=True, text=True,
                               timeout=60)
            return p.returncode, p.stdout + p.stderr

        rc, out = cli("profiles", "create", "cli-prof", "--model", "m1", "--bind",
                      "people,orders", "--index-config", '{"k": 3}')
        self.assertEqual(rc, 0, out)
        rc, out = cli("profiles", "list")
        self.assertEqual(rc, 0, out)
        self.assertIn("cli-prof", out)
        self.assertIn("people,orders", out)
        rc, out = cli("profiles", "show", "cli-prof")
        self.assertEqual(rc, 0, out)
        self.assertEqual(json.loads(out)["profile"]["index_config"], {"k": 3})
        rc, out = cli("profiles", "create", "cli-bad", "--model", "m", "--bind", "ghost")
        self.assertEqual(rc, 1, out)
        self.assertIn("ghost", out)
        rc, out = cli("profiles", "delete", "cli-prof")
        self.assertEqual(rc, 0, out)
        rc, out = cli("events", "--since", "0", "--limit", "1000")
        self.assertEqual(rc, 0, out)
        self.assertIn("profile.deleted", out)
        rc, out = cli("events", "--since", "nope")
        self.assertEqual(rc, 2, out)
        rc, out = cli("migrate-buckets")
        self.assertEqual(rc, 0, out)
        self.assertIn("0 changed", out)

    def test_07_profile_binding_a_view(self):
        s = self.server
        status, doc = s.json("POST", "/catalog/views",
                             {"name": "people_safe", "base_dataset": "people",
                              "columns": ["candidate_id", "city"]})
        self.assertEqual(status, 201, doc)
        status, doc = s.json("POST", "/catalog/profiles",
                             {"id": "view-only", "model_name": "m",
                              "bound_datasets": ["people_safe"]})
        self.assertEqual(status, 201, doc)
        vbot = self.key("vbot", "agent", profile="view-only")
        status, doc = self.sql_as(vbot, "SELECT count(*) FROM people_safe")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["rows"], [[len(self.people)]])
        for sql in ("SELECT email FROM people", "SELECT * FROM people_safe JOIN people "
                    "USING (candidate_id)", "SELECT email FROM people_safe"):
            status, doc = self.sql_as(vbot, sql)
            self.assertIn(status, (400, 403), (sql, doc))
            self.assertNotIn("@example.org", json.dumps(doc))
        status, doc = s.json("GET", "/catalog/views", key=vbot)
        self.assertEqual(status, 200, doc)
        self.assertEqual([v["name"] for v in doc["views"]], ["people_safe"])
        status, doc = s.json("GET", "/catalog/datasets", key=vbot)
        self.assertEqual(doc["datasets"], [])


class ProfileAttackCorpus(Base):
    """The SQL attack corpus (tests/security/sql_attacks.txt) run as an agent whose only
    access is a profile binding `people`: every line must be judged exactly as for an agent
    granted `people` by name, and nothing of `secret` may come back."""
    server_env = {"LH_QUERY_TIMEOUT_MS": "2000", "LH_QUERY_MAX_ROWS": "1000",
                  "LH_QUERY_DEFAULT_ROWS": "1000", "LH_MAX_SQL_BYTES": "4096"}

    def test_corpus_as_profile_bound_agent(self):
        from test_foundation import load_corpus
        s = self.server
        self.assertEqual(s.ingest("people", self.people_csv)[0], 201)
        secret = b"candidate_id,salary,city\n1,99000,Oslo\n2,120000,Paris\n"
        self.assertEqual(s.ingest("secret", secret)[0], 201)
        status, doc = s.json("POST", "/catalog/profiles",
                             {"id": "people-only", "model_name": "m", "bound_datasets": ["people"]})
        self.assertEqual(status, 201, doc)
        status, doc = s.json("POST", "/auth/keys",
                             {"name": "pbot", "role": "agent", "profile": "people-only"})
        self.assertEqual(status, 201, doc)
        key = doc["key"]
        for expect, sql in load_corpus():
            with self.subTest(sql=sql):
                status, doc = s.json("POST", "/query/sql", {"sql": sql}, key=key)
                text = json.dumps(doc)
                if expect in ("forbidden", "agent_forbidden"):
                    self.assertEqual((status, doc.get("error")), (403, "sql_forbidden"), doc)
                elif expect == "allowed":
                    self.assertEqual(status, 200, doc)
                elif expect == "refused":
                    self.assertIn((status, doc.get("error")),
                                  [(403, "sql_forbidden"), (400, "sql_error")], doc)
                elif expect == "timeout":
                    self.assertEqual((status, doc.get("error")), (408, "query_timeout"), doc)
                elif expect == "capped":
                    self.assertTrue(status == 408 or (status == 200 and doc["truncated"]), doc)
                else:
                    self.fail(f"unknown expectation {expect}")
                self.assertNotIn("120000", text)
                self.assertNotIn("root:x:0:0", text)
                self.assertNotIn("_secrets", text)
