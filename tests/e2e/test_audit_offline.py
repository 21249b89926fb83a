"""End-to-end tests of the verifiable audit log (issue 12 items 1, 2, 5; docs/AUDIT.md
"Verifiable log"), checked by an independent verifier written here with python3-nacl and
hashlib, never the product's code: checkpoints verify as C2SP signed notes (key id,
Ed25519), consistency proofs between checkpoints of sizes 1, 2, 7, 8, 9 and 1,000 verify
(RFC 9162 §2.1.4.2 written below), inclusion proofs lead to the checkpoint's root, legal
responses are signed over their RFC 8785 bytes; `lakehouse audit verify-offline` accepts a
good response (also one whose rows the server's access auditing wrote) and detects a cut
tail, a rewritten middle row, a replaced log and an edited response; the endpoints' statuses (401, 400, 404, 503 without a signing key, public
pubkey); a signing key file too open or of the wrong size stops the start; neither the
signing key nor the legal token ever reaches the server's log."""
import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import unittest

try:
    import nacl.exceptions
    import nacl.signing
except ImportError:  # python3 on PATH is not Debian's (pyenv, venv): use the package
    # scripts/setup.sh installs, python3-nacl, from Debian's dist-packages
    import sys
    sys.path.append("/usr/lib/python3/dist-packages")
    import nacl.exceptions
    import nacl.signing

import harness
from harness import Server

TOKEN = "legal-token-" + "o" * 40
AUDIT_KEY = b"audit-key-for-the-offline-e2e-test-0123456789"
HDR = {"X-Lakehouse-Legal-Token": TOKEN}
ORIGIN = "lakehouse.test/e2e-log"
SIZES = (1, 2, 7, 8, 9, 1000)


# ---------------------------------------------------------------- independent verifier

def jcs(v):
    """RFC 8785 for the values these documents hold (strings, integers, booleans, null,
    arrays, objects): keys sorted by UTF-16 code units, no whitespace, only '"', '\\' and
    controls escaped."""
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + jcs(v[k])
                              for k in keys) + "}"
    if isinstance(v, list):
        return "[" + ",".join(jcs(x) for x in v) + "]"
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    raise ValueError(f"no JCS form for {v!r} in this verifier")


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves):
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(index, size, leaf, path, root):
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_hash, second_hash, proof):
    """RFC 9162 §2.1.4.2."""
    if first == second:
        return not proof and first_hash == second_hash
    if first == 0 or first > second:
        return False
    if first & (first - 1) == 0:
        proof = [first_hash] + list(proof)
    if not proof:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_hash and sr == second_hash


def key_id(name, pub):
    return hashlib.sha256(name.encode() + b"\n\x01" + pub).digest()[:4]


def verify_note(note, name, pub):
    """A C2SP signed note: the text before the blank line (its newline included) signed by
    a line '— <name> <base64(key id ‖ signature)>'. Returns (origin, size, root)."""
    text, sep, sigs = note.partition("\n\n")
    assert sep, "no blank line"
    body = (text + "\n").encode()
    vk = nacl.signing.VerifyKey(pub)
    ok = False
    for line in sigs.split("\n"):
        if not line:
            continue
        assert line.startswith("\u2014 "), line
        who, b64 = line[2:].rsplit(" ", 1)
        raw = base64.b64decode(b64, validate=True)
        if who == name and raw[:4] == key_id(name, pub):
            vk.verify(body, raw[4:])  # raises BadSignatureError
            ok = True
    assert ok, "no signature line of this key"
    origin, size, root = text.split("\n")[:3]
    return origin, int(size), base64.b64decode(root, validate=True)


def check_response(doc, name, pub):
    """The independent offline check; returns the list of problems found (empty: good)."""
    problems = []
    resp, sig, proof = doc["response"], doc["signature"], doc["inclusion_proof"]
    try:
        nacl.signing.VerifyKey(pub).verify(jcs(resp).encode(), base64.b64decode(sig["value"]))
    except nacl.exceptions.BadSignatureError:
        problems.append("signature")
    _, size, root = verify_note(proof["checkpoint"], name, pub)
    leaf = proof["leaf"]
    if proof["tree_size"] != size or not verify_inclusion(
            proof["leaf_index"], size, leaf_hash(jcs(leaf).encode()),
            [base64.b64decode(h) for h in proof["hashes"]], root):
        problems.append("inclusion")
    if leaf["candidate_id"] != resp["candidate_id"]:
        problems.append("leaf subject")
    rows, prev = resp["rows"], "GENESIS"
    for r in rows:
        if r["prev_chain_hash"] != prev or r["candidate_id"] != resp["candidate_id"]:
            problems.append("links")
            break
        prev = r["row_hmac"]
    if len(rows) < leaf["rows_total"]:
        problems.append("tail cut")
    elif len(rows) != leaf["rows_total"] or prev != leaf["chain_tip"]:
        problems.append("tail replaced")
    if not resp["chain_verified"] or resp["tampering"]["detected"]:
        problems.append("server verdict")
    return problems


# ---------------------------------------------------------------- data

def chain(candidate_id, n, tag="r"):
    """n rows of a subject signed with the audit key by an independent HMAC (the rows'
    keys are ASCII, so sorted keys are the RFC 8785 order)."""
    rows, prev = [], "GENESIS"
    for i in range(n):
        row = {"schema": "subject_audit_row.v1", "ts": f"2026-05-{i % 28 + 1:02d}T12:00:00.000000001Z",
               "candidate_id": candidate_id,
               "accessor": {"kind": "agent", "daemon": "gateway", "purpose": f"{tag}-{i}",
                            "trace_id": f"t-{i}"},
               "fields_accessed": ["email"], "result": "success", "prev_chain_hash": prev}
        row["row_hmac"] = prev = hmac.new(AUDIT_KEY, jcs(row).encode(), hashlib.sha256).hexdigest()
        rows.append(row)
    return rows


def write_log(data, candidate_id, rows):
    d = os.path.join(data, "_catalog", "subjects")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, candidate_id + ".audit.jsonl"), "w") as f:
        for r in rows:
            f.write(jcs(r) + "\n")


def log_path(data, candidate_id):
    return os.path.join(data, "_catalog", "subjects", candidate_id + ".audit.jsonl")


class AuditOffline(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="lh-e2e-offline-")
        cls.data = os.path.join(cls.tmp, "data")
        cls.seed = os.urandom(32)
        cls.pub = bytes(nacl.signing.SigningKey(cls.seed).verify_key)
        cls.key_file = os.path.join(cls.tmp, "signing.key")
        fd = os.open(cls.key_file, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, cls.seed)
        os.close(fd)
        token_file = os.path.join(cls.tmp, "legal.token")
        with open(token_file, "w") as f:
            f.write(TOKEN)
        audit_key_file = os.path.join(cls.tmp, "audit.key")
        with open(audit_key_file, "wb") as f:
            f.write(AUDIT_KEY)
        cls.env = {"LH_LEGAL_AUDIT_TOKEN_FILE": token_file,
                   "LH_SUBJECT_AUDIT_KEY": audit_key_file,
                   "LH_AUDIT_SIGNING_KEY_FILE": cls.key_file, "LH_AUDIT_LOG_ORIGIN": ORIGIN}
        cls.logs = []

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def assertClean(self, log):
        """Neither the signing key (raw, hex, base64) nor the token is in a log."""
        for secret in (self.seed.hex(), base64.b64encode(self.seed).decode(), TOKEN):
            self.assertNotIn(secret, log)
        self.assertNotIn(self.seed, log.encode(errors="surrogateescape"))

    def run_server(self, work, env=None):
        s = Server(self.data, env or self.env).start()
        try:
            return work(s)
        finally:
            log = s.read_log()
            s.stop()
            self.assertClean(log)
            self.logs.append(log)

    def verify_offline(self, doc, pubkey_text):
        resp = os.path.join(self.tmp, "response.json")
        pub = os.path.join(self.tmp, "pubkey")
        with open(resp, "w") as f:
            json.dump(doc, f)
        with open(pub, "w") as f:
            f.write(pubkey_text)
        p = subprocess.run([harness.BIN, "audit", "verify-offline", resp, "--pubkey", pub],
                           capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout + p.stderr

    # ------------------------------------------------------------ checkpoints

    def test_01_checkpoints_and_consistency(self):
        """A checkpoint at each size (the log grows by catching up new subjects' logs at
        each start); every pair's consistency proof verifies against the signed roots."""
        checkpoints = {}
        written = 0
        for size in SIZES:
            for i in range(written, size):
                write_log(self.data, f"C-{i:04d}", chain(f"C-{i:04d}", 1 + i % 3))
            written = size

            def take(s):
                status, doc = s.json("GET", "/audit/pubkey", key=None)  # public
                self.assertEqual(status, 200, doc)
                self.assertEqual(base64.b64decode(doc["public_key"]), self.pub)
                self.assertEqual(doc["signer"], ORIGIN)
                self.assertEqual(doc["key_id"], key_id(ORIGIN, self.pub).hex())
                self.assertEqual(doc["verifier_key"], f"{ORIGIN}+{key_id(ORIGIN, self.pub).hex()}+"
                                 + base64.b64encode(b"\x01" + self.pub).decode())
                status, doc = s.json("GET", "/audit/checkpoint", key=None)
                self.assertEqual(status, 401, doc)
                status, doc = s.json("GET", "/audit/checkpoint", headers=HDR, key=None)
                self.assertEqual(status, 200, doc)
                return doc

            doc = self.run_server(take)
            origin, n, root = verify_note(doc["checkpoint"], ORIGIN, self.pub)
            self.assertEqual((origin, n), (ORIGIN, size))
            self.assertEqual(doc["tree_size"], size)
            checkpoints[size] = root
        # the roots are those of the leaves as stored, hashed here
        with open(os.path.join(self.data, "_catalog", "audit_merkle", "leaves.jsonl"), "rb") as f:
            lines = f.read().split(b"\n")[:-1]
        self.assertEqual(len(lines), 1000)
        leaves = [leaf_hash(line) for line in lines]
        for size, root in checkpoints.items():
            self.assertEqual(mth(leaves[:size]), root, size)
        for line in lines[:3]:  # each leaf is a subject's tip and row count, canonical
            leaf = json.loads(line)
            self.assertEqual(jcs(leaf).encode(), line)
            self.assertEqual(set(leaf), {"candidate_id", "chain_tip", "rows_total", "schema"})

        def proofs(s):
            for a in SIZES:
                for b in SIZES:
                    if a > b:
                        continue
                    status, doc = s.json("GET", f"/audit/consistency?from={a}&to={b}",
                                         headers=HDR, key=None)
                    self.assertEqual(status, 200, doc)
                    proof = [base64.b64decode(h) for h in doc["hashes"]]
                    self.assertTrue(verify_consistency(a, b, checkpoints[a], checkpoints[b], proof),
                                    (a, b))
                    if a < b and proof:  # an altered proof, or a forked old root, fails
                        bad = proof[:-1] + [bytes(32)]
                        self.assertFalse(verify_consistency(a, b, checkpoints[a],
                                                            checkpoints[b], bad))
                        self.assertFalse(verify_consistency(a, b, hashlib.sha256(b"x").digest(),
                                                            checkpoints[b], proof))
            for q, want in (("from=0&to=5", 400), ("from=9&to=8", 400), ("from=x&to=8", 400),
                            ("to=8", 400), ("from=-1&to=8", 400), ("from=1&to=1001", 404),
                            ("from=1&to=99999999999999999999", 400)):
                status, doc = s.json("GET", f"/audit/consistency?{q}", headers=HDR, key=None)
                self.assertEqual(status, want, (q, doc))
            status, doc = s.json("GET", "/audit/consistency?from=1&to=2", key=None)
            self.assertEqual(status, 401, doc)

        self.run_server(proofs)

    # ------------------------------------------------------------ signed responses

    def test_02_signed_responses_and_tampering(self):
        for sid in ("V-CUT", "V-MID", "V-NEW", "V-OK"):
            write_log(self.data, sid, chain(sid, 6))
        vkey = f"{ORIGIN}+{key_id(ORIGIN, self.pub).hex()}+" + base64.b64encode(
            b"\x01" + self.pub).decode() + "\n"

        def fetch(s, sid, query=""):
            status, doc = s.json("GET", f"/audit/subject/{sid}{query}", headers=HDR, key=None)
            self.assertEqual(status, 200, doc)
            return doc

        def good(s):
            status, pubdoc = s.json("GET", "/audit/pubkey", key=None)
            status, health = s.json("GET", "/audit/health", headers=HDR, key=None)
            self.assertEqual(health["verifiable_log"]["signer"], ORIGIN, health)
            self.assertEqual(health["verifiable_log"]["leaves"], 1004, health)
            doc = fetch(s, "V-OK")
            self.assertEqual(check_response(doc, ORIGIN, self.pub), [])
            self.assertEqual(doc["inclusion_proof"]["leaf"]["rows_total"], 6)
            self.assertEqual(doc["signature"]["algorithm"], "Ed25519")
            rc, out = self.verify_offline(doc, json.dumps(pubdoc))
            self.assertEqual(rc, 0, out)
            self.assertIn("VERIFIED", out)
            rc, out = self.verify_offline(doc, vkey)  # the verifier key line works too
            self.assertEqual(rc, 0, out)
            # a window: links and the signed root still check
            win = fetch(s, "V-OK", "?from=2026-05-03T00:00:00Z")
            self.assertEqual(len(win["response"]["rows"]), 4)
            rc, out = self.verify_offline(win, vkey)
            self.assertEqual(rc, 0, out)
            # an edited response: a row removed from it, or a flag cleared
            for edit in ("drop_last", "rows_total"):
                bad = json.loads(json.dumps(doc))
                if edit == "drop_last":
                    bad["response"]["rows"].pop()
                else:
                    bad["response"]["chain_rows_total"] = 5
                self.assertIn("signature", check_response(bad, ORIGIN, self.pub))
                rc, out = self.verify_offline(bad, vkey)
                self.assertEqual(rc, 1, out)
                self.assertIn("FAIL response signature", out)
            # another key does not verify it
            other = nacl.signing.SigningKey.generate().verify_key
            rc, out = self.verify_offline(doc, f"{ORIGIN}+{key_id(ORIGIN, bytes(other)).hex()}+"
                                          + base64.b64encode(b"\x01" + bytes(other)).decode())
            self.assertEqual(rc, 1, out)

            # tamper the data folder while the server runs
            with open(log_path(self.data, "V-CUT")) as f:
                lines = f.readlines()
            with open(log_path(self.data, "V-CUT"), "w") as f:
                f.writelines(lines[:4])  # the last two rows deleted
            mid = chain("V-MID", 6)
            mid[2]["accessor"]["purpose"] = "rewritten"  # row_hmac kept: no key
            write_log(self.data, "V-MID", mid)
            write_log(self.data, "V-NEW", chain("V-NEW", 6, tag="forged"))  # re-signed
            results = {}
            for sid in ("V-CUT", "V-MID", "V-NEW"):
                doc = fetch(s, sid)
                results[sid] = (check_response(doc, ORIGIN, self.pub),
                                self.verify_offline(doc, vkey))
            return results

        results = self.run_server(good)
        cut, (rc, out) = results["V-CUT"]
        self.assertIn("tail cut", cut)
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL tail", out)
        self.assertIn("deleted from the end", out)
        mid, (rc, out) = results["V-MID"]
        self.assertEqual(mid, ["server verdict"])
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL server verdict", out)
        new, (rc, out) = results["V-NEW"]
        self.assertIn("tail replaced", new)
        self.assertEqual(rc, 1, out)
        self.assertIn("replaced or rewritten", out)

        # after a restart the cut and replaced logs get no new leaf: still detected
        def again(s):
            for sid in ("V-CUT", "V-NEW"):
                doc = fetch(s, sid)
                self.assertTrue(check_response(doc, ORIGIN, self.pub), sid)
                flags = [f["flag"] for f in doc["response"]["tampering"]["flags"]]
                self.assertIn("not_in_signed_log", flags)
                rc, out = self.verify_offline(doc, vkey)
                self.assertEqual(rc, 1, out)

        self.run_server(again)
        self.assertTrue(any("audit.merkle_mismatch" in log for log in self.logs))

    # ------------------------------------------------------------ configuration

    def test_03_unsigned_and_bad_key_files(self):
        env = dict(self.env)
        del env["LH_AUDIT_SIGNING_KEY_FILE"]
        write_log(self.data, "U-1", chain("U-1", 2))

        def unsigned(s):
            for path in ("/audit/checkpoint", "/audit/consistency?from=1&to=1", "/audit/pubkey"):
                status, doc = s.json("GET", path, headers=HDR, key=None)
                self.assertEqual(status, 503, (path, doc))
                self.assertIn("LH_AUDIT_SIGNING_KEY_FILE", doc["message"])
            status, doc = s.json("GET", "/audit/health", headers=HDR, key=None)
            self.assertEqual(doc["verifiable_log"]["signed"], False, doc)
            self.assertTrue(doc["verifiable_log"]["configured"], doc)
            status, doc = s.json("GET", "/audit/subject/U-1", headers=HDR, key=None)
            self.assertEqual(status, 200, doc)
            self.assertIsNone(doc["signature"])
            self.assertIsNone(doc["inclusion_proof"]["checkpoint"])
            rc, out = self.verify_offline(doc, f"{ORIGIN}+{key_id(ORIGIN, self.pub).hex()}+"
                                          + base64.b64encode(b"\x01" + self.pub).decode())
            self.assertEqual(rc, 1, out)
            self.assertIn("not signed", out)

        self.run_server(unsigned, env)

        bad_file = os.path.join(self.tmp, "bad.key")
        for content, mode, says in ((self.seed, 0o644, "chmod 600"),
                                    (self.seed[:31], 0o600, "holds 31 bytes; it must hold a 32-byte"),
                                    (self.seed + self.seed + b"x", 0o600, "holds 65 bytes")):
            if os.path.exists(bad_file):
                os.unlink(bad_file)
            fd = os.open(bad_file, os.O_WRONLY | os.O_CREAT, mode)
            os.write(fd, content)
            os.close(fd)
            os.chmod(bad_file, mode)
            env = dict(self.env, LH_AUDIT_SIGNING_KEY_FILE=bad_file, LH_ADMIN_KEY=harness.ADMIN_KEY)
            p = subprocess.run([harness.BIN, "serve", "--data", self.data, "--listen",
                                "127.0.0.1:0"], env=dict(os.environ, **env), capture_output=True,
                               text=True, timeout=120)
            self.assertNotEqual(p.returncode, 0)
            out = p.stdout + p.stderr
            self.assertIn("server.start_failed", out)
            self.assertIn(bad_file, out)
            self.assertIn(says, out)
            self.assertClean(out)

    def test_04_unsyncable_log_signs_nothing(self):
        """A failed sync of the leaves file (fault hook): no checkpoint and no signed
        response over leaves that may not be durable (500), then both again."""
        write_log(self.data, "F-1", chain("F-1", 2))  # a new leaf at start: a sync is due

        def faulty(s):
            status, doc = s.json("GET", "/audit/checkpoint", headers=HDR, key=None)
            self.assertEqual(status, 500, doc)
            self.assertEqual(doc["error"], "audit_write_failed")
            status, doc = s.json("GET", "/audit/checkpoint", headers=HDR, key=None)
            self.assertEqual(status, 200, doc)
            status, doc = s.json("GET", "/audit/subject/F-1", headers=HDR, key=None)
            self.assertEqual(status, 200, doc)
            self.assertEqual(check_response(doc, ORIGIN, self.pub), [])

        self.run_server(faulty, dict(self.env, LH_FAULT="fsync:1:EIO"))

    def test_05_audited_queries_verify_offline(self):
        """Rows written by the server's own access auditing (a query returning people):
        each subject's leaf comes from the live hook after the group commit, and the legal
        response of one of them (three rows, one per query) verifies offline."""
        import test_access_audit as acc
        data = os.path.join(self.tmp, "data-live")
        people, csv_bytes = acc.make_people(40)
        s = Server(data, self.env).start()
        try:
            keys = acc.setup_lake(s, csv_bytes)
            ids = [p["candidate_id"] for p in people[:6]]
            sql = ("SELECT candidate_id, email FROM people WHERE candidate_id IN (" +
                   ",".join("'" + i.replace("'", "''") + "'" for i in ids) + ")")
            for _ in range(3):
                st, doc = acc.query(s, keys["ana"], sql, "screening", "t-live")
                self.assertEqual(st, 200, doc)
            status, _, body = s.request("GET", "/audit/subject/" + urllib_quote(ids[0]),
                                        headers=HDR, key=None)
            self.assertEqual(status, 200, body)
            doc = json.loads(body)
            self.assertEqual(doc["inclusion_proof"]["leaf"]["rows_total"], 3)
            self.assertEqual(check_response(doc, ORIGIN, self.pub), [])
            rc, out = self.verify_offline(doc, json.dumps(s.json("GET", "/audit/pubkey",
                                                                 key=None)[1]))
            self.assertEqual(rc, 0, out)
        finally:
            log = s.read_log()
            s.stop()
            self.assertClean(log)


def urllib_quote(v):
    import urllib.parse
    return urllib.parse.quote(v, safe="")


if __name__ == "__main__":
    unittest.main()
