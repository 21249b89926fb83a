-- http_load.lua: the wrk script of bench/http_load for POST /query/sql. The JSON body and
-- the API key come from the environment (LH_BENCH_BODY, LH_BENCH_KEY), so no key is ever
-- written to a file.
wrk.method = "POST"
wrk.body = os.getenv("LH_BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("LH_BENCH_KEY")
