"""End-to-end tests of the biometric consent gate (issue 12 item 3; docs/AUDIT.md
"Biometric upload"): every status code of POST /biometric/subject/{id}/photo (201, 400,
401, 403, 404, 413 from Content-Length and while streaming, 415 by type and by magic
bytes, 500 audit_write_failed, 503), a refused photo leaves no file, the stored photo is
0600 in a 0700 folder outside the data folder with the manifest's biometric_collection and
an audit row, both rollback paths by fault injection (LH_FAULT), the storage root refused
at start when inside the lake or open to others, and the legal token never in the log."""
import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import unittest

import harness
from harness import ADMIN_KEY, Server, free_port

TOKEN = "biometric-legal-token-" + "b" * 40
AUDIT_KEY = b"audit-key-for-the-biometric-e2e-test-0123456789"
HDR = "X-Lakehouse-Legal-Token"
JPEG = bytes([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10]) + b"JFIF\x00" + b"\x01" * 40 + b"\xFF\xD9"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + b"\x00" * 30
CONSENT = {"consent": {
    "general": {"status": "Given", "given_at": "2026-01-01T00:00:00Z"},
    "biometric": {"status": "Given", "version_hash": "sha256:consent-text-v3",
                  "given_at": "2026-01-01T00:00:00Z"}}}
MAX = 10 * 1024 * 1024


def files_under(root):
    """Every file under root (partial ones included), relative, with its mode."""
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            out[os.path.relpath(p, root)] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


class BiometricStart(unittest.TestCase):
    """The storage root is checked at start; unset, the endpoints answer 503."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lh-e2e-bio-")
        self.data = os.path.join(self.tmp, "data")
        self.token_file = os.path.join(self.tmp, "token")
        with open(self.token_file, "w") as f:
            f.write(TOKEN)
        self.key_file = os.path.join(self.tmp, "audit.key")
        with open(self.key_file, "wb") as f:
            f.write(AUDIT_KEY)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def refused_start(self, root, reason):
        env = dict(os.environ, LH_ADMIN_KEY=ADMIN_KEY, LH_BIOMETRIC_STORAGE_ROOT=root,
                   LH_SUBJECT_AUDIT_KEY=self.key_file)
        proc = subprocess.run([harness.BIN, "serve", "--data", self.data, "--listen",
                               f"127.0.0.1:{free_port()}"], env=env, capture_output=True,
                              text=True, timeout=60)
        self.assertNotEqual(proc.returncode, 0, proc.stderr[-2000:])
        self.assertIn("server.start_failed", proc.stderr)
        self.assertIn(reason, proc.stderr)

    def test_root_inside_the_lake_refused(self):
        os.makedirs(self.data, mode=0o700)
        self.refused_start(os.path.join(self.data, "photos"), "outside the data folder")
        self.refused_start(self.data, "outside the data folder")
        self.refused_start(self.tmp, "outside the data folder")  # holds the lake

    def test_root_open_to_others_refused(self):
        root = os.path.join(self.tmp, "photos")
        os.mkdir(root)
        os.chmod(root, 0o755)
        self.refused_start(root, "chmod 700")

    def test_unset_answers_503(self):
        s = Server(self.data, {"LH_LEGAL_AUDIT_TOKEN_FILE": self.token_file,
                               "LH_SUBJECT_AUDIT_KEY": self.key_file}).start()
        try:
            self.assertEqual(s.json("PUT", "/subjects/U-1", CONSENT)[0], 201)
            status, doc = s.json("POST", "/biometric/subject/U-1/photo", JPEG,
                                 {HDR: TOKEN, "Content-Type": "image/jpeg"}, key=None)
            self.assertEqual((status, doc["error"]), (503, "biometric_storage_unconfigured"))
            self.assertIn("LH_BIOMETRIC_STORAGE_ROOT", doc["message"])
            status, doc = s.json("GET", "/biometric/health", headers={HDR: TOKEN}, key=None)
            self.assertEqual(status, 200, doc)
            self.assertEqual(doc["status"], "unavailable")
            self.assertFalse(doc["storage_root"]["configured"])
        finally:
            log = s.read_log()
            s.stop()
        self.assertNotIn(TOKEN, log)

    def test_no_token_file_answers_503(self):
        root = os.path.join(self.tmp, "photos")
        s = Server(self.data, {"LH_BIOMETRIC_STORAGE_ROOT": root,
                               "LH_SUBJECT_AUDIT_KEY": self.key_file}).start()
        try:
            status, doc = s.json("POST", "/biometric/subject/U-1/photo", JPEG,
                                 {HDR: TOKEN, "Content-Type": "image/jpeg"}, key=None)
            self.assertEqual((status, doc["error"]), (503, "legal_token_unconfigured"))
            self.assertEqual(files_under(root), {})
        finally:
            s.stop()


class Biometric(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="lh-e2e-bio-")
        cls.data = os.path.join(cls.tmp, "data")
        cls.root = os.path.join(cls.tmp, "biometric")  # created by the server
        cls.token_file = os.path.join(cls.tmp, "legal.token")
        with open(cls.token_file, "w") as f:
            f.write(TOKEN + "\n")
        cls.key_file = os.path.join(cls.tmp, "audit.key")
        with open(cls.key_file, "wb") as f:
            f.write(AUDIT_KEY)
        cls.env = {"LH_LEGAL_AUDIT_TOKEN_FILE": cls.token_file,
                   "LH_SUBJECT_AUDIT_KEY": cls.key_file,
                   "LH_BIOMETRIC_STORAGE_ROOT": cls.root}
        cls.logs = []
        cls.server = Server(cls.data, cls.env).start()
        s = cls.server
        cls.keys = {}
        for name, role in (("counsel", "legal"), ("ana", "analyst")):
            status, doc = s.json("POST", "/auth/keys", {"name": name, "role": role})
            assert status == 201, doc
            cls.keys[role] = doc["key"]

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.server:
                cls.logs.append(cls.server.read_log())
                cls.server.stop()
            for log in cls.logs:
                assert TOKEN not in log, "the legal token reached the server's log"
                assert AUDIT_KEY.decode() not in log, "the audit key reached the server's log"
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def restart(self, extra_env=None):
        type(self).logs.append(self.server.read_log())
        self.server.stop()
        type(self).server = Server(self.data, dict(self.env, **(extra_env or {}))).start()

    def subject(self, cid, body=CONSENT):
        status, doc = self.server.json("PUT", f"/subjects/{cid}", body)
        self.assertIn(status, (200, 201), doc)
        return doc["subject"]

    def photo(self, cid, body=JPEG, ctype="image/jpeg", token=TOKEN, key=None, extra=None):
        headers = {}
        if token is not None:
            headers[HDR] = token
        if ctype is not None:
            headers["Content-Type"] = ctype
        headers.update(extra or {})
        return self.server.json("POST", f"/biometric/subject/{cid}/photo", body, headers,
                                key=key)

    def assertNoNewFile(self, before):
        self.assertEqual(files_under(self.root), before)

    def test_01_every_refusal_leaves_no_file(self):
        self.subject("OK-1")
        before = files_under(self.root)
        # 401: no token, a wrong one, an unknown key
        status, doc = self.photo("OK-1", token=None)
        self.assertEqual((status, doc["error"]), (401, "legal_token_missing"))
        for wrong in ("wrong", TOKEN[:-1], TOKEN + "x"):
            status, doc = self.photo("OK-1", token=wrong)
            self.assertEqual((status, doc["error"]), (401, "legal_token_invalid"))
            self.assertNotIn(TOKEN, json.dumps(doc))
        self.assertEqual(self.photo("OK-1", token=None, key="lh_" + "0" * 64)[0], 401)
        # 403: a role other than legal/admin
        self.assertEqual(self.photo("OK-1", token=None, key=self.keys["analyst"])[0], 403)
        # 404
        status, doc = self.photo("NOBODY")
        self.assertEqual((status, doc["error"]), (404, "subject_not_found"))
        # 403: consent not Given, naming the current status
        self.subject("NC-1", {})
        status, doc = self.photo("NC-1")
        self.assertEqual((status, doc["error"]), (403, "biometric_consent_required"))
        self.assertIn("NeverCollected", doc["message"])
        self.subject("WC-1", {"consent": {"general": {"status": "NotGiven"}, "biometric": {
            "status": "Withdrawn", "version_hash": "sha256:v1",
            "given_at": "2026-01-01T00:00:00Z", "withdrawn_at": "2026-02-01T00:00:00Z"}}})
        status, doc = self.photo("WC-1")
        self.assertEqual(status, 403, doc)
        self.assertIn("Withdrawn", doc["message"])
        # 403: the subject Withdrawn, Erased or RetentionExpired (consent still Given)
        for st in ("Withdrawn", "Erased", "RetentionExpired"):
            self.subject(f"S-{st}")
            self.subject(f"S-{st}", {"status": st})
            status, doc = self.photo(f"S-{st}")
            self.assertEqual((status, doc["error"]), (403, "subject_not_active"), st)
            self.assertIn(st, doc["message"])
        # 415: the type, missing, and bytes that are not what the type says
        for ctype in ("image/gif", "image/jpg", "application/octet-stream", None):
            status, doc = self.photo("OK-1", ctype=ctype)
            self.assertEqual((status, doc["error"]), (415, "unsupported_media_type"), ctype)
        status, doc = self.photo("OK-1", body=PNG, ctype="image/jpeg")
        self.assertEqual((status, doc["error"]), (415, "photo_type_mismatch"))
        status, doc = self.photo("OK-1", body=JPEG, ctype="image/png")
        self.assertEqual((status, doc["error"]), (415, "photo_type_mismatch"))
        status, doc = self.photo("OK-1", body=b"GIF89a" + b"\0" * 100)
        self.assertEqual(status, 415, doc)
        # 400: empty body
        status, doc = self.photo("OK-1", body=b"")
        self.assertEqual((status, doc["error"]), (400, "empty_photo"))
        # 400: a trace id the audit row cannot hold, refused before the body
        status, doc = self.photo("OK-1", extra={"X-Lakehouse-Trace-Id": "t" * 5000})
        self.assertEqual(status, 400, doc)
        self.assertNoNewFile(before)

    def test_02_too_large(self):
        self.subject("BIG-1")
        before = files_under(self.root)
        # declared: refused before a byte of the body is read
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=30) as sock:
            sock.sendall((f"POST /biometric/subject/BIG-1/photo HTTP/1.1\r\nHost: x\r\n"
                          f"{HDR}: {TOKEN}\r\nContent-Type: image/jpeg\r\n"
                          f"Content-Length: {MAX + 1}\r\n\r\n").encode() + JPEG)
            head = sock.recv(65536).decode(errors="replace")
        self.assertTrue(head.startswith("HTTP/1.1 413"), head[:200])
        self.assertIn("payload_too_large", head)
        # streamed (chunked, no length): cut off past 10 MiB, the partial file removed
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=120)
        conn.putrequest("POST", "/biometric/subject/BIG-1/photo")
        conn.putheader(HDR, TOKEN)
        conn.putheader("Content-Type", "image/jpeg")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        try:
            chunk = JPEG[:3] + b"\0" * ((1 << 20) - 3)
            for _ in range(11):
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 413)
            self.assertEqual(json.loads(resp.read())["error"], "payload_too_large")
        finally:
            conn.close()
        self.assertNoNewFile(before)
        # exactly 10 MiB is accepted
        body = JPEG[:3] + b"\0" * (MAX - 3)
        status, doc = self.photo("BIG-1", body=body)
        self.assertEqual(status, 201, doc)
        self.assertEqual(doc["biometric_collection"]["bytes"], MAX)

    def test_03_stored_audited_outside_the_lake(self):
        self.subject("W%2F1%20%C3%A9")  # the id "W/1 é" needs escaping in its folder name
        status, doc = self.photo("W%2F1%20%C3%A9", body=PNG, ctype="IMAGE/PNG; q=0.9",
                                 extra={"X-Lakehouse-Trace-Id": "trace-77"})
        self.assertEqual(status, 201, doc)
        c = doc["biometric_collection"]
        self.assertEqual(c["template_hash"], hashlib.sha256(PNG).hexdigest())
        self.assertEqual(c["consent_version_hash"], "sha256:consent-text-v3")
        self.assertEqual(c["content_type"], "image/png")
        self.assertEqual(c["bytes"], len(PNG))
        folder, name = c["data_path"].split("/")
        self.assertEqual(folder, "W%2F1%20%C3%A9")
        self.assertRegex(name, r"^\d{8}T\d{6}Z_[0-9a-f]{8}\.png$")
        path = os.path.join(self.root, c["data_path"])
        with open(path, "rb") as f:
            self.assertEqual(f.read(), PNG)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(os.stat(self.root).st_mode), 0o700)
        # nowhere in the data folder. The subjects' flusher may rename a staged manifest
        # while we walk: a pass that met a vanished file is walked again.
        for _ in range(10):
            vanished = False
            for d, _, names in os.walk(self.data):
                for n in names:
                    try:
                        with open(os.path.join(d, n), "rb") as f:
                            self.assertNotIn(PNG, f.read(), os.path.join(d, n))
                    except FileNotFoundError:
                        vanished = True
            if not vanished:
                break
        self.assertFalse(vanished, "files kept vanishing under the walk")
        # the manifest names it; clients cannot write it
        status, m = self.server.json("GET", "/subjects/W%2F1%20%C3%A9")
        self.assertEqual(m["subject"]["biometric_collection"], c)
        status, e = self.server.json("PUT", "/subjects/W%2F1%20%C3%A9",
                                     {"biometric_collection": {"data_path": "x"}})
        self.assertEqual(status, 400, e)
        # the audit row, on a chain that verifies, read through the legal endpoint
        status, a = self.server.json("GET", "/audit/subject/W%2F1%20%C3%A9",
                                     headers={HDR: TOKEN}, key=None)
        self.assertEqual(status, 200, a)
        r = a["response"]
        self.assertTrue(r["chain_verified"])
        row = r["rows"][-1]
        self.assertEqual(row["accessor"]["kind"], "biometric_collection")
        self.assertEqual(row["accessor"]["purpose"], "photo_upload")
        self.assertEqual(row["accessor"]["daemon"], "legal_token")
        self.assertEqual(row["accessor"]["trace_id"], "trace-77")
        self.assertEqual(row["result"], "success")
        self.assertEqual(row["row_hmac"], doc["audit_row_hmac"])
        # a legal key and the admin key may upload too; the newer photo supersedes
        status, doc2 = self.photo("W%2F1%20%C3%A9", token=None, key=self.keys["legal"])
        self.assertEqual(status, 201, doc2)
        self.assertEqual(doc2["superseded"], c["data_path"])
        self.assertFalse(os.path.exists(path))
        status, doc3 = self.photo("W%2F1%20%C3%A9", token=None, key=ADMIN_KEY)
        self.assertEqual(status, 201, doc3)
        status, a = self.server.json("GET", "/audit/subject/W%2F1%20%C3%A9",
                                     headers={HDR: TOKEN}, key=None)
        self.assertEqual([x["accessor"]["daemon"] for x in a["response"]["rows"][-2:]],
                         ["counsel", "env-admin"])
        # health
        status, h = self.server.json("GET", "/biometric/health", headers={HDR: TOKEN}, key=None)
        self.assertEqual(status, 200, h)
        self.assertEqual(h["status"], "ok")
        self.assertTrue(h["storage_root"]["usable"])
        self.assertEqual(h["counts"]["photos"], len(files_under(self.root)))
        self.assertEqual(h["counts"]["partial"], 0)
        self.assertEqual(self.server.json("GET", "/biometric/health", key=self.keys["analyst"])[0],
                         403)
        self.assertEqual(self.server.json("GET", "/biometric/health", key=None)[0], 401)
        for mode in files_under(self.root).values():
            self.assertEqual(mode, 0o600)

    def test_04_rollback_when_the_manifest_write_fails(self):
        """The manifest's rename is the second of the upload (the photo's is the first)."""
        self.subject("RB-1")
        _, before = self.server.json("GET", "/subjects/RB-1")
        files = files_under(self.root)
        self.restart({"LH_FAULT": "rename:2:EIO"})
        status, doc = self.photo("RB-1")
        self.assertEqual(status, 500, doc)
        self.assertNotEqual(doc["error"], "audit_write_failed")
        self.assertIn('"event":"fault.injected","op":"rename","call":2', self.server.read_log())
        self.assertNoNewFile(files)
        self.restart()
        _, after = self.server.json("GET", "/subjects/RB-1")
        self.assertEqual(after, before)
        status, a = self.server.json("GET", "/audit/subject/RB-1", headers={HDR: TOKEN}, key=None)
        self.assertEqual(a["response"]["rows"], [])
        self.assertEqual(self.photo("RB-1")[0], 201)  # and it works again

    def test_05_rollback_when_the_audit_append_fails(self):
        """The journal's fdatasync is the upload's third (the photo's and the manifest's
        fsyncs come first): 500 audit_write_failed, photo removed, manifest restored."""
        self.subject("RB-2")
        _, before = self.server.json("GET", "/subjects/RB-2")
        files = files_under(self.root)
        self.restart({"LH_FAULT": "fsync:3:EIO"})
        status, doc = self.photo("RB-2")
        self.assertEqual((status, doc["error"]), (500, "audit_write_failed"))
        self.assertIn("manifest restored", doc["message"])
        log = self.server.read_log()
        self.assertIn('"event":"fault.injected","op":"fsync","call":3', log)
        self.assertIn('"event":"audit.sync_failed"', log)
        self.assertNoNewFile(files)
        _, after = self.server.json("GET", "/subjects/RB-2")
        self.assertEqual(after, before)
        self.restart()
        _, after = self.server.json("GET", "/subjects/RB-2")
        self.assertEqual(after["subject"].get("biometric_collection"), None)
        self.assertNoNewFile(files)
        self.assertEqual(self.photo("RB-2")[0], 201)


if __name__ == "__main__":
    unittest.main()
