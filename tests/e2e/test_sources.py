"""End-to-end tests of named database sources (issue 13 item 3): POST/GET /sources,
GET/DELETE /sources/{name}, their roles, the CLI (`lakehouse sources`, `--dsn -` from
stdin), persistence across a restart, a damaged store stopping the start, and the rule
that a password appears in no response, no log line, no journal event and no file of the
data folder but _secrets/sources.json."""
import json
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

import harness
from harness import ADMIN_KEY, Server

PW_PG = "pg-Sup3r-s3cret-e2e"
PW_MY = "my-T0p-s3cret-e2e"
PW_KV = "kv-Qu0ted s3cret"
PW_CLI = "cli-St4din-s3cret"
PASSWORDS = (PW_PG, PW_MY, PW_KV, PW_CLI, "cli-Fl4g-s3cret")
DSN_PG = f"postgresql://etl:{PW_PG}@db.example:5433/hr?sslmode=require"
DSN_MY = f"mysql://root:{PW_MY}@10.1.2.3:3307/ats"
DSN_KV = f"host=pg.internal user=reader password='{PW_KV}' dbname=people"


def files_holding(data_dir, needles):
    """Relative paths of the files under data_dir whose bytes contain any needle."""
    found = []
    for root, _, files in os.walk(data_dir):
        for name in files:
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as f:
                    blob = f.read()
            except OSError:
                continue
            if any(n.encode() in blob for n in needles):
                found.append(os.path.relpath(path, data_dir))
    return found


class SourcesTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="lh-e2e-")
        cls.data = os.path.join(cls.tmp, "data")
        cls.server = Server(cls.data).start()
        cls.bodies = []  # every response body of the class, for the password grep
        cls.logs = []  # the logs of servers stopped along the way

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.server:
                cls.server.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def call(self, method, path, body=None, key=ADMIN_KEY):
        status, _, data = self.server.request(method, path, body, key=key)
        self.bodies.append(data)
        return status, (json.loads(data) if data else None)

    def cli(self, *args, stdin=None):
        p = subprocess.run([harness.BIN, "--server", self.server.url, "--key", ADMIN_KEY, *args],
                           input=stdin, capture_output=True, text=True, timeout=60)
        self.bodies.append((p.stdout + p.stderr).encode())
        return p

    def key(self, name, role):
        st, doc = self.call("POST", "/auth/keys", {"name": name, "role": role})
        self.assertEqual(st, 201, doc)
        return doc["key"]

    def test_1_routes(self):
        st, doc = self.call("POST", "/sources", {"name": "hr_pg", "kind": "postgres",
                                                 "dsn": DSN_PG})
        self.assertEqual(st, 201, doc)
        src = doc["source"]
        self.assertEqual(src["name"], "hr_pg")
        self.assertEqual(src["kind"], "postgres")
        self.assertEqual(src["dsn"], "postgresql://etl:***@db.example:5433/hr?sslmode=require")
        self.assertEqual(src["location"], "db.example:5433/hr")
        self.assertEqual(src["created_by"], "env-admin")
        st, doc = self.call("POST", "/sources", {"name": "ats", "kind": "mariadb", "dsn": DSN_MY})
        self.assertEqual(st, 201, doc)
        self.assertEqual(doc["source"]["kind"], "mysql")
        self.assertEqual(doc["source"]["dsn"], "mysql://root:***@10.1.2.3:3307/ats")
        st, doc = self.call("POST", "/sources", {"name": "people_kv", "kind": "postgres",
                                                 "dsn": DSN_KV})
        self.assertEqual(st, 201, doc)
        self.assertIn("password=***", doc["source"]["dsn"])
        self.assertEqual(doc["source"]["location"], "pg.internal:5432/people")

        st, doc = self.call("GET", "/sources")
        self.assertEqual(st, 200, doc)
        self.assertEqual([s["name"] for s in doc["sources"]], ["ats", "hr_pg", "people_kv"])
        st, doc = self.call("GET", "/sources/hr_pg")
        self.assertEqual((st, doc["source"]["location"]), (200, "db.example:5433/hr"))
        self.assertEqual(self.call("GET", "/sources/nope")[0], 404)

        # Refusals, each with its status and nothing stored.
        bad = [
            ({"name": "hr_pg", "kind": "postgres", "dsn": DSN_PG}, 409, "already_exists"),
            ({"name": "x", "kind": "oracle", "dsn": DSN_PG}, 400, "invalid_source_kind"),
            ({"name": "x", "kind": "postgres", "dsn": f"postgresql://u:{PW_PG}@[::1/db"}, 400,
             "invalid_request"),
            ({"name": "x", "kind": "postgres", "dsn": ""}, 400, "invalid_request"),
            ({"name": "Bad Name", "kind": "postgres", "dsn": DSN_PG}, 400, "invalid_request"),
            ({"name": "x", "kind": "postgres"}, 400, "invalid_request"),
            ({"name": "x", "kind": "postgres", "dsn": 5}, 400, "invalid_request"),
            ({"name": "x", "kind": "postgres", "dsn": DSN_PG, "password": PW_PG}, 400,
             "invalid_request"),
        ]
        for body, status, kind in bad:
            st, doc = self.call("POST", "/sources", body)
            self.assertEqual((st, doc["error"]), (status, kind), (body, doc))
        st, doc = self.call("GET", "/sources")
        self.assertEqual(len(doc["sources"]), 3)

        st, doc = self.call("DELETE", "/sources/people_kv")
        self.assertEqual((st, doc), (204, None))
        self.assertEqual(self.call("DELETE", "/sources/people_kv")[0], 404)
        self.assertEqual(self.call("GET", "/sources/people_kv")[0], 404)

        # The journal: created x3, deleted x1, with kind and location only.
        st, doc = self.call("GET", "/catalog/events")
        evs = [e for e in doc["events"] if e["action"].startswith("source.")]
        self.assertEqual([(e["action"], e["target"]) for e in evs],
                         [("source.created", "hr_pg"), ("source.created", "ats"),
                          ("source.created", "people_kv"), ("source.deleted", "people_kv")])
        self.assertEqual(evs[0]["details"], {"kind": "postgres",
                                             "location": "db.example:5433/hr"})
        self.assertEqual(evs[0]["actor"], "env-admin")

    def test_2_roles(self):
        for role in ("analyst", "agent", "legal"):
            k = self.key(f"src-{role}", role)
            for method, path, body in (("GET", "/sources", None), ("GET", "/sources/hr_pg", None),
                                       ("POST", "/sources",
                                        {"name": "mine", "kind": "postgres", "dsn": DSN_PG}),
                                       ("DELETE", "/sources/hr_pg", None)):
                st, doc = self.call(method, path, body, key=k)
                self.assertEqual(st, 403, (role, method, path, doc))
        self.assertEqual(self.call("GET", "/sources", key=None)[0], 401)
        self.assertEqual(self.call("GET", "/sources/hr_pg")[0], 200)  # untouched

    def test_3_cli(self):
        p = self.cli("sources", "add", "from_stdin", "--kind", "postgres", "--dsn", "-",
                     stdin=f"postgresql://loader:{PW_CLI}@127.0.0.1:5432/lake\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("source 'from_stdin' (postgres) at 127.0.0.1:5432/lake", p.stdout)
        self.assertIn("loader:***@", p.stdout)
        p = self.cli("sources", "add", "from_flag", "--kind", "mysql", "--dsn",
                     "mysql://u:cli-Fl4g-s3cret@h/db")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.cli("sources", "list")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("from_stdin", p.stdout)
        self.assertIn("h:3306/db", p.stdout)
        p = self.cli("--json", "sources", "show", "from_flag")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["source"]["dsn"], "mysql://u:***@h/db")
        p = self.cli("sources", "delete", "from_flag")
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "deleted the source"), p.stderr)
        p = self.cli("sources", "show", "from_flag")
        self.assertEqual(p.returncode, 1)
        self.assertIn("not_found", p.stderr)
        p = self.cli("sources", "add", "empty", "--kind", "postgres", "--dsn", "-", stdin="")
        self.assertEqual(p.returncode, 2, p.stderr)
        p = self.cli("sources", "add", "nokind", "--dsn", DSN_PG)
        self.assertEqual(p.returncode, 2, p.stderr)

    def test_4_files_modes_and_restart(self):
        secrets = os.path.join(self.data, "_secrets")
        store = os.path.join(secrets, "sources.json")
        self.assertEqual(stat.S_IMODE(os.stat(secrets).st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(os.stat(store).st_mode), 0o600)
        st, before = self.call("GET", "/sources")
        self.logs.append(self.server.read_log())
        self.server.stop()
        self.server = type(self).server = Server(self.data).start()
        st, after = self.call("GET", "/sources")
        self.assertEqual((st, after), (200, before))

    def test_5_the_password_is_nowhere_else(self):
        # Every response of this class, the server's log and every file of the data folder
        # but the store itself.
        for body in self.bodies:
            for pw in PASSWORDS:
                self.assertNotIn(pw.encode(), body)
        self.assertEqual(len(self.logs), 1)
        self.assertIn('"path":"/sources"', self.logs[0])  # the log of the adds is here
        for log in self.logs + [self.server.read_log()]:
            for pw in PASSWORDS:
                self.assertNotIn(pw, log)
        holders = files_holding(self.data, PASSWORDS)
        self.assertEqual(holders, [os.path.join("_secrets", "sources.json")])
        with open(os.path.join(self.data, "_secrets", "sources.json")) as f:
            doc = json.load(f)
        for s in doc["sources"]:
            del s["dsn"]
        self.assertFalse(any(pw in json.dumps(doc) for pw in PASSWORDS))


class DamagedStoreTests(unittest.TestCase):
    def test_a_damaged_store_stops_the_start(self):
        tmp = tempfile.mkdtemp(prefix="lh-e2e-")
        try:
            data = os.path.join(tmp, "data")
            s = Server(data).start()
            st, _, _ = s.request("POST", "/sources", {"name": "hr", "kind": "postgres",
                                                      "dsn": DSN_PG})
            self.assertEqual(st, 201)
            s.stop()
            store = os.path.join(data, "_secrets", "sources.json")
            with open(store) as f:
                text = f.read()
            cut = text[:text.index(PW_PG) + len(PW_PG)]  # torn right after the password
            with open(store, "w") as f:
                f.write(cut)
            env = dict(os.environ, LH_ADMIN_KEY=ADMIN_KEY)
            p = subprocess.run([harness.BIN, "serve", "--data", data, "--listen",
                                f"127.0.0.1:{harness.free_port()}"],
                               capture_output=True, text=True, timeout=120, env=env)
            self.assertNotEqual(p.returncode, 0)
            out = p.stdout + p.stderr
            self.assertIn("server.start_failed", out)
            self.assertIn("sources.json", out)
            self.assertNotIn(PW_PG, out)
            with open(store) as f:
                self.assertEqual(f.read(), cut)  # left for an operator to repair
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class StoreFaultTests(unittest.TestCase):
    """A write of the store that fails before its rename changes nothing (500, no file, no
    temp file, no event); one whose folder fsync fails after the rename is kept (201)."""

    def run_with_fault(self, spec):
        tmp = tempfile.mkdtemp(prefix="lh-e2e-")
        s = Server(os.path.join(tmp, "data"), env={"LH_FAULT": spec}).start()
        try:
            st, _, data = s.request("POST", "/sources", {"name": "hr", "kind": "postgres",
                                                         "dsn": DSN_PG})
            listed = json.loads(s.request("GET", "/sources")[2])["sources"]
            events = json.loads(s.request("GET", "/catalog/events")[2])["events"]
            secrets = sorted(os.listdir(os.path.join(tmp, "data", "_secrets")))
            st2, _, _ = s.request("POST", "/sources", {"name": "hr2", "kind": "postgres",
                                                       "dsn": DSN_PG})
            log = s.read_log()
            return st, data, listed, events, secrets, st2, log
        finally:
            s.stop()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_failed_rename_changes_nothing(self):
        st, data, listed, events, secrets, st2, log = self.run_with_fault("rename:1:EIO")
        self.assertEqual(st, 500, data)
        self.assertEqual(json.loads(data)["error"], "io_error")
        self.assertNotIn(PW_PG.encode(), data)
        self.assertEqual(listed, [])
        self.assertEqual([e for e in events if e["action"].startswith("source.")], [])
        self.assertNotIn("sources.json", secrets)
        self.assertFalse([f for f in secrets if "sources" in f], secrets)  # no temp file
        self.assertEqual(st2, 201)  # the next write goes through
        self.assertNotIn(PW_PG, log)

    def test_failed_folder_fsync_is_kept(self):
        st, data, listed, events, secrets, st2, log = self.run_with_fault("fsync_dir:1:EIO")
        self.assertEqual(st, 201, data)
        self.assertEqual([x["name"] for x in listed], ["hr"])
        self.assertEqual([e["action"] for e in events if e["action"].startswith("source.")],
                         ["source.created"])
        self.assertIn("sources.store_not_durable", log)
        self.assertNotIn(PW_PG, log)


if __name__ == "__main__":
    unittest.main()
