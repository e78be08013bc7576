-- wrk script: POST one file's bytes as a raw image body (BENCH_BODY, BENCH_CTYPE from the environment)
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CTYPE")
