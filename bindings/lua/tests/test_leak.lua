-- SPDX-License-Identifier: MIT
-- No leak and no crash over many calls: 5000 calls (sync echo, sync calls into a Lua
-- procedure, async calls with their callbacks) each carrying a 4 KiB string, RSS from
-- /proc/self/statm before and after.
--
-- The bounds, after a warm-up of 500 calls (allocator arenas, Lua's string table and the
-- connection's buffers reach their working size), with full collections before each
-- measure:
--   - C side, RSS < 2 MiB: every call copies its 4 KiB body several times (Lua string ->
--     obj -> JSON text -> packet, and back), so leaking any of those, a reply, a request
--     or an obj tree costs >= 4 KiB a call, 20 MB over 5000 calls; a healthy run grows by
--     less than 100 KiB.
--   - Lua side, heap < 100 KiB: a leaked registry entry keeps at least a closure and a
--     userdata (> 40 bytes) a call, >= 200 KiB over 5000 calls; a healthy run ends where
--     it began.  (Async callbacks once leaked 340 bytes a call, a cycle through C.)
local T = require("helper")
local hybrid = require("hybrid")

local BUILTIN = "@localhost/org.hybridos.bus/builtin"

local function measure()
        collectgarbage()
        collectgarbage()
        local pages, size = hybrid.core.rss_pages()
        return pages * size, collectgarbage("count") * 1024
end

return {
        {"5000 calls: RSS grows by less than 2 MiB, the Lua heap by less than 100 KiB", function()
                local d = T.daemon("log: {level: warning}\n")
                local bus = hybrid.connect{socket = d.sock, app = "org.example.lua.leak"}
                local blob = string.rep("x", 4096)
                bus:procedure("same", {s = "string"}, function(args) return {s = args.s} end)
                local pending = 0
                local function round(i)
                        local kind = i % 3
                        if kind == 0 then
                                local r = bus:call(BUILTIN, "echo", {s = blob, i = i}, {timeout = 10})
                                assert(r.i == i and #r.s == 4096, "echo " .. i)
                        elseif kind == 1 then
                                local r = bus:call(bus.name, "same", {s = blob}, {timeout = 10})
                                assert(#r.s == 4096, "procedure " .. i)
                        else
                                pending = pending + 1
                                bus:call_async(BUILTIN, "echo", {s = blob}, function(r, e)
                                        assert(not e and #r.s == 4096, "async " .. i)
                                        pending = pending - 1
                                end, {timeout = 10})
                                while pending > 0 do bus:process(10) end
                        end
                end
                for i = 1, 500 do round(i) end
                local rss0, heap0 = measure()
                for i = 1, 5000 do round(i) end
                local rss1, heap1 = measure()
                print(string.format("     rss %d -> %d KiB, Lua heap %d -> %d KiB", rss0 // 1024,
                                    rss1 // 1024, heap0 // 1024, heap1 // 1024))
                T.ok(rss1 - rss0 < 2 * 1024 * 1024, "RSS grew by " .. (rss1 - rss0) .. " bytes")
                T.ok(heap1 - heap0 < 100 * 1024, "the Lua heap grew by " .. (heap1 - heap0) .. " bytes")
                bus:close()
                T.stop(d)
        end},
}
