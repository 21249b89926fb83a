"""End-to-end tests of content PII detection at ingest: a CSV whose column names say nothing
gets its kinds from its values, with the evidence in the manifest (as served and as stored
in the bucket); harmless data under PII-sounding names is not flagged; a human's PATCH wins
over detection after a replace and after an append; an append whose part shows PII in a
column escalates it."""
import csv
import json
import os
import random

from harness import Base

ROWS = 300


def luhn_complete(rnd, prefix, length):
    body = prefix + "".join(str(rnd.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    for d in "0123456789":
        s = body + d
        tot = 0
        for i, ch in enumerate(reversed(s)):
            x = int(ch) * (2 if i % 2 else 1)
            tot += x - 9 if x > 9 else x
        if tot % 10 == 0:
            return s
    raise AssertionError("no check digit")


def ean13(rnd):
    body = "400" + "".join(str(rnd.randint(0, 9)) for _ in range(9))
    tot = sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(reversed(body)))
    return body + str((10 - tot % 10) % 10)


def iban_de(rnd):
    bban = "".join(str(rnd.randint(0, 9)) for _ in range(18))
    check = 98 - int(bban + "131400") % 97  # D=13, E=14, then "00"
    s = f"DE{check:02d}{bban}"
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))


def ssn(rnd):
    return f"{rnd.choice([rnd.randint(1, 665), rnd.randint(667, 899)]):03d}-" \
           f"{rnd.randint(1, 99):02d}-{rnd.randint(1, 9999):04d}"


def make_opaque(path, n=ROWS, seed=11, start=1, c15_emails=False):
    """A CSV whose column names carry no meaning. Returns the rows."""
    rnd = random.Random(seed)
    first = ["Maria", "John", "Aisha", "Wei", "Carlos", "Emma", "Priya", "Liam"]
    last = ["Garcia", "Smith", "Khan", "Chen", "Patel", "Nguyen", "Rossi", "Brown"]
    rows = []
    for i in range(start, start + n):
        f, l = rnd.choice(first), rnd.choice(last)
        card = luhn_complete(rnd, rnd.choice(["4", "51", "6011"]), 16)
        rows.append({
            "id": i,
            "c1": f"{f.lower()}.{l.lower()}{i}@example.org",
            "c2": f"({rnd.randint(200, 999)}) {rnd.randint(200, 999)}-{rnd.randint(0, 9999):04d}",
            "c3": ssn(rnd),
            "c4": " ".join(card[k:k + 4] for k in range(0, 16, 4)),
            "c5": iban_de(rnd),
            "c6": f"10.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}",
            "app_version": f"10.{rnd.randint(0, 9)}.{rnd.randint(0, 9)}.{rnd.randint(0, 99)}",
            "c8": rnd.choice([f"Reach {f} at {f.lower()}@example.com after 5pm.",
                              "Prefers remote interviews.", "Strong SQL skills.",
                              f"Asked us to call {rnd.randint(200, 999)}-555-0142 instead."]),
            "email_opt_in": rnd.choice(["true", "false"]),
            "c10": f"{f.lower()}@example.net" if i % 10 == 0 else "",
            "c11": ean13(rnd),
            "c12": f"{f} {l}",
            "phone_model": rnd.choice(["iPhone 14", "Pixel 8", "Galaxy S23"]),
            "c15": f"{l.lower()}{i}@example.com" if c15_emails else rnd.choice(["red", "blue"]),
        })
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    return rows


# column -> (pii_kind or None, detector, sensitivity)
EXPECTED = {
    "id": (None, None, "None"),
    "c1": ("email", "email", "PII"),
    "c2": ("phone", "phone", "PII"),
    "c3": ("ssn", "us_ssn", "PII"),
    "c4": ("credit_card", "payment_card", "Financial"),
    "c5": ("bank_account", "iban", "Financial"),
    "c6": ("ip_address", "ipv4", "PII"),
    "app_version": (None, None, "None"),
    "c8": ("free_text_contact", "free_text_contact", "PII"),
    "email_opt_in": (None, "name_contradicted", "None"),
    "c10": ("email", "email", "PII"),
    "c11": (None, None, "None"),
    "c12": ("name", "person_name", "PII"),
    "phone_model": (None, "name_contradicted", "None"),
    "c15": (None, None, "None"),
}


class ContentPii(Base):
    def columns(self, m):
        return {c["name"]: c for c in m["columns"]}

    def check_detected(self, m, rows):
        cols = self.columns(m)
        self.assertEqual(set(cols), set(EXPECTED))
        for name, (kind, detector, sens) in EXPECTED.items():
            c = cols[name]
            with self.subTest(column=name):
                self.assertEqual(c["pii_kind"], kind, c)
                self.assertEqual(c["is_pii"], kind is not None, c)
                self.assertEqual(c["sensitivity"], sens, c)
                ev = c["pii_evidence"]
                self.assertEqual(ev["detector"], detector, c)
                self.assertEqual(ev["name_signal"], name in ("email_opt_in", "phone_model"), c)
        # The sample is of non-empty values: the sparse column's rate is over its filled
        # cells (every tenth row), not over all rows.
        ev = cols["c10"]["pii_evidence"]
        self.assertEqual(ev["sampled"], sum(1 for r in rows if r["c10"]))
        self.assertEqual(ev["match_rate"], 1.0)
        self.assertEqual(cols["c1"]["pii_evidence"]["sampled"], len(rows))
        self.assertEqual(cols["c1"]["pii_evidence"]["match_rate"], 1.0)
        # Booleans were never sampled (the BOOLEAN type alone contradicts the name).
        self.assertEqual(cols["email_opt_in"]["type"], "BOOLEAN")
        self.assertEqual(cols["email_opt_in"]["pii_evidence"]["sampled"], 0)
        # EAN-13 arrives as BIGINT and is sampled, yet is not a card.
        self.assertEqual(cols["c11"]["type"], "BIGINT")
        self.assertEqual(cols["c11"]["pii_evidence"]["sampled"], len(rows))
        # Financial is the highest sensitivity of the columns.
        self.assertEqual(m["sensitivity"], "Financial")

    def test_01_opaque_columns_classified_by_content(self):
        s = self.server
        p = os.path.join(self.tmp, "opaque.csv")
        rows = make_opaque(p)
        status, doc = s.ingest("opaque", p)
        self.assertEqual(status, 201, doc)
        self.check_detected(doc["dataset"], rows)
        # The same fields are in the manifest stored in the bucket, and served by GET.
        with open(os.path.join(self.data, "_catalog", "datasets", "opaque.json")) as f:
            stored = json.load(f)
        self.check_detected(stored, rows)
        status, got = s.json("GET", "/catalog/datasets/by-name/opaque")
        self.assertEqual(status, 200, got)
        m = got.get("dataset", got)
        self.check_detected(m, rows)

    def test_02_human_edits_survive_replace_and_append(self):
        s = self.server
        p = os.path.join(self.tmp, "edited.csv")
        rows = make_opaque(p, seed=12)
        self.assertEqual(s.ingest("edited", p)[0], 201)
        patch = {"columns": {
            "c1": {"is_pii": False},                            # detection said email
            "c3": {"pii_kind": "national_id"},                  # detection said ssn
            "c11": {"is_pii": True, "pii_kind": "loyalty_card", "sensitivity": "Financial"},
            "phone_model": {"description": "handset model"},    # an edit that says nothing of PII
        }}
        status, doc = s.json("PATCH", "/catalog/datasets/by-name/edited/metadata", patch)
        self.assertEqual(status, 200, doc)

        def check_human(m, label):
            cols = self.columns(m)
            with self.subTest(after=label):
                self.assertFalse(cols["c1"]["is_pii"])
                self.assertIsNone(cols["c1"]["pii_kind"])
                self.assertEqual(cols["c1"]["sensitivity"], "None")
                self.assertEqual(cols["c3"]["pii_kind"], "national_id")
                self.assertTrue(cols["c3"]["is_pii"])
                self.assertTrue(cols["c11"]["is_pii"])
                self.assertEqual(cols["c11"]["pii_kind"], "loyalty_card")
                self.assertEqual(cols["c11"]["sensitivity"], "Financial")
                self.assertFalse(cols["phone_model"]["is_pii"])
                self.assertEqual(cols["phone_model"]["description"], "handset model")
                # Columns the human did not touch keep the detector's verdict.
                self.assertEqual(cols["c2"]["pii_kind"], "phone")
                self.assertEqual(cols["c12"]["pii_kind"], "name")
                # Detection still ran and recorded its evidence under the human's value.
                self.assertEqual(cols["c1"]["pii_evidence"]["detector"], "email")

        p2 = os.path.join(self.tmp, "edited2.csv")
        make_opaque(p2, seed=13)
        status, doc = s.ingest("edited", p2, mode="replace")
        self.assertEqual(status, 201, doc)
        check_human(doc["dataset"], "replace")
        p3 = os.path.join(self.tmp, "edited3.csv")
        make_opaque(p3, seed=14, start=ROWS + 1)
        status, doc = s.ingest("edited", p3, mode="append")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["dataset"]["row_count"], 2 * ROWS)
        check_human(doc["dataset"], "append")
        # and after a restart (the manifest on disk holds the same)
        s.stop()
        s.start()
        status, got = s.json("GET", "/catalog/datasets/by-name/edited")
        self.assertEqual(status, 200, got)
        check_human(got.get("dataset", got), "restart")

    def test_03_append_escalates_a_column(self):
        s = self.server
        p = os.path.join(self.tmp, "grow.csv")
        make_opaque(p, seed=21)
        status, doc = s.ingest("grow", p)
        self.assertEqual(status, 201, doc)
        self.assertFalse(self.columns(doc["dataset"])["c15"]["is_pii"])
        p2 = os.path.join(self.tmp, "grow2.csv")
        make_opaque(p2, seed=22, start=ROWS + 1, c15_emails=True)
        status, doc = s.ingest("grow", p2, mode="append")
        self.assertEqual(status, 200, doc)
        c15 = self.columns(doc["dataset"])["c15"]
        self.assertTrue(c15["is_pii"], c15)
        self.assertEqual(c15["pii_kind"], "email")
        self.assertEqual(c15["pii_evidence"]["detector"], "email")
        # An append whose part shows nothing does not clear it.
        p3 = os.path.join(self.tmp, "grow3.csv")
        make_opaque(p3, seed=23, start=2 * ROWS + 1)
        status, doc = s.ingest("grow", p3, mode="append")
        self.assertEqual(status, 200, doc)
        self.assertEqual(self.columns(doc["dataset"])["c15"]["pii_kind"], "email")

    def test_04_large_part_sampled_across_its_rows(self):
        """A part over 65,536 rows is sampled in four row ranges: a column filled only in
        the last rows (a sorted export) is still seen, and no value is sampled twice."""
        s = self.server
        n, filled_from = 70000, 60000
        p = os.path.join(self.tmp, "sorted.csv")
        with open(p, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "c1", "c2"])
            for i in range(n):
                w.writerow([i, f"user{i}@example.org" if i >= filled_from else "",
                            f"note {i % 7}"])
        status, doc = s.ingest("sorted", p)
        self.assertEqual(status, 201, doc)
        cols = self.columns(doc["dataset"])
        self.assertEqual(cols["c1"]["pii_kind"], "email", cols["c1"])
        # Only the last range (52,500..69,999) holds emails: its 125 values, once each.
        self.assertEqual(cols["c1"]["pii_evidence"]["sampled"], 125)
        self.assertEqual(cols["c1"]["pii_evidence"]["match_rate"], 1.0)
        self.assertEqual(cols["c2"]["pii_evidence"]["sampled"], 500)
        self.assertFalse(cols["c2"]["is_pii"])
