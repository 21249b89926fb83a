"""End-to-end tests of the subject audit chain (issue 11 items 3, 4 and 7; docs/AUDIT.md):
kill -9 of a process appending audit rows at random moments loses no acknowledged row and
leaves every chain verifiable; the server starts with auditing disabled when
LH_SUBJECT_AUDIT_KEY is unset, refuses to start with a short key file, and never writes
the key to its log; `lakehouse audit verify` and `audit known-answer` work offline, also
beside a running server, and name the first bad row of a tampered log."""
import glob
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Server

KEY = "e2e-audit-key-" + "q" * 30 + "-never-in-logs"
KA_HMAC = "d13b874cb2e1ee8fcaa1f558e8fb48926205de7e0c140f5895d8370d6c43cd30"


def driver():
    return os.path.join(os.path.dirname(harness.BIN), "lh_audit_driver")


def cli(args, data, keyfile):
    env = dict(os.environ)
    env.pop("LH_SUBJECT_AUDIT_KEY", None)
    if keyfile:
        env["LH_SUBJECT_AUDIT_KEY"] = keyfile
    return subprocess.run([harness.BIN] + args + ["--data", data], env=env, capture_output=True,
                          text=True, timeout=300)


def log_rows(data):
    """{row_hmac: candidate_id} of every row in every subject log."""
    harness.wait_audit_logs(data)
    out = {}
    for p in glob.glob(os.path.join(data, "_catalog", "subjects", "*.audit.jsonl")):
        with open(p) as f:
            for line in f:
                if line.endswith("\n"):
                    row = json.loads(line)
                    out[row["row_hmac"]] = row["candidate_id"]
    return out


class AuditChain(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lh-e2e-audit-")
        self.data = os.path.join(self.tmp, "data")
        self.keyfile = os.path.join(self.tmp, "audit.key")
        with open(self.keyfile, "w") as f:
            f.write(KEY + "\n")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_01_kill9_loses_no_acknowledged_row(self):
        acked = {}
        rng = random.Random(11)
        for i in range(5):
            # stdout to a file, not a pipe: the driver never blocks on its reader
            out_path = os.path.join(self.tmp, f"acks-{i}.txt")
            with open(out_path, "wb") as out:
                p = subprocess.Popen([driver(), self.data, self.keyfile, "4", "12"],
                                     stdout=out, stderr=subprocess.PIPE)
            deadline = time.time() + 60
            while not open(out_path, "rb").read().startswith(b"READY\n"):
                self.assertIsNone(p.poll(), "driver exited")
                self.assertLess(time.time(), deadline)
                time.sleep(0.01)
            time.sleep(rng.uniform(0.05, 0.6))
            p.kill()
            _, err = p.communicate()
            self.assertNotIn(b"append failed", err)
            for line in open(out_path).read().split("\n"):
                parts = line.split(" ")
                if len(parts) == 3 and parts[0] == "ACK" and len(parts[2]) == 64:
                    acked[parts[2]] = parts[1]
        self.assertGreater(len(acked), 50)
        # Offline verify replays the journal first (no server holds it), then checks.
        r = cli(["--json", "audit", "verify", "--all"], self.data, self.keyfile)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["not_verified"], 0)
        self.assertEqual(doc["checked"], 12)
        present = log_rows(self.data)
        missing = [h for h in acked if present.get(h) != acked[h]]
        self.assertEqual(missing, [], f"{len(missing)} acknowledged rows lost")
        self.assertEqual(sum(s["rows_total"] for s in doc["subjects"]), len(present))

    def test_02_verify_names_first_bad_row(self):
        p = subprocess.Popen([driver(), self.data, self.keyfile, "1", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.stdout.readline(), b"READY\n")
        n = 0
        while n < 20:
            n += p.stdout.readline().startswith(b"ACK ")
        p.kill()
        p.communicate()
        r = cli(["audit", "verify", "CAND-0"], self.data, self.keyfile)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("CAND-0: verified", r.stdout)
        path = os.path.join(self.data, "_catalog", "subjects", "CAND-0.audit.jsonl")
        lines = open(path).read().split("\n")
        lines[6] = lines[6].replace("kill -9 test", "kill -8 test")
        open(path, "w").write("\n".join(lines))
        r = cli(["--json", "audit", "verify", "CAND-0"], self.data, self.keyfile)
        self.assertEqual(r.returncode, 1)
        s = json.loads(r.stdout)["subjects"][0]
        self.assertEqual((s["verified"], s["first_bad_row"], s["reason"]),
                         (False, 7, "hmac_mismatch"))
        r = cli(["audit", "verify", "CAND-0"], self.data, self.keyfile)
        self.assertIn("first bad row 7 (hmac_mismatch)", r.stdout)
        # wrong key: every row fails at row 1
        other = os.path.join(self.tmp, "other.key")
        open(other, "w").write("x" * 40)
        r = cli(["--json", "audit", "verify", "CAND-0"], self.data, other)
        self.assertEqual(json.loads(r.stdout)["subjects"][0]["first_bad_row"], 1)

    def test_03_known_answer(self):
        r = cli(["--json", "audit", "known-answer"], self.data, None)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["row_hmac"], KA_HMAC)
        self.assertTrue(doc["canonical"].startswith('{"accessor":{"daemon":"gateway"'))

    def test_04_server_key_handling(self):
        # unset: auditing disabled, the server serves
        s = Server(self.data, {"LH_SUBJECT_AUDIT_KEY": ""}).start()
        s.stop()
        # a key file under 32 bytes: refused at start, the file named, its bytes never shown
        short = os.path.join(self.tmp, "short.key")
        secret = "short-secret-" + "z" * 10
        open(short, "w").write(secret)
        s = Server(self.data, {"LH_SUBJECT_AUDIT_KEY": short})
        with self.assertRaises(AssertionError) as cm:
            s.start()
        s.proc.wait(timeout=30)
        log = s.read_log()
        self.assertIn("short.key", log)
        self.assertIn("at least 32 bytes", log)
        self.assertNotIn(secret, log + str(cm.exception))
        os.unlink(s.log_path)
        # a good key: on; verify works beside the running server (read-only)
        s = Server(self.data, {"LH_SUBJECT_AUDIT_KEY": self.keyfile}).start()
        try:
            self.assertIn('"audit.enabled"', s.read_log())
            r = cli(["audit", "verify", "--all"], self.data, self.keyfile)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            # a second writer is refused while the server holds the journal
            p = subprocess.run([driver(), self.data, self.keyfile, "1", "1"],
                               capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"in use by another process", p.stderr)
            log = s.read_log()
        finally:
            s.stop()
        self.assertNotIn(KEY, log)
        self.assertNotIn(KEY[:24], r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
