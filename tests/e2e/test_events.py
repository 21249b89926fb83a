"""End-to-end tests of the event journal (GET /catalog/events, docs/GOVERNANCE.md): every
catalog mutation wired so far records one event with the caller's key name as actor, seq
grows by one without gaps across restarts, only admin and legal may read it, no key ever
appears in it, and a failed append is reported (500 event_not_recorded), kept, and written
exactly once with the next event."""
import json
import os
import shutil
import tempfile
import unittest

from harness import ADMIN_KEY, Base, Server, make_people


def all_events(s, key=ADMIN_KEY):
    out, since = [], 0
    while True:
        status, doc = s.json("GET", f"/catalog/events?since={since}&limit=2", key=key)
        assert status == 200, (status, doc)
        out += doc["events"]
        if not doc["events"]:
            assert doc["next_since"] == since
            return out
        assert doc["next_since"] == doc["events"][-1]["seq"]
        since = doc["next_since"]


class EventJournal(Base):
    def key(self, name, role, **extra):
        status, doc = self.server.json("POST", "/auth/keys", {"name": name, "role": role, **extra})
        self.assertEqual(status, 201, doc)
        return doc["key"]

    def test_01_mutations_recorded_with_actor_and_no_secrets(self):
        s = self.server
        ops = self.key("ops", "admin")
        legal = self.key("auditor", "legal")
        analyst = self.key("ana", "analyst")
        body = open(self.people_csv, "rb").read()
        status, doc = s.json("POST", "/ingest/file?name=people&format=csv", body, key=ops)
        self.assertEqual(status, 201, doc)
        status, doc = s.json("POST", "/ingest/file?name=people&format=csv&mode=replace", body,
                             key=ops)
        self.assertIn(status, (200, 201), doc)
        first_id = doc["dataset"]["id"]
        status, doc = s.json("POST", "/ingest/file?name=people&format=csv&mode=append", body,
                             key=ops)
        self.assertIn(status, (200, 201), doc)
        small = b"candidate_id,first_name\n9001,Zed\n"
        status, doc = s.json("PATCH", "/catalog/datasets/by-name/people/metadata",
                             {"description": "staff"}, key=ops)
        self.assertEqual(status, 200, doc)
        status, doc = s.json("POST", "/ingest/file?name=tmp&format=csv", small, key=ops)
        self.assertEqual(status, 201, doc)
        status, _ = s.json("DELETE", "/catalog/datasets/by-name/tmp", key=ops)
        self.assertEqual(status, 200)
        status, _ = s.json("DELETE", "/auth/keys/ana", key=ops)
        self.assertEqual(status, 200)

        events = all_events(s, key=legal)  # legal may read the journal
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)))
        got = [(e["action"], e["target"], e["actor"]) for e in events]
        self.assertEqual(got, [
            ("key.created", "ops", "env-admin"),
            ("key.created", "auditor", "env-admin"),
            ("key.created", "ana", "env-admin"),
            ("dataset.created", "people", "ops"),
            ("dataset.replaced", "people", "ops"),
            ("dataset.appended", "people", "ops"),
            ("dataset.metadata_edited", "people", "ops"),
            ("dataset.created", "tmp", "ops"),
            ("dataset.deleted", "tmp", "ops"),
            ("key.revoked", "ana", "ops"),
        ])
        by = {(e["action"], e["target"]): e for e in events}
        created = by[("dataset.replaced", "people")]["details"]
        self.assertEqual(created["bucket"], "primary")
        self.assertEqual(created["rows"], len(self.people))
        self.assertEqual(created["id"], first_id)
        self.assertTrue(created["part"].startswith("datasets/people/"))
        self.assertEqual(by[("dataset.metadata_edited", "people")]["details"],
                         {"patch": {"description": "staff"}})
        self.assertEqual(by[("key.created", "ana")]["details"]["role"], "analyst")
        for e in events:
            self.assertTrue(e["at"].endswith("Z"))

        # No key, key hash or personal value from the files in the journal.
        with open(os.path.join(self.data, "_catalog", "events.jsonl"), encoding="utf-8") as f:
            text = f.read()
        with open(os.path.join(self.data, "_secrets", "keys.json"), encoding="utf-8") as f:
            hashes = [k.get("hash") for k in json.load(f)["keys"]]
        for secret in [ops, legal, analyst, ADMIN_KEY] + [h for h in hashes if h]:
            self.assertNotIn(secret, text)
        self.assertNotIn(self.people[0]["email"], text)

    def test_02_roles_and_paging(self):
        s = self.server
        for role in ("analyst", "agent"):
            k = self.key(f"nope-{role}", role)
            status, doc = s.json("GET", "/catalog/events", key=k)
            self.assertEqual(status, 403, doc)
        for q in ("limit=0", "limit=1001", "since=-1", "since=abc", "limit=5x"):
            status, doc = s.json("GET", f"/catalog/events?{q}")
            self.assertEqual(status, 400, (q, doc))
        status, doc = s.json("GET", "/catalog/events?since=2&limit=3")
        self.assertEqual([e["seq"] for e in doc["events"]], [3, 4, 5])
        self.assertEqual(doc["next_since"], 5)
        status, doc = s.json("GET", "/catalog/events")  # default limit 100
        self.assertEqual(doc["events"][0]["seq"], 1)

    def test_03_survives_restart(self):
        s = self.server
        before = all_events(s)
        s.stop()
        s.start()
        self.assertEqual(all_events(s), before)
        status, doc = s.json("PATCH", "/catalog/datasets/by-name/people/metadata",
                             {"owner": "hr"})
        self.assertEqual(status, 200, doc)
        after = all_events(s)
        self.assertEqual(after[:-1], before)
        self.assertEqual(after[-1]["seq"], before[-1]["seq"] + 1)


class FailedAppend(unittest.TestCase):
    """A journal append that fails: the change happened, the reply says so with 500
    event_not_recorded, the event is kept and written once, in order, with the next."""

    def test_failed_append_is_reported_kept_and_written_once(self):
        tmp = tempfile.mkdtemp(prefix="lh-e2e-events-")
        try:
            data = os.path.join(tmp, "data")
            csv = os.path.join(tmp, "p.csv")
            make_people(csv, n=20)
            s = Server(data).start()
            try:
                self.assertEqual(s.ingest("people", csv)[0], 201)
            finally:
                s.stop()
            # After start-up: the PATCH's manifest fsync is #1, its journal append's #2.
            s = Server(data, {"LH_FAULT": "fsync:2:EIO"}).start()
            try:
                status, doc = s.json("PATCH", "/catalog/datasets/by-name/people/metadata",
                                     {"description": "one"})
                self.assertEqual(status, 500, doc)
                self.assertEqual(doc["error"], "event_not_recorded")
                self.assertIn("fault.injected", s.read_log())
                status, doc = s.json("GET", "/catalog/datasets/by-name/people")
                self.assertEqual(doc["dataset"]["description"], "one")  # it happened
                self.assertEqual([e["seq"] for e in all_events(s)], [1])  # not yet durable
                status, doc = s.json("PATCH", "/catalog/datasets/by-name/people/metadata",
                                     {"description": "two"})
                self.assertEqual(status, 200, doc)
                events = all_events(s)
            finally:
                s.stop()
            self.assertEqual([e["seq"] for e in events], [1, 2, 3])
            self.assertEqual([e["details"].get("patch") for e in events[1:]],
                             [{"description": "one"}, {"description": "two"}])
            s = Server(data).start()
            try:
                self.assertEqual(all_events(s), events)
            finally:
                s.stop()
            with open(os.path.join(data, "_catalog", "events.jsonl")) as f:
                self.assertEqual(len(f.read().splitlines()), 3)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
