-- SPDX-License-Identifier: MIT
-- The cluster scope //... of hybrid.store through a real mosquitto (doc/cluster.md's
-- mapping: //a/b is the topic a/b, the value's JSON the retained payload): with a daemon
-- that has a cluster: section (//... goes to the daemon) and with the embedded store and a
-- broker URL (cluster= or $HYBRID_CLUSTER); with neither, HYB_E_SCOPE naming what to set.
-- The cases that need a broker pass with a "skipped" note when mosquitto is not installed.
local T = require("helper")
local hybrid = require("hybrid")

local b, why = T.mosquitto()

local function sub_retained(topic)
        local ok, out = T.sh(string.format("mosquitto_sub -h 127.0.0.1 -p %d -t %s -C 1 -W 30 --retained-only",
                                           b.port, T.q(topic)))
        T.ok(ok, "mosquitto_sub: " .. out)
        return (out:gsub("\n$", ""))
end

local function pub(topic, payload, retain)
        local ok, out = T.sh(string.format("mosquitto_pub -h 127.0.0.1 -p %d -q 1 -t %s -m %s%s",
                                           b.port, T.q(topic), T.q(payload),
                                           retain == false and "" or " -r"))
        T.ok(ok, "mosquitto_pub: " .. out)
end

local function round_trip(store, base)
        store:put("//" .. base .. "/temp", 21.5)               -- read by mosquitto_sub
        T.eq(sub_retained(base .. "/temp"), "21.5", "a put read by mosquitto_sub")
        store:put("//" .. base .. "/name", "kitchen")
        T.eq(sub_retained(base .. "/name"), '"kitchen"', "a string's JSON")
        pub(base .. "/ext", '{"on": true}')                     -- a mosquitto_pub -r read back
        T.eq(store:get("//" .. base .. "/ext"), {on = true}, "a retained publication read back")
        store:delete("//" .. base .. "/temp")                   -- an empty retained message
        T.eq(store:get("//" .. base .. "/temp"), nil, "deleted")
        -- a watch with replay: the retained value, then a publication
        pub(base .. "/w/old", "1")
        local got = {}
        local slot = store:watch("//" .. base .. "/w/#", function(furi, value, retain)
                got[furi] = value
        end, {replay = true})
        T.ok(T.wait_until(30, function()
                store:process(0.05)
                return got["//" .. base .. "/w/old"] ~= nil
        end), "the replay of the retained value")
        T.eq(got["//" .. base .. "/w/old"], 1, "the replayed value")
        pub(base .. "/w/new", "[1, 2]", false)
        T.ok(T.wait_until(30, function()
                store:process(0.05)
                return got["//" .. base .. "/w/new"] ~= nil
        end), "a publication reaches the watch")
        T.eq(got["//" .. base .. "/w/new"], {1, 2}, "the published value")
        slot:cancel()
end

local function needs_broker(fn)
        return function()
                if not b then print("     skipped: " .. why); return end
                fn()
        end
end

return {
        {"embedded store with cluster=: //... through the broker", needs_broker(function()
                local store = hybrid.store{db = T.tmpdir() .. "/s.db", cluster = b.url}
                T.eq(store.source, "db", "the embedded store")
                round_trip(store, "lemb")
                store:put("/local", 1)                         -- the host scope stays the db
                T.eq(store:get("/local"), 1, "the host scope")
                store:close()
        end)},

        {"embedded store with $HYBRID_CLUSTER", needs_broker(function()
                local db = T.tmpdir() .. "/s.db"
                local ok, out = T.sh(string.format("HYBRID_CLUSTER=%s %s -e %s", T.q(b.url .. "?prefix=lenv/"),
                        T.q(arg[-1]), T.q("local s = require('hybrid').store{db = " ..
                                          string.format("%q", db) .. "}; s:put('//k/v', {1, 'a'})")))
                T.ok(ok, "a Lua program with $HYBRID_CLUSTER: " .. out)
                T.eq(sub_retained("lenv/k/v"), '[1,"a"]', "put through $HYBRID_CLUSTER")
        end)},

        {"embedded store without a broker: HYB_E_SCOPE naming $HYBRID_CLUSTER", function()
                -- run where $HYBRID_CLUSTER is unset whatever the suite's environment
                local ok, out = T.sh(string.format("env -u HYBRID_CLUSTER DB=%s %s -e %s",
                                                   T.q(T.tmpdir() .. "/s.db"), T.q(arg[-1]), T.q([[
                        local hybrid = require('hybrid')
                        local s = hybrid.store{db = assert(os.getenv('DB'))}
                        assert(s.source == 'db')
                        for _, op in ipairs({function() return s:get('//a/b') end,
                                             function() return s:put('//a/b', 1) end,
                                             function() return s:delete('//a/b') end,
                                             function() return s:watch('//a/#', print) end}) do
                                local ok, e = pcall(op)
                                assert(not ok and hybrid.Error.is(e), tostring(e))
                                assert(e.code == 'HYB_E_SCOPE', tostring(e))
                                assert(e.message:find('HYBRID_CLUSTER', 1, true), tostring(e))
                        end
                        print('scope errors ok')]])))
                T.ok(ok and out:find("scope errors ok", 1, true), out)
        end},

        {"a bad cluster URL is refused when the store opens", function()
                T.raises(400, "EINVAL", hybrid.store, {db = T.tmpdir() .. "/s.db", cluster = "http://nope"})
        end},

        {"daemon with a cluster: section serves //...", needs_broker(function()
                local d = T.daemon("host: hosta\ncluster:\n  broker: " .. b.url .. "\nlog: {level: info}\n")
                T.ok(T.wait_until(30, function()
                        return (T.read(d.log) or ""):find("cluster: connected to", 1, true)
                end), "hybridd connects to the broker: " .. (T.read(d.log) or ""))
                -- the daemon serves //...: a broker named here is not used
                local store = hybrid.store{socket = d.sock, cluster = "mqtt://127.0.0.1:1?prefix=unused/"}
                T.eq(store.source, "bus", "the daemon's store")
                round_trip(store, "ldmn")
                store:close()
                T.stop(d)
        end)},

        {"daemon without cluster: refuses //... (EINVAL, not a host-scope fURI)", function()
                local d = T.daemon("log: {level: warning}\n")
                local store = hybrid.store{socket = d.sock, cluster = "mqtt://127.0.0.1:1"}
                local e = T.raises(400, "EINVAL", store.put, store, "//a/b", 1)
                T.ok(e.message:find("host-scope", 1, true), tostring(e))
                store:close()
                T.stop(d)
        end},
}
