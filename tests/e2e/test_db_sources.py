"""End-to-end tests of database sources (issue 13): real PostgreSQL 15 and MariaDB 10.11
servers (tests/dbservers.py: throwaway, loopback, password accounts, stopped by PID)
streamed into datasets through `POST /ingest/postgres` and `POST /ingest/mysql`.

- every mapped type of docs/INGEST.md, with edge values, read back through `POST /query/sql`
  and compared value by value with what the source server itself says (psql's
  json_build_array / the mariadb client's text form, hex-encoded), and the dataset's schema
  against the documented mapping;
- named sources (the password in no response), incremental syncs with upserts, failures
  (each with its status and kind, nothing left in the data folder, an existing dataset
  intact), a long background sync cancelled, and at the end of every class a grep of the
  data folder and the server's log for the passwords.

A database server that cannot start fails the class loudly (dbservers raises); nothing skips.
"""
import decimal
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/ for dbservers

from dbservers import MariaServer, PgServer, free_port  # noqa: E402
import harness  # noqa: E402
from harness import ADMIN_KEY, Base, snapshot  # noqa: E402

D = decimal.Decimal
LONG_TEXT = ("Zoë 😀 中文 e\u0301 " * 40000)[:1048576]  # ~1 MB of multi-byte text


def _parse_int(s):
    return D(s) if s == "-0" else int(s)  # PG prints a double's -0 as "-0": keep its sign


def loads(data):
    """JSON with decimals kept exact (DECIMAL and HUGEINT values are printed exactly)."""
    return json.loads(data, parse_float=D, parse_int=_parse_int)


# ------------------------------------------------------------------ value normalisers
# Each turns a source value (PG: typed, from json_build_array; MariaDB: its text form) and
# a lake value (from /query/sql's JSON) into one comparable form.

def n_int(v):
    return None if v is None else int(v)


def n_dec(v):
    return None if v is None else D(str(v))


def n_str(v):
    return v


def n_numtext(v):
    """A numeric kept as its exact text: compared as an exact decimal (NaN as itself)."""
    if v is None or v == "NaN":
        return v
    return D(str(v))


def _special(v):
    return v if isinstance(v, str) and v in ("NaN", "Infinity", "-Infinity") else None


def n_f64(v):
    if v is None:
        return None
    if _special(v):
        return v
    return repr(float(v))


def n_f32(v):
    if v is None:
        return None
    if _special(v):
        return v
    return struct.unpack("<f", struct.pack("<f", float(v)))[0].hex()


def n_bool(v):
    if v is None:
        return None
    if isinstance(v, str):
        return v in ("1", "t", "true")
    return bool(v)


def n_date(v):
    """PG: "0044-03-15 BC", DuckDB: "0044-03-15 (BC)"; infinities spelled alike."""
    if v is None:
        return None
    return v.replace(" (BC)", " BC")


TS_RE = re.compile(r"^(\d{4,})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d+))?"
                   r"(?:([+-])(\d\d)(?::?(\d\d))?)?$")


def n_ts(v):
    """A timestamp as (UTC) microseconds since 0001-01-01, whatever the rendering (ISO 'T'
    or space, offset or none, fraction trimmed or padded); infinities as themselves."""
    if v is None:
        return None
    if v in ("infinity", "-infinity"):
        return v
    m = TS_RE.match(v)
    assert m, f"unparsable timestamp {v!r}"
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    frac = (m.group(7) or "").ljust(6, "0")
    import datetime as dt
    days = dt.date(y, mo, d).toordinal()
    us = ((days * 24 + h) * 60 + mi) * 60 + s
    us = us * 1000000 + int(frac)
    if m.group(8):
        off = int(m.group(9)) * 60 + int(m.group(10) or 0)
        us -= (1 if m.group(8) == "+" else -1) * off * 60 * 1000000
    return us


TIME_RE = re.compile(r"([+-]?)(\d+):(\d\d):(\d\d)(?:\.(\d+))?")


def _clock_us(m):
    sign = -1 if m.group(1) == "-" else 1
    us = (int(m.group(2)) * 3600 + int(m.group(3)) * 60 + int(m.group(4))) * 1000000
    return sign * (us + int((m.group(5) or "").ljust(6, "0")))


def n_time(v):
    if v is None:
        return None
    m = TIME_RE.fullmatch(v)
    assert m, f"unparsable time {v!r}"
    return _clock_us(m)


UNIT_RE = re.compile(r"([+-]?\d+) (years?|mons?|months?|days?)")


def n_interval(v):
    """(months, days, micros) of PG's ("1 year 2 mons -3 days +04:05:06.789") or DuckDB's
    ("1 year 2 months -3 days 04:05:06.789") interval text."""
    if v is None:
        return None
    months = days = us = 0
    for num, unit in UNIT_RE.findall(v):
        if unit.startswith("year"):
            months += 12 * int(num)
        elif unit.startswith("mon"):
            months += int(num)
        else:
            days += int(num)
    m = TIME_RE.search(UNIT_RE.sub("", v))
    if m:
        us = _clock_us(m)
    return (months, days, us)


def n_interval_ms(v):
    """A source interval as the lake keeps it: microseconds cut to milliseconds."""
    if v is None:
        return None
    months, days, us = n_interval(v)
    return (months, days, us - us % 1000)


def n_duration_ms(v):
    us = n_duration(v)
    return None if us is None else us - us % 1000


def n_duration(v):
    """MariaDB's TIME (a duration up to ±838:59:59) as micros; a lake INTERVAL likewise (no
    months; days folded in, as a reader may split hours into days)."""
    if v is None:
        return None
    if isinstance(v, str) and UNIT_RE.search(v):
        months, days, us = n_interval(v)
        assert months == 0, v
        return days * 86400000000 + us
    return n_time(v)


def n_json(v):
    """JSON text (MariaDB's, the lake's) → its value."""
    return None if v is None else loads(v)


def n_same(v):
    """A value the source already delivers parsed (PG json inside json_build_array)."""
    return v


def n_pg_bytes(v):
    """PG's bytea text "\\x00ff" → bytes."""
    return None if v is None else bytes.fromhex(v[2:])


def n_hex(v):
    return None if v is None else bytes.fromhex(v)


def n_list(v):
    """A lake list arrives as to_json(...) text; PG's as a JSON array."""
    if v is None:
        return None
    return loads(v) if isinstance(v, str) else v


def n_set(v):
    """MariaDB SET text "x,z" (or "" for the empty set) → members; lake: to_json text."""
    if v is None:
        return None
    if isinstance(v, str) and not v.startswith("["):
        return v.split(",") if v else []
    return loads(v)


def n_zero_date(v):
    """MariaDB zero dates ('0000-00-00', a zero month or day) map to NULL (INGEST.md)."""
    if v is None or re.match(r"^\d{4}-00-|^\d{4}-\d\d-00|^0000-00-00", v):
        return None
    return n_date(v)


def n_zero_ts(v):
    if v is None or re.match(r"^\d{4}-00-|^\d{4}-\d\d-00|^0000-00-00", v):
        return None
    return n_ts(v)


# ------------------------------------------------------------------ fixtures
# (column, source type, accepted DuckDB types of the dataset, normaliser, lake expression
# ("{c}" is the column), SQL literals of rows 2..; row 1 is NULL in every column, and a
# row past a column's list is NULL there too).

PG_COLUMNS = [
    ("c_int2", "smallint", ["SMALLINT"], n_int, "{c}", ["-32768", "32767", "0"]),
    ("c_int4", "integer", ["INTEGER"], n_int, "{c}", ["-2147483648", "2147483647", "0"]),
    ("c_int8", "bigint", ["BIGINT"], n_int, "{c}",
     ["-9223372036854775808", "9223372036854775807", "0"]),
    ("c_num38", "numeric(38,10)", ["DECIMAL(38,10)"], n_dec, "{c}",
     ["'-9999999999999999999999999999.9999999999'",
      "'9999999999999999999999999999.9999999999'", "'0.0000000001'", "'0'"]),
    ("c_num12", "numeric(12,2)", ["DECIMAL(12,2)"], n_dec, "{c}",
     ["'-9999999999.99'", "'1234.50'", "'0.01'"]),
    # numeric without a precision: the exact text (INGEST.md), NaN included.
    ("c_numfree", "numeric", ["VARCHAR"], n_numtext, "{c}",
     ["'123456789012345678901234567890123456789012.000000000000000000001'", "'-0.5'",
      "'NaN'", "'1e-20'"]),
    ("c_real", "real", ["FLOAT"], n_f32, "{c}",
     ["'NaN'", "'Infinity'", "'-Infinity'", "'3.4028235e38'", "'-1.17549435e-38'", "'1.5'",
      "'1e-45'"]),
    ("c_double", "double precision", ["DOUBLE"], n_f64, "{c}",
     ["'NaN'", "'Infinity'", "'-Infinity'", "'1.7976931348623157e308'", "'5e-324'", "'-0.1'",
      "'-0'"]),
    ("c_bool", "boolean", ["BOOLEAN"], n_bool, "{c}", ["true", "false"]),
    ("c_text", "text", ["VARCHAR"], n_str, "{c}",
     ["''", "'😀 emoji, 中文, e\u0301 combining, \"quotes\", tab\tnl\n'", "$lt$" + LONG_TEXT +
      "$lt$", "'NULL'"]),
    ("c_varchar", "varchar(20)", ["VARCHAR"], n_str, "{c}", ["''", "'Zoë Łukasz'"]),
    ("c_char", "char(5)", ["VARCHAR"], n_str, "{c}", ["'ab'", "''", "'abcde'"]),
    ("c_date", "date", ["DATE"], n_date, "{c}",
     ["'0044-03-15 BC'", "'4713-01-01 BC'", "'294276-12-31'", "'infinity'", "'-infinity'",
      "'1970-01-01'", "'2024-02-29'"]),
    ("c_ts", "timestamp", ["TIMESTAMP"], n_ts, "{c}",
     ["'infinity'", "'-infinity'", "'1900-01-01 00:00:00'", "'2262-04-11 23:47:16.854775'",
      "'2024-02-29 12:34:56.789012'", "'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'"]),
    ("c_tstz", "timestamptz", ["TIMESTAMP WITH TIME ZONE"], n_ts, "{c}",
     ["'2024-01-02 03:04:05.123456+02'", "'infinity'", "'1969-12-31 23:59:59.999999+00'",
      "'-infinity'", "'2000-06-30 23:30:00-09:30'"]),
    ("c_time", "time", ["TIME"], n_time, "{c}",
     ["'00:00:00'", "'23:59:59.999999'", "'13:14:15.5'"]),
    ("c_uuid", "uuid", ["UUID"], n_str, "{c}",
     ["'00000000-0000-0000-0000-000000000000'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
      "'7fffffff-ffff-4fff-bfff-ffffffffffff'", "'80000000-0000-4000-8000-000000000000'"]),
    ("c_json", "json", ["JSON", "VARCHAR"], n_same, "{c}",
     ["'{\"a\": [1, 2.5, null], \"b\": \"😀\"}'", "'[]'", "'\"s\"'", "'null'"]),
    ("c_jsonb", "jsonb", ["JSON", "VARCHAR"], n_same, "{c}",
     ["'{\"a\": [1, 2.5, null], \"b\": \"中文\"}'", "'{}'", "'123456789012345678901234567890'"]),
    ("c_bytea", "bytea", ["BLOB"], n_pg_bytes, "hex({c})",
     ["'\\x00ff00'", "''", "'\\x5c27220a00'"]),
    ("c_enum", "lh_mood", ["VARCHAR"], n_str, "{c}", ["'happy'", "'sad'", "'😀 ok'"]),
    ("c_intarr", "integer[]", ["INTEGER[]"], n_list, "to_json({c})",
     ["ARRAY[1,NULL,-3]", "'{}'", "ARRAY[NULL]::integer[]", "ARRAY[2147483647]"]),
    ("c_textarr", "text[]", ["VARCHAR[]"], n_list, "to_json({c})",
     ["ARRAY['a',NULL,'b,c','\"q\"','',' sp ']", "ARRAY['😀 中文']", "'{}'"]),
]
# json_build_array renders bytea as "\x.." text (the lake side is hex(): compare bytes) and
# embeds json values parsed (the lake has their text).
PG_LAKE_NORM = {"c_bytea": n_hex, "c_json": n_json, "c_jsonb": n_json}

MY_COLUMNS = [
    ("c_bool", "tinyint(1)", ["BOOLEAN"], n_bool, "{c}", ["1", "0"]),
    ("c_ti", "tinyint", ["TINYINT"], n_int, "{c}", ["-128", "127", "0"]),
    ("c_tiu", "tinyint unsigned", ["UTINYINT"], n_int, "{c}", ["0", "255"]),
    ("c_si", "smallint", ["SMALLINT"], n_int, "{c}", ["-32768", "32767"]),
    ("c_siu", "smallint unsigned", ["USMALLINT"], n_int, "{c}", ["0", "65535"]),
    ("c_mi", "mediumint", ["INTEGER"], n_int, "{c}", ["-8388608", "8388607"]),
    ("c_miu", "mediumint unsigned", ["UINTEGER"], n_int, "{c}", ["0", "16777215"]),
    ("c_int", "int", ["INTEGER"], n_int, "{c}", ["-2147483648", "2147483647", "0"]),
    ("c_intu", "int unsigned", ["UINTEGER"], n_int, "{c}", ["0", "4294967295"]),
    ("c_big", "bigint", ["BIGINT"], n_int, "{c}",
     ["-9223372036854775808", "9223372036854775807", "0"]),
    ("c_bigu", "bigint unsigned", ["UBIGINT"], n_int, "{c}",
     ["18446744073709551615", "9223372036854775808", "0"]),
    ("c_dec", "decimal(38,10)", ["DECIMAL(38,10)"], n_dec, "{c}",
     ["-9999999999999999999999999999.9999999999", "9999999999999999999999999999.9999999999",
      "0.0000000001"]),
    ("c_dec5", "decimal(5,2)", ["DECIMAL(5,2)"], n_dec, "{c}", ["-999.99", "999.99", "0"]),
    # decimal wider than 38 digits: the exact text (INGEST.md).
    ("c_dec65", "decimal(65,30)", ["VARCHAR"], n_dec, "{c}",
     ["'12345678901234567890123456789012345.123456789012345678901234567890'",
      "'-0.000000000000000000000000000001'"]),
    ("c_float", "float", ["FLOAT"], n_f32, "{c}", ["3.40282e38", "-1.5", "0", "1.17549e-38"]),
    ("c_double", "double", ["DOUBLE"], n_f64, "{c}",
     ["1.7976931348623157e308", "-2.2250738585072014e-308", "0.1", "5e-324"]),
    ("c_date", "date", ["DATE"], n_zero_date, "{c}",
     ["'1000-01-01'", "'9999-12-31'", "'0000-00-00'", "'2024-00-15'", "'2024-02-00'"]),
    ("c_datetime", "datetime(6)", ["TIMESTAMP"], n_zero_ts, "{c}",
     ["'1000-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'", "'0000-00-00 00:00:00'",
      "'2024-02-29 12:34:56.5'"]),
    ("c_tstamp", "timestamp(6) NULL", ["TIMESTAMP WITH TIME ZONE"], n_zero_ts, "{c}",
     ["'1970-01-01 00:00:01'", "'2038-01-19 03:14:07.999999'", "'2024-02-29 12:34:56.5'"]),
    ("c_year", "year", ["SMALLINT"], n_int, "{c}", ["1901", "2155", "2024"]),
    ("c_json", "json", ["JSON", "VARCHAR"], n_json, "{c}",
     ["'{\"a\": [1, 2.5, null], \"b\": \"😀\"}'", "'[]'", "'\"s\"'"]),
    ("c_char", "char(5)", ["VARCHAR"], n_str, "{c}", ["'ab'", "''", "'abcde'"]),
    ("c_varchar", "varchar(200)", ["VARCHAR"], n_str, "{c}",
     ["''", "'😀 emoji, 中文, e\u0301 combining, \"q\", tab\tnl\n'", "'NULL'"]),
    ("c_long", "mediumtext", ["VARCHAR"], n_str, "{c}", ["'" + LONG_TEXT + "'", "''"]),
    ("c_binary", "binary(4)", ["BLOB"], n_hex, "hex({c})", ["x'00FF0041'", "x'00000000'"]),
    ("c_varbinary", "varbinary(16)", ["BLOB"], n_hex, "hex({c})", ["x'00'", "''"]),
    ("c_blob", "blob", ["BLOB"], n_hex, "hex({c})", ["x'5C27220A00'", "''"]),
    ("c_enum", "enum('a','b','😀 ok')", ["VARCHAR"], n_str, "{c}", ["'a'", "'😀 ok'"]),
    ("c_set", "set('x','y','z')", ["VARCHAR[]"], n_set, "to_json({c})", ["'x,z'", "''", "'y'"]),
    ("c_bit", "bit(5)", ["UBIGINT"], n_int, "{c}", ["b'10101'", "b'0'", "b'11111'"]),
]
# What the mariadb client is asked for each column (its text form, hex-encoded so no
# escaping can bend it). Blobs: their bytes; bit: its number.
# Durations (INGEST.md: PG intervals keep months, days and microseconds; MariaDB's TIME is
# a duration up to ±838:59:59). Parquet's INTERVAL is unsigned months, days, milliseconds:
# the documented mapping keeps milliseconds (sub-millisecond digits are lost) and refuses an
# interval with a negative part as an unmappable value. Each case has its own table.
PG_INTERVAL_COLUMNS = [
    ("c_interval", "interval", ["INTERVAL"], n_interval, "{c}",
     ["'1 year 2 mons 3 days 04:05:06.789'", "'0'", "'100 hours'", "'178000000 years'"]),
]
PG_USEC_INTERVAL_COLUMNS = [
    ("c_interval", "interval", ["INTERVAL"], n_interval_ms, "{c}",
     ["'00:00:00.000001'", "'1 day 00:00:01.123456'", "'00:00:00.999999'"]),
]
PG_NEGATIVE_INTERVAL_COLUMNS = [
    ("c_interval", "interval", ["INTERVAL"], n_interval, "{c}",
     ["'1 day'", "'1 year 2 mons -3 days 04:05:06.789'"]),
]
MY_TIME_COLUMNS = [
    ("c_time", "time(6)", ["INTERVAL"], n_duration, "{c}",
     ["'838:59:59'", "'25:00:00.5'", "'00:00:00'", "'12:34:56.789'"]),
]
MY_USEC_TIME_COLUMNS = [
    ("c_time", "time(6)", ["INTERVAL"], n_duration_ms, "{c}",
     ["'12:34:56.000001'", "'00:00:00.999999'"]),
]
MY_NEGATIVE_TIME_COLUMNS = [
    ("c_time", "time(6)", ["INTERVAL"], n_duration, "{c}", ["'00:00:01'", "'-00:00:01'"]),
]

MY_SOURCE_EXPR = {
    "c_binary": "HEX({c})", "c_varbinary": "HEX({c})", "c_blob": "HEX({c})",
    "c_bit": "HEX(CAST(CAST({c} AS UNSIGNED) AS CHAR))",
}
MY_BYTES = ("c_binary", "c_varbinary", "c_blob")


def fixture_rows(columns):
    n = max(len(c[5]) for c in columns)
    return n + 1  # row 1: every column NULL


def create_table_sql(columns, table, quote):
    cols = ", ".join(f"{quote}{c[0]}{quote} {c[1]}" for c in columns)
    rows = []
    for r in range(fixture_rows(columns)):
        vals = [str(r + 1)]
        for c in columns:
            vals.append(c[5][r - 1] if 0 < r <= len(c[5]) else "NULL")
        rows.append("(" + ", ".join(vals) + ")")
    return (f"CREATE TABLE {table} (id integer PRIMARY KEY, {cols});\n"
            + "".join(f"INSERT INTO {table} VALUES {row};\n" for row in rows))


# ------------------------------------------------------------------ the base class

class DbBase:
    """Mixed into each test class before harness.Base (so it is no test class itself):
    one lakehouse server, one PostgreSQL and one MariaDB per class; the passwords every
    test of the class used are grepped for in the data folder and log at the end."""

    pg = None
    my = None

    @classmethod
    def setUpClass(cls):
        cls.pg = PgServer().start()
        try:
            cls.my = MariaServer().start()
            cls.secrets = [cls.pg.password, cls.my.password]
            super().setUpClass()
        except BaseException:
            cls._stop_dbs()
            raise
        try:
            cls.load_fixtures()
        except BaseException:
            cls.tearDownClass()  # unittest does not call it when setUpClass fails
            raise

    @classmethod
    def load_fixtures(cls):
        """The class's source tables (and datasets): runs once both servers are up."""

    @classmethod
    def _stop_dbs(cls):
        for srv in (cls.pg, cls.my):
            if srv:
                srv.stop()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls._stop_dbs()

    # -------------------------------------------------------------- helpers

    def dsn(self, kind):
        return self.pg.dsn if kind == "postgres" else self.my.dsn

    def src_sql(self, kind, text):
        return self.pg.sql(text) if kind == "postgres" else self.my.sql(text)

    def sync(self, kind, body, timeout=600):
        """POST /ingest/{kind}; returns (status, doc) with decimals exact."""
        status, _, data = self.server.request("POST", f"/ingest/{kind}", body, timeout=timeout)
        for pw in self.secrets:
            self.assertNotIn(pw.encode(), data, "a password in a sync's reply")
        return status, (loads(data) if data else None)

    def sync_ok(self, kind, body, expect=None):
        status, doc = self.sync(kind, body)
        want = expect or (201 if body.get("mode", "create") == "create" else 200)
        self.assertEqual(status, want, doc)
        return doc

    def assertError(self, status, doc, want_status, want_kind):
        self.assertEqual(status, want_status, doc)
        self.assertEqual(doc.get("error"), want_kind, doc)
        self.assertTrue(doc.get("message"), doc)

    def lake(self, sql):
        """Rows of a lake query (up to 100000), decimals exact."""
        status, _, data = self.server.request("POST", "/query/sql",
                                              {"sql": sql, "limit": 100000})
        doc = loads(data)
        self.assertEqual(status, 200, doc)
        self.assertFalse(doc["truncated"])
        return doc

    def manifest(self, name):
        status, _, data = self.server.request("GET", f"/catalog/datasets/by-name/{name}")
        self.assertEqual(status, 200, data[:300])
        return loads(data)["dataset"]

    def job(self, job_id):
        status, doc = self.server.json("GET", f"/jobs/{job_id}")
        self.assertEqual(status, 200, doc)
        return doc["job"]

    def wait_job(self, job_id, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            j = self.job(job_id)
            if j["state"] in ("succeeded", "failed", "cancelled"):
                return j
            time.sleep(0.1)
        self.fail(f"job {job_id} still running after {timeout} s")

    def dataset_fingerprint(self, name):
        """The rows of a dataset, in order, and its manifest's version and files."""
        m = self.manifest(name)
        rows = self.lake(f"SELECT * FROM {name} ORDER BY ALL")["rows"]
        return rows, m["version"], [f["key"] for f in m["files"]]

    # -------------------------------------------------------------- the secrets grep

    def test_zz_passwords_nowhere(self):
        """Runs last in every class: no password of this class's servers (nor a wrong one a
        test sent) in any file of the data folder but the secrets store, nor in the log."""
        found = []
        for root, _, files in os.walk(self.data):
            for name in files:
                p = os.path.join(root, name)
                rel = os.path.relpath(p, self.data)
                if rel == os.path.join("_secrets", "sources.json"):
                    continue
                with open(p, "rb") as f:
                    blob = f.read()
                found += [(rel, pw) for pw in self.secrets if pw.encode() in blob]
        # the running server's log, and the one of a process a test stopped and restarted
        log = self.server.read_log() + self.server.last_log
        found += [("server log", pw) for pw in self.secrets if pw in log]
        self.assertEqual(found, [], "passwords found")


# ------------------------------------------------------------------ every mapped type

class TypeMappingTests(DbBase, Base):
    """A table of every mapped type with edge values, per server, synced and read back.
    Durations (PG interval, MariaDB TIME → INTERVAL) have their own tables: negative and
    sub-millisecond values, which Parquet's INTERVAL cannot hold, each as documented."""

    TABLES = {  # source table → (kind, columns)
        "types_pg": ("postgres", PG_COLUMNS),
        "intervals_pg": ("postgres", PG_INTERVAL_COLUMNS),
        "usec_intervals_pg": ("postgres", PG_USEC_INTERVAL_COLUMNS),
        "negative_intervals_pg": ("postgres", PG_NEGATIVE_INTERVAL_COLUMNS),
        "types_my": ("mysql", MY_COLUMNS),
        "times_my": ("mysql", MY_TIME_COLUMNS),
        "usec_times_my": ("mysql", MY_USEC_TIME_COLUMNS),
        "negative_times_my": ("mysql", MY_NEGATIVE_TIME_COLUMNS),
    }

    @classmethod
    def load_fixtures(cls):
        cls.pg.sql("CREATE TYPE lh_mood AS ENUM ('happy', 'sad', '😀 ok');")
        for table, (kind, columns) in cls.TABLES.items():
            if kind == "postgres":
                cls.pg.sql(create_table_sql(columns, table, '"'))
            else:
                cls.my.sql("SET SESSION sql_mode = ''; SET time_zone = '+00:00';\n"
                           + create_table_sql(columns, table, "`"))

    def source_values(self, table):
        """{id: [value per column]} as the source server renders them."""
        kind, columns = self.TABLES[table]
        if kind == "postgres":
            cols = ", ".join(c[0] for c in columns)
            out = self.pg.sql("SET TimeZone = 'UTC';\n"
                              f"SELECT json_build_array(id, {cols}) FROM {table} ORDER BY id")
            return {r[0]: r[1:] for r in (loads(line) for line in out.splitlines())}
        exprs = []
        for c in columns:
            e = MY_SOURCE_EXPR.get(c[0], "HEX(CAST({c} AS CHAR CHARACTER SET utf8mb4))")
            exprs.append(e.format(c=c[0]))
        out = self.my.sql("SET time_zone = '+00:00';\n"
                          f"SELECT JSON_ARRAY(id, {', '.join(exprs)}) FROM {table} ORDER BY id")
        rows = {}
        for line in out.splitlines():
            r = json.loads(line)
            vals = []
            for c, v in zip(columns, r[1:]):
                if v is not None and c[0] not in MY_BYTES:
                    v = bytes.fromhex(v).decode("utf-8")
                vals.append(v)
            rows[r[0]] = vals
        return rows

    def sync_and_check(self, table, lake_norm=None):
        """Syncs the source table into a dataset of the same name and compares its schema
        with the documented mapping and every value with the source's."""
        kind, columns = self.TABLES[table]
        doc = self.sync_ok(kind, {"dsn": self.dsn(kind), "table": table, "dataset": table})
        n = fixture_rows(columns)
        self.assertEqual(doc["rows"], n)
        self.assertEqual(doc["mode"], "create")
        self.assertIsNone(doc["watermark"])
        lake_norm = lake_norm or {}
        # The schema: the documented mapping, column by column.
        m = self.manifest(table)
        schema = {c["name"]: c["type"] for c in m["schema"]}
        self.assertEqual(list(schema), ["id"] + [c[0] for c in columns])
        wrong = [(name, src_type, schema[name], duck_types)
                 for name, src_type, duck_types, *_ in columns if schema[name] not in duck_types]
        self.assertEqual(wrong, [], "(column, source type, dataset type, documented)")
        self.assertEqual(m["row_count"], n)
        lineage = m["lineage"]
        self.assertEqual(lineage["source_system"], kind)
        self.assertEqual(lineage["table"], table)
        srv = self.pg if kind == "postgres" else self.my
        self.assertEqual(lineage["source"], f"127.0.0.1:{srv.port}/lh_test")
        # The values: every column of every row against the source's own rendering.
        exprs = ", ".join(c[4].format(c=c[0]) for c in columns)
        lake = self.lake(f"SELECT id, {exprs} FROM {table} ORDER BY id")["rows"]
        src = self.source_values(table)
        self.assertEqual([r[0] for r in lake], sorted(src))
        mismatches = []
        for row in lake:
            for c, lv, sv in zip(columns, row[1:], src[row[0]]):
                norm = c[3]
                a, b = norm(sv), lake_norm.get(c[0], norm)(lv)
                if a != b:
                    mismatches.append((row[0], c[0], repr(sv)[:120], repr(lv)[:120]))
        self.assertEqual(mismatches, [], "(id, column, source, lake)")
        # Row 1 is NULL everywhere (the normalisers keep None): a NULL stays a NULL.
        self.assertTrue(all(v is None for v in lake[0][1:]), lake[0])

    def test_postgres_every_type(self):
        self.sync_and_check("types_pg", PG_LAKE_NORM)
        # The 1 MB text arrived whole.
        self.assertEqual(self.lake("SELECT length(c_text) FROM types_pg WHERE id = 4")["rows"],
                         [[len(LONG_TEXT)]])

    def test_postgres_intervals(self):
        self.sync_and_check("intervals_pg")

    def test_postgres_submillisecond_intervals_keep_milliseconds(self):
        self.sync_and_check("usec_intervals_pg", {"c_interval": n_interval})

    def test_postgres_negative_interval_is_unmappable(self):
        self.check_unmappable("negative_intervals_pg")

    def check_unmappable(self, table):
        """400 unmappable_value naming the column (and never the value); nothing left."""
        kind, columns = self.TABLES[table]
        before = snapshot(self.data)
        status, doc = self.sync(kind, {"dsn": self.dsn(kind), "table": table, "dataset": table})
        self.assertError(status, doc, 400, "unmappable_value")
        self.assertIn(columns[0][0], doc["message"])
        self.assertEqual(before, snapshot(self.data), "files changed after a failed sync")
        st, _ = self.server.json("GET", f"/catalog/datasets/by-name/{table}")
        self.assertEqual(st, 404)

    def test_mysql_every_type(self):
        self.sync_and_check("types_my")
        self.assertEqual(self.lake("SELECT length(c_long) FROM types_my WHERE id = 2")["rows"],
                         [[len(LONG_TEXT)]])

    def test_mysql_time_as_interval(self):
        self.sync_and_check("times_my")

    def test_mysql_submillisecond_times_keep_milliseconds(self):
        self.sync_and_check("usec_times_my", {"c_time": n_duration})

    def test_mysql_negative_time_is_unmappable(self):
        self.check_unmappable("negative_times_my")

    def test_postgres_query_and_replace(self):
        q = "SELECT id, c_int4, c_text FROM types_pg WHERE id > 1"
        doc = self.sync_ok("postgres", {"dsn": self.pg.dsn, "query": q, "dataset": "q_pg"})
        self.assertEqual(doc["rows"], fixture_rows(PG_COLUMNS) - 1)
        lineage = self.manifest("q_pg")["lineage"]
        self.assertRegex(lineage.get("query_sha256", ""), r"^[0-9a-f]{64}$")
        self.assertNotIn(q, json.dumps(lineage))
        # Replace with a narrower query: the dataset is the new result, version bumped.
        v1 = self.manifest("q_pg")["version"]
        doc = self.sync_ok("postgres", {"dsn": self.pg.dsn, "query": "SELECT 7 AS id",
                                        "dataset": "q_pg", "mode": "replace"})
        self.assertEqual(doc["rows"], 1)
        self.assertEqual(self.lake("SELECT id FROM q_pg")["rows"], [[7]])
        self.assertGreater(self.manifest("q_pg")["version"], v1)

    def test_mysql_query(self):
        q = "SELECT id, c_bigu, c_varchar FROM types_my WHERE c_bigu IS NOT NULL"
        doc = self.sync_ok("mysql", {"dsn": self.my.dsn, "query": q, "dataset": "q_my"})
        self.assertEqual(doc["rows"], 3)
        self.assertEqual(self.lake("SELECT max(c_bigu) FROM q_my")["rows"],
                         [[18446744073709551615]])


# ------------------------------------------------------------------ named sources

class NamedSourceTests(DbBase, Base):
    """POST /sources keeps the DSN as a secret; syncs name the source; no reply, listing or
    manifest ever shows the password."""

    @classmethod
    def load_fixtures(cls):
        cls.pg.sql("CREATE TABLE staff (employee_id integer PRIMARY KEY, name text);"
                   "INSERT INTO staff SELECT i, 'pg ' || i FROM generate_series(1, 50) i;")
        cls.my.sql("CREATE TABLE staff (employee_id int PRIMARY KEY, name varchar(40));"
                   "INSERT INTO staff SELECT seq, CONCAT('my ', seq) FROM seq_1_to_40;")

    def req(self, method, path, body=None):
        status, _, data = self.server.request(method, path, body)
        for pw in self.secrets:
            self.assertNotIn(pw.encode(), data, f"password in {method} {path}")
        return status, (loads(data) if data else None)

    def add(self, name, kind, dsn):
        status, doc = self.req("POST", "/sources", {"name": name, "kind": kind, "dsn": dsn})
        self.assertEqual(status, 201, doc)
        return doc

    def test_create_list_sync_delete(self):
        self.add("hr_pg", "postgres", self.pg.dsn)
        self.add("ats_my", "mysql", self.my.dsn)
        secrets_file = os.path.join(self.data, "_secrets", "sources.json")
        self.assertEqual(os.stat(secrets_file).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.dirname(secrets_file)).st_mode & 0o777, 0o700)
        # The store does hold the DSN (that is its point) — only there.
        with open(secrets_file) as f:
            self.assertIn(self.pg.password, f.read())

        status, doc = self.req("GET", "/sources")
        self.assertEqual(status, 200, doc)
        by_name = {s["name"]: s for s in doc["sources"]}
        self.assertLessEqual({"hr_pg", "ats_my"}, set(by_name))
        self.assertEqual(by_name["hr_pg"]["kind"], "postgres")
        self.assertEqual(by_name["ats_my"]["kind"], "mysql")
        self.assertIn("lh_test:***@", by_name["hr_pg"]["dsn"])
        status, doc = self.req("GET", "/sources/ats_my")
        self.assertEqual(status, 200, doc)

        # Taken name: 409; a DSN of the wrong form: 400, and neither echoes the DSN.
        status, doc = self.req("POST", "/sources",
                               {"name": "hr_pg", "kind": "postgres", "dsn": self.pg.dsn})
        self.assertError(status, doc, 409, "already_exists")

        doc = self.sync_ok("postgres", {"source": "hr_pg", "table": "staff",
                                        "dataset": "staff_pg"})
        self.assertEqual(doc["rows"], 50)
        doc = self.sync_ok("mysql", {"source": "ats_my", "table": "staff", "dataset": "staff_my"})
        self.assertEqual(doc["rows"], 40)
        self.assertEqual(self.lake("SELECT count(*), max(name) FROM staff_my")["rows"],
                         [[40, "my 9"]])
        for ds, src, kind in (("staff_pg", "hr_pg", "postgres"), ("staff_my", "ats_my", "mysql")):
            m = self.manifest(ds)
            self.assertEqual(m["lineage"]["source_system"], kind)
            self.assertEqual(m["lineage"]["source"], src)
            self.assertEqual(m["lineage"]["table"], "staff")
            text = json.dumps(m)
            self.assertNotIn("lh_test:", text, "a DSN in the manifest")
            self.assertNotIn("://", text)

        # A named source of the other kind, an unknown one: refused before connecting.
        status, doc = self.sync("mysql", {"source": "hr_pg", "table": "staff",
                                          "dataset": "wrong_kind"})
        self.assertEqual(status, 400, doc)
        status, doc = self.sync("postgres", {"source": "nope", "table": "staff",
                                             "dataset": "nope"})
        self.assertEqual(status, 404, doc)
        # Both dsn and source, neither: 400 invalid_request.
        status, doc = self.sync("postgres", {"source": "hr_pg", "dsn": self.pg.dsn,
                                             "table": "staff", "dataset": "both"})
        self.assertError(status, doc, 400, "invalid_request")
        status, doc = self.sync("postgres", {"table": "staff", "dataset": "neither"})
        self.assertError(status, doc, 400, "invalid_request")

        status, doc = self.req("DELETE", "/sources/hr_pg")
        self.assertIn(status, (200, 204), doc)
        status, doc = self.req("GET", "/sources/hr_pg")
        self.assertEqual(status, 404, doc)
        status, doc = self.sync("postgres", {"source": "hr_pg", "table": "staff",
                                             "dataset": "after_delete"})
        self.assertEqual(status, 404, doc)
        with open(secrets_file) as f:
            self.assertNotIn(self.pg.password, f.read(), "a deleted source's DSN kept")

    def test_cli_sources_and_ingest_db(self):
        """The CLI as a user runs it: the DSN from stdin (never on the command line), the
        sync by name and by DSN; no password in anything it prints."""
        env = dict(os.environ, LH_SERVER=self.server.url, LH_KEY=ADMIN_KEY)

        def cli(*args, stdin=None):
            r = subprocess.run([harness.BIN, *args], env=env, input=stdin, capture_output=True,
                               text=True, timeout=300)
            for pw in self.secrets:
                self.assertNotIn(pw, r.stdout + r.stderr, f"password printed by {args[:2]}")
            return r

        r = cli("sources", "add", "cli_my", "--kind", "mysql", "--dsn", "-",
                stdin=self.my.dsn + "\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = cli("sources", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("cli_my", r.stdout)
        r = cli("ingest-db", "mysql", "--source", "cli_my", "--table", "staff", "--dataset",
                "cli_staff_my")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = cli("ingest-db", "postgres", "--dsn", "-", "--query",
                "SELECT employee_id, name FROM staff WHERE employee_id <= 5", "--dataset",
                "cli_staff_pg", stdin=self.pg.dsn + "\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.lake("SELECT count(*) FROM cli_staff_my")["rows"], [[40]])
        self.assertEqual(self.lake("SELECT count(*) FROM cli_staff_pg")["rows"], [[5]])
        # A wrong password through the CLI: a non-zero exit naming the cause, not the DSN.
        wrong = self.pg.dsn.replace(self.pg.password, "wrong-" + self.pg.password[::-1])
        type(self).secrets = self.secrets + ["wrong-" + self.pg.password[::-1]]  # grepped last
        r = cli("ingest-db", "postgres", "--dsn", "-", "--table", "staff", "--dataset",
                "cli_fail", stdin=wrong + "\n")
        self.assertNotEqual(r.returncode, 0, r.stdout)

    def test_sources_need_admin(self):
        status, doc = self.server.json("POST", "/sources",
                                       {"name": "x", "kind": "postgres", "dsn": self.pg.dsn},
                                       key=None)
        self.assertEqual(status, 401, doc)


# ------------------------------------------------------------------ incremental syncs

def wm_text(v):
    """A timestamp watermark as "YYYY-MM-DD HH:MM:SS..." (an ISO 'T' accepted too)."""
    return str(v).replace("T", " ", 1)


class IncrementalTests(DbBase, Base):
    """create with incremental → change rows → append reads only the changed rows, updated
    keys replace their old versions; no change → nothing committed; a file append between
    syncs keeps the watermark."""

    SOURCES = {
        "postgres": ("CREATE TABLE emp (employee_id integer PRIMARY KEY, name text, "
                     "salary numeric(10,2), updated_at timestamp(6) NOT NULL);"
                     "INSERT INTO emp SELECT i, 'name ' || i, 1000 + i, "
                     "TIMESTAMP '2024-01-01' + i * INTERVAL '1 second' "
                     "FROM generate_series(1, 100) i;"),
        "mysql": ("CREATE TABLE emp (employee_id int PRIMARY KEY, name varchar(40), "
                  "salary decimal(10,2), updated_at datetime(6) NOT NULL);"
                  "INSERT INTO emp SELECT seq, CONCAT('name ', seq), 1000 + seq, "
                  "TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_100;"),
    }
    UPDATE = {
        "postgres": ("UPDATE emp SET name = 'new ' || employee_id, salary = salary + 0.5, "
                     "updated_at = TIMESTAMP '2024-02-01' + employee_id * INTERVAL '1 second' "
                     "WHERE employee_id IN (3, 10, 50, 99, 100);"
                     "INSERT INTO emp SELECT i, 'name ' || i, 1000 + i, "
                     "TIMESTAMP '2024-02-02' + i * INTERVAL '1 second' "
                     "FROM generate_series(101, 103) i;"),
        "mysql": ("UPDATE emp SET name = CONCAT('new ', employee_id), salary = salary + 0.5, "
                  "updated_at = TIMESTAMP '2024-02-01 00:00:00' + INTERVAL employee_id SECOND "
                  "WHERE employee_id IN (3, 10, 50, 99, 100);"
                  "INSERT INTO emp SELECT seq, CONCAT('name ', seq), 1000 + seq, "
                  "TIMESTAMP '2024-02-02 00:00:00' + INTERVAL seq SECOND "
                  "FROM seq_101_to_103;"),
    }
    TOUCH = {
        "postgres": "UPDATE emp SET name = 'again', updated_at = TIMESTAMP '2024-03-01' "
                    "WHERE employee_id = 7;",
        "mysql": "UPDATE emp SET name = 'again', updated_at = TIMESTAMP '2024-03-01 00:00:00' "
                 "WHERE employee_id = 7;",
    }

    @classmethod
    def load_fixtures(cls):
        cls.pg.sql(cls.SOURCES["postgres"])
        cls.my.sql(cls.SOURCES["mysql"])

    def run_incremental(self, kind):
        ds = f"emp_{'pg' if kind == 'postgres' else 'my'}"
        body = {"dsn": self.dsn(kind), "table": "emp", "dataset": ds,
                "incremental": {"column": "updated_at", "key": "employee_id"}}
        first = self.sync_ok(kind, dict(body, mode="create"))
        self.assertEqual(first["rows"], 100)
        wm1 = first["watermark"]
        self.assertEqual(wm1["column"], "updated_at")
        self.assertIsNone(wm1["previous"])
        self.assertTrue(wm_text(wm1["current"]).startswith("2024-01-01 00:01:40"), wm1)
        lineage = self.manifest(ds)["lineage"]
        self.assertEqual(lineage["watermark"]["column"], "updated_at")
        self.assertEqual(lineage["key"], "employee_id")

        self.src_sql(kind, self.UPDATE[kind])
        second = self.sync_ok(kind, dict(body, mode="append"))
        self.assertEqual(second["rows"], 8, "only the 5 updated and 3 new rows are read")
        self.assertEqual(second["rows_superseded"], 5)
        self.assertEqual(second["watermark"]["previous"], wm1["current"])
        self.assertTrue(wm_text(second["watermark"]["current"]).startswith("2024-02-02 00:01:43"),
                        second["watermark"])
        rows = self.lake(f"SELECT employee_id, name, salary FROM {ds} ORDER BY employee_id")
        rows = rows["rows"]
        self.assertEqual(len(rows), 103, "updated keys appear once")
        self.assertEqual([r[0] for r in rows], list(range(1, 104)))
        want = {i: [i, f"name {i}", D(1000 + i)] for i in range(1, 104)}
        for i in (3, 10, 50, 99, 100):
            want[i] = [i, f"new {i}", D(1000 + i) + D("0.5")]
        self.assertEqual(rows, [want[i] for i in range(1, 104)])
        self.assertEqual(self.lake(f"SELECT count(*) FROM {ds} WHERE name LIKE 'name 50'")
                         ["rows"], [[0]], "the old version of an updated key is gone")

        # No change at the source: rows 0, nothing committed.
        before = self.manifest(ds)
        files_before = snapshot(self.data)
        third = self.sync_ok(kind, dict(body, mode="append"))
        self.assertEqual(third["rows"], 0)
        self.assertEqual(third["rows_superseded"], 0)
        after = self.manifest(ds)
        self.assertEqual(after["version"], before["version"], "a sync of nothing committed")
        self.assertEqual(after["files"], before["files"])
        self.assertEqual({k: v for k, v in snapshot(self.data).items() if "datasets" in k},
                         {k: v for k, v in files_before.items() if "datasets" in k})

        # A file append in between (an older updated_at) must not move or drop the watermark.
        csv = b"employee_id,name,salary,updated_at\n5000,from a file,1.00,2020-01-01 00:00:00\n"
        status, doc = self.server.ingest(ds, csv, mode="append")
        self.assertEqual(status, 200, doc)
        self.src_sql(kind, self.TOUCH[kind])
        fourth = self.sync_ok(kind, dict(body, mode="append"))
        self.assertEqual(fourth["rows"], 1, "the watermark survived the file append")
        self.assertEqual(fourth["rows_superseded"], 1)
        self.assertEqual(fourth["watermark"]["previous"], second["watermark"]["current"])
        self.assertEqual(self.lake(f"SELECT name FROM {ds} WHERE employee_id IN (7, 5000) "
                                   "ORDER BY employee_id")["rows"],
                         [["again"], ["from a file"]])
        self.assertEqual(self.lake(f"SELECT count(*) FROM {ds}")["rows"], [[104]])

        # Replace re-reads everything and records a fresh watermark.
        fifth = self.sync_ok(kind, dict(body, mode="replace"))
        self.assertEqual(fifth["rows"], 103)
        self.assertEqual(self.lake(f"SELECT count(*) FROM {ds}")["rows"], [[103]])

    def test_postgres_incremental(self):
        self.run_incremental("postgres")

    def test_mysql_incremental(self):
        self.run_incremental("mysql")

    def test_append_without_incremental_appends_all(self):
        body = {"dsn": self.pg.dsn, "query": "SELECT employee_id, name FROM emp "
                "WHERE employee_id <= 10", "dataset": "plain_append"}
        self.sync_ok("postgres", body)
        doc = self.sync_ok("postgres", dict(body, mode="append"))
        self.assertEqual(doc["rows"], 10)
        self.assertIsNone(doc["watermark"])
        self.assertEqual(self.lake("SELECT count(*) FROM plain_append")["rows"], [[20]])

    def test_sync_marks_vector_index_stale(self):
        """Issue 14: a sync commits through the same catalog path as a file ingest, so an
        incremental append marks the dataset's vector indexes stale, and a refresh embeds
        only the new and the changed (upserted) rows."""
        self.pg.sql("CREATE TABLE vec_emp (employee_id integer PRIMARY KEY, bio text, "
                    "updated_at timestamp(6) NOT NULL);"
                    "INSERT INTO vec_emp SELECT i, 'nurse number ' || i || ' in Denver', "
                    "TIMESTAMP '2024-01-01' + i * INTERVAL '1 second' "
                    "FROM generate_series(1, 40) i;")
        body = {"dsn": self.pg.dsn, "table": "vec_emp", "dataset": "vec_sync",
                "incremental": {"column": "updated_at", "key": "employee_id"}}
        self.sync_ok("postgres", dict(body, mode="create"))
        status, doc = self.server.json("POST", "/vectors/indexes", {
            "name": "vec_sync_idx", "dataset": "vec_sync", "id_column": "employee_id",
            "text_column": "bio", "kind": "flat"})
        self.assertEqual(status, 201, doc)
        self.assertEqual(doc["index"]["docs"], 40)
        self.pg.sql("UPDATE vec_emp SET bio = 'welder ' || employee_id, updated_at = "
                    "TIMESTAMP '2024-02-01' WHERE employee_id IN (4, 5);"
                    "INSERT INTO vec_emp SELECT i, 'pilot ' || i, TIMESTAMP '2024-02-02' "
                    "FROM generate_series(41, 43) i;")
        doc = self.sync_ok("postgres", dict(body, mode="append"))
        self.assertEqual((doc["rows"], doc["rows_superseded"]), (5, 2), doc)
        for _ in range(200):
            status, stale = self.server.json("GET", "/vectors/stale")
            if stale["stale"]:
                break
            time.sleep(0.05)
        self.assertEqual([e["index"] for e in stale["stale"]], ["vec_sync_idx"], stale)
        status, doc = self.server.json("POST", "/vectors/refresh/vec_sync", {})
        self.assertEqual(status, 200, doc)
        r = doc["indexes"][0]
        self.assertEqual((r["docs_embedded"], r["docs_changed"], r["docs_removed"]), (5, 2, 0), r)
        status, doc = self.server.json("GET", "/vectors/indexes/vec_sync_idx")
        self.assertEqual((doc["index"]["docs"], doc["index"]["embedding_stale_since"]),
                         (43, None), doc)

    def test_append_to_missing_dataset_is_404(self):
        status, doc = self.sync("postgres", {"dsn": self.pg.dsn, "table": "emp",
                                             "dataset": "never_made", "mode": "append"})
        self.assertEqual(status, 404, doc)

    def test_create_over_existing_is_409(self):
        self.sync_ok("mysql", {"dsn": self.my.dsn, "table": "emp", "dataset": "twice"})
        status, doc = self.sync("mysql", {"dsn": self.my.dsn, "table": "emp", "dataset": "twice"})
        self.assertError(status, doc, 409, "already_exists")


# ------------------------------------------------------------------ failures

# Queries that stream rows for hours: a join of two small series (a single huge
# generate_series is materialized before its first row, so nothing would flow).
PG_ENDLESS = ("SELECT a.i * 100000 + b.j AS i, md5(b.j::text) AS h "
              "FROM generate_series(1, 100000) a(i), generate_series(1, 100000) b(j)")


class FailureTests(DbBase, Base):
    """Each failure answers its status and kind, names no password, and leaves nothing: no
    dataset, no new or changed file in the data folder, an existing dataset's rows as they
    were (replace and append)."""

    @classmethod
    def load_fixtures(cls):
        cls.wrong = "wrong-" + cls.pg.password[::-1]
        cls.secrets = cls.secrets + [cls.wrong, "sekret-in-a-bad-dsn"]
        cls.pg.sql("CREATE TABLE good (id integer, name text);"
                   "INSERT INTO good SELECT i, 'g' || i FROM generate_series(1, 20) i;"
                   "CREATE TABLE bad_num (id integer, v numeric(10,2));"
                   "INSERT INTO bad_num SELECT i, i * 1.5 FROM generate_series(1, 9) i;"
                   "INSERT INTO bad_num VALUES (10, 'NaN');")
        cls.my.sql("CREATE TABLE good (id int, name varchar(20));"
                   "INSERT INTO good SELECT seq, CONCAT('g', seq) FROM seq_1_to_20;"
                   "\nDELIMITER //\n"
                   "CREATE FUNCTION boom(i INT) RETURNS INT DETERMINISTIC BEGIN "
                   "IF i = 5000 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'boom at 5000';"
                   " END IF; RETURN i; END//\nDELIMITER ;\n")
        # The datasets a failed replace or append must leave intact.
        for kind, ds in (("postgres", "keep_pg"), ("mysql", "keep_my")):
            status, _, data = cls.server.request(
                "POST", f"/ingest/{kind}",
                {"dsn": cls.pg.dsn if kind == "postgres" else cls.my.dsn, "table": "good",
                 "dataset": ds})
            assert status == 201, data

    def dsn_with(self, kind, **kw):
        srv = self.pg if kind == "postgres" else self.my
        user = kw.get("user", srv.user)
        pw = kw.get("password", srv.password)
        port = kw.get("port", srv.port)
        query = kw.get("query", "")
        scheme = "postgresql" if kind == "postgres" else "mysql"
        return f"{scheme}://{user}:{pw}@127.0.0.1:{port}/{srv.database}{query}"

    def expect_failure(self, kind, body, status, err_kind, modes=("create", "replace", "append"),
                       message_has=None):
        """Runs body in each mode (create into a new dataset; replace and append over the
        kept one) and checks the error and that nothing changed."""
        keep = "keep_pg" if kind == "postgres" else "keep_my"
        for mode in modes:
            with self.subTest(mode=mode):
                ds = f"failed_{mode}" if mode == "create" else keep
                kept = self.dataset_fingerprint(keep)
                before = snapshot(self.data)
                st, doc = self.sync(kind, dict(body, dataset=ds, mode=mode))
                self.assertError(st, doc, status, err_kind)
                if message_has:
                    self.assertRegex(doc["message"], message_has)
                after = snapshot(self.data)
                self.assertEqual(self.changed(before, after), [], "files changed")
                if mode == "create":
                    st, _ = self.server.json("GET", f"/catalog/datasets/by-name/{ds}")
                    self.assertEqual(st, 404)
                self.assertEqual(self.dataset_fingerprint(keep), kept, "kept dataset changed")

    @staticmethod
    def changed(before, after):
        """Paths added, removed or resized, except the server's own bookkeeping that a
        refused request may legitimately touch (none expected today: an empty list)."""
        keys = set(before) | set(after)
        return sorted(k for k in keys if before.get(k) != after.get(k))

    # -------------------------------------------------------------- before any row

    def test_bad_dsn(self):
        for kind, dsn in (("postgres", "postgresql://u:sekret-in-a-bad-dsn@127.0.0.1:99999999/x"),
                          ("mysql", "mysql://u:sekret-in-a-bad-dsn@127.0.0.1:notaport/x"),
                          ("postgres", "host=127.0.0.1 password=sekret-in-a-bad-dsn port='"),
                          ("mysql", "ftp://u:sekret-in-a-bad-dsn@127.0.0.1/x")):
            with self.subTest(kind=kind, dsn=dsn.split(":")[0]):
                self.expect_failure(kind, {"dsn": dsn, "table": "good"}, 400, "invalid_request",
                                    modes=("create",))

    def test_refused_connection(self):
        for kind in ("postgres", "mysql"):
            with self.subTest(kind=kind):
                self.expect_failure(kind, {"dsn": self.dsn_with(kind, port=free_port()),
                                           "table": "good"}, 502, "source_error")

    def test_wrong_password(self):
        for kind in ("postgres", "mysql"):
            with self.subTest(kind=kind):
                self.expect_failure(kind, {"dsn": self.dsn_with(kind, password=self.wrong),
                                           "table": "good"}, 502, "source_error")

    def test_tls_required_but_unavailable(self):
        for kind, q in (("postgres", "?sslmode=require"), ("mysql", "?ssl-mode=REQUIRED")):
            with self.subTest(kind=kind):
                self.expect_failure(kind, {"dsn": self.dsn_with(kind, query=q), "table": "good"},
                                    502, "source_error", message_has=r"(?i)ssl|tls")

    def test_unknown_table(self):
        for kind in ("postgres", "mysql"):
            with self.subTest(kind=kind):
                self.expect_failure(kind, {"dsn": self.dsn(kind), "table": "no_such_table"},
                                    502, "source_error", message_has="no_such_table")

    def test_unmappable_value(self):
        """PG numeric NaN cannot be a DECIMAL(10,2): named by column, never by value."""
        self.expect_failure("postgres", {"dsn": self.pg.dsn, "table": "bad_num"}, 400,
                            "unmappable_value", modes=("create",), message_has=r"\bv\b")

    # -------------------------------------------------------------- mid-stream

    def test_query_error_mid_stream(self):
        cases = (("postgres", "SELECT i, 1 / (5000 - i) AS x FROM generate_series(1, 10000) i"),
                 ("mysql", "SELECT seq AS i, boom(seq) AS x FROM seq_1_to_10000"))
        for kind, q in cases:
            with self.subTest(kind=kind):
                self.expect_failure(kind, {"dsn": self.dsn(kind), "query": q}, 502,
                                    "source_error", modes=("create", "replace"))

    def _active_backend(self, kind, marker):
        if kind == "postgres":
            out = self.pg.sql("SELECT pid FROM pg_stat_activity WHERE state = 'active' AND "
                              f"query LIKE '%{marker}%' AND pid <> pg_backend_pid()")
        else:
            out = self.my.sql("SELECT id FROM information_schema.processlist WHERE "
                              f"info LIKE '%{marker}%' AND id <> CONNECTION_ID()")
        return [int(x) for x in out.split()]

    def _kill_backend(self, kind, ident):
        if kind == "postgres":
            self.pg.sql(f"SELECT pg_terminate_backend({ident})")
        else:
            self.my.sql(f"KILL {ident}")

    def test_server_dies_mid_stream(self):
        """A slow, endless query; once rows flow, its backend is killed: 502, nothing left."""
        cases = (("postgres", PG_ENDLESS.replace("SELECT ", "SELECT 'pg_dies' AS marker, ")),
                 ("mysql", "SELECT a.seq AS a, b.seq AS b, 'my_dies' AS marker "
                           "FROM seq_1_to_100000 a, seq_1_to_100000 b"))
        for kind, q in cases:
            marker = "pg_dies" if kind == "postgres" else "my_dies"
            with self.subTest(kind=kind):
                before = snapshot(self.data)
                result = {}

                def run():
                    result["r"] = self.sync(kind, {"dsn": self.dsn(kind), "query": q,
                                                   "dataset": f"dies_{kind}"})

                t = threading.Thread(target=run)
                t.start()
                deadline = time.time() + 60
                ids = []
                while not ids and time.time() < deadline:
                    ids = self._active_backend(kind, marker)
                    time.sleep(0.2)
                self.assertTrue(ids, "the sync's query never showed up at the server")
                time.sleep(1.0)  # rows are flowing
                self.assertTrue(t.is_alive(), "the endless sync ended on its own")
                for ident in ids:
                    self._kill_backend(kind, ident)
                t.join(120)
                self.assertFalse(t.is_alive(), "the sync did not end after its backend died")
                status, doc = result["r"]
                self.assertError(status, doc, 502, "source_error")
                self.assertEqual(self.changed(before, snapshot(self.data)), [])
                st, _ = self.server.json("GET", f"/catalog/datasets/by-name/dies_{kind}")
                self.assertEqual(st, 404)

    def test_validation(self):
        base = {"dsn": self.pg.dsn, "table": "good", "dataset": "v"}
        bad = [dict(base, table=None, query=None), dict(base, query="SELECT 1"),
               dict(base, dataset="bad name!"), dict(base, mode="upsert"),
               dict(base, incremental={"key": "id"}), dict(base, wait="no")]
        for body in bad:
            body = {k: v for k, v in body.items() if v is not None}
            with self.subTest(body=sorted(body)):
                before = snapshot(self.data)
                st, doc = self.sync("postgres", body)
                self.assertError(st, doc, 400, "invalid_request")
                self.assertEqual(self.changed(before, snapshot(self.data)), [])


# ------------------------------------------------------------------ background and cancel

class BackgroundSyncTests(DbBase, Base):
    """A long sync with wait: false: a job whose progress grows while queries keep
    answering; cancelled, it ends as cancelled and leaves nothing."""

    QUERIES = {
        "postgres": PG_ENDLESS,
        "mysql": "SELECT a.seq AS a, b.seq AS b FROM seq_1_to_100000 a, seq_1_to_100000 b",
    }

    @classmethod
    def load_fixtures(cls):
        cls.pg.sql("CREATE TABLE small (id integer); INSERT INTO small VALUES (1), (2), (3);")
        status, _, data = cls.server.request("POST", "/ingest/postgres",
                                             {"dsn": cls.pg.dsn, "table": "small",
                                              "dataset": "small"})
        assert status == 201, data

    def start_job(self, kind, dataset):
        st, doc = self.sync(kind, {"dsn": self.dsn(kind), "query": self.QUERIES[kind],
                                   "dataset": dataset, "wait": False})
        self.assertEqual(st, 202, doc)
        return doc["job"]["id"]

    def run_cancel(self, kind):
        ds = f"long_{'pg' if kind == 'postgres' else 'my'}"
        before = snapshot(self.data)
        job_id = self.start_job(kind, ds)
        seen = []
        deadline = time.time() + 120
        while len(seen) < 3 and time.time() < deadline:
            j = self.job(job_id)
            self.assertIn(j["state"], ("queued", "running"), j)
            done = j["progress"]["done"]
            if done > 0 and (not seen or done > seen[-1]):
                seen.append(done)
            # Queries keep answering while the sync streams.
            t0 = time.monotonic()
            self.assertEqual(self.lake("SELECT count(*) FROM small")["rows"], [[3]])
            self.assertLess(time.monotonic() - t0, 10.0)
            time.sleep(0.3)
        self.assertEqual(len(seen), 3, f"progress did not grow: {seen}")
        status, doc = self.server.json("POST", f"/jobs/{job_id}/cancel")
        self.assertIn(status, (200, 202), doc)
        j = self.wait_job(job_id, timeout=60)
        self.assertEqual(j["state"], "cancelled", j)
        # Cancelling a finished job: 409.
        status, doc = self.server.json("POST", f"/jobs/{job_id}/cancel")
        self.assertEqual(status, 409, doc)
        self.assertEqual(FailureTests.changed(before, snapshot(self.data)), [])
        st, _ = self.server.json("GET", f"/catalog/datasets/by-name/{ds}")
        self.assertEqual(st, 404)

    def test_postgres_long_sync_progress_and_cancel(self):
        self.run_cancel("postgres")

    def test_mysql_long_sync_progress_and_cancel(self):
        self.run_cancel("mysql")

    def test_shutdown_cancels_a_running_sync(self):
        """SIGTERM while a sync waits on its source: the server cancels the sync instead of
        waiting for the source, stops promptly, and after a restart nothing of it is
        left."""
        st, doc = self.sync("postgres", {"dsn": self.pg.dsn, "query": "SELECT pg_sleep(600) AS s",
                                         "dataset": "asleep", "wait": False})
        self.assertEqual(st, 202, doc)
        job_id = doc["job"]["id"]
        deadline = time.time() + 60
        while self.job(job_id)["state"] == "queued" and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # into the read that waits on the server
        t0 = time.monotonic()
        self.server.stop()
        self.assertLess(time.monotonic() - t0, 30.0, "shutdown waited for the sync")
        self.assertIn("server.syncs_cancelled", self.server.last_log)
        self.server.start()
        st, _ = self.server.json("GET", "/catalog/datasets/by-name/asleep")
        self.assertEqual(st, 404)
        left = [os.path.join(d, f) for d, _, fs in os.walk(self.data) for f in fs
                if "asleep" in os.path.join(d, f)]
        self.assertEqual(left, [])

    def test_background_sync_result(self):
        st, doc = self.sync("postgres", {"dsn": self.pg.dsn, "table": "small",
                                         "dataset": "small_bg", "wait": False})
        self.assertEqual(st, 202, doc)
        j = self.wait_job(doc["job"]["id"])
        self.assertEqual(j["state"], "succeeded", j)
        self.assertEqual(j["result"]["rows"], 3)
        self.assertEqual(j["result"]["dataset"], "small_bg")
        self.assertEqual(self.lake("SELECT sum(id) FROM small_bg")["rows"], [[6]])


if __name__ == "__main__":
    unittest.main()
