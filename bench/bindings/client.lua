-- SPDX-License-Identifier: MIT
-- The Lua client of bench/run-bindings.sh (bench/README.md, "bench-bindings"):
--   lua5.4 client.lua SOCKET ENDPOINT CALLS EVENTS
-- prints `RESULT call_p50_us=X` and `RESULT events_per_s=X` as bench-bindings' C client does.
-- `hybrid` comes from LUA_PATH / LUA_CPATH; the clock is the library's (hyb_now_usec).
local hybrid = require("hybrid")
local now = hybrid.core.hyb_now_usec

local sock, endpoint, calls, events = arg[1], arg[2], math.tointeger(arg[3]), math.tointeger(arg[4])
if not events then
        io.stderr:write("usage: lua5.4 client.lua SOCKET ENDPOINT CALLS EVENTS\n")
        os.exit(2)
end
local bus = hybrid.connect{socket = sock, app = "org.example.bench.lua"}
local us = {}
for i = -(calls // 10), calls - 1 do
        local t0 = now()
        local r = bus:call(endpoint, "echo", {words = "hi"})
        local t1 = now()
        if r.words ~= "hi" then error("client.lua: wrong echo") end
        if i >= 0 then us[#us + 1] = t1 - t0 end
end
table.sort(us)
local mid = #us // 2
local p50 = #us % 2 == 1 and us[mid + 1] or (us[mid] + us[mid + 1]) / 2
print(string.format("RESULT call_p50_us=%.2f", p50))

local got, first, last = 0, 0, 0
bus:subscribe(endpoint, "TICK", function()
        local t = now()
        if got == 0 then first = t end
        got = got + 1
        last = t
        if got == events then bus:stop() end
end)
bus:call(endpoint, "burst", {n = events}, {timeout = 60})
if got < events then bus:run() end
print(string.format("RESULT events_per_s=%.0f", (got - 1) / ((last - first) / 1e6)))
bus:close()
