"""End-to-end tests of small things a user meets: CSV text encodings (encoding=utf-8|
utf-16|latin-1), what the public GET /health says, and the CLI's counts. Expected answers
come from the files written here, never from the server."""
import os
import subprocess
import urllib.parse

import harness as h
from harness import ADMIN_KEY, Base, snapshot

TEXT = "id,name,city\n1,José,Zürich\n2,Łukasz,Kraków\n3,Zoë,Montréal\n"
LATIN1_TEXT = "id,name,city\n1,José,Zürich\n2,Renée,Besançon\n3,Zoë,Montréal\n"


def expected(text):
    lines = text.strip().split("\n")[1:]
    return [[int(l.split(",")[0])] + l.split(",")[1:] for l in lines]


class Encodings(Base):
    def ingest_ok(self, name, body, encoding, mode=None):
        status, doc = self.server.ingest(name, body, mode=mode,
                                         extra={"encoding": encoding} if encoding else None)
        self.assertIn(status, (200, 201), doc)
        return doc["dataset"]

    def failed(self, name, body, status, **extra):
        before = snapshot(self.data)
        got, doc = self.server.ingest(name, body, extra=extra or None)
        self.assertEqual(got, status, doc)
        self.assertEqual(snapshot(self.data), before, "a refused ingest left files behind")
        self.assertEqual(self.server.json("GET", f"/catalog/datasets/by-name/{name}")[0], 404)
        return doc

    def test_latin1_without_encoding_names_the_parameter(self):
        doc = self.failed("l1_plain", LATIN1_TEXT.encode("latin-1"), 400)
        self.assertEqual(doc["error"], "invalid_file")
        self.assertIn("encoding=latin-1", doc["message"])
        self.assertNotIn("_tmp", doc["message"])

    def test_latin1_with_encoding(self):
        m = self.ingest_ok("l1_people", LATIN1_TEXT.encode("latin-1"), "latin-1")
        self.assertEqual([c["name"] for c in m["columns"]], ["id", "name", "city"])
        self.assertEqual(self.server.rows("SELECT * FROM l1_people ORDER BY id"),
                         expected(LATIN1_TEXT))
        # Spellings are forgiving: any case, latin1, iso-8859-1.
        self.ingest_ok("l1_alias", LATIN1_TEXT.encode("latin-1"), "ISO-8859-1")
        self.assertEqual(self.server.rows("SELECT name FROM l1_alias WHERE id = 2"), [["Renée"]])
        # An append in Latin-1 joins a dataset first loaded as UTF-8.
        self.ingest_ok("mixed", TEXT.encode("utf-8"), None)
        self.ingest_ok("mixed", "id,name,city\n4,Renée,Besançon\n".encode("latin-1"), "latin1",
                       mode="append")
        self.assertEqual(self.server.rows("SELECT name, city FROM mixed WHERE id = 4"),
                         [["Renée", "Besançon"]])

    def test_utf16(self):
        # With a byte order mark (Python's "utf-16" writes one) and without (LE).
        self.ingest_ok("u16_bom", TEXT.encode("utf-16"), "utf-16")
        self.ingest_ok("u16_le", TEXT.encode("utf-16-le"), "UTF16")
        for name in ("u16_bom", "u16_le"):
            status, doc = self.server.json("GET", f"/catalog/datasets/by-name/{name}")
            self.assertEqual([c["name"] for c in doc["dataset"]["columns"]],
                             ["id", "name", "city"])
            self.assertEqual(self.server.rows(f"SELECT * FROM {name} ORDER BY id"),
                             expected(TEXT))
        # Without the parameter: refused with a message that says what to send.
        doc = self.failed("u16_plain", TEXT.encode("utf-16"), 400)
        self.assertIn("encoding=utf-16", doc["message"])

    def test_wrong_declared_encoding_is_refused_not_empty(self):
        # DuckDB reads anything as UTF-16LE; a UTF-8 or big-endian file would become a
        # dataset of zero rows. Both are refused instead.
        doc = self.failed("u8_as_u16", TEXT.encode("utf-8"), 400, encoding="utf-16")
        self.assertIn("encoding", doc["message"])
        doc = self.failed("u16_be", TEXT.encode("utf-16-be"), 400, encoding="utf-16")
        doc = self.failed("u16_be_bom", b"\xfe\xff" + TEXT.encode("utf-16-be"), 400,
                          encoding="utf-16")
        self.assertIn("big-endian", doc["message"])
        # UTF-8 with characters Latin-1 cannot hold (Ł is C5 81: 0x81 is not Latin-1 text).
        doc = self.failed("u8_as_l1", TEXT.encode("utf-8"), 400, encoding="latin-1")
        self.assertIn("not valid latin-1", doc["message"])
        self.assertIn("encoding", doc["message"])

    def test_unknown_encoding_is_400_naming_the_valid_ones(self):
        doc = self.failed("enc_bad", TEXT.encode("utf-8"), 400, encoding="ebcdic")
        self.assertEqual(doc["error"], "invalid_encoding")
        for valid in ("utf-8", "utf-16", "latin-1"):
            self.assertIn(valid, doc["message"])
        # Checked before the body is read: a huge declared body is not waited for.
        q = urllib.parse.urlencode({"name": "enc_bad2", "format": "csv", "encoding": "koi8"})
        status, _, body = self.server.request("POST", "/ingest/file?" + q, b"id\n1\n")
        self.assertEqual(status, 400, body)
        status, doc = self.server.ingest("enc_json", b'[{"a": 1}]', fmt="json",
                                         extra={"encoding": "latin-1"})
        self.assertEqual(status, 400, doc)
        self.assertIn("CSV only", doc["message"])


class Health(Base):
    def test_health_hides_the_dataset_count_without_a_key(self):
        s = self.server
        self.assertEqual(s.ingest("h_one", b"id\n1\n")[0], 201)
        self.assertEqual(s.ingest("h_two", b"id\n2\n")[0], 201)
        status, doc = s.json("GET", "/health", key=None)
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["status"], "ok")
        self.assertNotIn("datasets", doc)
        self.assertEqual(set(doc), {"status", "version", "uptime_s"})
        # Any valid key gets the count of what it may see.
        status, doc = s.json("GET", "/health")
        self.assertEqual((status, doc["datasets"]), (200, 2))
        status, k = s.json("POST", "/auth/keys", {"name": "h_bot", "role": "agent",
                                                  "datasets": ["h_one"]})
        self.assertEqual(status, 201, k)
        status, doc = s.json("GET", "/health", key=k["key"])
        self.assertEqual((status, doc["datasets"]), (200, 1))
        status, k = s.json("POST", "/auth/keys", {"name": "h_legal", "role": "legal"})
        self.assertEqual(status, 201, k)
        status, doc = s.json("GET", "/health", key=k["key"])
        self.assertEqual((status, doc["datasets"]), (200, 2))
        # An unknown key is ignored (a health probe never fails on a stale key) and
        # earns nothing.
        status, doc = s.json("GET", "/health", key="not-a-key-" + "x" * 40)
        self.assertEqual(status, 200, doc)
        self.assertNotIn("datasets", doc)


class CliText(Base):
    def test_cli_ingest_says_1_row_and_takes_an_encoding(self):
        env = dict(os.environ, LH_SERVER=self.server.url, LH_KEY=ADMIN_KEY)
        p = os.path.join(self.tmp, "one.csv")
        with open(p, "wb") as f:
            f.write("id,name\n1,José\n".encode("latin-1"))

        def cli(*args):
            return subprocess.run([h.BIN, *args], env=env, capture_output=True, text=True,
                                  timeout=120)

        r = cli("ingest", p, "--name", "cli_one")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("encoding=latin-1", r.stderr)
        r = cli("ingest", p, "--name", "cli_one", "--encoding", "latin-1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("  1 row, 2 columns, ", r.stdout)
        self.assertNotIn("rows", r.stdout.split("\n")[1])
        r = cli("sql", "SELECT name FROM cli_one")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("José", r.stdout)
        self.assertTrue(r.stdout.endswith("(1 row)\n"), r.stdout)
        r = cli("ingest", p, "--name", "cli_two", "--encoding", "cp1252")
        self.assertEqual(r.returncode, 1)
        self.assertIn("utf-8, utf-16 or latin-1", r.stderr)
