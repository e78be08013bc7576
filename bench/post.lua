-- wrk script: POST one file's bytes as the body (BENCH_BODY, BENCH_CTYPE from the environment; an extra
-- header from BENCH_HEADER = "Name: value", e.g. the v2 protocol's Inference-Header-Content-Length)
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CTYPE")
local extra = os.getenv("BENCH_HEADER")
if extra and extra ~= "" then
  local name, value = extra:match("^([^:]+):%s*(.*)$")
  wrk.headers[name] = value
end
