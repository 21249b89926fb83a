"""Scoped tombstones (the superseded rows of upserts) through the real server.

No HTTP route commits an upsert yet (the database sync does, issue 13); the commit itself,
its failures and concurrent queries are tested against the real engine in
tests/unit/test_upsert.c. Here the server is started on a data folder whose tombstone set
holds what an upsert commit writes (entries with reason "superseded" and a live_part),
plus one left by an upsert that crashed before its manifest write (a live_part no
manifest lists), and everything a user reaches over HTTP is checked: queries see each
key's current version once, the listing shows live_part and reason, the crashed entry is
rolled back at start, an erasure wins over a scoped entry, DELETE restores the old rows,
and a compaction keeps each key's live rows and clears the set.
"""
import csv
import json
import os

import harness
from harness import Server

TOMB = "/catalog/datasets/by-name/people/tombstone"
SET = os.path.join("_catalog", "tombstones", "people.json")
LOST = "datasets/people/x/part-lost.parquet"


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "val"])
        w.writerows(rows)


class ScopedTombstones(harness.Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.server
        base = os.path.join(cls.tmp, "base.csv")
        write_csv(base, [(i, "v0") for i in range(1, 6)])
        status, doc = s.ingest("people", base)
        assert status == 201, doc
        newer = os.path.join(cls.tmp, "newer.csv")
        write_csv(newer, [(2, "v1"), (3, "v1")])
        status, doc = s.ingest("people", newer, mode="append")
        assert status in (200, 201), doc
        s.stop()
        with open(os.path.join(cls.data, "_catalog", "datasets", "people.json")) as f:
            cls.parts = [p["key"] for p in json.load(f)["files"]]
        entry = {"actor": "sync", "reason": "superseded", "deleted_at": "2026-12-02T15:00:00Z"}
        doc = {"format_version": "tombstones.v1", "dataset": "people", "key_column": "id",
               "tombstones": [
                   dict(entry, key="2", live_part=cls.parts[1]),
                   # an upsert that crashed between its set and its manifest: 3 had been
                   # upserted before (previous_part), 4 was new
                   dict(entry, key="3", live_part=LOST, previous_part=cls.parts[1]),
                   dict(entry, key="4", live_part=LOST),
               ]}
        os.makedirs(os.path.dirname(os.path.join(cls.data, SET)), mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(cls.data, SET), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        cls.server = Server(cls.data).start()

    def rows(self):
        return self.server.rows("SELECT id, val FROM people ORDER BY id, val")

    def test_scoped_entries_end_to_end(self):
        s = self.server
        # each key once, its live version; the crashed upsert's entries hide nothing
        self.assertEqual(self.rows(), [[1, "v0"], [2, "v1"], [3, "v1"], [4, "v0"], [5, "v0"]])
        self.assertEqual(s.rows("SELECT count(*) FROM __raw__people"), [[7]])
        status, doc = s.json("GET", TOMB)
        self.assertEqual(status, 200, doc)
        got = {t["key"]: t for t in doc["tombstones"]}
        self.assertEqual(sorted(got), ["2", "3"], doc)
        for k in ("2", "3"):  # 3 rolled back to its previous live part
            self.assertEqual((got[k]["reason"], got[k]["live_part"]),
                             ("superseded", self.parts[1]))
            self.assertNotIn("previous_part", got[k])
        # the rollback at start was written: no entry names the lost part any more
        with open(os.path.join(self.data, SET)) as f:
            self.assertNotIn("part-lost", f.read())

        # an erasure wins over the upsert: every version of 2 is gone
        status, doc = s.json("POST", TOMB, {"row_key_column": "id", "row_key_values": [2],
                                            "reason": "art. 17"})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["tombstones_added"], 1)
        status, doc = s.json("GET", TOMB)
        t2 = [t for t in doc["tombstones"] if t["key"] == "2"][0]
        self.assertEqual(t2["reason"], "art. 17")
        self.assertNotIn("live_part", t2)
        self.assertEqual(s.rows("SELECT count(*) FROM people WHERE id = 2"), [[0]])

        # DELETE of a scoped tombstone shows the old rows again
        status, doc = s.json("DELETE", TOMB, {"row_key_values": [3]})
        self.assertEqual((status, doc["tombstones_removed"]), (200, 1), doc)
        self.assertEqual(s.rows("SELECT val FROM people WHERE id = 3 ORDER BY val"),
                         [["v0"], ["v1"]])

        # a restart serves the same
        before = self.rows()
        s.stop()
        self.server = s = Server(self.data).start()
        type(self).server = s
        self.assertEqual(self.rows(), before)

        # compaction: 2 erased, both versions of 3 (its tombstone is gone), the rest once
        status, doc = s.json("POST", "/query/compact", {"dataset": "people"})
        self.assertEqual(status, 200, doc)
        self.assertTrue(doc["tombstones_cleared"], doc)
        self.assertEqual(self.rows(), before)
        self.assertEqual(s.rows("SELECT count(*) FROM __raw__people"), [[len(before)]])
        status, doc = s.json("GET", TOMB)
        self.assertEqual((doc["key_column"], doc["tombstones"]), (None, []))


if __name__ == "__main__":
    import unittest
    unittest.main()
