"""End-to-end tests of durability and file hygiene (issue 9, items 3 and 8): a failed ingest
leaves nothing behind at once (parse failures, a full disk during DuckDB's COPY); a commit
step that fails (the server's LH_FAULT hook, test builds only) leaves the dataset whole,
old or new, after a restart; the data tree is owner-only whatever the umask."""
import os
import random
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

from harness import Server, make_people


def tree(data_dir):
    """Every folder and file under data_dir (relative paths), folders with a trailing '/'."""
    out = set()
    for root, dirs, files in os.walk(data_dir):
        for d in dirs:
            out.add(os.path.relpath(os.path.join(root, d), data_dir) + "/")
        for f in files:
            out.add(os.path.relpath(os.path.join(root, f), data_dir))
    return out


def big_csv_failing_late(path, rows=400_000):
    """A CSV the sniffer accepts (the first rows are integers) whose last row is not: the
    COPY fails after DuckDB has written row groups of its output."""
    rnd = random.Random(3)
    with open(path, "w") as f:
        f.write("id,score,note\n")
        for i in range(rows):
            f.write(f"{i},{rnd.randint(0, 10**9)},{rnd.getrandbits(64):x}\n")
        f.write("not-a-number,1,x\n")


class FailedIngestLeavesNothing(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lh-e2e-dur-")
        self.data = os.path.join(self.tmp, "data")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_parse_failures_leave_no_file_and_no_folder(self):
        s = Server(self.data).start()
        try:
            people = os.path.join(self.tmp, "people.csv")
            make_people(people, n=50)
            self.assertEqual(s.ingest("people", people)[0], 201)
            late = os.path.join(self.tmp, "late.csv")
            big_csv_failing_late(late)
            before = tree(self.data)
            bodies = [
                ("late", late, "csv", None),  # fails inside the COPY, after output was written
                ("late", late, "csv", None),
                ("bad_nd", b'{"a": 1}\n{"a": \n', "ndjson", None),
                ("bad_pq", b"this is not parquet", "parquet", None),
                ("bad_csv", b'a,b\n1,2\n3,"unterminated\n4,5,6,7\n', "csv", None),
                ("people", late, "csv", "append"),  # into an existing dataset's folder
                ("people", late, "csv", "replace"),
                ("people", b"x\n" + b"1\n" * 10 + b"oops\n", "csv", "append"),
            ]
            for name, body, fmt, mode in bodies:
                status, doc = s.ingest(name, body, fmt=fmt, mode=mode)
                self.assertEqual(status, 400, (name, doc))
                self.assertEqual(tree(self.data), before,
                                 f"a failed ingest of '{name}' left something behind")
            self.assertEqual(s.rows("SELECT count(*) AS n FROM people")[0][0], 50)
        finally:
            s.stop()

    def test_full_disk_during_copy_leaves_no_partial_file(self):
        """A bucket on a 1 MB tmpfs (a private mount namespace: needs unshare and mount);
        DuckDB's COPY hits ENOSPC while writing the part. Its staging file must be gone
        at once and the space free again."""
        if not shutil.which("unshare"):
            self.skipTest("unshare is not installed")
        mnt = os.path.join(self.tmp, "small")
        os.makedirs(mnt)
        probe = subprocess.run(["unshare", "-m", "sh", "-c",
                                f"mount -t tmpfs -o size=1m tmpfs '{mnt}'"],
                               capture_output=True)
        if probe.returncode != 0:
            self.skipTest("cannot mount a tmpfs in a private namespace here")
        wrap = ["unshare", "-m", "sh", "-c",
                f"mount -t tmpfs -o size=1m,mode=0700 tmpfs '{mnt}' && exec \"$@\"", "sh"]
        s = Server(self.data, wrap=wrap).start()
        try:
            # /proc/<pid>/root shows the server's view, tmpfs included (the shell exec-ed
            # the server, so the pid is the server's).
            view = f"/proc/{s.proc.pid}/root" + mnt
            status, doc = s.json("POST", "/storage/buckets", {"name": "small", "root": mnt})
            self.assertEqual(status, 201, doc)
            free_before = os.statvfs(view).f_bavail
            rnd = random.Random(5)
            body = "id,blob\n" + "".join(
                f"{i},{rnd.getrandbits(256):064x}\n" for i in range(60_000))
            self.assertGreater(len(body), 3 << 20)
            for attempt in range(3):
                status, doc = s.ingest("huge", body.encode(), bucket="small")
                self.assertEqual((status, doc["error"]), (500, "io_error"), doc)
                self.assertIn("No space left", doc["message"])
                left = tree(view)
                self.assertEqual(left, set(), f"attempt {attempt}: something stayed: {left}")
                self.assertEqual(os.statvfs(view).f_bavail, free_before)
            # The bucket still works for what fits.
            status, doc = s.ingest("small_ok", b"a,b\n1,2\n", bucket="small")
            self.assertEqual(status, 201, doc)
        finally:
            s.stop()


class FaultEachStepThenRestart(unittest.TestCase):
    """LH_FAULT fails one step of a replace (and of a delete, a metadata edit); after a
    restart without the fault the dataset is whole: old or new, never a manifest that
    points at a deleted part. The unit tests (test_catalog) iterate every step; this runs
    the real server, DuckDB's views included, for the steps of the manifest commit."""

    SPECS = ["fsync_dir:2:EIO", "fsync_dir:3:EIO", "rename:1:EIO", "rename:2:EIO",
             "fsync:2:EIO", "write:1:ENOSPC", "unlink:1:EIO", "mkdir:1:EIO", "open:1:EMFILE"]

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lh-e2e-fault-")
        self.old_csv = os.path.join(self.tmp, "old.csv")
        self.new_csv = os.path.join(self.tmp, "new.csv")
        make_people(self.old_csv, n=30)
        make_people(self.new_csv, n=70, seed=9)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def count(self, s):
        status, doc = s.sql("SELECT count(*) AS n FROM people")
        self.assertEqual(status, 200, doc)
        return doc["rows"][0][0]

    def test_replace_with_each_step_failing(self):
        for i, spec in enumerate(self.SPECS):
            with self.subTest(spec=spec):
                data = os.path.join(self.tmp, f"data{i}")
                s = Server(data).start()
                try:
                    self.assertEqual(s.ingest("people", self.old_csv)[0], 201)
                finally:
                    s.stop()
                # LH_FAULT counts from the end of start-up: each spec lands on one step
                # of the replace (or of the retirement of the old part after it).
                s = Server(data, {"LH_FAULT": spec}).start()
                try:
                    status, doc = s.ingest("people", self.new_csv, mode="replace")
                    n = self.count(s)
                    self.assertEqual(n, 70 if status in (200, 201) else 30, (status, doc))
                    for _ in range(100):  # the old part's retirement may come later
                        if "fault.injected" in s.read_log():
                            break
                        time.sleep(0.05)
                    self.assertIn("fault.injected", s.read_log(), "the fault never fired")
                    expected = n
                finally:
                    s.stop()
                # Restarted: whole, and (no power cut happened) what was served before.
                s = Server(data).start()
                try:
                    self.assertEqual(self.count(s), expected)
                finally:
                    s.stop()

    def test_delete_and_patch_with_the_manifest_fsync_failing(self):
        data = os.path.join(self.tmp, "data")
        s = Server(data).start()
        try:
            self.assertEqual(s.ingest("people", self.old_csv)[0], 201)
            self.assertEqual(s.ingest("other", self.old_csv)[0], 201)
        finally:
            s.stop()
        # fsync_dir after the unlink of the delete's manifest: the first fsync_dir after
        # start-up (LH_FAULT counts from there) is that one.
        s = Server(data, {"LH_FAULT": "fsync_dir:1:EIO"}).start()
        try:
            status, _, _ = s.request("DELETE", "/catalog/datasets/by-name/people")
            self.assertEqual(status // 100, 2)  # rolled forward: the dataset is gone
            status, _ = s.json("GET", "/catalog/datasets/by-name/people")
            self.assertEqual(status, 404)
            status, doc = s.json("PATCH", "/catalog/datasets/by-name/other/metadata",
                                 {"description": "edited"})
            self.assertEqual(status, 200, doc)
            self.assertIn("dataset_delete_not_durable", s.read_log())
            kept = [f for _, _, fs in os.walk(os.path.join(data, "datasets", "people"))
                    for f in fs]
            self.assertEqual(len(kept), 1, kept)  # a crash could bring the manifest back
        finally:
            s.stop()
        s = Server(data).start()
        try:
            status, doc = s.json("GET", "/catalog/datasets/by-name/other")
            self.assertEqual(doc["dataset"]["description"], "edited")
            # The parts of the deleted dataset were kept while the delete was not durable;
            # the restart's sweep, which found no manifest for them, removed them.
            self.assertFalse(os.path.exists(os.path.join(data, "datasets", "people")))
            status, doc = s.sql("SELECT count(*) AS n FROM other")
            self.assertEqual(status, 200, doc)
        finally:
            s.stop()


class OwnerOnlyTree(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lh-e2e-mode-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_everything_is_owner_only_under_umask_022(self):
        data = os.path.join(self.tmp, "data")
        bucket = os.path.join(self.tmp, "hr")
        s = Server(data, umask=0o022).start()
        try:
            people = os.path.join(self.tmp, "people.csv")
            make_people(people, n=40)
            self.assertEqual(s.ingest("people", people)[0], 201)
            self.assertIn(s.ingest("people", people, mode="append")[0], (200, 201))
            status, doc = s.json("POST", "/storage/buckets", {"name": "hr", "root": bucket})
            self.assertEqual(status, 201, doc)
            self.assertEqual(s.ingest("staff", people, bucket="hr")[0], 201)
            status, doc = s.json("PATCH", "/catalog/datasets/by-name/people/metadata",
                                 {"description": "x"})
            self.assertEqual(status, 200, doc)
            self.assertEqual(s.rows("SELECT count(*) AS n FROM staff")[0][0], 40)
            self.assertNotIn("data_dir_not_private", s.read_log())
        finally:
            s.stop()
        wrong = []
        for top in (data, bucket):
            self.assertEqual(stat.S_IMODE(os.stat(top).st_mode), 0o700, top)
            for root, dirs, files in os.walk(top):
                for d in dirs:
                    m = stat.S_IMODE(os.stat(os.path.join(root, d)).st_mode)
                    if m != 0o700:
                        wrong.append((os.path.join(root, d), oct(m)))
                for f in files:
                    m = stat.S_IMODE(os.stat(os.path.join(root, f)).st_mode)
                    if m != 0o600:
                        wrong.append((os.path.join(root, f), oct(m)))
        self.assertEqual(wrong, [])
        parts = [f for _, _, fs in os.walk(data) for f in fs if f.endswith(".parquet")]
        self.assertGreaterEqual(len(parts), 2)

    def test_warns_about_a_readable_data_folder(self):
        data = os.path.join(self.tmp, "open")
        os.makedirs(data)
        os.chmod(data, 0o755)
        s = Server(data).start()
        try:
            log = s.read_log()
        finally:
            s.stop()
        lines = [l for l in log.splitlines() if "data_dir_not_private" in l]
        self.assertEqual(len(lines), 1, log[-2000:])
        self.assertIn('"level":"warn"', lines[0].replace(" ", ""))
        self.assertIn("0755", lines[0])


if __name__ == "__main__":
    unittest.main()
