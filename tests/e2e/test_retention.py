"""End-to-end tests of `lakehouse retention-sweep` (issue 12 item 4; docs/AUDIT.md
"Retention sweep"): subjects of every status and both clocks written through the real
server (the biometric one capped at 3 years after the last interaction), the dry run
printing findings to stderr and writing nothing, --apply writing one 0600 report whose
second run is byte-identical, manifests never changed, photo files found under the
storage root, and the report never taken for a subject or an audit log afterwards."""
import glob
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

import harness
from harness import Server

TOKEN = "retention-legal-token-" + "r" * 40
AUDIT_KEY = b"audit-key-for-the-retention-e2e-test-01234567"
AS_OF = "2030-06-01T00:00:00Z"
JPEG = bytes([0xFF, 0xD8, 0xFF, 0xE0]) + b"\x00" * 60


def given(last=None, until=None, general=None, status=None, biometric="Given"):
    bio = {"status": biometric}
    if biometric != "NeverCollected":
        bio.update({"version_hash": "sha256:v1", "given_at": "2026-01-01T00:00:00Z"})
    if biometric == "Withdrawn":
        bio["withdrawn_at"] = "2026-02-01T00:00:00Z"
    body = {"consent": {"general": {"status": "Given", "given_at": "2026-01-01T00:00:00Z"},
                        "biometric": bio},
            "retention": {"general_pii_until": general, "biometric_until": until,
                          "last_interaction_at": last}}
    if status:
        body["status"] = status
    return body


# id → (manifest, clocks expected due at AS_OF; None: no line at all)
SUBJECTS = {
    "G-past": (given(general="2030-01-01T00:00:00Z", biometric="NeverCollected"), ["general_pii"]),
    "G-future": (given(general="2031-01-01T00:00:00Z", biometric="NeverCollected"), None),
    "B-cap": (given(last="2027-01-15T00:00:00Z"), ["biometric"]),
    "B-own": (given(last="2028-01-01T00:00:00Z", until="2030-03-01T00:00:00Z"), ["biometric"]),
    "B-future": (given(last="2028-01-01T00:00:00Z", until="2030-12-01T00:00:00Z"), None),
    "B-never": (given(general="2031-01-01T00:00:00Z", biometric="NeverCollected",
                      last="2020-01-01T00:00:00Z"), None),
    "Both": (given(last="2026-06-01T00:00:00Z", until="2029-01-01T00:00:00Z",
                   general="2029-06-01T00:00:00Z", status="Withdrawn", biometric="Withdrawn"),
             ["general_pii", "biometric"]),
    "X-erased": (given(general="2020-01-01T00:00:00Z", status="Erased"), None),
    "X-expired": (given(last="2026-01-01T00:00:00Z", general="2020-01-01T00:00:00Z",
                        status="RetentionExpired"), None),
}


def manifests(data):
    out = {}
    for p in sorted(glob.glob(os.path.join(data, "_catalog", "subjects", "*.json"))):
        with open(p, "rb") as f:
            out[os.path.basename(p)] = hashlib.sha256(f.read()).hexdigest()
    return out


class RetentionSweep(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="lh-e2e-retention-")
        cls.data = os.path.join(cls.tmp, "data")
        cls.root = os.path.join(cls.tmp, "photos")
        token_file = os.path.join(cls.tmp, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN)
        cls.key_file = os.path.join(cls.tmp, "audit.key")
        with open(cls.key_file, "wb") as f:
            f.write(AUDIT_KEY)
        cls.server = Server(cls.data, {"LH_LEGAL_AUDIT_TOKEN_FILE": token_file,
                                       "LH_SUBJECT_AUDIT_KEY": cls.key_file,
                                       "LH_BIOMETRIC_STORAGE_ROOT": cls.root}).start()
        s = cls.server
        # B-cap and Both get a photo while their consent is Given and they are Active
        for cid, (body, _) in SUBJECTS.items():
            if cid == "Both":  # Active with consent first, withdrawn after its photo
                body = given(last="2026-06-01T00:00:00Z", until="2029-01-01T00:00:00Z",
                             general="2029-06-01T00:00:00Z")
            status, doc = s.json("PUT", f"/subjects/{cid}", body)
            assert status == 201, (cid, doc)
        cls.photos = {}
        for cid in ("B-cap", "Both"):
            status, doc = s.json("POST", f"/biometric/subject/{cid}/photo", JPEG,
                                 {"X-Lakehouse-Legal-Token": TOKEN, "Content-Type": "image/jpeg"},
                                 key=None)
            assert status == 201, doc
            cls.photos[cid] = doc["biometric_collection"]["data_path"]
        status, doc = s.json("PUT", "/subjects/Both", SUBJECTS["Both"][0])
        assert status == 200, doc
        # the audited calls above move chain roots, which the server mirrors into the
        # manifests after answering: the tests compare manifest bytes, so wait for that
        harness.wait_chain_roots(cls.data)

    @classmethod
    def tearDownClass(cls):
        try:
            log = cls.server.read_log()
            cls.server.stop()
            assert TOKEN not in log
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def sweep(self, *args, env=None):
        e = dict(os.environ)
        e.pop("LH_BIOMETRIC_STORAGE_ROOT", None)
        e.update(env or {})
        return subprocess.run([harness.BIN, "retention-sweep", "--data", self.data, *args],
                              capture_output=True, text=True, env=e, timeout=120)

    def report_path(self, date="2030-06-01"):
        return os.path.join(self.data, "_catalog", "subjects", f"_retention_sweep_{date}.jsonl")

    def test_01_dry_run_writes_nothing(self):
        before = manifests(self.data)
        p = self.sweep("--as-of", AS_OF)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "")
        self.assertIn("dry run", p.stderr)
        self.assertIn("G-past (Active): general_pii due since 2030-01-01T00:00:00Z", p.stderr)
        self.assertIn("B-cap (Active): biometric due since 2030-01-15T00:00:00Z "
                      "(bipa_3_years_after_last_interaction)", p.stderr)
        self.assertIn("7 subjects checked, 4 due; skipped 1 Erased, 1 RetentionExpired",
                      p.stderr)
        for cid in ("G-future", "B-future", "B-never", "X-erased", "X-expired"):
            self.assertNotIn(f"{cid} (", p.stderr)
        self.assertFalse(glob.glob(os.path.join(self.data, "_catalog", "subjects", "_ret*")))
        self.assertEqual(manifests(self.data), before)

    def test_02_apply_writes_one_report_idempotently(self):
        before = manifests(self.data)
        p = self.sweep("--as-of", AS_OF, "--apply")
        self.assertEqual(p.returncode, 0, p.stderr)
        path = self.report_path()
        self.assertEqual(p.stdout.strip(), f"wrote {path}")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path, "rb") as f:
            first = f.read()
        lines = [json.loads(x) for x in first.decode().splitlines()]
        self.assertEqual(lines[0]["kind"], "summary")
        self.assertEqual(lines[0]["schema"], "retention_sweep.v1")
        self.assertEqual(lines[0]["skipped"], {"Erased": 1, "RetentionExpired": 1})
        self.assertEqual(lines[0]["due"], {"general_pii": 2, "biometric": 3})
        due = {x["candidate_id"]: [d["clock"] for d in x["due"]] for x in lines[1:]}
        for cid, (_, want) in SUBJECTS.items():
            self.assertEqual(due.get(cid), want, cid)
        both = next(x for x in lines[1:] if x["candidate_id"] == "Both")
        self.assertEqual(both["status"], "Withdrawn")
        self.assertEqual(both["biometric_consent"], "Withdrawn")
        self.assertEqual(both["biometric_collection"]["data_path"], self.photos["Both"])
        # a second run the same day: the same bytes; the manifests never changed
        p = self.sweep("--as-of", AS_OF, "--apply")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), first)
        self.assertEqual(manifests(self.data), before)
        # --json prints the same lines on stdout
        p = self.sweep("--as-of", AS_OF, "--json")
        self.assertEqual(p.stdout.encode(), first)

    def test_03_photo_files_under_the_storage_root(self):
        p = self.sweep("--as-of", AS_OF, "--json", env={"LH_BIOMETRIC_STORAGE_ROOT": self.root})
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = [json.loads(x) for x in p.stdout.splitlines()]
        self.assertTrue(lines[0]["photo_files_checked"])
        by_id = {x["candidate_id"]: x for x in lines[1:]}
        self.assertEqual(by_id["B-cap"]["photo_files"], [self.photos["B-cap"]])
        self.assertEqual(by_id["B-cap"]["warnings"], [])
        # a stray file the manifest does not name is reported (flag beats the variable)
        stray = os.path.join(self.root, "B-cap", "20200101T000000Z_deadbeef.jpg")
        with open(stray, "wb") as f:
            f.write(JPEG)
        try:
            p = self.sweep("--as-of", AS_OF, "--json", "--storage-root", self.root)
            lines = [json.loads(x) for x in p.stdout.splitlines()]
            bcap = next(x for x in lines[1:] if x["candidate_id"] == "B-cap")
            self.assertEqual(bcap["warnings"],
                             ["unreferenced_photo_file:B-cap/20200101T000000Z_deadbeef.jpg"])
            self.assertIn("2 photo files under the storage root", p.stderr)
        finally:
            os.unlink(stray)

    def test_04_usage_and_defaults(self):
        p = self.sweep("--as-of", "next tuesday")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("RFC 3339", p.stderr)
        p = subprocess.run([harness.BIN, "retention-sweep", "--data",
                            os.path.join(self.tmp, "nope")], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no data folder", p.stderr)
        # no --as-of: the last second of today, so every run of the day agrees
        p = self.sweep("--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        summary = json.loads(p.stdout.splitlines()[0])
        self.assertTrue(summary["as_of"].endswith("T23:59:59Z"), summary)

    def test_05_report_is_no_subject_nor_audit_log(self):
        self.assertEqual(self.sweep("--as-of", AS_OF, "--apply").returncode, 0)
        status, doc = self.server.json("GET", "/subjects")
        self.assertEqual(status, 200, doc)
        self.assertEqual(sorted(m["candidate_id"] for m in doc["subjects"]), sorted(SUBJECTS))
        env = dict(os.environ, LH_SUBJECT_AUDIT_KEY=self.key_file)
        p = subprocess.run([harness.BIN, "audit", "verify", "--all", "--data", self.data],
                           capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("2 subject(s) checked, 0 not verified", p.stdout)


if __name__ == "__main__":
    unittest.main()
