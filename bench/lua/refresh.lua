-- POST /auth/refresh as a client does: each refresh token is used once, and the next request
-- presents the one the last response issued. Run with one connection per thread (-t N -c N),
-- so a thread's responses arrive in the order of its requests.
dofile("bench/lua/report.lua")
local token

function init(args)
  token = read_lines(os.getenv("BENCH_REFRESH_TOKENS"))[thread_index + 1]
end

function request()
  return wrk.format("POST", "/api/v1/auth/refresh", JSON,
    string.format('{"refresh_token":"%s"}', token))
end

function response(status, headers, body)
  if status == 200 then token = body:match('"refresh_token":"([^"]+)"') end
end
