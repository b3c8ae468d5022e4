-- GET the URL given to wrk, with the bearer token in BENCH_TOKEN if there is one.
dofile("bench/lua/report.lua")
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
