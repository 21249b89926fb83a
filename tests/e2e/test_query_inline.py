"""End-to-end tests of the inline fast path (lh_query_run_inline): a statement the firewall
already allowed for the caller starts on the HTTP worker for at most
LH_QUERY_INLINE_BUDGET_MS, then goes to the query pool. With one HTTP worker, the second
(cached) run of a slow query must not stall /health: before the budget, an inline start
would have run the whole aggregate on the worker."""
import json

from harness import Base
import test_query_threads as qt  # a module import, so its tests are not collected twice


class QueryInlineTests(Base):
    server_env = {"LH_HTTP_THREADS": "1", "LH_MAX_CONCURRENT_QUERIES": "2"}

    run_with_probe = qt.QueryThreadTests.run_with_probe
    assert_prompt = qt.QueryThreadTests.assert_prompt

    def test_a_cached_slow_query_is_handed_to_the_pool(self):
        for run in ("first run (checked on the pool)", "second run (verdict cached)"):
            probe, (status, _, data, sent, headers_at, _) = self.run_with_probe(qt.SLOW_AGG)
            doc = json.loads(data)
            self.assertEqual(status, 200, doc)
            self.assertEqual(doc["rows"], [qt.SLOW_AGG_ROW])
            self.assertGreater(headers_at - sent, 1.0, "the query was too quick to show a stall")
            self.assert_prompt(probe, sent, headers_at, f"a slow query's {run}")

    def test_a_cached_small_query_answers_right_every_time(self):
        sql = "SELECT i, i * 3 AS j FROM range(10) t(i) ORDER BY i"
        for _ in range(5):
            status, _, data, *_ = qt.post_query(self.server.port, sql)
            doc = json.loads(data)
            self.assertEqual(status, 200, doc)
            self.assertEqual(doc["rows"], [[i, i * 3] for i in range(10)])

    def test_small_results_carry_a_length_and_big_ones_stream(self):
        # A result that has ended within the stream's 64 KiB block goes as one body with a
        # Content-Length, on its first run (firewall and start on the pool) and on later
        # cached runs (inline); a bigger one streams chunked. The bytes are the same.
        s = self.server
        for fmt in ("json", "csv", "ndjson"):
            sql = f"SELECT i, '{fmt}' AS f FROM range(50) t(i) ORDER BY i"
            bodies = []
            for run in range(3):
                status, hdrs, data = s.request("POST", "/query/sql", {"sql": sql, "format": fmt})
                hdrs = {k.lower(): v for k, v in hdrs.items()}
                self.assertEqual(status, 200, data[:300])
                self.assertNotIn("transfer-encoding", hdrs, f"{fmt} run {run}")
                self.assertEqual(int(hdrs["content-length"]), len(data), f"{fmt} run {run}")
                bodies.append(data.split(b',"elapsed_ms"')[0])  # varies
            self.assertEqual(len(set(bodies)), 1, f"{fmt}: runs differ")
            if fmt == "csv":
                self.assertEqual(data.decode().splitlines()[1], "0,csv")
        big = "SELECT i, repeat('x', 100) AS pad FROM range(2000) t(i) ORDER BY i"
        for run in range(2):
            status, hdrs, data = s.request("POST", "/query/sql", {"sql": big, "limit": 2000})
            hdrs = {k.lower(): v for k, v in hdrs.items()}
            self.assertEqual(status, 200, data[:300])
            self.assertEqual(hdrs.get("transfer-encoding"), "chunked")
            self.assertNotIn("content-length", hdrs)
            self.assertEqual(len(json.loads(data)["rows"]), 2000)
