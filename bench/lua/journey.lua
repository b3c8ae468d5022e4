-- A user's session, over and over: log in, read the profile four times, refresh, read it
-- four more times, log out. One connection per thread (-t N -c N), one account per thread.
dofile("bench/lua/report.lua")
local STEPS = {"login", "me", "me", "me", "me", "refresh", "me", "me", "me", "me", "logout"}
local email, step, access, refresh

function init(args)
  email = read_lines(os.getenv("BENCH_ACCOUNTS"))[thread_index + 1]
  step = 1
end

local function bearer()
  return {["Authorization"] = "Bearer " .. (access or ""), ["Content-Type"] = "application/json"}
end

function request()
  local kind = STEPS[step]
  if kind == "login" then
    return wrk.format("POST", "/api/v1/auth/login", JSON, string.format(
      '{"email":"%s","password":"%s"}', email, os.getenv("BENCH_PASSWORD")))
  elseif kind == "me" then
    return wrk.format("GET", "/api/v1/users/me", bearer())
  elseif kind == "refresh" then
    return wrk.format("POST", "/api/v1/auth/refresh", JSON,
      string.format('{"refresh_token":"%s"}', refresh or ""))
  end
  return wrk.format("POST", "/api/v1/auth/logout", bearer(),
    string.format('{"refresh_token":"%s"}', refresh or ""))
end

function response(status, headers, body)
  local kind = STEPS[step]
  if (kind == "login" or kind == "refresh") and status == 200 then
    access = body:match('"access_token":"([^"]+)"')
    refresh = body:match('"refresh_token":"([^"]+)"')
  end
  step = step % #STEPS + 1
end
