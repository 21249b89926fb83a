"""End-to-end tests of the legal audit endpoint (issue 11 item 6; docs/AUDIT.md "Legal
endpoint"): every status code (503 for a token file that is unset, missing, empty or
short; 401 for a missing or wrong header; 200 with the token and with a legal key; 403 for
an analyst key; 404 for an unknown subject; 400 for a bad window), the response's shape,
a manifest whose chain root the log does not back flagged as tampered, and the token never
in the server's log."""
import hashlib
import hmac
import json
import os
import shutil
import tempfile
import unittest

from harness import ADMIN_KEY, Server

TOKEN = "legal-token-" + "t" * 40  # 52 bytes
AUDIT_KEY = b"audit-key-for-the-legal-e2e-test-0123456789"
HDR = "X-Lakehouse-Legal-Token"


def chain(candidate_id, n, key=AUDIT_KEY):
    """n audit rows of a subject, signed by an independent implementation: RFC 8785 of
    these rows (ASCII keys, strings, arrays) is sorted keys and no spaces; row_hmac is
    HMAC-SHA256 over it (docs/AUDIT.md)."""
    rows, prev = [], "GENESIS"
    for i in range(n):
        row = {"schema": "subject_audit_row.v1", "ts": f"2026-05-0{i + 1}T12:00:00.000000001Z",
               "candidate_id": candidate_id,
               "accessor": {"kind": "agent", "daemon": "gateway", "purpose": "screening <&>",
                            "trace_id": f"t-{i}"},
               "fields_accessed": ["candidate_id", "email"], "result": "success",
               "prev_chain_hash": prev}
        canon = json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        row["row_hmac"] = prev = hmac.new(key, canon.encode(), hashlib.sha256).hexdigest()
        rows.append(row)
    return rows


def write_log(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n")


class LegalTokenFile(unittest.TestCase):
    """One server per token-file state: each must answer 503 with the reason."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lh-e2e-legal-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check_503(self, env, reason):
        s = Server(os.path.join(self.tmp, "data"), env).start()
        try:
            for path in ("/audit/health", "/audit/subject/X-1"):
                status, doc = s.json("GET", path, headers={HDR: TOKEN}, key=None)
                self.assertEqual(status, 503, (path, doc))
                self.assertIn(reason, doc["message"])
                self.assertIn("LH_LEGAL_AUDIT_TOKEN_FILE", doc["message"])
            # a legal key does not need the token file
            status, doc = s.json("POST", "/auth/keys", {"name": "counsel", "role": "legal"})
            status, doc = s.json("GET", "/audit/health", key=doc["key"])
            self.assertEqual(status, 200, doc)
            self.assertFalse(doc["legal_token"]["usable"])
        finally:
            log = s.read_log()
            s.stop()
        self.assertNotIn(TOKEN, log)

    def test_token_fine_but_no_audit_key(self):
        """Without LH_SUBJECT_AUDIT_KEY nothing can be verified: 503, never an attestation."""
        path = os.path.join(self.tmp, "token")
        open(path, "w").write(TOKEN)
        s = Server(os.path.join(self.tmp, "data"), {"LH_LEGAL_AUDIT_TOKEN_FILE": path}).start()
        try:
            status, doc = s.json("PUT", "/subjects/X-1", {})
            self.assertEqual(status, 201, doc)
            status, doc = s.json("GET", "/audit/subject/X-1", headers={HDR: TOKEN}, key=None)
            self.assertEqual(status, 503, doc)
            self.assertEqual(doc["error"], "audit_unconfigured")
            status, doc = s.json("GET", "/audit/health", headers={HDR: TOKEN}, key=None)
            self.assertEqual(status, 200, doc)
            self.assertTrue(doc["legal_token"]["usable"])
            self.assertFalse(doc["audit_chain"]["configured"])
        finally:
            log = s.read_log()
            s.stop()
        self.assertNotIn(TOKEN, log)

    def test_unset(self):
        self.check_503({}, "not configured")

    def test_missing_file(self):
        self.check_503({"LH_LEGAL_AUDIT_TOKEN_FILE": os.path.join(self.tmp, "nope")},
                       "missing or unreadable")

    def test_empty_file(self):
        path = os.path.join(self.tmp, "token")
        open(path, "w").write("\n")
        self.check_503({"LH_LEGAL_AUDIT_TOKEN_FILE": path}, "is empty")

    def test_short_file(self):
        path = os.path.join(self.tmp, "token")
        open(path, "w").write("s" * 31 + "\n")
        self.check_503({"LH_LEGAL_AUDIT_TOKEN_FILE": path}, "is 31 bytes; at least 32")


class Legal(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="lh-e2e-legal-")
        cls.data = os.path.join(cls.tmp, "data")
        cls.token_file = os.path.join(cls.tmp, "legal.token")
        with open(cls.token_file, "w") as f:
            f.write(TOKEN + "\n")  # the trailing newline is not part of the token
        cls.audit_key_file = os.path.join(cls.tmp, "audit.key")
        with open(cls.audit_key_file, "wb") as f:
            f.write(AUDIT_KEY)
        cls.env = {"LH_LEGAL_AUDIT_TOKEN_FILE": cls.token_file,
                   "LH_SUBJECT_AUDIT_KEY": cls.audit_key_file}
        cls.server = Server(cls.data, cls.env).start()
        s = cls.server
        cls.keys = {}
        for name, role in (("counsel", "legal"), ("ana", "analyst"), ("bot", "agent")):
            status, doc = s.json("POST", "/auth/keys", {"name": name, "role": role})
            assert status == 201, doc
            cls.keys[role] = doc["key"]
        status, doc = s.ingest("people", b"candidate_id,email\nL-1,a@example.org\n")
        assert status == 201, doc
        status, doc = s.json("PUT", "/subjects/L-1", {"datasets": [
            {"dataset": "people", "key_column": "candidate_id", "key_value": "L-1"}]})
        assert status == 201, doc
        status, doc = s.ingest("other", b"id,x\n1,2\n")
        assert status == 201, doc
        for name, base in (("people_safe", "people"), ("other_safe", "other")):
            status, doc = s.json("POST", "/catalog/views", {
                "name": name, "base_dataset": base,
                "columns": ["candidate_id" if base == "people" else "id"]})
            assert status == 201, doc

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.server:
                log = cls.server.read_log()
                cls.server.stop()
                assert TOKEN not in log, "the legal token reached the server's log"
                assert AUDIT_KEY.decode() not in log, "the audit key reached the server's log"
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def restart(self, between=None):
        """Stops the server (checking its log holds no token), runs between(), starts it."""
        log = self.server.read_log()
        self.assertNotIn(TOKEN, log)
        self.assertNotIn(AUDIT_KEY.decode(), log)
        self.server.stop()
        if between:
            between()
        self.server.start()

    def get(self, path, token=None, key=None):
        headers = {HDR: token} if token is not None else {}
        return self.server.json("GET", path, headers=headers, key=key)

    def test_01_status_codes(self):
        for path in ("/audit/health", "/audit/subject/L-1"):
            status, doc = self.get(path)
            self.assertEqual(status, 401, doc)
            self.assertEqual(doc["error"], "legal_token_missing")
            for wrong in ("wrong", TOKEN[:-1], TOKEN + "x", TOKEN.upper(), "x" + TOKEN[1:]):
                status, doc = self.get(path, token=wrong)
                self.assertEqual(status, 401, (wrong, doc))
                self.assertEqual(doc["error"], "legal_token_invalid")
                self.assertNotIn(TOKEN, json.dumps(doc))
            status, doc = self.get(path, token=TOKEN)
            self.assertEqual(status, 200, doc)
            status, doc = self.get(path, key=self.keys["legal"])
            self.assertEqual(status, 200, doc)
            status, doc = self.get(path, key=ADMIN_KEY)
            self.assertEqual(status, 200, doc)
            for role in ("analyst", "agent"):
                status, doc = self.get(path, key=self.keys[role])
                self.assertEqual(status, 403, (role, doc))
            # an unknown bearer key is no credential: the token is still required
            status, doc = self.get(path, key="lh_" + "0" * 64)
            self.assertEqual(status, 401, doc)
        status, doc = self.get("/audit/subject/NOBODY", token=TOKEN)
        self.assertEqual(status, 404, doc)
        status, doc = self.get("/audit/subject/L-1?from=yesterday", token=TOKEN)
        self.assertEqual(status, 400, doc)
        status, doc = self.get("/audit/subject/L-1?from=2026-05-02T00:00:00Z"
                               "&to=2026-05-01T00:00:00Z", token=TOKEN)
        self.assertEqual(status, 400, doc)
        status, doc = self.get("/audit/health", token=TOKEN)
        self.assertTrue(doc["legal_token"]["usable"])

    def test_02_response_shape(self):
        status, doc = self.get("/audit/subject/L-1?from=2026-01-01T00:00:00Z", token=TOKEN)
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["schema"], "subject_audit_response.v1")
        # reserved for the signed form of the next issue
        self.assertIn("signature", doc)
        self.assertIsNone(doc["signature"])
        self.assertIn("inclusion_proof", doc)
        r = doc["response"]
        self.assertEqual(r["candidate_id"], "L-1")
        self.assertEqual(r["manifest"]["candidate_id"], "L-1")
        self.assertEqual(r["window"], {"from": "2026-01-01T00:00:00Z", "to": None})
        self.assertEqual(r["datasets_referenced"], ["people"])
        # the views over the subject's datasets, not the others
        self.assertEqual([v["name"] for v in r["safe_views_available"]], ["people_safe"])
        self.assertEqual(r["safe_views_available"][0]["columns"], ["candidate_id"])
        self.assertEqual(r["chain_rows_total"], 0)
        self.assertEqual(r["rows"], [])
        self.assertTrue(r["chain_verified"])
        self.assertFalse(r["tampering"]["detected"])
        self.assertTrue(r["completeness"]["checked"])
        self.assertEqual(r["completeness"]["log_object"], "_catalog/subjects/L-1.audit.jsonl")

    def test_03_manifest_expects_a_chain_the_log_lacks(self):
        """The manifest mirrors a chain root, but the log is missing, then empty: flagged."""
        s = self.server
        status, _ = s.json("PUT", "/subjects/T-1", {})
        self.assertEqual(status, 201)
        subjects = os.path.join(self.data, "_catalog", "subjects")

        def expect_root():
            mpath = os.path.join(subjects, "T-1.json")
            m = json.load(open(mpath))
            m["audit_log_chain_root"] = "ab" * 32
            m["audit_rows"] = 2
            with open(mpath, "w") as f:
                json.dump(m, f)

        self.restart(expect_root)
        status, doc = self.get("/audit/subject/T-1", token=TOKEN)
        self.assertEqual(status, 200, doc)
        t = doc["response"]["tampering"]
        self.assertTrue(t["detected"], doc)
        self.assertEqual([f["flag"] for f in t["flags"]], ["log_missing"])
        self.assertFalse(doc["response"]["completeness"]["window_complete"])
        self.restart(lambda: open(os.path.join(subjects, "T-1.audit.jsonl"), "w").close())
        status, doc = self.get("/audit/subject/T-1", token=TOKEN)
        flags = [f["flag"] for f in doc["response"]["tampering"]["flags"]]
        self.assertIn("log_empty", flags, doc)

    def test_04_verified_chain_window_and_tampering_located(self):
        """A chain signed by an independent HMAC is verified and windowed; a changed byte
        in a middle row, a deleted row, two rows swapped and a cut tail are each flagged
        with the first bad row."""
        s = self.server
        status, _ = s.json("PUT", "/subjects/V-1", {})
        self.assertEqual(status, 201)
        subjects = os.path.join(self.data, "_catalog", "subjects")
        log = os.path.join(subjects, "V-1.audit.jsonl")
        rows = chain("V-1", 4)

        def install(lines, root):
            def go():
                write_log(log, lines)
                mpath = os.path.join(subjects, "V-1.json")
                m = json.load(open(mpath))
                m["audit_log_chain_root"] = root
                with open(mpath, "w") as f:
                    json.dump(m, f)
            self.restart(go)

        install(rows, rows[-1]["row_hmac"])
        status, doc = self.get("/audit/subject/V-1?from=2026-05-02T00:00:00Z"
                               "&to=2026-05-03T23:00:00Z", token=TOKEN)
        self.assertEqual(status, 200, doc)
        r = doc["response"]
        self.assertTrue(r["chain_verified"], r)
        self.assertEqual(r["chain_rows_total"], 4)
        self.assertEqual(r["chain_root"], rows[-1]["row_hmac"])
        self.assertEqual(r["rows"], rows[1:3])  # the window, rows as stored
        self.assertFalse(r["tampering"]["detected"])
        self.assertTrue(r["completeness"]["window_complete"])

        def flagged(lines, root):
            install(lines, root)
            status, doc = self.get("/audit/subject/V-1", token=TOKEN)
            self.assertEqual(status, 200, doc)
            r = doc["response"]
            self.assertFalse(r["chain_verified"])
            self.assertTrue(r["tampering"]["detected"])
            self.assertFalse(r["completeness"]["window_complete"])
            f = r["tampering"]["flags"][0]
            return f["flag"], f["row"]

        changed = [dict(x) for x in rows]
        changed[1]["fields_accessed"] = ["candidate_id"]  # a byte changed in row 2
        self.assertEqual(flagged(changed, rows[-1]["row_hmac"]), ("chain_broken", 2))
        self.assertEqual(flagged(rows[:1] + rows[2:], rows[-1]["row_hmac"]),
                         ("chain_broken", 2))  # row 2 deleted
        self.assertEqual(flagged([rows[0], rows[2], rows[1], rows[3]], rows[-1]["row_hmac"]),
                         ("chain_broken", 2))  # rows 2 and 3 swapped
        self.assertEqual(flagged(rows[:3], rows[-1]["row_hmac"]),
                         ("missing_rows", 4))  # the tail cut: the root is nowhere
        # a manifest behind the log (crash between append and mirror) is not tampering
        install(rows, rows[1]["row_hmac"])
        status, doc = self.get("/audit/subject/V-1", token=TOKEN)
        r = doc["response"]
        self.assertTrue(r["chain_verified"], r)
        self.assertEqual(r["manifest_lag"], 2)
        self.assertFalse(r["tampering"]["detected"])
        self.assertEqual(self.get("/audit/health", token=TOKEN)[1]["audit_chain"]["configured"],
                         True)
