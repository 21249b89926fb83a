"""The query engine's listeners, end to end: a change the engine cannot serve fails the
request and is undone (never 201 then "table does not exist"); a dataset that breaks later
is listed as not queryable, with the reason; a bucket the engine cannot open is not added.
"""
import os
import unittest

from harness import Base, Server


def parts(data, name):
    d = os.path.join(data, "datasets", name)
    out = []
    for root, _, files in os.walk(d):
        out += [os.path.join(root, f) for f in files]
    return sorted(out)


class ListenerFailures(Base):
    def listed(self, name):
        status, doc = self.server.json("GET", "/catalog/datasets")
        self.assertEqual(status, 200, doc)
        return next(m for m in doc["datasets"] if m["name"] == name)

    def test_01_change_the_engine_cannot_serve_fails_and_is_undone(self):
        s = self.server
        status, doc = s.ingest("people", self.people_csv)
        self.assertEqual(status, 201, doc)
        self.assertTrue(self.listed("people")["queryable"])
        (part,) = parts(self.data, "people")
        with open(part, "wb") as f:  # the part goes bad on disk
            f.write(b"not a parquet file at all")

        status, doc = s.ingest("people", self.people_csv, mode="append")
        self.assertEqual(status, 500, doc)
        self.assertEqual(doc["error"], "dataset_unqueryable")
        self.assertIn("dataset 'people'", doc["message"])
        self.assertNotIn(self.data, doc["message"])
        status, doc = s.json("GET", "/catalog/datasets/by-name/people")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["dataset"]["version"], 1)
        self.assertEqual(len(doc["dataset"]["files"]), 1)
        self.assertEqual(parts(self.data, "people"), [part])  # the new part is gone too

        # another dataset still commits; the broken one is now listed with its reason
        status, doc = s.ingest("other", b"id,v\n1,a\n")
        self.assertEqual(status, 201, doc)
        self.assertEqual(s.rows("SELECT count(*) FROM other"), [[1]])
        m = self.listed("people")
        self.assertFalse(m["queryable"])
        self.assertIn("magic bytes", m["query_problem"])  # DuckDB: not a Parquet file
        self.assertNotIn(self.data, m["query_problem"])
        self.assertTrue(self.listed("other")["queryable"])
        status, doc = s.json("GET", "/catalog/datasets/by-name/people")
        self.assertFalse(doc["dataset"]["queryable"])

        # a restart seeds the same verdict instead of failing to start
        s.stop()
        type(self).server = s = Server(self.data).start()
        self.assertFalse(self.listed("people")["queryable"])
        self.assertEqual(s.rows("SELECT count(*) FROM other"), [[1]])

    def test_02_bucket_the_engine_cannot_open_is_not_added(self):
        s = self.server
        spill = os.path.join(self.data, "_tmp", "duckdb")
        away = spill + ".away"
        root = os.path.join(self.tmp, "b1")
        os.rename(spill, away)
        try:
            with open(spill, "w") as f:  # no database can make its spill folder now
                f.write("in the way")
            status, doc = s.json("POST", "/storage/buckets", {"name": "b1", "root": root})
            self.assertGreaterEqual(status, 500, doc)
            status, doc = s.json("GET", "/storage/buckets")
            self.assertNotIn("b1", [b["name"] for b in doc["buckets"]])
        finally:
            os.unlink(spill)
            os.rename(away, spill)
        status, doc = s.json("POST", "/storage/buckets", {"name": "b1", "root": root})
        self.assertEqual(status, 201, doc)
        status, doc = s.ingest("in_b1", b"id\n7\n", bucket="b1")
        self.assertEqual(status, 201, doc)
        self.assertEqual(s.rows("SELECT id FROM in_b1"), [[7]])


if __name__ == "__main__":
    unittest.main()
