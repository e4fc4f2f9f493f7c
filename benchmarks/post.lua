-- wrk script: POST one fixed JSON body with a bearer token, then print a JSON summary line.
-- Env: BENCH_BODY_FILE (request body), BENCH_TOKEN (optional bearer token).
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end


function done(summary, latency, requests)
  -- latency is in microseconds; errors.status counts non-2xx/3xx across threads
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
