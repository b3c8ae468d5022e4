-- Shared by every scenario: one JSON line with what the report needs, printed at the end.
-- "status" counts answers with status >= 400 (wrk's own rule).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"errors":%d,"status":%d,' ..
    '"p50_us":%d,"p95_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end

-- wrk gives each thread its own Lua state; number them, so threads pick different accounts.
local threads = 0
function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

function read_lines(path)
  local lines = {}
  for line in io.lines(path) do lines[#lines + 1] = line end
  return lines
end

JSON = {["Content-Type"] = "application/json"}
