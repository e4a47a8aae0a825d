-- SPDX-License-Identifier: MIT
-- Lua values <-> objs by the JSON mapping (doc/lua.md "Values"), exact both ways:
-- through the bus (Lua -> JSON -> broker -> JSON -> Lua), through the embedded store
-- (Lua -> obj -> SQLite -> obj -> Lua), and from C: the hybrid CLI sends JSON text to a
-- procedure served from Lua, which checks what it got; Python's json module (not our
-- library) reads back what the CLI printed.
local T = require("helper")
local hybrid = require("hybrid")

local BUILTIN = "@localhost/org.hybridos.bus/builtin"
local d = T.daemon("log: {level: warning}\n")
local bus = hybrid.connect{socket = d.sock, app = "org.example.lua.values"}
local store = hybrid.store{db = T.tmpdir() .. "/v.db"}

local function echo(v)
        return bus:call(BUILTIN, "echo", v, {timeout = 10})
end

local function via_store(v)
        store:put("/v/x", v)
        return store:get("/v/x")
end

-- the edge values of the issue: int64 ends, 2^53 + 1, -0.0, the smallest subnormal, and
-- an integral float that must stay a float
local EDGES = {
        max = math.maxinteger, min = math.mininteger, big = 9007199254740993,
        nz = -0.0, sub = 5e-324, one = 1.0, tenth = 0.1, huge = 1.7976931348623157e308,
        zero = 0, neg = -1,
}

local function check_edges(got, what)
        for k, v in pairs(EDGES) do
                T.eq(got[k], v, what .. " " .. k)
        end
        T.eq(math.type(got.one), "float", what .. ": 1.0 stays a float")
        T.eq(1 / got.nz, -math.huge, what .. ": -0.0 keeps its sign")
        T.eq(got.sub > 0 and got.sub < 1e-300, true, what .. ": subnormal")
        T.eq(got.big - 1, 9007199254740992, what .. ": 2^53+1 exact")
end

local function rand_values(n)
        local vals = {}
        math.randomseed(20261206)
        while #vals < n do
                local bits = math.random(math.mininteger, math.maxinteger)
                if #vals % 2 == 0 then
                        vals[#vals + 1] = bits
                else
                        local f = string.unpack("<d", string.pack("<i8", bits))
                        if f == f and f ~= math.huge and f ~= -math.huge then
                                vals[#vals + 1] = f
                        end
                end
        end
        return vals
end

return {
        {"int64 and double edges: bus echo and embedded store", function()
                check_edges(echo(EDGES), "echo")
                check_edges(via_store(EDGES), "store")
                for k, v in pairs(EDGES) do
                        T.eq(echo(v), v, "echo top-level " .. k)
                        T.eq(via_store(v), v, "store top-level " .. k)
                end
        end},

        {"1000 random int64 and doubles round-trip exactly", function()
                local vals = rand_values(1000)
                local back = echo(vals)
                T.eq(#back, #vals, "count")
                for i = 1, #vals do
                        T.eq(back[i], vals[i], "echo value " .. i)
                end
                back = via_store(vals)
                for i = 1, #vals do
                        T.eq(back[i], vals[i], "store value " .. i)
                end
        end},

        {"strings, booleans, nil and hybrid.null, lists and records", function()
                local v = {
                        s = "h\195\169llo \0 nul", t = true, f = false, empty = "",
                        list = {1, "two", hybrid.null, 4.5, {x = {1, 2}}},
                        rec = {a = {b = {c = "deep"}}},
                }
                for _, back in ipairs({echo(v), via_store(v)}) do
                        T.eq(back, v, "nested value")
                        T.eq(back.list[3], hybrid.null, "null in a list is hybrid.null")
                        T.eq(getmetatable(back.list), hybrid.List, "a lst comes back as a hybrid.List")
                end
                T.eq(echo(nil), nil, "nil is an empty body, echoed empty")
                T.eq(via_store(nil), nil, "nil deletes: nothing stored")
                T.eq(echo({a = hybrid.null}).a, hybrid.null, "JSON null in a record")
        end},

        {"empty tables: {} is a record, hybrid.list{} a list", function()
                local back = echo({r = {}, l = hybrid.list{}})
                T.eq(next(back.r), nil, "empty record")
                T.eq(getmetatable(back.r), nil, "a record is a plain table")
                T.eq(getmetatable(back.l), hybrid.List, "empty list stays a list")
                local st = via_store(hybrid.list{})
                T.eq(getmetatable(st), hybrid.List, "empty list in the store")
        end},

        {"uris, typed values and record keys that are not names", function()
                local u = hybrid.uri("a/b")
                local back = echo({u = u})
                T.eq(getmetatable(back.u), hybrid.Uri, "a uri comes back as hybrid.Uri")
                T.eq(back.u.text, "a/b", "uri text")
                T.eq(tostring(back.u), "a/b", "tostring of a uri")
                local typed = hybrid.typed("/type/nat", 5)
                for _, b in ipairs({echo(typed), via_store(typed)}) do
                        T.eq(getmetatable(b), hybrid.Typed, "a typed value")
                        T.eq(b["@type"], "/type/nat", "@type")
                        T.eq(b["@value"], 5, "@value")
                end
                -- a plain table with @type/@value is typed as well (the JSON form)
                T.eq(echo({["@type"] = "/type/nat", ["@value"] = 3})["@value"], 3, "JSON form")
                local keys = {[5] = "five", ["x/y"] = 2, [true] = "yes"}
                T.eq(echo(keys), keys, "integer, path and boolean keys")
                T.eq(via_store(keys), keys, "same through the store")
        end},

        {"values with no obj form are refused with HYB_E_TYPE", function()
                T.raises(400, "HYB_E_TYPE", echo, {f = function() end})
                T.raises(400, "HYB_E_TYPE", echo, 0 / 0)
                T.raises(400, "HYB_E_TYPE", echo, math.huge)
                local deep = {}
                local cur = deep
                for _ = 1, 80 do cur.x = {}; cur = cur.x end
                T.raises(500, "HYB_E_DEPTH", echo, deep)
        end},

        {"from C: hybrid call -> a Lua procedure -> the CLI's JSON (read by Python)", function()
                local seen
                bus:procedure("edges", nil, function(args)
                        seen = args
                        return args
                end)
                local job = T.bg(T.q(T.HYBRID_CLI) .. " --bus " .. T.q(d.sock) .. " call " ..
                                 T.q(bus.name) .. " edges " ..
                                 T.q('{"max":9223372036854775807,"min":-9223372036854775808,' ..
                                     '"big":9007199254740993,"nz":-0.0,"sub":5e-324,"one":1.0,' ..
                                     '"tenth":0.1,"huge":1.7976931348623157e308,"zero":0,"neg":-1}'))
                T.ok(T.wait_until(20, function()
                        bus:process(0)
                        return job.done()
                end), "the CLI call ends")
                check_edges(seen, "C -> Lua")
                local out = T.read(job.out)
                local tmp = T.tmpdir() .. "/out.json"
                T.write(tmp, out)
                local py = [[
import json, math, sys
v = json.load(open(sys.argv[1]))
want = {"max": 2**63 - 1, "min": -2**63, "big": 2**53 + 1, "zero": 0, "neg": -1}
for k, x in want.items():
    assert type(v[k]) is int and v[k] == x, (k, v[k])
assert type(v["nz"]) is float and v["nz"] == 0.0 and math.copysign(1.0, v["nz"]) < 0, v["nz"]
assert type(v["sub"]) is float and v["sub"] == 5e-324, v["sub"]
assert type(v["one"]) is float and v["one"] == 1.0, v["one"]
assert v["tenth"] == 0.1 and v["huge"] == 1.7976931348623157e308
print("python ok")
]]
                local ok, pout = T.sh("/usr/bin/python3 -c " .. T.q(py) .. " " .. T.q(tmp))
                T.ok(ok and pout:match("python ok"), "Lua -> C exact: " .. pout .. " in " .. out)
        end},
}
