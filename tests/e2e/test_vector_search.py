"""End-to-end tests of vector search and model profiles (issue 14 items 4 and 7;
docs/VECTORS.md "Search" and "Profiles"), against the real server:

- the exact scan is the ground truth: its hits and scores are those of an independent
  computation here (the stand-in's Python `hash` embedder, cosine over every document);
- the warm HNSW structure agrees with it: recall@10 >= 0.9 over a few hundred documents;
- the filter applies before ranking: with data where no Denver nurse is in the global top k,
  "nurse" filtered to Denver returns k Denver nurses; a filter naming another relation is
  400 bad_filter;
- a tombstoned document never comes back, on the exact and the ANN path, before any
  compaction;
- an analyst's and an agent's searches leave one audit row per returned person, seen at
  the legal endpoint (/audit/subject/{id}) with the fields, purpose, trace id, and the
  agent's profile;
- an agent searching outside its profile gets 403 naming the indexes it may search, and the
  refusal is journaled; the profile-scoped route refuses other agents and indexes;
- bad vectors, k bounds and unknown fields are 400;
- activation warms a profile's indexes and reports a damaged one without aborting the rest;
- with the ollama embedder (the stand-in server), activation unloads the previous model
  (keep_alive 0) and preloads the next, and sends nothing when both use the same model;
- a failed audit write (LH_FAULT on the journal's fsync) fails the search with 500 and no
  hit; the next search is served and audited;
- `lakehouse vectors search` prints the filtered hits and fails with the server's refusal.
"""
import csv
import glob
import io
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

import harness
from harness import Server

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from embedserver import EmbedServer, hash_embed  # noqa: E402  (tests/embedserver.py)

AUDIT_KEY = "e2e-vector-audit-key-" + "v" * 30 + "-secret"
TOKEN = "e2e-vector-legal-token-" + "t" * 30
PURPOSE = "vector screening ✓"
DIM = 384

CITIES = ["Denver", "Boston", "Austin", "Seattle"]


def make_resumes(n=300):
    """Resumes where Boston nurses match "registered nurse intensive care" strongly and
    Denver nurses only weakly (one mention in a software engineer's text), so no Denver
    nurse is in the global top k. Returns the rows and the CSV bytes."""
    rows = []
    for i in range(1, n + 1):
        cid = f"R-{i}"
        kind = i % 10
        if kind < 2:
            city, text = "Denver", (f"candidate {i} software engineer, databases and compilers, "
                                    f"distributed systems; volunteered as a nurse aide in {i % 7} "
                                    f"summer camps")
        elif kind < 5:
            city, text = "Boston", (f"candidate {i} registered nurse, intensive care unit, "
                                    f"critical care nurse with {i % 9} years of ICU nursing")
        elif kind < 8:
            city, text = CITIES[i % 4], (f"candidate {i} accountant, ledger audit, tax returns "
                                         f"and payroll for {i % 5} firms")
        else:
            city, text = CITIES[(i // 10) % 4], (f"candidate {i} teacher of mathematics and "
                                                 f"physics, curriculum design, {i % 6} schools")
        rows.append({"candidate_id": cid, "city": city, "resume": text})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["candidate_id", "city", "resume"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return rows, buf.getvalue().encode()


def make_jobs():
    text = "job_id,title,description\n" + "".join(
        f"J-{i},title {i},opening {i} for a nurse in ward {i % 4}\n" for i in range(1, 41))
    return text.encode()


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b))  # both L2-normalised


def search(s, index, body, key=None, purpose=PURPOSE, trace=None, route=None):
    enc = (lambda v: v.encode("utf-8") if isinstance(v, str) else v)  # noqa: E731
    h = {"X-Lakehouse-Purpose": enc(purpose), "X-Lakehouse-Trace-Id": enc(trace)}
    path = route or f"/vectors/search/{index}"
    kw = {"key": key} if key else {}
    return s.json("POST", path, body, h, **kw)


def ids(doc):
    return [h["doc_id"] for h in doc["hits"]]


def create_index(s, body):
    b = {"chunk_size": 4000, "overlap": 0, "wait": True}
    b.update(body)
    st, doc = s.json("POST", "/vectors/indexes", b)
    assert st == 201, (st, doc)
    return doc


def events(s, action):
    out, since = [], 0
    while True:
        st, doc = s.json("GET", f"/catalog/events?since={since}&limit=1000")
        assert st == 200, doc
        out += doc["events"]
        if not doc["events"]:
            break
        since = doc["next_since"]
    return [e for e in out if e["action"] == action]


class VectorSearch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="lh-e2e-vsearch-")
        cls.data = os.path.join(cls.tmp, "data")
        cls.keyfile = os.path.join(cls.tmp, "audit.key")
        with open(cls.keyfile, "w") as f:
            f.write(AUDIT_KEY + "\n")
        cls.tokenfile = os.path.join(cls.tmp, "legal.token")
        with open(cls.tokenfile, "w") as f:
            f.write(TOKEN)
        cls.env = {"LH_SUBJECT_AUDIT_KEY": cls.keyfile, "LH_LEGAL_AUDIT_TOKEN_FILE": cls.tokenfile}
        cls.server = Server(cls.data, cls.env).start()
        s = cls.server
        cls.rows, data = make_resumes()
        cls.by_id = {r["candidate_id"]: r for r in cls.rows}
        st, doc = s.ingest("resumes", data)
        assert st == 201, doc
        st, doc = s.json("PATCH", "/catalog/datasets/by-name/resumes/metadata",
                         {"subject_key_column": "candidate_id"})
        assert st == 200, doc
        st, doc = s.ingest("jobs", make_jobs())
        assert st == 201, doc
        create_index(s, {"name": "resumes_hnsw", "dataset": "resumes", "id_column": "candidate_id",
                         "text_column": "resume", "embedder": "hash", "kind": "hnsw"})
        create_index(s, {"name": "jobs_idx", "dataset": "jobs", "id_column": "job_id",
                         "text_column": "description", "embedder": "hash", "kind": "flat"})
        for body in ({"id": "screening", "model_name": "screener-1", "bound_datasets": ["resumes"]},
                     {"id": "jobs-only", "model_name": "jobber-1", "bound_datasets": ["jobs"]},
                     {"id": "both", "model_name": "both-1",
                      "bound_datasets": ["resumes", "jobs"]}):
            st, doc = s.json("POST", "/catalog/profiles", body)
            assert st == 201, doc
        cls.keys = {}
        for body in ({"name": "ana", "role": "analyst"},
                     {"name": "bot", "role": "agent", "profile": "screening"},
                     {"name": "jobbot", "role": "agent", "profile": "jobs-only"}):
            st, doc = s.json("POST", "/auth/keys", body)
            assert st == 201, doc
            cls.keys[body["name"]] = doc["key"]
        # the independent truth: every resume's hash embedding
        cls.vecs = {r["candidate_id"]: hash_embed(r["resume"], DIM) for r in cls.rows}

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.server and cls.server.proc:
                cls.server.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def truth(self, query, k, keep=lambda r: True):
        q = hash_embed(query, DIM)
        scored = sorted(((cosine(q, self.vecs[r["candidate_id"]]), r["candidate_id"])
                         for r in self.rows if keep(r)), key=lambda t: (-t[0], t[1]))
        return scored[:k]

    def test_01_exact_is_the_ground_truth(self):
        s = self.server
        for query in ("registered nurse intensive care", "tax accountant payroll",
                      "physics teacher curriculum", "distributed databases compilers"):
            st, doc = search(s, "resumes_hnsw", {"query": query, "k": 10, "exact": True})
            self.assertEqual(st, 200, doc)
            self.assertTrue(doc["exact"])
            self.assertFalse(doc["ann"])
            self.assertEqual(len(doc["hits"]), 10)
            want = self.truth(query, 10)
            q = hash_embed(query, DIM)
            for hit, (score, _) in zip(doc["hits"], want):
                # each hit's score is its document's true cosine, in the true order
                self.assertAlmostEqual(hit["score"], score, places=4)
                self.assertAlmostEqual(hit["score"], cosine(q, self.vecs[hit["doc_id"]]),
                                       places=4)
                self.assertEqual(hit["text"], self.by_id[hit["doc_id"]]["resume"])
                self.assertEqual(hit["chunk"], 0)
            # a document's own text finds it first
            r = self.rows[41]
            st, doc = search(s, "resumes_hnsw", {"query": r["resume"], "k": 1, "exact": True})
            self.assertEqual(ids(doc), [r["candidate_id"]])
            self.assertAlmostEqual(doc["hits"][0]["score"], 1.0, places=4)

    def test_02_ann_recall(self):
        s = self.server
        st, doc = s.json("POST", "/vectors/profile/screening/activate")
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["warmed"], ["resumes_hnsw"])
        self.assertEqual(doc["failures"], [])
        found = wanted = 0
        queries = [f"candidate {i} " + w for i, w in zip(range(3, 300, 15), [
            "nurse", "accountant", "teacher", "engineer", "ICU", "payroll", "physics",
            "compilers", "ledger", "curriculum"] * 2)]
        for query in queries:
            st, a = search(s, "resumes_hnsw", {"query": query, "k": 10})
            self.assertEqual(st, 200, a)
            self.assertTrue(a["ann"])
            st, e = search(s, "resumes_hnsw", {"query": query, "k": 10, "exact": True})
            self.assertEqual(st, 200, e)
            wanted += len(e["hits"])
            found += len(set(ids(a)) & set(ids(e)))
        self.assertGreaterEqual(found / wanted, 0.9, (found, wanted))

    def test_03_filter_before_ranking(self):
        s = self.server
        query, k = "registered nurse intensive care", 5
        denver = lambda r: r["city"] == "Denver"  # noqa: E731
        # the premise: no Denver document in the global top k
        self.assertFalse([i for _, i in self.truth(query, k) if denver(self.by_id[i])])
        for exact in (True, False):
            st, doc = search(s, "resumes_hnsw", {"query": query, "k": k, "exact": exact,
                                                  "filter": "city = 'Denver'"})
            self.assertEqual(st, 200, doc)
            self.assertEqual(len(doc["hits"]), k)
            self.assertTrue(all(self.by_id[i]["city"] == "Denver" for i in ids(doc)), ids(doc))
            if exact:
                self.assertEqual(ids(doc), [i for _, i in self.truth(query, k, denver)])
        # more than exist: all of them, no more
        st, doc = search(s, "resumes_hnsw", {"query": query, "k": 1000,
                                              "filter": "city = 'Denver' AND resume LIKE '%aide in 3%'"})
        self.assertEqual(st, 200, doc)
        want = {r["candidate_id"] for r in self.rows
                if r["city"] == "Denver" and "aide in 3" in r["resume"]}
        self.assertEqual(set(ids(doc)), want)
        # the firewall refuses a filter that reads anything else
        for bad in ("candidate_id IN (SELECT job_id FROM jobs)",
                    "city = (SELECT content FROM read_text('/etc/passwd'))",
                    "true) UNION SELECT * FROM jobs WHERE (true"):
            st, doc = search(s, "resumes_hnsw", {"query": query, "filter": bad})
            self.assertEqual(st, 400, doc)
            self.assertEqual(doc["error"], "bad_filter")

    def test_04_tombstoned_never_returned(self):
        s = self.server
        query = "critical care nurse ICU nursing"
        st, before = search(s, "resumes_hnsw", {"query": query, "k": 10, "exact": True})
        self.assertEqual(st, 200, before)
        gone = ids(before)[:2]
        st, doc = s.json("POST", "/catalog/datasets/by-name/resumes/tombstone",
                         {"row_key_column": "candidate_id", "row_key_values": gone})
        self.assertEqual(st, 200, doc)
        for exact in (True, False):
            for chunks in (False, True):
                st, after = search(s, "resumes_hnsw", {"query": query, "k": 10, "exact": exact,
                                                        "chunks": chunks})
                self.assertEqual(st, 200, after)
                self.assertEqual(len(after["hits"]), 10)
                self.assertFalse(set(gone) & set(ids(after)), (gone, ids(after)))
        # the document's own text does not find it either
        st, doc = search(s, "resumes_hnsw", {"query": self.by_id[gone[0]]["resume"], "k": 3})
        self.assertNotIn(gone[0], ids(doc))
        # restored: it is back
        st, doc = s.json("DELETE", "/catalog/datasets/by-name/resumes/tombstone",
                         {"row_key_values": gone})
        self.assertEqual(st, 200, doc)
        st, doc = search(s, "resumes_hnsw", {"query": query, "k": 10, "exact": True})
        self.assertEqual(ids(doc), ids(before))

    def legal_rows(self, cid, trace):
        st, doc = self.server.json("GET", "/audit/subject/" + urllib.parse.quote(cid, safe=""),
                                   headers={"X-Lakehouse-Legal-Token": TOKEN}, key=None)
        if st == 404 and doc["error"] == "subject_not_found":  # never audited at all
            return []
        self.assertEqual(st, 200, doc)
        self.assertTrue(doc["response"]["chain_verified"])
        return [r for r in doc["response"]["rows"] if r["accessor"].get("trace_id") == trace]

    def test_05_audit_rows_at_the_legal_endpoint(self):
        s = self.server
        for who, trace in (("ana", "vec-trace-analyst"), ("bot", "vec-trace-agent")):
            st, doc = search(s, "resumes_hnsw", {"query": "accountant ledger", "k": 6},
                             key=self.keys[who], trace=trace)
            self.assertEqual(st, 200, doc)
            self.assertEqual(len(doc["hits"]), 6)
            for cid in ids(doc):
                rows = self.legal_rows(cid, trace)
                self.assertEqual(len(rows), 1, (cid, rows))
                r = rows[0]
                self.assertEqual(r["fields_accessed"], ["resume", "candidate_id"])
                self.assertEqual(r["accessor"]["daemon"], who)
                self.assertEqual(r["accessor"]["purpose"], PURPOSE)
                if who == "bot":
                    self.assertEqual(r["accessor"]["kind"], "agent")
                    self.assertEqual(r["accessor"]["profile"], "screening")
                    self.assertEqual(r["accessor"]["model"], "screener-1")
            # nobody else was audited under that trace
            other = [p for p in self.rows[:40] if p["candidate_id"] not in ids(doc)][:5]
            for p in other:
                self.assertEqual(self.legal_rows(p["candidate_id"], trace), [])
        # admins are not audited
        st, doc = search(s, "resumes_hnsw", {"query": "accountant ledger", "k": 3},
                         trace="vec-trace-admin")
        self.assertEqual(st, 200, doc)
        self.assertEqual(self.legal_rows(ids(doc)[0], "vec-trace-admin"), [])
        # an agent must say why
        st, doc = search(s, "resumes_hnsw", {"query": "x"}, key=self.keys["bot"], purpose=None)
        self.assertEqual(st, 400, doc)
        self.assertEqual(doc["error"], "purpose_required")

    def test_06_out_of_profile(self):
        s = self.server
        n_denied = len(events(s, "query.denied"))
        st, doc = search(s, "resumes_hnsw", {"query": "nurse"}, key=self.keys["jobbot"])
        self.assertEqual(st, 403, doc)
        self.assertEqual(doc["error"], "index_forbidden")
        self.assertIn("jobs_idx", doc["message"])
        self.assertNotIn("resumes_hnsw,", doc["message"])
        denied = events(s, "query.denied")
        self.assertEqual(len(denied), n_denied + 1)
        self.assertEqual(denied[-1]["actor"], "jobbot")
        # its own index is fine
        st, doc = search(s, "jobs_idx", {"query": "nurse ward", "k": 3}, key=self.keys["jobbot"])
        self.assertEqual(st, 200, doc)
        self.assertEqual(len(doc["hits"]), 3)
        # the profile-scoped route: the profile's indexes only, its own agents only
        route = "/vectors/profile/jobs-only/search"
        st, doc = search(s, None, {"index": "resumes_hnsw", "query": "nurse"}, route=route)
        self.assertEqual(st, 403, doc)
        self.assertIn("jobs_idx", doc["message"])
        st, doc = search(s, None, {"index": "jobs_idx", "query": "nurse", "k": 2},
                         key=self.keys["jobbot"], route=route)
        self.assertEqual(st, 200, doc)
        self.assertEqual(len(doc["hits"]), 2)
        st, doc = search(s, None, {"index": "jobs_idx", "query": "nurse"},
                         key=self.keys["bot"], route=route)
        self.assertEqual(st, 403, doc)
        self.assertEqual(doc["error"], "profile_forbidden")
        # the index list an agent sees is the same set
        st, doc = s.json("GET", "/vectors/indexes", key=self.keys["jobbot"])
        if st == 200:
            names = [i["name"] for i in (doc["indexes"] if isinstance(doc, dict) else doc)]
            self.assertEqual(names, ["jobs_idx"])

    def test_07_bad_requests(self):
        s = self.server
        cases = [
            ({"vector": [0.5] * (DIM - 1)}, "bad_vector"),
            ({"vector": [0.0] * DIM}, "bad_vector"),
            ({"vector": ["x"] * DIM}, "bad_vector"),
            ({"query": "nurse", "k": 0}, None),
            ({"query": "nurse", "k": 1001}, None),
            ({"query": "nurse", "k": "5"}, None),
            ({"query": "nurse", "vector": [1.0] * DIM}, None),
            ({}, None),
            ({"query": ""}, None),
            ({"query": "nurse", "fliter": "x"}, None),
            ({"query": "nurse", "exact": "yes"}, None),
        ]
        for body, kind in cases:
            st, doc = search(s, "resumes_hnsw", body)
            self.assertEqual(st, 400, (body, doc))
            if kind:
                self.assertEqual(doc["error"], kind, body)
        st, doc = search(s, "resumes_hnsw", {"vector": [0.5] * (DIM - 1)})
        self.assertIn(str(DIM), doc["message"])
        # a vector of the right dimension works; k defaults to 10; k = 1000 is all
        vec = hash_embed("registered nurse", DIM)
        st, doc = search(s, "resumes_hnsw", {"vector": vec, "exact": True})
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["k"], 10)
        self.assertEqual(ids(doc), [i for _, i in self.truth("registered nurse", 10)])
        st, doc = search(s, "resumes_hnsw", {"vector": vec, "k": 1000})
        self.assertEqual(st, 200, doc)
        self.assertEqual(len(doc["hits"]), len(self.rows))
        st, doc = search(s, "no_such_index", {"query": "nurse"})
        self.assertEqual(st, 404, doc)
        # a search is a task without a job record: no X-Lakehouse-Job, nothing in GET /jobs
        st, hdrs, _ = s.request("POST", "/vectors/search/resumes_hnsw", {"query": "nurse"})
        self.assertEqual(st, 200)
        self.assertNotIn("x-lakehouse-job", {k.lower() for k in hdrs})

    def test_08_activation_reports_a_damaged_index(self):
        s = self.server
        st, doc = s.json("GET", "/vectors/profile/active")
        self.assertEqual(st, 200, doc)
        # restart (nothing warm), then break jobs_idx's files
        s.stop()
        folder = os.path.join(self.data, "datasets", "jobs", "_vectors", "jobs_idx")
        damaged = glob.glob(os.path.join(folder, "*.faiss")) + \
            glob.glob(os.path.join(folder, "*.parquet"))
        self.assertTrue(damaged, os.listdir(folder) if os.path.isdir(folder) else folder)
        for p in damaged:
            with open(p, "wb") as f:
                f.write(b"not an index file")
        s.start()
        st, doc = s.json("GET", "/vectors/profile/active")
        self.assertEqual(doc, {"profile": None})
        st, doc = s.json("POST", "/vectors/profile/both/activate")
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["profile"], "both")
        self.assertEqual(doc["warmed"], ["resumes_hnsw"])
        self.assertEqual([f["index"] for f in doc["failures"]], ["jobs_idx"])
        self.assertTrue(doc["failures"][0]["error"])
        self.assertNotIn(self.data, doc["failures"][0]["error"])
        self.assertIsInstance(doc["ms"], int)
        st, doc = s.json("GET", "/vectors/profile/active")
        self.assertEqual(doc["profile"], "both")
        self.assertEqual(doc["indexes"], ["resumes_hnsw"])
        # the warm index searches through FAISS
        st, doc = search(s, "resumes_hnsw", {"query": "nurse", "k": 3})
        self.assertTrue(doc["ann"], doc)
        # analysts may look, not activate
        st, doc = s.json("POST", "/vectors/profile/both/activate", key=self.keys["ana"])
        self.assertEqual(st, 403, doc)
        st, doc = s.json("GET", "/vectors/profile/active", key=self.keys["ana"])
        self.assertEqual(st, 200, doc)
        # deactivate: only the active one
        st, doc = s.json("POST", "/vectors/profile/screening/deactivate")
        self.assertEqual(st, 409, doc)
        st, doc = s.json("POST", "/vectors/profile/both/deactivate")
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["cooled"], ["resumes_hnsw"])
        st, doc = search(s, "resumes_hnsw", {"query": "nurse", "k": 3})
        self.assertTrue(doc["exact"], doc)
        st, doc = s.json("POST", "/vectors/profile/ghost/activate")
        self.assertEqual(st, 404, doc)


    def test_09_failed_audit_write_fails_the_search(self):
        s = self.server
        s.stop()
        s.extra_env = {**self.env, "LH_FAULT": "fsync:1:EIO"}
        s.start()
        try:
            # the first fsync after the start is the audit journal's, for this search's hits
            st, doc = search(s, "resumes_hnsw", {"query": "payroll", "k": 4},
                             key=self.keys["ana"], trace="vec-fault-1")
            self.assertEqual(st, 500, doc)
            self.assertEqual(doc["error"], "audit_write_failed")
            self.assertNotIn("hits", doc)
            st, doc = search(s, "resumes_hnsw", {"query": "payroll", "k": 4},
                             key=self.keys["ana"], trace="vec-fault-2")
            self.assertEqual(st, 200, doc)
            for cid in ids(doc):
                self.assertEqual(len(self.legal_rows(cid, "vec-fault-2")), 1)
        finally:
            s.stop()
            s.extra_env = dict(self.env)
            s.start()

    def test_10_cli(self):
        s = self.server
        base = [harness.BIN, "vectors", "search", "resumes_hnsw", "--server", s.url]
        r = subprocess.run(base + ["--query", "tax accountant payroll", "--k", "3", "--key",
                                   self.keys["ana"], "--purpose", "cli check",
                                   "--filter", "city = 'Austin'"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        want = [i for _, i in self.truth("tax accountant payroll", 3,
                                         lambda p: p["city"] == "Austin")]
        for i in want:
            self.assertIn(i, r.stdout)
        r = subprocess.run(base + ["--query", "nurse", "--json", "--key", self.keys["jobbot"],
                                   "--purpose", "p"], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 1)
        self.assertIn("jobs_idx", r.stderr)
        r = subprocess.run(base + ["--k", "3"], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 2, r.stderr)


class OllamaSwap(unittest.TestCase):
    """Activation with the ollama embedder, against the stand-in server."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="lh-e2e-vswap-")
        cls.es = EmbedServer()
        cls.es.start()
        cls.server = Server(os.path.join(cls.tmp, "data"),
                            {"LH_EMBED_OLLAMA_URL": cls.es.url}).start()
        s = cls.server
        for name in ("notes_a", "notes_b", "notes_c", "plain"):
            data = "id,body\n" + "".join(f"{name}-{i},note {i} about {name} and nurses\n"
                                          for i in range(1, 21))
            st, doc = s.ingest(name, data.encode())
            assert st == 201, doc
        for name, model in (("notes_a", "alpha-32"), ("notes_b", "beta-32"),
                            ("notes_c", "beta-32")):
            create_index(s, {"name": f"{name}_idx", "dataset": name, "id_column": "id",
                             "text_column": "body", "embedder": "ollama", "model": model,
                             "kind": "flat"})
        create_index(s, {"name": "plain_idx", "dataset": "plain", "id_column": "id",
                         "text_column": "body", "embedder": "hash", "kind": "flat"})
        for pid, bound in (("pa", ["notes_a", "plain"]), ("pb", ["notes_b"]),
                           ("pc", ["notes_c"])):
            st, doc = s.json("POST", "/catalog/profiles",
                             {"id": pid, "model_name": "m", "bound_datasets": bound})
            assert st == 201, doc

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            cls.es.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def activate(self, pid):
        self.es.reset()
        st, doc = self.server.json("POST", f"/vectors/profile/{pid}/activate")
        self.assertEqual(st, 200, doc)
        return doc, [r for r in self.es.requests() if r["path"] == "/api/embed"]

    def test_swap(self):
        doc, reqs = self.activate("pa")
        self.assertEqual(doc["model_swap"], {"skipped": False, "loaded": "alpha-32"})
        self.assertEqual(sorted(doc["warmed"]), ["notes_a_idx", "plain_idx"])
        self.assertEqual([(r["model"], r.get("keep_alive", "absent")) for r in reqs],
                         [("alpha-32", "absent")])
        self.assertEqual(reqs[0]["inputs"], 0)  # the stand-in logs how many
        # another model: the previous one is unloaded first, then the new one loaded
        doc, reqs = self.activate("pb")
        self.assertEqual(doc["model_swap"], {"skipped": False, "unloaded": "alpha-32",
                                             "loaded": "beta-32"})
        self.assertEqual([(r["model"], r.get("keep_alive", "absent")) for r in reqs],
                         [("alpha-32", 0), ("beta-32", "absent")])
        self.assertEqual(doc["cooled"], ["notes_a_idx", "plain_idx"])
        # the same model: nothing is sent
        doc, reqs = self.activate("pc")
        self.assertEqual(doc["model_swap"], {"skipped": True, "model": "beta-32"})
        self.assertEqual(reqs, [])
        self.assertEqual(doc["warmed"], ["notes_c_idx"])
        # a text query of an ollama index is embedded by the server
        self.es.reset()
        st, res = self.server.json("POST", "/vectors/search/notes_c_idx",
                                   {"query": "note 3 about notes_c", "k": 1})
        self.assertEqual(st, 200, res)
        self.assertEqual(res["hits"][0]["doc_id"], "notes_c-3")
        self.assertEqual([r["model"] for r in self.es.requests()], ["beta-32"])
        # the server down (every request refused): the ollama index fails, the hash one warms
        self.es.control(fail_status=404, fail_count=1000)
        st, doc = self.server.json("POST", "/vectors/profile/pa/activate")
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["warmed"], ["plain_idx"])
        self.assertEqual([f["index"] for f in doc["failures"]], ["notes_a_idx"])
        self.assertIn("load_error", doc["model_swap"])
        self.es.reset()
        # deactivation unloads nothing when the model never loaded
        st, doc = self.server.json("POST", "/vectors/profile/pa/deactivate")
        self.assertEqual(st, 200, doc)
        self.assertEqual([r for r in self.es.requests() if r["path"] == "/api/embed"], [])


if __name__ == "__main__":
    unittest.main()
