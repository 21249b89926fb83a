"""End-to-end test of POST /catalog/migrate-buckets (docs/GOVERNANCE.md, "Bucket
migration"): manifests hand-edited to legacy bucket spellings load at start, the
migration rewrites them to `primary` and reports what changed, queries keep working, a
second run changes nothing, the journal records buckets.migrated, and only admins may
call it."""
import json
import os
import shutil
import tempfile
import unittest

from harness import Server


class MigrateBuckets(unittest.TestCase):
    def test_legacy_manifests_are_normalised_once(self):
        tmp = tempfile.mkdtemp(prefix="lh-e2e-migrate-")
        try:
            data = os.path.join(tmp, "data")
            s = Server(data).start()
            legacy = {"m_missing": None, "m_empty": "", "m_default": "default",
                      "m_main": "main", "m_ok": "primary"}
            try:
                for name in legacy:
                    self.assertEqual(s.ingest(name, b"id,v\n1,a\n2,b\n")[0], 201)
                status, doc = s.json("POST", "/auth/keys", {"name": "ana", "role": "analyst"})
                analyst = doc["key"]
            finally:
                s.stop()
            for name, bucket in legacy.items():
                path = os.path.join(data, "_catalog", "datasets", name + ".json")
                with open(path) as f:
                    m = json.load(f)
                if bucket is None:
                    del m["bucket"]
                else:
                    m["bucket"] = bucket
                with open(path, "w") as f:
                    json.dump(m, f)
            s = Server(data).start()
            try:
                status, doc = s.json("POST", "/catalog/migrate-buckets", key=analyst)
                self.assertEqual(status, 403, doc)
                status, doc = s.json("POST", "/catalog/migrate-buckets")
                self.assertEqual(status, 200, doc)
                got = {c["dataset"]: c["from"] for c in doc["changed"]}
                self.assertEqual(got, {"m_missing": None, "m_empty": "", "m_default": "default",
                                       "m_main": "main"})
                self.assertEqual({c["to"] for c in doc["changed"]}, {"primary"})
                self.assertEqual(doc["unchanged"], 1)
                for name in legacy:
                    with open(os.path.join(data, "_catalog", "datasets", name + ".json")) as f:
                        self.assertEqual(json.load(f)["bucket"], "primary")
                    self.assertEqual(s.rows(f"SELECT count(*) FROM {name}"), [[2]])
                status, doc = s.json("POST", "/catalog/migrate-buckets")
                self.assertEqual(status, 200, doc)
                self.assertEqual(doc, {"changed": [], "unchanged": 5})
                status, doc = s.json("GET", "/catalog/events?limit=1000")
                mig = [e for e in doc["events"] if e["action"] == "buckets.migrated"]
                self.assertEqual(len(mig), 1)
                self.assertEqual(mig[0]["actor"], "env-admin")
                self.assertEqual(len(mig[0]["details"]["changed"]), 4)
            finally:
                s.stop()
            s = Server(data).start()  # and after a restart, still nothing to do
            try:
                status, doc = s.json("POST", "/catalog/migrate-buckets")
                self.assertEqual(doc["changed"], [])
            finally:
                s.stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
