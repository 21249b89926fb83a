"""The firewall's verdict cache (src/query/verdicts.c) never lets a policy change slip:
a statement allowed (and cached) before a dataset was deleted, recreated, or a grant
revoked is judged again afterwards, exactly as an uncached one would be."""
from harness import Base


class VerdictCache(Base):
    server_env = {"LH_QUERY_TIMEOUT_MS": "5000"}

    def key(self, name, role, datasets=None):
        body = {"name": name, "role": role}
        if datasets is not None:
            body["datasets"] = datasets
        status, doc = self.server.json("POST", "/auth/keys", body)
        self.assertEqual(status, 201, doc)
        return doc["key"]

    def sql_as(self, key, sql):
        return self.server.json("POST", "/query/sql", {"sql": sql}, key=key)

    def test_deleted_then_recreated_dataset(self):
        s = self.server
        self.assertEqual(s.ingest("churn", b"id,v\n1,a\n2,b\n")[0], 201)
        ana = self.key("ana_churn", "analyst")
        bot = self.key("bot_churn", "agent", ["churn"])
        sql = "SELECT count(*) FROM churn"
        for _ in range(3):  # the second and third are cache hits
            for key in (ana, bot):
                status, doc = self.sql_as(key, sql)
                self.assertEqual((status, doc["rows"]), (200, [[2]]))
        self.assertEqual(s.json("DELETE", "/catalog/datasets/by-name/churn")[0], 200)
        # The firewall judges again: analysts learn the dataset is gone (its message, not
        # DuckDB's "Table ... does not exist" that a stale allowed verdict would reach),
        # agents get the refusal they get for any name that is not a readable dataset.
        status, doc = self.sql_as(ana, sql)
        self.assertEqual((status, doc["error"]), (400, "sql_error"), doc)
        self.assertIn("no dataset named 'churn'", doc["message"])
        status, doc = self.sql_as(bot, sql)
        self.assertEqual((status, doc["error"]), (403, "sql_forbidden"), doc)
        # Recreated with other rows: allowed again, and the new rows are read.
        self.assertEqual(s.ingest("churn", b"id,v\n1,a\n2,b\n3,c\n")[0], 201)
        for key in (ana, bot):
            status, doc = self.sql_as(key, sql)
            self.assertEqual((status, doc["rows"]), (200, [[3]]))

    def test_revoked_grant(self):
        s = self.server
        self.assertEqual(s.ingest("pub", b"id\n1\n")[0], 201)
        self.assertEqual(s.ingest("priv", b"id\n1\n2\n")[0], 201)
        old = self.key("bot_grant", "agent", ["pub", "priv"])
        sql = "SELECT count(*) FROM priv"
        for _ in range(3):
            status, doc = self.sql_as(old, sql)
            self.assertEqual((status, doc["rows"]), (200, [[2]]))
        # The grant is withdrawn: the key is revoked and one of the same name is created
        # with `pub` only. The cached verdict of the old grant set must not serve it.
        self.assertEqual(s.json("DELETE", "/auth/keys/bot_grant")[0], 200)
        self.assertEqual(self.sql_as(old, sql)[0], 401)
        new = self.key("bot_grant", "agent", ["pub"])
        status, doc = self.sql_as(new, sql)
        self.assertEqual((status, doc["error"]), (403, "sql_forbidden"), doc)
        status, doc = self.sql_as(new, "SELECT count(*) FROM pub")
        self.assertEqual((status, doc["rows"]), (200, [[1]]))
        # Another agent granted the very same set as the old key is still allowed.
        same = self.key("bot_same", "agent", ["PRIV", "pub"])
        status, doc = self.sql_as(same, sql)
        self.assertEqual((status, doc["rows"]), (200, [[2]]))
