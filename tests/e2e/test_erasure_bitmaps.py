"""Tombstones applied as per-part deletion bitmaps (issue 10, item 10: the query cost).

The dataset view filters each part on its file_row_number against a bitmap computed from
the key table; these tests pin what that must keep: the right rows hidden in every part
(including parts appended after the tombstone, where an erased key comes back at another
position), string keys, NULL keys visible, __raw__ unfiltered, the bitmap table out of
users' reach, and a safe view over the dataset still filtered.
"""
import harness

TOMB = "/catalog/datasets/by-name/{}/tombstone"


class DeletionBitmaps(harness.Base):
    def add(self, name, column, keys):
        status, doc = self.server.json("POST", TOMB.format(name),
                                       {"row_key_column": column, "row_key_values": keys})
        self.assertEqual(status, 200, doc)
        return doc

    def rows(self, sql):
        return self.server.rows(sql)

    def ids(self, rel, col="id"):
        return [r[0] for r in self.server.rows(f"SELECT {col} FROM {rel} ORDER BY {col}")]

    def test_each_part_hides_its_own_rows_and_appends_are_recomputed(self):
        s = self.server
        rows = "".join(f"{i},v{i}\n" for i in range(1, 41))
        status, doc = s.ingest("parts", ("id,v\n" + rows).encode())
        self.assertEqual(status, 201, doc)
        self.add("parts", "id", [3, 40])
        self.assertEqual(self.ids("parts"), [i for i in range(1, 41) if i not in (3, 40)])
        # An append in a different order: the erased keys come back at other positions
        # (and twice), and must stay hidden; a key not erased keeps every copy.
        status, doc = s.ingest("parts", b"id,v\n40,again\n7,x\n3,y\n3,z\n", mode="append")
        self.assertIn(status, (200, 201), doc)
        want = sorted([i for i in range(1, 41) if i not in (3, 40)] + [7])
        self.assertEqual(self.ids("parts"), want)
        self.assertEqual(len(self.ids("__raw__parts")), 44)
        # A third tombstone falls in the second part only.
        self.add("parts", "id", [7])
        self.assertEqual(self.ids("parts"), [i for i in want if i != 7])
        status, doc = s.json("DELETE", TOMB.format("parts"), {"row_key_values": [3, 40, 7]})
        self.assertEqual(status, 200, doc)
        self.assertEqual(len(self.ids("parts")), 44)

    def test_dirty_parts_in_one_scan_at_their_offsets(self):
        # Three parts whose sizes are not multiples of the bitmaps' 24-bit padding: the
        # dirty ones are read in one scan, each file's bits found at its own offset in the
        # concatenated bitmap; a clean part is read unfiltered beside them.
        s = self.server
        sizes = (25, 7, 50)
        start = 1
        for i, n in enumerate(sizes):
            body = "id,v\n" + "".join(f"{k},v{k}\n" for k in range(start, start + n))
            status, doc = s.ingest("offs", body.encode(), mode="append" if i else None)
            self.assertIn(status, (200, 201), doc)
            start += n
        everything = list(range(1, start))
        # The last row of part 0 (row 24, next to the padding), the first and the last
        # rows of part 2; part 1 stays clean.
        hidden = [25, 33, 82]
        self.add("offs", "id", hidden)
        self.assertEqual(self.ids("offs"), [k for k in everything if k not in hidden])
        status, doc = s.sql("SELECT count(*), sum(id)::BIGINT FROM offs")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["rows"][0], [len(everything) - 3,
                                          sum(everything) - sum(hidden)])
        # Now every part is dirty (the offsets list covers three files).
        self.add("offs", "id", [26, 1])
        hidden += [26, 1]
        self.assertEqual(self.ids("offs"), [k for k in everything if k not in hidden])
        self.assertEqual(len(self.ids("__raw__offs")), len(everything))
        # Restoring part 0's keys: part 2 alone is filtered (offset 0), 0 and 1 unfiltered.
        status, doc = s.json("DELETE", TOMB.format("offs"), {"row_key_values": [25, 1, 26]})
        self.assertEqual(status, 200, doc)
        self.assertEqual(self.ids("offs"), [k for k in everything if k not in (33, 82)])

    def test_many_dirty_parts_use_the_offset_list(self):
        # Ten dirty parts in one scan: each file's bits start at its own entry of the
        # offsets list lh_row_visible is given.
        s = self.server
        for i in range(10):
            body = "id,v\n" + "".join(f"{i * 30 + k},v\n" for k in range(1, 31))
            status, doc = s.ingest("many", body.encode(), mode="append" if i else None)
            self.assertIn(status, (200, 201), doc)
        hidden = [i * 30 + k for i in range(10) for k in (1, 17, 30)]
        self.add("many", "id", hidden)
        self.assertEqual(self.ids("many"), [k for k in range(1, 301) if k not in hidden])

    def test_columns_named_like_the_scan_s_virtual_columns(self):
        # A dataset column `file_row_number` or `file_index` would shadow the scan's virtual
        # columns the bitmaps read: such a dataset keeps the key-table filter. Here the data's
        # file_index would send each part to the other's bitmap and show erased id 5.
        s = self.server
        for col, name in (("file_index", "shadow_fi"), ("file_row_number", "shadow_frn")):
            status, doc = s.ingest(name, f"id,{col}\n1,1\n2,1\n3,1\n4,1\n".encode())
            self.assertEqual(status, 201, doc)
            status, doc = s.ingest(name, f"id,{col}\n5,0\n2,0\n".encode(), mode="append")
            self.assertIn(status, (200, 201), doc)
            self.add(name, "id", [2, 5])
            self.assertEqual(self.ids(name), [1, 3, 4], col)
            self.assertEqual(self.rows(f"SELECT DISTINCT {col} FROM {name} ORDER BY 1"), [[1]])

    def test_two_filtered_datasets_in_one_query(self):
        # Each view's filter binds its own bitmaps: a join of two tombstoned datasets (and
        # of one with itself) hides each side's rows by its own set.
        s = self.server
        for name, hide in (("left_t", [2, 5]), ("right_t", [3, 5])):
            status, doc = s.ingest(name, ("id,v\n" + "".join(
                f"{i},{name}{i}\n" for i in range(1, 7))).encode())
            self.assertEqual(status, 201, doc)
            self.add(name, "id", hide)
        self.assertEqual(self.rows("SELECT l.id FROM left_t l JOIN right_t r USING (id) "
                                   "ORDER BY 1"), [[1], [4], [6]])
        self.assertEqual(self.rows("SELECT count(*) FROM left_t a, left_t b"), [[16]])
        self.assertEqual(self.rows("SELECT (SELECT count(*) FROM left_t), "
                                   "(SELECT count(*) FROM right_t)"), [[4, 4]])

    def test_string_keys_and_null_keys(self):
        s = self.server
        status, doc = s.ingest("strs", b"code,n\nab,1\n,2\ncd,3\nab,4\nef,5\n")
        self.assertEqual(status, 201, doc)
        self.add("strs", "code", ["ab", "cd"])
        self.assertEqual(self.ids("strs", "n"), [2, 5])
        self.assertEqual(self.ids("__raw__strs", "n"), [1, 2, 3, 4, 5])
        # An appended part with no erased key is read unfiltered; the first stays filtered.
        status, doc = s.ingest("strs", b"code,n\nxy,6\n,7\n", mode="append")
        self.assertIn(status, (200, 201), doc)
        self.assertEqual(self.ids("strs", "n"), [2, 5, 6, 7])

    def test_the_bitmap_table_is_out_of_reach(self):
        s = self.server
        status, doc = s.ingest("reach", b"id,v\n4,a\n5,b\n6,c\n")
        self.assertEqual(status, 201, doc)
        self.add("reach", "id", [5])
        try:
            for sql in ("SELECT * FROM __deletes__reach",
                        "SELECT * FROM main.__deletes__reach",
                        "DELETE FROM __deletes__reach",
                        "UPDATE __deletes__reach SET bm = NULL"):
                status, doc = s.sql(sql)
                self.assertIn(status, (400, 403), (sql, doc))
            self.assertEqual(self.ids("reach"), [4, 6])
            # The views' own row filter is not a function callers may use.
            status, doc = s.sql("SELECT lh_row_visible(from_hex('00'), [0, 8], 0, 0)")
            self.assertEqual(status, 403, doc)
            self.assertIn("internal", doc.get("message", ""), doc)
        finally:
            s.json("DELETE", TOMB.format("reach"), {"row_key_values": [5]})

    def test_a_safe_view_over_the_dataset_is_filtered(self):
        s = self.server
        status, doc = s.ingest("cands", b"cid,region,score\n1,north,5\n2,south,6\n3,north,7\n")
        self.assertEqual(status, 201, doc)
        status, doc = s.json("POST", "/catalog/views", {
            "name": "cands_safe", "base_dataset": "cands", "columns": ["cid", "score"],
            "description": "bitmap test"})
        self.assertIn(status, (200, 201), doc)
        self.add("cands", "cid", [2])
        self.assertEqual(self.ids("cands_safe", "score"), [5, 7])
        # A change of the base (an append) keeps the safe view filtered.
        status, doc = s.ingest("cands", b"cid,region,score\n2,south,8\n4,east,9\n", mode="append")
        self.assertIn(status, (200, 201), doc)
        self.assertEqual(self.ids("cands_safe", "score"), [5, 7, 9])
