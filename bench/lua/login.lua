-- POST /auth/login, cycling through the seeded accounts; each thread starts elsewhere, so
-- no account has two logins in flight (the per-account lockout counts attempts).
dofile("bench/lua/report.lua")
local accounts, next_account

function init(args)
  accounts = read_lines(os.getenv("BENCH_ACCOUNTS"))
  next_account = (thread_index * 997) % #accounts + 1
end

function request()
  local email = accounts[next_account]
  next_account = next_account % #accounts + 1
  local body = string.format('{"email":"%s","password":"%s"}', email, os.getenv("BENCH_PASSWORD"))
  return wrk.format("POST", "/api/v1/auth/login", JSON, body)
end
