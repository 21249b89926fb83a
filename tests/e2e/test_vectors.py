"""Vector indexes end to end (issue 14, items 3, 5 and 6; docs/VECTORS.md): create with and
without waiting (job progress), list/get/delete, refusals (400/404/409), stale marks on
append and replace, a refresh that embeds only the delta and a second one that embeds
nothing, on_append refreshes that happen by themselves, a restart that keeps every index,
and a dataset deleted under an index.

Every index here uses the built-in `hash` embedder (no server) and the `flat` kind, so the
counts are exact; a refresh's report says how many embedder calls it made.
"""
import csv
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Server

WORDS = ["nurse", "engineer", "denver", "python", "welder", "teacher", "oncology", "rust",
         "accountant", "boston", "pilot", "chef", "lisbon", "kubernetes", "pediatric"]


def make_resumes(path, ids, tag="v1", long_every=0):
    """A CSV of (candidate_id, city, resume); resume text depends on the id and tag. Every
    long_every-th resume is long enough for several chunks."""
    rows = []
    for i in ids:
        words = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(6))
        text = f"Candidate {i} ({tag}): {words}."
        if long_every and i % long_every == 0:
            text = (text + " ") * 12
        rows.append({"candidate_id": i, "city": ["Denver", "Boston"][i % 2], "resume": text})
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["candidate_id", "city", "resume"])
        w.writeheader()
        w.writerows(rows)
    return rows


def index_spec(name, dataset="resumes", **kw):
    spec = {"name": name, "dataset": dataset, "id_column": "candidate_id",
            "text_column": "resume", "kind": "flat", "chunk_size": 200, "overlap": 20}
    spec.update(kw)
    return spec


def vector_files(data, dataset, index):
    d = os.path.join(data, "datasets", dataset, "_vectors", index)
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def wait_for(cond, timeout=60.0, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(step)
    return cond()


class Indexes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="lh-e2e-vectors-")
        cls.data = os.path.join(cls.tmp, "data")
        cls.csv = os.path.join(cls.tmp, "resumes.csv")
        cls.rows = make_resumes(cls.csv, range(1, 121), long_every=10)
        cls.server = Server(cls.data).start()
        status, doc = cls.server.ingest("resumes", cls.csv)
        assert status == 201, doc

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def create(self, spec, expect=201):
        status, doc = self.server.json("POST", "/vectors/indexes", spec)
        self.assertEqual(status, expect, doc)
        return doc

    def delete(self, name):
        status, _, body = self.server.request("DELETE", f"/vectors/indexes/{name}")
        self.assertEqual(status, 204, body)

    def test_create_wait_get_list_delete(self):
        s = self.server
        doc = self.create(index_spec("rx_wait"))
        ix = doc["index"]
        self.assertEqual((ix["name"], ix["dataset"], ix["state"], ix["kind"], ix["embedder"],
                          ix["dim"], ix["docs"]), ("rx_wait", "resumes", "ready", "flat", "hash",
                                                   384, 120))
        # 12 long resumes have several chunks each
        self.assertGreater(ix["chunks"], 120)
        self.assertIsNone(ix["embedding_stale_since"])
        self.assertGreater(ix["bytes"], 0)
        files = vector_files(self.data, "resumes", "rx_wait")
        self.assertTrue(any(f.startswith("part-") and f.endswith(".parquet") for f in files),
                        files)
        self.assertTrue(any(f.startswith("ann-") and f.endswith(".faiss") for f in files), files)
        self.assertFalse([f for f in files if ".tmp-" in f], files)
        status, got = s.json("GET", "/vectors/indexes/rx_wait")
        self.assertEqual((status, got["index"]["chunks"]), (200, ix["chunks"]), got)
        status, lst = s.json("GET", "/vectors/indexes")
        self.assertIn("rx_wait", [i["name"] for i in lst["indexes"]])
        # The dataset's own files and queries are untouched by the index's folder.
        self.assertEqual(s.rows("SELECT count(*) FROM resumes"), [[120]])
        self.delete("rx_wait")
        self.assertEqual(vector_files(self.data, "resumes", "rx_wait"), [])
        status, _ = s.json("GET", "/vectors/indexes/rx_wait")
        self.assertEqual(status, 404)
        # the name is free again
        self.create(index_spec("rx_wait"))
        self.delete("rx_wait")

    def test_create_without_waiting_reports_progress(self):
        s = self.server
        doc = self.create(index_spec("rx_nowait", wait=False), expect=202)
        job = doc["job"]
        self.assertEqual(doc["index"], "rx_nowait")

        def finished():
            st, j = s.json("GET", f"/jobs/{job}")
            j = j["job"]
            return j if j["state"] in ("succeeded", "failed", "cancelled") else None
        j = wait_for(finished)
        self.assertEqual(j["state"], "succeeded", j)
        self.assertEqual(j["kind"], "vector_build")
        self.assertEqual(j["result"]["index"]["docs"], 120, j)
        # progress ends on the vectors added, of all of them
        self.assertEqual(j["progress"]["done"], j["progress"]["total"], j)
        status, got = s.json("GET", "/vectors/indexes/rx_nowait")
        self.assertEqual(got["index"]["state"], "ready")
        self.delete("rx_nowait")

    def test_cancelled_build_leaves_nothing(self):
        s = self.server
        doc = self.create(index_spec("rx_cancel", wait=False, chunk_size=16, overlap=0),
                          expect=202)
        status, c = s.json("POST", f"/jobs/{doc['job']}/cancel")
        self.assertIn(status, (202, 409), c)

        def finished():
            st, j = s.json("GET", f"/jobs/{doc['job']}")
            j = j["job"]
            return j if j["state"] in ("succeeded", "failed", "cancelled") else None
        j = wait_for(finished)
        if j["state"] == "succeeded":  # it finished before the request: delete it
            self.delete("rx_cancel")
        else:
            self.assertEqual(j["state"], "cancelled", j)
        self.assertEqual(vector_files(self.data, "resumes", "rx_cancel"), [])
        status, _ = s.json("GET", "/vectors/indexes/rx_cancel")
        self.assertEqual(status, 404)
        self.create(index_spec("rx_cancel"))  # the name is free
        self.delete("rx_cancel")

    def test_refusals(self):
        s = self.server
        cases = [
            ({"name": "x", "dataset": "resumes", "id_column": "candidate_id",
              "text_column": "resume", "colour": "red"}, 400, "unknown field 'colour'"),
            (index_spec("bad name!"), 400, "index name"),
            ({k: v for k, v in index_spec("nm").items() if k != "name"}, 400, "'name' is required"),
            (index_spec("nc", text_column="resumee"), 400, "columns: candidate_id, city, resume"),
            (index_spec("nt", text_column="candidate_id"), 400, "not text"),
            (index_spec("nk", kind="annoy"), 400, "kind"),
            (index_spec("ne", embedder="word2vec"), 400, "embedder"),
            (index_spec("nm2", embedder="ollama"), 400, "needs a 'model'"),
            (index_spec("nh", model="m"), 400, "takes no 'model'"),
            (index_spec("no", chunk_size=50, overlap=50), 400, "overlap"),
            (index_spec("nr", refresh="hourly"), 400, "refresh"),
            (index_spec("nw", wait="yes"), 400, "wait"),
            (index_spec("nd", dataset="nope"), 404, "nope"),
        ]
        for spec, status, needle in cases:
            st, doc = s.json("POST", "/vectors/indexes", spec)
            self.assertEqual(st, status, (spec, doc))
            self.assertIn(needle, doc["message"], (spec, doc))
        status, _, body = s.request("POST", "/vectors/indexes", b"{not json")
        self.assertEqual(status, 400, body)
        self.create(index_spec("rx_dup"))
        status, doc = s.json("POST", "/vectors/indexes", index_spec("RX_DUP"))
        self.assertEqual(status, 409, doc)
        status, doc = s.json("GET", "/vectors/indexes/missing")
        self.assertEqual(status, 404, doc)
        status, doc = s.json("DELETE", "/vectors/indexes/missing")
        self.assertEqual(status, 404, doc)
        status, doc = s.json("POST", "/vectors/refresh/nodata", {})
        self.assertEqual(status, 404, doc)
        status, doc = s.json("POST", "/vectors/refresh/resumes", {"wait": 1})
        self.assertEqual(status, 400, doc)
        self.delete("rx_dup")
        # An analyst reads indexes, but may not create one.
        status, key = s.json("POST", "/auth/keys", {"name": "vec-analyst", "role": "analyst"})
        self.assertEqual(status, 201, key)
        status, _, body = s.request("GET", "/vectors/indexes", key=key["key"])
        self.assertEqual(status, 200, body)
        status, _, body = s.request("POST", "/vectors/indexes", index_spec("rx_an"),
                                    key=key["key"])
        self.assertEqual(status, 403, body)

    def cli(self, *args):
        p = subprocess.run([harness.BIN, "--server", self.server.url, "--key", harness.ADMIN_KEY,
                            *args], capture_output=True, text=True, timeout=300)
        return p.returncode, p.stdout, p.stderr

    def test_cli(self):
        rc, out, err = self.cli("vectors", "create", "rx_cli", "--dataset", "resumes",
                                "--id-column", "candidate_id", "--text-column", "resume",
                                "--kind", "flat", "--chunk-size", "300", "--overlap", "30")
        self.assertEqual(rc, 0, err)
        self.assertIn("index 'rx_cli' over resumes(candidate_id, resume): flat", out)
        self.assertIn("120 docs", out)
        rc, out, err = self.cli("vectors", "list")
        self.assertEqual(rc, 0, err)
        self.assertIn("rx_cli", out)
        rc, out, err = self.cli("--json", "vectors", "show", "rx_cli")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["index"]["docs"], 120)
        rc, out, err = self.cli("vectors", "refresh", "resumes")
        self.assertEqual(rc, 0, err)
        self.assertIn("rx_cli: 0 docs embedded", out)
        rc, out, err = self.cli("vectors", "stale")
        self.assertEqual(rc, 0, err)
        rc, out, err = self.cli("vectors", "create", "rx_cli2", "--dataset", "resumes")
        self.assertNotEqual(rc, 0)
        self.assertIn("--id-column", err)
        rc, out, err = self.cli("vectors", "delete", "rx_cli")
        self.assertEqual(rc, 0, err)
        rc, out, err = self.cli("vectors", "show", "rx_cli")
        self.assertNotEqual(rc, 0)

    def test_agent_sees_only_its_indexes(self):
        s = self.server
        path = os.path.join(self.tmp, "other.csv")
        make_resumes(path, range(1, 6))
        status, doc = s.ingest("other_resumes", path)
        self.assertEqual(status, 201, doc)
        self.create(index_spec("rx_mine"))
        self.create(index_spec("rx_theirs", dataset="other_resumes"))
        status, key = s.json("POST", "/auth/keys", {"name": "vec-agent", "role": "agent",
                                                     "datasets": ["resumes"]})
        self.assertEqual(status, 201, key)
        status, doc = s.json("GET", "/vectors/indexes", key=key["key"])
        self.assertEqual(status, 200, doc)
        names = [i["name"] for i in doc["indexes"]]
        self.assertIn("rx_mine", names)
        self.assertNotIn("rx_theirs", names)
        status, doc = s.json("GET", "/vectors/indexes/rx_mine", key=key["key"])
        self.assertEqual(status, 200, doc)
        status, doc = s.json("GET", "/vectors/indexes/rx_theirs", key=key["key"])
        self.assertEqual(status, 403, doc)
        self.assertIn("rx_mine", doc["message"])
        for method, path in (("POST", "/vectors/refresh/resumes"), ("DELETE",
                                                                    "/vectors/indexes/rx_mine")):
            status, _, body = s.request(method, path, {} if method == "POST" else None,
                                        key=key["key"])
            self.assertEqual(status, 403, body)
        self.delete("rx_mine")
        self.delete("rx_theirs")

    def test_duplicate_ids_are_refused_and_leave_nothing(self):
        s = self.server
        path = os.path.join(self.tmp, "dups.csv")
        make_resumes(path, [1, 2, 3, 3, 4, 5, 5, 6])
        status, doc = s.ingest("dups", path)
        self.assertEqual(status, 201, doc)
        status, doc = s.json("POST", "/vectors/indexes", index_spec("rx_dups", dataset="dups"))
        self.assertEqual(status, 400, doc)
        self.assertEqual(doc["error"], "duplicate_ids", doc)
        self.assertIn("2 duplicated values", doc["message"])
        self.assertIn("'3'", doc["message"])
        self.assertEqual(vector_files(self.data, "dups", "rx_dups"), [])
        status, _ = s.json("GET", "/vectors/indexes/rx_dups")
        self.assertEqual(status, 404)


class Freshness(unittest.TestCase):
    """One server per test: stale marks, refresh deltas, on_append, replace, restart."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lh-e2e-vfresh-")
        self.data = os.path.join(self.tmp, "data")
        self.server = Server(self.data).start()
        path = os.path.join(self.tmp, "base.csv")
        make_resumes(path, range(1, 61))
        status, doc = self.server.ingest("resumes", path)
        self.assertEqual(status, 201, doc)

    def tearDown(self):
        try:
            self.server.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def append(self, ids, tag="v1", mode="append"):
        path = os.path.join(self.tmp, f"more-{tag}-{ids[0]}.csv")
        make_resumes(path, ids, tag=tag)
        status, doc = self.server.ingest("resumes", path, mode=mode)
        self.assertEqual(status, 200, doc)

    def get(self, name):
        status, doc = self.server.json("GET", f"/vectors/indexes/{name}")
        self.assertEqual(status, 200, doc)
        return doc["index"]

    def refresh(self):
        status, doc = self.server.json("POST", "/vectors/refresh/resumes", {})
        self.assertEqual(status, 200, doc)
        return {e["name"]: e for e in doc["indexes"]}

    def test_append_marks_stale_and_refresh_embeds_only_the_delta(self):
        s = self.server
        status, doc = s.json("POST", "/vectors/indexes", index_spec("rx"))
        self.assertEqual(status, 201, doc)
        self.assertEqual(doc["index"]["docs"], 60)
        status, doc = s.json("GET", "/vectors/stale")
        self.assertEqual(doc["stale"], [])
        self.append(list(range(61, 71)))
        stale = wait_for(lambda: s.json("GET", "/vectors/stale")[1]["stale"])
        self.assertEqual([(e["dataset"], e["index"], e["refresh"]) for e in stale],
                         [("resumes", "rx", "manual")], stale)
        self.assertTrue(stale[0]["embedding_stale_since"].endswith("Z"))
        self.assertEqual(self.get("rx")["embedding_stale_since"],
                         stale[0]["embedding_stale_since"])
        r = self.refresh()["rx"]
        self.assertEqual((r["docs_embedded"], r["docs_removed"], r["chunks_removed"]),
                         (10, 0, 0), r)
        self.assertGreater(r["embed_calls"], 0)
        ix = self.get("rx")
        self.assertEqual((ix["docs"], ix["embedding_stale_since"]), (70, None), ix)
        # Nothing new: no embedding at all.
        r = self.refresh()["rx"]
        self.assertEqual((r["docs_embedded"], r["chunks_added"], r["chunks_removed"],
                          r["embed_calls"]), (0, 0, 0, 0), r)
        status, doc = s.json("GET", "/vectors/stale")
        self.assertEqual(doc["stale"], [])
        # The old parts are gone once the new definition named its own.
        files = vector_files(self.data, "resumes", "rx")
        self.assertEqual(len([f for f in files if f.endswith(".faiss")]), 1, files)

    def test_refresh_without_waiting_is_a_job(self):
        s = self.server
        status, doc = s.json("POST", "/vectors/indexes", index_spec("rxj"))
        self.assertEqual(status, 201, doc)
        self.append([61, 62])
        wait_for(lambda: s.json("GET", "/vectors/stale")[1]["stale"])
        status, doc = s.json("POST", "/vectors/refresh/resumes", {"wait": False})
        self.assertEqual(status, 202, doc)

        def finished():
            st, j = s.json("GET", f"/jobs/{doc['job']}")
            j = j["job"]
            return j if j["state"] in ("succeeded", "failed") else None
        j = wait_for(finished)
        self.assertEqual(j["state"], "succeeded", j)
        self.assertEqual(j["result"]["indexes"][0]["docs_embedded"], 2, j)

    def test_on_append_refreshes_by_itself(self):
        s = self.server
        status, doc = s.json("POST", "/vectors/indexes", index_spec("rxa", refresh="on_append"))
        self.assertEqual(status, 201, doc)
        self.append(list(range(61, 81)))
        ix = wait_for(lambda: (lambda i: i if i["docs"] == 80 and
                               i["embedding_stale_since"] is None else None)(self.get("rxa")))
        self.assertTrue(ix, self.get("rxa"))
        self.assertIsNotNone(ix["refreshed_at"])
        status, doc = s.json("GET", "/catalog/events?since=0&limit=1000")
        self.assertIn("vector_index.created", [e["action"] for e in doc["events"]])

    def test_replace_drops_vanished_and_reembeds_changed(self):
        s = self.server
        status, doc = s.json("POST", "/vectors/indexes", index_spec("rxr"))
        self.assertEqual(status, 201, doc)
        # HNSW cannot remove in place: its refresh rebuilds from the kept vectors
        status, doc = s.json("POST", "/vectors/indexes", index_spec("rxh", kind="hnsw"))
        self.assertEqual(status, 201, doc)
        # 1..40 kept (1..10 with new text), 41..60 gone, 61..65 new
        path = os.path.join(self.tmp, "replace.csv")
        rows = make_resumes(path, range(11, 41))
        rows += make_resumes(os.path.join(self.tmp, "x.csv"), range(1, 11), tag="v2")
        rows += make_resumes(os.path.join(self.tmp, "y.csv"), range(61, 66))
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=["candidate_id", "city", "resume"])
            w.writeheader()
            w.writerows(rows)
        status, doc = s.ingest("resumes", path, mode="replace")
        self.assertIn(status, (200, 201), doc)
        wait_for(lambda: s.json("GET", "/vectors/stale")[1]["stale"])
        refreshed = self.refresh()
        for name in ("rxr", "rxh"):
            r = refreshed[name]
            self.assertEqual((r["docs_embedded"], r["docs_changed"], r["docs_removed"]),
                             (15, 10, 20), r)
            self.assertEqual(self.get(name)["docs"], 45)
        refreshed = self.refresh()
        for name in ("rxr", "rxh"):
            self.assertEqual(refreshed[name]["embed_calls"], 0, refreshed[name])

    def test_restart_keeps_indexes_and_sweeps_strays(self):
        s = self.server
        status, doc = s.json("POST", "/vectors/indexes", index_spec("rxs"))
        self.assertEqual(status, 201, doc)
        before = self.get("rxs")
        files = vector_files(self.data, "resumes", "rxs")
        # A crash left a part no definition names, and the folder of an index that is gone.
        d = os.path.join(self.data, "datasets", "resumes", "_vectors")
        with open(os.path.join(d, "rxs", "part-stray.parquet"), "wb") as f:
            f.write(b"PAR1 stray")
        os.makedirs(os.path.join(d, "ghost"))
        with open(os.path.join(d, "ghost", "part-1.parquet"), "wb") as f:
            f.write(b"PAR1 ghost")
        s.stop()
        self.server = s = Server(self.data).start()
        after = self.get("rxs")
        for k in ("docs", "chunks", "dim", "kind", "created_at", "built_at"):
            self.assertEqual(before[k], after[k], k)
        self.assertEqual(vector_files(self.data, "resumes", "rxs"), files)
        self.assertFalse(os.path.exists(os.path.join(d, "ghost", "part-1.parquet")))
        # And it still refreshes.
        self.append([61])
        wait_for(lambda: s.json("GET", "/vectors/stale")[1]["stale"])
        self.assertEqual(self.refresh()["rxs"]["docs_embedded"], 1)

    def test_dataset_deleted_under_an_index(self):
        s = self.server
        status, doc = s.json("POST", "/vectors/indexes", index_spec("rxd"))
        self.assertEqual(status, 201, doc)
        status, _, body = s.request("DELETE", "/catalog/datasets/by-name/resumes")
        self.assertIn(status, (200, 204), body)
        ix = wait_for(lambda: (lambda i: i if i.get("problem") else None)(self.get("rxd")))
        self.assertIn("deleted", ix["problem"])
        # The index keeps its files (the dataset's deletion leaves its folder).
        self.assertTrue(vector_files(self.data, "resumes", "rxd"))
        status, doc = s.json("POST", "/vectors/refresh/resumes", {})
        self.assertEqual(status, 404, doc)
        s.stop()
        self.server = s = Server(self.data).start()
        self.assertIn("does not exist", self.get("rxd")["problem"])
        status, _, body = s.request("DELETE", "/vectors/indexes/rxd")
        self.assertEqual(status, 204, body)
        self.assertEqual(vector_files(self.data, "resumes", "rxd"), [])


if __name__ == "__main__":
    unittest.main()
