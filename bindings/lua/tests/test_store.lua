-- SPDX-License-Identifier: MIT
-- The host store from Lua: put/get/delete, pattern reads, watches with replay, transient
-- writes; on a daemon's store (seen by the hybrid CLI too) and on an embedded database;
-- the store rule (db first, then the socket).
local T = require("helper")
local hybrid = require("hybrid")

local d = T.daemon("log: {level: warning}\n")

local function cli(...)
        local args = {}
        for i, a in ipairs({...}) do args[i] = T.q(a) end
        local ok, out = T.sh(T.q(T.HYBRID_CLI) .. " --bus " .. T.q(d.sock) .. " " ..
                             table.concat(args, " "))
        return ok, (out:gsub("\n$", ""))
end

-- the same checks on any store
local function exercise(store, what)
        store:put("/lua/a/b", 5)
        store:put("/lua/a/c", {x = 1.5, l = {1, 2}})
        T.eq(store:get("/lua/a/b"), 5, what .. ": get a node")
        T.eq(store:get("/lua/a/#"), {["/lua/a/b"] = 5, ["/lua/a/c"] = {x = 1.5, l = {1, 2}}},
             what .. ": a pattern gives fURI => value")
        T.eq(store:get("/lua/none"), nil, what .. ": nothing stored is nil")

        store:put("/lua/w/old", "kept")
        local msgs = {}
        local slot = store:watch("/lua/w/#", function(furi, value, retain)
                msgs[#msgs + 1] = {furi = furi, value = value, retain = retain}
        end, {replay = true})
        local function wait_msgs(n)
                T.ok(T.wait_until(20, function()
                        store:process(0.05)
                        return #msgs >= n
                end), what .. ": " .. n .. " watch messages (got " .. #msgs .. ")")
        end
        wait_msgs(1)
        T.eq(msgs[1], {furi = "/lua/w/old", value = "kept", retain = true}, what .. ": replay")
        store:put("/lua/w/new", 7)
        store:put("/lua/w/flash", "hi", {transient = true})
        store:delete("/lua/w/old")
        store:put("/lua/elsewhere", 1)
        wait_msgs(4)
        T.eq(msgs[2], {furi = "/lua/w/new", value = 7, retain = true}, what .. ": a write")
        T.eq(msgs[3], {furi = "/lua/w/flash", value = "hi", retain = false},
             what .. ": a transient write")
        T.eq(msgs[4].furi, "/lua/w/old", what .. ": a delete")
        T.eq(msgs[4].value, nil, what .. ": a delete has no value")
        T.eq(store:get("/lua/w/flash"), nil, what .. ": a transient write stores nothing")
        store:process(0)
        T.eq(#msgs, 4, what .. ": nothing outside the pattern")
        slot:cancel()
        store:put("/lua/w/after", 1)
        store:process(0.1)
        T.eq(#msgs, 4, what .. ": nothing after cancel")
        T.raises(400, "HYB_E_PARSE", store.get, store, "/bad//furi")
        -- NaN and the infinities have no JSON form: refused, as a call refuses them, so that
        -- no reader through JSON meets a value it cannot map
        T.raises(400, "HYB_E_TYPE", store.put, store, "/lua/nan", 0/0)
        T.raises(400, "HYB_E_TYPE", store.put, store, "/lua/nan", {t = -math.huge})
        T.eq(store:get("/lua/nan"), nil, what .. ": nothing stored for a NaN")
end

return {
        {"the daemon's store (socket given)", function()
                local store = hybrid.store{socket = d.sock, app = "org.example.lua.store"}
                T.eq(store.source, "bus", "source")
                exercise(store, "daemon")
                -- what Lua wrote, C reads, and back
                local ok, out = cli("store", "get", "/lua/a/b")
                T.ok(ok, out)
                T.eq(out, "5", "the CLI reads the Lua write")
                T.ok((cli("store", "put", "/lua/fromc", "[1,2.5,'x']")), "CLI put")
                T.eq(store:get("/lua/fromc"), {1, 2.5, "x"}, "Lua reads the CLI write")
                store:close()
        end},

        {"an embedded database (db given)", function()
                local db = T.tmpdir() .. "/s.db"
                local store = hybrid.store{db = db}
                T.eq(store.source, "db", "source")
                exercise(store, "embedded")
                store:close()
                -- durable: a new handle reads it back
                local again = hybrid.store{db = db}
                T.eq(again:get("/lua/a/b"), 5, "persisted")
                again:close()
        end},

        {"a stored value with no Lua form (code): HYB_E_TYPE, from get and from a watch", function()
                local db = T.tmpdir() .. "/code.db"
                local ok, out = T.sh(T.q(T.HYBRID_CLI) .. " store --db " .. T.q(db) ..
                                     " put /lua/code '|(plus(1))'")
                T.ok(ok, "the CLI stores code: " .. out)
                local store = hybrid.store{db = db}
                T.raises(400, "HYB_E_TYPE", store.get, store, "/lua/code")
                local got = {}
                store:watch("/lua/#", function(furi, v) got[#got + 1] = furi end, {replay = true})
                local e
                T.ok(T.wait_until(20, function()
                        local ok2, err = pcall(store.process, store, 0.05)
                        if not ok2 then e = err end
                        return e ~= nil
                end), "process raises the conversion error")
                T.ok(hybrid.Error.is(e) and e.code == "HYB_E_TYPE", tostring(e))
                -- the watch goes on
                store:put("/lua/n", 1)
                T.ok(T.wait_until(20, function()
                        store:process(0.05)
                        return got[#got] == "/lua/n"
                end), "later messages arrive")
                store:close()
        end},

        {"the store rule: db beats socket", function()
                local db = T.tmpdir() .. "/rule.db"
                local store = hybrid.store{db = db, socket = d.sock}
                T.eq(store.source, "db", "db first")
                T.ok(store.where:find(db, 1, true), "where names the file: " .. store.where)
                store:close()
                local dir = T.tmpdir()
                local ok, e = pcall(hybrid.store, {socket = dir .. "/absent.sock"})
                T.ok(not ok and hybrid.Error.is(e), "a named daemon that is absent is an error, " ..
                     "never another store: " .. tostring(e))
        end},

        {"store:close() from a watch callback ends store:process()", function()
                for _, where in ipairs({{socket = d.sock}, {db = T.tmpdir() .. "/c.db"}}) do
                        local store = hybrid.store(where)
                        store:put("/lua/close/a", 1)
                        store:put("/lua/close/b", 2)
                        local n = 0
                        store:watch("/lua/close/#", function() n = n + 1; store:close() end,
                                    {replay = true})
                        T.ok(T.wait_until(20, function()
                                if n == 0 then store:process(0.05) end
                                return n > 0
                        end), "a replayed value came")
                        T.eq(n, 1, "no message after the close")
                        T.raises(500, "HYB_E_CLOSED", store.get, store, "/lua/close/a")
                end
        end},
}
