#!/usr/bin/env python3
"""Writes tests/pii/labelled_columns.json: the labelled column set of tests/unit/test_pii.c.

Every value is synthetic (seeded, so the file is reproducible); card numbers, IBANs and SSNs
are generated to pass (or, for look-alikes, to fail) their validity rules. Each column has
name, type (DuckDB type the ingest would see), values[], expected (a pii_kind or null),
tricky (a look-alike, an opaque name, a PII-sounding name over harmless data, sparse PII,
barcodes, versions, free text) and why.

    python3 tests/pii/make_labelled_columns.py > tests/pii/labelled_columns.json
"""
import json
import random
import sys

R = random.Random(20261202)
N = 40

FIRST = ["Maria", "John", "Aisha", "Wei", "Carlos", "Emma", "Priya", "Liam", "Sofia", "Kenji",
         "Olga", "Omar", "Hannah", "Diego", "Chloe", "Rahul", "Elena", "Samuel", "Fatima", "Lucas"]
LAST = ["Garcia", "Smith", "Khan", "Chen", "Rodriguez", "Johnson", "Patel", "Nguyen", "Rossi",
        "Tanaka", "Schmidt", "Ali", "Brown", "Lopez", "Martin", "Singh", "Silva", "Kim", "Wilson"]
RARE_FIRST = ["Zebulon", "Ottoline", "Thaddeus", "Isolde", "Caspian"]  # not in the dictionary
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "uni.example.edu"]
STREETS = ["Main", "Oak", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park"]
SUFFIX = ["Street", "St", "Avenue", "Ave", "Road", "Rd", "Lane", "Blvd", "Drive", "Court"]
CITIES = ["Springfield, IL 62704", "Denver, CO 80202", "Austin, TX 78701", "Portland, OR 97205"]


def email():
    f, l = R.choice(FIRST).lower(), R.choice(LAST).lower()
    return R.choice([f"{f}.{l}@{R.choice(DOMAINS)}", f"{f[0]}{l}{R.randint(1, 99)}@{R.choice(DOMAINS)}",
                     f"{l}+jobs@{R.choice(DOMAINS)}"])


def nanp_digits():
    return f"{R.randint(2, 9)}{R.randint(0, 99):02d}", f"{R.randint(2, 9)}{R.randint(0, 99):02d}", f"{R.randint(0, 9999):04d}"


def phone_nanp():
    a, b, c = nanp_digits()
    return R.choice([f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"+1 {a} {b} {c}",
                     f"1-{a}-{b}-{c}", f"{a}-{b}-{c} x{R.randint(10, 999)}"])


def phone_intl():
    return R.choice([f"+44 20 {R.randint(7000, 7999)} {R.randint(1000, 9999)}",
                     f"+33 1 {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)}",
                     f"+49 30 {R.randint(1000000, 9999999)}", f"+81 3 {R.randint(1000, 9999)} {R.randint(1000, 9999)}",
                     f"+34 612 {R.randint(100, 999)} {R.randint(100, 999)}"])


def ssn(valid=True, sep="-"):
    if valid:
        area = R.choice([R.randint(1, 665), R.randint(667, 899)])
        group, serial = R.randint(1, 99), R.randint(1, 9999)
    else:
        area, group, serial = R.choice([(0, R.randint(1, 99), R.randint(1, 9999)),
                                        (666, R.randint(1, 99), R.randint(1, 9999)),
                                        (R.randint(900, 999), R.randint(1, 99), R.randint(1, 9999)),
                                        (R.randint(1, 665), 0, R.randint(1, 9999)),
                                        (R.randint(1, 665), R.randint(1, 99), 0)])
    return f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"


def luhn_complete(prefix, length):
    body = prefix + "".join(str(R.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    for d in "0123456789":
        s = body + d
        tot = 0
        for i, ch in enumerate(reversed(s)):
            x = int(ch)
            if i % 2 == 1:
                x *= 2
                if x > 9:
                    x -= 9
            tot += x
        if tot % 10 == 0:
            return s
    raise AssertionError


def card(fmt=True):
    prefix, length = R.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15),
                               ("6011", 16), ("65", 16), ("3530", 16), ("36", 14)])
    n = luhn_complete(prefix, length)
    if not fmt:
        return n
    if length == 15:
        return R.choice([f"{n[:4]} {n[4:10]} {n[10:]}", n])
    return R.choice([" ".join(n[i:i + 4] for i in range(0, len(n), 4)),
                     "-".join(n[i:i + 4] for i in range(0, len(n), 4)), n])


def gtin(prefix, length):
    body = prefix + "".join(str(R.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    tot = sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(reversed(body)))
    return body + str((10 - tot % 10) % 10)


IBAN_FORMS = {"DE": (22, "n"), "GB": (22, "GB"), "FR": (27, "n"), "NL": (18, "NL"), "ES": (24, "n"),
              "IT": (27, "IT")}


def iban(valid=True, spaced=True):
    cc = R.choice(list(IBAN_FORMS))
    length, form = IBAN_FORMS[cc]
    if form == "GB":
        bban = "NWBK" + "".join(str(R.randint(0, 9)) for _ in range(length - 8))
    elif form == "NL":
        bban = "ABNA" + "".join(str(R.randint(0, 9)) for _ in range(length - 8))
    elif form == "IT":
        bban = "X" + "".join(str(R.randint(0, 9)) for _ in range(10)) + "".join(
            R.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(length - 15))
    else:
        bban = "".join(str(R.randint(0, 9)) for _ in range(length - 4))
    num = "".join(str(int(c, 36)) for c in bban + cc + "00")
    check = 98 - int(num) % 97
    if not valid:
        check = (check + R.randint(1, 96)) % 97 or 2
    s = f"{cc}{check:02d}{bban}"
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4)) if spaced else s


def ipv4():
    return f"{R.randint(1, 223)}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}"


def ipv6():
    g = [f"{R.randint(0, 65535):x}" for _ in range(8)]
    return R.choice([":".join(g), f"2001:db8::{g[0]}:{g[1]}", f"fe80::{g[2]}:{g[3]}%eth0",
                     f"::ffff:{ipv4()}", "::1"])


def version():
    return R.choice([f"{R.randint(0, 12)}.{R.randint(0, 20)}.{R.randint(0, 9)}",
                     f"{R.randint(1, 12)}.{R.randint(0, 9)}.{R.randint(0, 9)}.{R.randint(0, 99)}",
                     f"v{R.randint(1, 4)}.{R.randint(0, 9)}"])


def person():
    return R.choice([f"{R.choice(FIRST)} {R.choice(LAST)}", f"{R.choice(FIRST)} {R.choice('ABCDEJMR')}. {R.choice(LAST)}",
                     f"{R.choice(LAST)}, {R.choice(FIRST)}", f"{R.choice(FIRST)} de la {R.choice(['Cruz', 'Vega'])}"])


def address():
    return R.choice([f"{R.randint(1, 9999)} {R.choice(STREETS)} {R.choice(SUFFIX)}",
                     f"{R.randint(1, 9999)} {R.choice(STREETS)} {R.choice(SUFFIX)}, {R.choice(CITIES)}",
                     f"{R.randint(1, 80)} rue de la {R.choice(['Paix', 'Gare', 'Poste'])}",
                     f"{R.choice(['Haupt', 'Berliner ', 'Linden'])}stra\u00dfe {R.randint(1, 200)}",
                     f"Calle {R.choice(['Mayor', 'Real', 'Sol'])} {R.randint(1, 90)}",
                     f"PO Box {R.randint(10, 9999)}"])


def date_iso(y0, y1):
    return f"{R.randint(y0, y1)}-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}"


def date_us(y0, y1):
    return f"{R.randint(1, 12)}/{R.randint(1, 28)}/{R.randint(y0, y1)}"


SENTENCES = ["Called back, left a voicemail.", "Prefers remote interviews.", "Strong SQL skills; follow up next week.",
             "Asked about relocation budget.", "No show at the second round.", "Referred by the Denver office.",
             "Salary expectations discussed.", "Needs visa sponsorship in 2027."]


def note_with_contact():
    return R.choice([f"Reach her at {email()} after 5pm.", f"Candidate asked us to call {phone_nanp()} instead.",
                     f"New address for mail: {email()} (personal)", f"Mobile changed to {phone_nanp()}, update CRM."])


def many(fn, n=N):
    return [fn() for _ in range(n)]


def mix(parts, n=N):
    """parts: [(weight, fn)]; values drawn with those weights."""
    fns = [fn for w, fn in parts for _ in range(w)]
    return [R.choice(fns)() for _ in range(n)]


def blank():
    return R.choice(["", "", "N/A", "null", " "])


cols = []


def col(name, values, expected, tricky, why, type_="VARCHAR"):
    cols.append({"name": name, "type": type_, "values": values, "expected": expected, "tricky": tricky, "why": why})


# ---------------------------------------------------------------- plain cases
col("email", many(email), "email", False, "emails under an email name")
col("contact_email", many(lambda: email().upper() if R.random() < 0.3 else email()), "email", False, "mixed case emails")
col("phone", many(phone_nanp), "phone", False, "NANP spellings")
col("mobile", many(phone_intl), "phone", False, "E.164 with spaces")
col("home_phone", mix([(1, phone_nanp), (1, phone_intl)]), "phone", False, "NANP and international")
col("ssn", many(ssn), "ssn", False, "SSNs with dashes")
col("social_security_number", many(lambda: ssn(sep=" ")), "ssn", False, "SSNs with spaces")
col("credit_card", many(card), "credit_card", False, "cards of several issuers and spellings")
col("iban", many(iban), "bank_account", False, "IBANs with spaces")
col("account_number", many(lambda: iban(spaced=False)), "bank_account", False, "IBANs without spaces")
col("client_ip", many(ipv4), "ip_address", False, "IPv4 under an ip name")
col("ipv6_address", many(ipv6), "ip_address", False, "IPv6 in several forms")
col("full_name", many(person), "name", False, "person names")
col("first_name", many(lambda: R.choice(FIRST + RARE_FIRST)), "name", False, "single given names, some unknown to the dictionary")
col("address", many(address), "address", False, "street addresses, several countries")
col("dob", many(lambda: date_iso(1950, 2005)), "date_of_birth", False, "ISO birth dates", "DATE")
col("birth_date", many(lambda: date_us(1945, 2004)), "date_of_birth", False, "US-style birth dates")
col("salary", many(lambda: str(R.randint(40000, 200000))), "salary", False, "salary by name", "BIGINT")
col("diagnosis", many(lambda: R.choice(["Type 2 diabetes", "Asthma", "Hypertension", "Migraine"])), "medical", False, "health by name")
col("gender", many(lambda: R.choice(["F", "M", "X"])), "gender", False, "a demographic attribute by name")
col("mac_address", many(lambda: ":".join(f"{R.randint(0, 255):02X}" for _ in range(6))), "device_id", False, "MAC addresses by name")
col("username", many(lambda: R.choice(LAST).lower() + str(R.randint(1, 999))), "username", False, "logins by name")
col("candidate_id", many(lambda: f"C{R.randint(10000, 99999)}"), None, False, "opaque ids")
col("status", many(lambda: R.choice(["active", "withdrawn", "hired"])), None, False, "a status")
col("country", many(lambda: R.choice(["US", "DE", "FR", "ES"])), None, False, "country codes")
col("amount", many(lambda: f"{R.uniform(1, 999):.2f}"), None, False, "money amounts", "DOUBLE")
col("created_at", many(lambda: date_iso(2023, 2026) + " 10:15:00"), None, False, "record timestamps", "TIMESTAMP")
col("url", many(lambda: f"https://example.com/jobs/{R.randint(1, 9999)}"), None, False, "urls")
col("sku", many(lambda: f"SKU-{R.randint(1000, 9999)}-{R.choice('ABC')}"), None, False, "product codes")
col("uuid", many(lambda: "%08x-%04x-4%03x-a%03x-%012x" % (R.getrandbits(32), R.getrandbits(16), R.getrandbits(12), R.getrandbits(12), R.getrandbits(48))), None, False, "uuids")

# ---------------------------------------------------------------- tricky: opaque names holding PII
col("c7", many(email), "email", True, "opaque name, emails")
col("field_3", many(lambda: card(fmt=False)), "credit_card", True, "opaque name, unformatted cards as BIGINT", "BIGINT")
col("col_12", many(phone_nanp), "phone", True, "opaque name, NANP phones")
col("x1", many(ssn), "ssn", True, "opaque name, SSNs")
col("ref", many(iban), "bank_account", True, "opaque name, IBANs")
col("c20", many(ipv4), "ip_address", True, "opaque name, IPv4")
col("f3", many(person), "name", True, "opaque name, person names")
col("loc", many(address), "address", True, "opaque name, addresses")
col("v6", many(ipv6), "ip_address", True, "opaque name, IPv6")
col("attr_9", many(phone_intl), "phone", True, "opaque name, E.164 phones")

# ---------------------------------------------------------------- tricky: PII-sounding names over harmless data
col("email_opt_in", many(lambda: R.choice(["true", "false"])), None, True, "booleans under an email name", "BOOLEAN")
col("email_verified", many(lambda: R.choice(["yes", "no"])), None, True, "yes/no text under an email name")
col("phone_model", many(lambda: R.choice(["iPhone 14", "Pixel 8", "Galaxy S23", "Moto G"])), None, True, "device models under a phone name")
col("has_phone", many(lambda: R.choice(["0", "1"])), None, True, "0/1 flags under a phone name", "INTEGER")
col("ssn_last_checked", many(lambda: date_iso(2023, 2025)), None, True, "dates under an ssn name", "DATE")
col("ip_allowlist_enabled", many(lambda: R.choice(["true", "false"])), None, True, "booleans under an ip name", "BOOLEAN")
col("address_count", many(lambda: R.choice(["true", "false", "yes"])), None, True, "flags under an address name")
col("card_number_masked", many(lambda: "**** **** **** " + str(R.randint(1000, 9999))), None, True, "masked cards: no card number")

# ---------------------------------------------------------------- tricky: look-alikes
col("ean13", many(lambda: gtin(R.choice(["400", "590", "789", "871"]), 13)), None, True, "EAN-13 barcodes (some pass Luhn)", "BIGINT")
col("gtin", many(lambda: gtin("1", 14)), None, True, "GTIN-14 barcodes", "BIGINT")
col("isbn", many(lambda: gtin(R.choice(["978", "979"]), 13)), None, True, "ISBN-13s are barcodes")
col("tracking_no", many(lambda: "9" + "".join(str(R.randint(0, 9)) for _ in range(15))), None, True, "16 digits, no issuer")
col("part_code", many(lambda: ssn(valid=False)), None, True, "SSN-shaped codes breaking the SSA rules")
col("version", many(lambda: f"{R.randint(1, 12)}.{R.randint(0, 9)}.{R.randint(0, 9)}.{R.randint(0, 99)}"), None, True, "4-part versions in a version column")
col("build", many(version), None, True, "versions mixed with 4-part numbers")
col("c30", many(version), None, True, "opaque name, versions (some look like IPv4)")
col("order_number", many(lambda: str(R.randint(2000000000, 9999999999))), None, True, "10-digit numbers, no phone name", "BIGINT")
col("bank_ref", many(lambda: iban(valid=False)), None, True, "IBAN-shaped references with bad check digits")
col("clock", many(lambda: f"{R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d}"), None, True, "times are not IPv6")
col("product_name", mix([(4, lambda: f"{R.choice(['Blue', 'Steel', 'Quantum', 'Solar'])} {R.choice(['Widget', 'Drill', 'Lamp'])}"),
                         (1, lambda: f"{R.choice(['Victor', 'Jackson'])} {R.choice(['Mousetrap', 'Hammer'])}")]),
    None, True, "capitalised words, a few with a surname")
col("city", many(lambda: R.choice(["Springfield", "Denver", "Austin", "Portland", "Jackson"])), None, True, "single place names")
col("hire_date", many(lambda: date_iso(2010, 2025)), None, True, "dates without a birth name", "DATE")
col("comments", many(lambda: R.choice(SENTENCES)), None, True, "free text without contacts")
col("release_notes", many(lambda: f"Fixed crash in {version()}; see ticket {R.randint(100, 999)}."), None, True, "free text with versions")

# ---------------------------------------------------------------- tricky: sparse and free text
col("x9", [email() if R.random() < 0.15 else blank() for _ in range(80)], "email", True, "sparse: 15% emails, the rest blank")
col("misc", mix([(1, ssn), (2, lambda: R.choice(["pending", "see file", "waived"]))]), "ssn", True, "sparse: a third SSNs among words")
col("notes", mix([(2, note_with_contact), (3, lambda: R.choice(SENTENCES))]), "free_text_contact", True, "free text embedding emails and phones")
col("recruiter_notes", mix([(1, note_with_contact), (4, lambda: R.choice(SENTENCES))]), "free_text_contact", True, "free text, a few with contacts")
col("backup_contact", [phone_nanp() if R.random() < 0.2 else "" for _ in range(80)], "phone", True, "sparse phones")

# ---------------------------------------------------------------- added after the classifier was
# written, not tuned against it (one is a known miss: bare SSNs under an opaque name)
col("zip", many(lambda: f"{R.randint(10000, 99999)}"), "address", False, "ZIP codes by name", "INTEGER")
col("ip", many(ipv4), "ip_address", False, "IPv4 under a short name")
col("server_address", many(lambda: f"db{R.randint(1, 9)}.internal.example.com"), None, True, "host names under an address-sounding name")
col("cvv", many(lambda: f"{R.randint(100, 9999)}"), "credit_card", True, "card security codes by name (3-4 digits)")
col("lat", many(lambda: f"{R.uniform(-90, 90):.4f}"), "geolocation", False, "latitudes by name", "DOUBLE")
col("user_agent", many(lambda: R.choice(["Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
                                         "curl/8.1.2"])), None, True, "user agents carry versions")
col("mobile_app", many(lambda: R.choice(["iOS", "Android"])), None, True, "platform names under a mobile name")
col("passport_number", many(lambda: f"{R.choice('XYZ')}{R.randint(1000000, 9999999)}"), "passport", False, "passports by name")
col("invoice_email_sent", many(lambda: R.choice(["true", "false"])), None, True, "booleans under an email name", "BOOLEAN")
col("emergency_contact", many(phone_nanp), "phone", True, "a name-kind name holding phones")
col("k", many(lambda: ssn(sep="")), "ssn", True, "bare 9-digit SSNs under an opaque name (known miss: bare digits need the name)", "INTEGER")

json.dump(cols, sys.stdout, indent=1, ensure_ascii=False)
sys.stdout.write("\n")
n_tricky = sum(c["tricky"] for c in cols)
print(f"{len(cols)} columns, {n_tricky} tricky", file=sys.stderr)
