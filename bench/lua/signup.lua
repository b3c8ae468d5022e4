-- POST /auth/signup with a new address each time (BENCH_RUN keeps rounds apart).
dofile("bench/lua/report.lua")
local count = 0

function request()
  count = count + 1
  local body = string.format('{"email":"new-%s-%d-%d@bench.example.com","password":"%s"}',
    os.getenv("BENCH_RUN"), thread_index, count, os.getenv("BENCH_PASSWORD"))
  return wrk.format("POST", "/api/v1/auth/signup", JSON, body)
end
