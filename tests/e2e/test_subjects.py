"""End-to-end tests of subject manifests (issue 11 items 1 and 2; docs/AUDIT.md "Subjects"):
PUT/GET/list with roles, validation, the 409 for a second id of one storage key, the
subject_key_column metadata, and backfill (prefix stripped once, idempotent, as a job that
waits or not, and from the command line)."""
import json
import os
import subprocess
import time
import urllib.parse

import harness as h
from harness import ADMIN_KEY, Base

ROSTER = ("cid,name\n"
          "W-1,a\nW-W-1,b\nW-2,c\nX-3,d\nW-,e\na.b,f\na_b,g\nW-1,h\n")


def q(id_):
    return urllib.parse.quote(id_, safe="")


class Subjects(Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.server
        cls.keys = {}
        for name, role in (("ana", "analyst"), ("counsel", "legal")):
            status, doc = s.json("POST", "/auth/keys", {"name": name, "role": role})
            assert status == 201, doc
            cls.keys[role] = doc["key"]
        status, doc = s.ingest("roster", ROSTER.encode())
        assert status == 201, doc

    def test_01_put_get_list_and_roles(self):
        s = self.server
        status, doc = s.json("PUT", "/subjects/C-100", {"status": "Active", "x_note": {"k": 1}})
        self.assertEqual(status, 201, doc)
        m = doc["subject"]
        self.assertEqual(m["schema"], "subject_manifest.v1")
        self.assertEqual(m["candidate_id"], "C-100")
        self.assertEqual(m["consent"]["biometric"]["status"], "NeverCollected")
        self.assertIsNone(m["audit_log_chain_root"])
        self.assertEqual(m["x_note"], {"k": 1})  # unknown fields kept
        status, doc = s.json("PUT", "/subjects/C-100", {
            "status": "Withdrawn",
            "consent": {"general": {"status": "Withdrawn", "given_at": "2026-01-01T00:00:00Z",
                                    "withdrawn_at": "2026-03-01T10:00:00.123456789Z"}},
            "datasets": [{"dataset": "roster", "key_column": "cid", "key_value": "C-100"}]})
        self.assertEqual(status, 200, doc)
        status, doc = s.json("GET", "/subjects/C-100", key=self.keys["legal"])
        self.assertEqual(status, 200, doc)
        m = doc["subject"]
        self.assertEqual(m["status"], "Withdrawn")
        self.assertEqual(m["x_note"], {"k": 1})  # absent fields kept by an update
        self.assertEqual(m["consent"]["general"]["withdrawn_at"],
                         "2026-03-01T10:00:00.123456789Z")
        self.assertEqual(m["consent"]["biometric"]["status"], "NeverCollected")
        status, doc = s.json("PUT", "/subjects/C-101", {})
        self.assertEqual(status, 201, doc)
        status, doc = s.json("GET", "/subjects?status=Withdrawn", key=self.keys["legal"])
        self.assertEqual(status, 200, doc)
        ids = [x["candidate_id"] for x in doc["subjects"]]
        self.assertIn("C-100", ids)
        self.assertNotIn("C-101", ids)
        self.assertTrue(all(x["status"] == "Withdrawn" for x in doc["subjects"]))
        # status and paging together: every Withdrawn subject once, one per page
        seen, after = [], ""
        for _ in range(10):
            status, doc = s.json("GET", f"/subjects?status=Withdrawn&limit=1&after={after}")
            self.assertEqual(status, 200, doc)
            seen += [x["candidate_id"] for x in doc["subjects"]]
            self.assertTrue(all(x["status"] == "Withdrawn" for x in doc["subjects"]))
            if not doc["next_after"]:
                break
            after = q(doc["next_after"])
        self.assertEqual(seen, ["C-100"])
        status, doc = s.json("GET", "/subjects?status=Deleted")
        self.assertEqual(status, 400, doc)
        self.assertIn("Active", doc["message"])
        # roles: analysts neither read nor write subjects; legal reads but never writes
        for method, path, body in (("GET", "/subjects/C-100", None), ("GET", "/subjects", None),
                                   ("PUT", "/subjects/C-100", {})):
            status, _ = s.json(method, path, body, key=self.keys["analyst"])
            self.assertEqual(status, 403, (method, path))
        status, _ = s.json("PUT", "/subjects/C-100", {}, key=self.keys["legal"])
        self.assertEqual(status, 403)
        status, doc = s.json("GET", "/subjects/C-999")
        self.assertEqual(status, 404, doc)

    def test_02_validation_400s(self):
        s = self.server
        cases = [
            ({"status": "Gone"}, "'status' must be one of"),
            ({"consent": {"general": {"status": "Given"}}}, "given_at' is required"),
            ({"consent": {"biometric": {"status": "Given", "given_at": "2026-01-01T00:00:00Z"}}},
             "version_hash' is required"),
            ({"retention": {"biometric_until": "2030-01-01T00:00:00Z",
                            "last_interaction_at": "2026-01-01T00:00:00Z"}},
             "latest allowed is 2029-01-01T00:00:00Z"),
            ({"datasets": [{"dataset": "roster", "key_column": "nope", "key_value": "1"}]},
             "has no column 'nope'"),
            ({"datasets": [{"dataset": "ghost", "key_column": "cid", "key_value": "1"}]},
             "no dataset named 'ghost'"),
            ({"audit_log_chain_root": "00" * 32}, "set by the server"),
            ({"candidate_id": "someone-else"}, "differs from the id in the path"),
        ]
        for body, msg in cases:
            status, doc = s.json("PUT", "/subjects/V-1", body)
            self.assertEqual(status, 400, (body, doc))
            self.assertIn(msg, doc["message"], body)
        status, doc = s.json("GET", "/subjects/V-1")
        self.assertEqual(status, 404, "a refused PUT must create nothing")
        status, doc = s.request("PUT", "/subjects/V-1", b"[1,2]")[0], None
        self.assertEqual(status, 400)
        status, doc = s.json("PUT", "/subjects/" + q("bad\x01id"), {})
        self.assertEqual(status, 400, doc)

    def test_03_collision_409_never_merged(self):
        s = self.server
        # ids that a lossy sanitiser would merge get keys of their own
        for id_ in ("k.1", "k/1", "k_1", "K 1"):
            status, doc = s.json("PUT", "/subjects/" + q(id_), {"status": "Erased"})
            self.assertEqual(status, 201, (id_, doc))
            status, doc = s.json("GET", "/subjects/" + q(id_))
            self.assertEqual(doc["subject"]["candidate_id"], id_)
        # a manifest under an id's key that names another subject (a hand edit, another
        # sanitiser) is refused, never merged into nor read as that id's
        subjects = os.path.join(self.data, "_catalog", "subjects")
        foreign = {"schema": "subject_manifest.v1", "candidate_id": "someone-else",
                   "status": "Active"}
        with open(os.path.join(subjects, "k-2.json"), "w") as f:
            json.dump(foreign, f)
        status, doc = s.json("PUT", "/subjects/k-2", {"status": "Withdrawn"})
        self.assertEqual(status, 409, doc)
        self.assertEqual(doc["error"], "subject_key_collision")
        self.assertIn("someone-else", doc["message"])
        status, doc = s.json("GET", "/subjects/k-2")
        self.assertEqual(status, 404, doc)
        self.assertEqual(json.load(open(os.path.join(subjects, "k-2.json"))), foreign)
        os.unlink(os.path.join(subjects, "k-2.json"))

    def test_04_subject_key_column_metadata(self):
        s = self.server
        path = "/catalog/datasets/by-name/roster/metadata"
        status, doc = s.json("PATCH", path, {"subject_key_column": "nope"})
        self.assertEqual(status, 400, doc)
        self.assertIn("has no column 'nope'", doc["message"])
        status, doc = s.json("PATCH", path, {"subject_key_column": 5})
        self.assertEqual(status, 400, doc)
        status, doc = s.json("PATCH", path, {"subject_key_column": "CID"})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["dataset"]["subject_key_column"], "cid")  # the real name
        # kept across an ingest, like every human edit
        status, doc = s.ingest("roster", ROSTER.encode(), mode="replace")
        self.assertIn(status, (200, 201), doc)
        self.assertEqual(doc["dataset"]["subject_key_column"], "cid")
        status, doc = s.json("GET", "/catalog/datasets/by-name/roster")
        self.assertEqual(doc["dataset"]["subject_key_column"], "cid")

    def test_05_backfill_strips_once_and_is_idempotent(self):
        s = self.server
        body = {"dataset": "roster", "id_column": "cid", "strip_prefix": "W-"}
        status, doc = s.json("POST", "/subjects/backfill", body)
        self.assertEqual(status, 200, doc)
        # W-1 → 1, W-W-1 → W-1 (once, not 1), W-2 → 2, X-3 → X-3, a.b, a_b; W- → empty
        # (refused)
        self.assertEqual(doc["distinct_values"], 7)
        self.assertEqual(doc["created"], 6)
        self.assertEqual(doc["existing"], 0)
        self.assertEqual(doc["refused_total"], 1)
        self.assertEqual([r["value"] for r in doc["refused"]], ["W-"])
        self.assertIn("1 to", doc["refused"][0]["reason"])
        status, doc = s.json("GET", "/subjects/W-1")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["subject"]["datasets"],
                         [{"dataset": "roster", "key_column": "cid", "key_value": "W-W-1"}])
        status, doc = s.json("GET", "/subjects/1")
        self.assertEqual(doc["subject"]["datasets"][0]["key_value"], "W-1")
        status, _ = s.json("GET", "/subjects/" + q("W-W-1"))
        self.assertEqual(status, 404, "the prefix must not be kept")
        before = {f: open(os.path.join(self.data, "_catalog", "subjects", f), "rb").read()
                  for f in os.listdir(os.path.join(self.data, "_catalog", "subjects"))}
        # again: nothing new, nothing rewritten
        status, doc = s.json("POST", "/subjects/backfill", body)
        self.assertEqual(status, 200, doc)
        self.assertEqual((doc["created"], doc["existing"], doc["datasets_added"]), (0, 6, 0))
        after = {f: open(os.path.join(self.data, "_catalog", "subjects", f), "rb").read()
                 for f in os.listdir(os.path.join(self.data, "_catalog", "subjects"))}
        self.assertEqual(before, after)
        # the journal: one event per backfill, with the counts
        status, doc = s.json("GET", "/catalog/events?limit=1000")
        acts = [e for e in doc["events"] if e["action"] == "subjects.backfilled"]
        self.assertEqual(len(acts), 2)
        self.assertEqual(acts[0]["details"]["created"], 6)
        created = [e["target"] for e in doc["events"] if e["action"] == "subject.created"]
        self.assertIn("C-100", created)

    def test_06_backfill_without_wait_and_by_key_column(self):
        s = self.server
        # no id_column: the dataset's subject_key_column (test_04) is used; no prefix
        status, hdrs, data = s.request("POST", "/subjects/backfill",
                                       {"dataset": "roster", "wait": False})
        doc = json.loads(data)
        self.assertEqual(status, 202, doc)
        self.assertEqual(hdrs.get("X-Lakehouse-Job"), doc["job"])
        deadline = time.time() + 60
        while True:
            status, jd = s.json("GET", f"/jobs/{doc['job']}")
            if jd["job"]["state"] in ("succeeded", "failed") or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(jd["job"]["state"], "succeeded", jd)
        res = jd["job"]["result"]
        self.assertEqual(res["id_column"], "cid")
        self.assertIsNone(res["strip_prefix"])
        # unstripped: W-1, X-3, a.b, a_b exist (W-1 gains a dataset entry); W-W-1, W-2 and
        # W- are new
        self.assertEqual(res["created"], 3, res)
        self.assertEqual(res["existing"], 4, res)
        self.assertEqual(res["datasets_added"], 1, res)
        status, doc = s.json("GET", "/subjects/W-1")
        self.assertIn({"dataset": "roster", "key_column": "cid", "key_value": "W-1"},
                      doc["subject"]["datasets"])
        status, doc = s.json("POST", "/subjects/backfill", {"dataset": "roster", "bogus": 1})
        self.assertEqual(status, 400, doc)
        status, doc = s.json("POST", "/subjects/backfill", {"dataset": "nope"})
        self.assertEqual(status, 404, doc)

    def test_07_backfill_from_the_command_line(self):
        s = self.server
        status, doc = s.ingest("more", b"person\nQ-71\nQ-72\nQ-71\n71\n")
        self.assertEqual(status, 201, doc)
        env = dict(os.environ, LH_SERVER=s.url, LH_KEY=ADMIN_KEY)
        args = [h.BIN, "subjects", "backfill", "more", "--id-column", "person",
                "--strip-prefix", "Q-"]
        r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("created 2, existing 0", r.stdout)
        r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        self.assertIn("created 0, existing 2", r.stdout)
        status, doc = s.json("GET", "/subjects/72")
        self.assertEqual(doc["subject"]["datasets"][0]["key_value"], "Q-72")
        # "71" and "Q-71" are one subject: one manifest, both raw values recorded
        status, doc = s.json("GET", "/subjects/71")
        self.assertEqual(sorted(d["key_value"] for d in doc["subject"]["datasets"]),
                         ["71", "Q-71"])
