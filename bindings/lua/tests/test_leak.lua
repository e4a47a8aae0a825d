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

        {"a call that raises a callback's error frees its reply (RSS grows < 8 MiB)", function()
                -- An event callback that errors while a bus:call waits: the call raises that
                -- error (doc/lua.md) and must free the reply it got.  Bound: each of the 300
                -- replies holds a 64 KiB string, so keeping them costs >= 19 MiB; freeing them
                -- leaves RSS where it was (the same buffers are reused).
                local d = T.daemon("log: {level: warning}\n")
                local bus = hybrid.connect{socket = d.sock, app = "org.example.lua.leak2"}
                bus:register_event("Err")
                bus:subscribe(bus.name, "Err", function() error("callback failed") end)
                local blob = string.rep("y", 65536)
                local function round()
                        bus:fire("Err", 1)
                        local ok, e = pcall(bus.call, bus, BUILTIN, "echo", {s = blob}, {timeout = 10})
                        if ok then
                                -- the event came after the reply: the next process raises it
                                T.eq(#e.s, 65536, "echo")
                                ok, e = pcall(bus.process, bus, 10)
                        end
                        T.ok(not ok and tostring(e):find("callback failed", 1, true), tostring(e))
                end
                for _ = 1, 30 do round() end
                local rss0 = measure()
                for _ = 1, 300 do round() end
                local rss1 = measure()
                T.ok(rss1 - rss0 < 8 * 1024 * 1024, "RSS grew by " .. (rss1 - rss0) .. " bytes")
                bus:close()
                T.stop(d)
        end},

        {"5000 registrations cancelled one by one: the Lua heap grows < 100 KiB", function()
                -- slot:cancel() releases what the bus or store kept for the slot: a script that
                -- subscribes, serves or calls and cancels again and again does not grow.  A
                -- slot kept after its cancel costs its userdata and a table entry (> 40 bytes),
                -- >= 200 KiB over 5000.
                local d = T.daemon("log: {level: warning}\n")
                local bus = hybrid.connect{socket = d.sock, app = "org.example.lua.leak3"}
                local store = hybrid.store{db = T.tmpdir() .. "/l.db"}
                local function round(i)
                        bus:subscribe(bus.name, "E*", function() end):cancel()
                        bus:procedure("p", nil, function() end):cancel()
                        bus:call_async(BUILTIN, "echo", {i}, function() end):cancel()
                        store:watch("/leak/#", function() end):cancel()
                end
                for i = 1, 200 do round(i) end
                local _, heap0 = measure()
                for i = 1, 5000 do round(i) end
                local _, heap1 = measure()
                T.ok(heap1 - heap0 < 100 * 1024, "the Lua heap grew by " .. (heap1 - heap0) .. " bytes")
                bus:call(BUILTIN, "echo", {1}, {timeout = 10}) -- the bus still works
                store:close()
                bus:close()
                T.stop(d)
        end},
}
