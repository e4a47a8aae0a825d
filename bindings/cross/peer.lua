-- SPDX-License-Identifier: MIT
-- The Lua peer of the cross-language tests (bindings/cross/README.md); the commands and their
-- output are those of peer.py:
--   lua5.4 peer.lua echo SOCKET APP | copy SOCKET FROM TO ECHO | serve SOCKET APP |
--                   call SOCKET ENDPOINT METHOD JSON | listen SOCKET APP EPGLOB BUBGLOB |
--                   fire SOCKET APP BUBBLE KEY INT | leak SOCKET ECHO N | keygen PATH |
--                   tokissue ISSKEY HOLDERPUB SUB OUT | tokverify TOKENFILE ISSPUB |
--                   tokstore SOCKET TOKENFILE KEY FURI TEXT
-- `hybrid` comes from LUA_PATH / LUA_CPATH.  Values are never converted by hand: the binding's
-- store and bus do it, which is what is tested.
local hybrid = require("hybrid")

local function ready(bus)
        io.stdout:write(bus.name, "\n")
        io.stdout:flush()
        io.stderr:write("ready\n")
        io.stderr:flush()
end

local function flat(t)
        local keys = {}
        for k in pairs(t) do keys[#keys + 1] = k end
        table.sort(keys)
        local out = {}
        for _, k in ipairs(keys) do out[#out + 1] = k .. "=" .. tostring(t[k]) end
        return table.concat(out, " ")
end

local function check_numbers(where, values)
        for i, v in ipairs(values) do
                if math.type(v) == nil then
                        error(string.format("peer.lua: %s[%d] is a %s, not a number", where, i,
                                            type(v)))
                end
        end
end

-- Reads a JSON object of string keys and integer values ('{"a":2,"b":3}'): the only params
-- the cross test passes on a command line (Lua has no JSON module of its own).
local function params_of(text)
        local t = {}
        for k, v in text:gmatch('"([%w_]+)"%s*:%s*(-?%d+)') do t[k] = math.tointeger(v) end
        for k, v in text:gmatch('"([%w_]+)"%s*:%s*"([^"]*)"') do t[k] = v end
        return t
end

local commands = {}

function commands.echo(sock, app)
        local bus = hybrid.connect{socket = sock, app = app}
        bus:procedure("echo", {values = "list"}, function(args) return {values = args.values} end)
        ready(bus)
        bus:run()
end

function commands.copy(sock, src, dst, echo_ep)
        local store = hybrid.store{socket = sock, app = "org.example.lua.rtcopy"}
        local bus = hybrid.connect{socket = sock, app = "org.example.lua.rtcall"}
        local got = store:get(src .. "/#") or {}
        local keys = {}
        for k in pairs(got) do keys[#keys + 1] = tostring(k) end
        table.sort(keys)
        if #keys == 0 then error("peer.lua: nothing under " .. src) end
        for _, key in ipairs(keys) do
                local values = got[key]
                check_numbers(key, values)
                local back = bus:call(echo_ep, "echo", {values = values}, {timeout = 30}).values
                check_numbers(key .. " (echoed)", back)
                store:put(dst .. key:sub(#src + 1), back)
        end
        bus:close()
        store:close()
        print(string.format("lua: %d keys copied %s -> %s through %s", #keys, src, dst, echo_ep))
end

function commands.serve(sock, app)
        local bus = hybrid.connect{socket = sock, app = app}
        bus:procedure("add", {a = "int", b = "int"}, function(args)
                return {sum = args.a + args.b, lang = "lua"}
        end)
        bus:procedure("deny", {}, function() hybrid.raise(403, "denied by lua") end)
        -- a binary body arrives as a string of its bytes
        bus:procedure("bytes", {}, function(p)
                return {n = #p, first = p:byte(1), last = p:byte(-1)}
        end)
        ready(bus)
        bus:run()
end

function commands.call(sock, endpoint, method, params)
        local bus = hybrid.connect{socket = sock, app = "org.example.lua.caller"}
        local ok, r = pcall(bus.call, bus, endpoint, method, params_of(params), {timeout = 30})
        bus:close()
        if ok then
                print("ok " .. flat(r))
        elseif hybrid.Error.is(r) then
                print(string.format("error %d %s", r.status, r.code))
                os.exit(1)
        else
                error(r, 0)
        end
end

function commands.listen(sock, app, ep_glob, bubble_glob)
        local bus = hybrid.connect{socket = sock, app = app}
        bus:subscribe(ep_glob, bubble_glob, function(value, ev)
                print(string.format("event %s %s %s", ev.source, ev.bubble, flat(value)))
                io.stdout:flush()
                bus:stop()
        end)
        io.stderr:write("ready\n")
        io.stderr:flush()
        bus:run()
        bus:close()
end

function commands.fire(sock, app, bubble, key, value)
        local bus = hybrid.connect{socket = sock, app = app}
        bus:register_event(bubble)
        local delivered = bus:fire(bubble, {[key] = math.tointeger(value)}, {counted = true})
        print(string.format("fired %s to %d", bubble, delivered))
        bus:close()
end

local function rss_kb()
        collectgarbage("collect")
        for line in io.lines("/proc/self/status") do
                local kb = line:match("^VmRSS:%s*(%d+)")
                if kb then return math.tointeger(kb) end
        end
        return 0
end

function commands.leak(sock, echo_ep, n)
        n = math.tointeger(n)
        local values = {math.maxinteger, -0.0, 5e-324, "text", true, hybrid.null, {k = {1, 2.5}}}
        local store = hybrid.store{socket = sock, app = "org.example.lua.leakstore"}
        local bus = hybrid.connect{socket = sock, app = "org.example.lua.leak"}
        local function rounds(count)
                for i = 0, count - 1 do
                        local back = bus:call(echo_ep, "echo", {values = values}, {timeout = 30}).values
                        if back[1] ~= values[1] then error("peer.lua: leak: wrong echo") end
                        if i % 10 == 0 then
                                store:put("/leak/lua", i)
                                if store:get("/leak/lua") ~= i then
                                        error("peer.lua: leak: wrong store read")
                                end
                        end
                end
        end
        rounds(math.max(n // 10, 2000))
        local before = rss_kb()
        rounds(n)
        print(string.format("rss_kb %d %d", before, rss_kb()))
        bus:close()
        store:close()
end

local TOKEN_CAPS = {["/x/#"] = "read,write", ["bus://localhost/#"] = "call"}

local function read_file(path)
        local f = assert(io.open(path, "r"))
        local text = f:read("a")
        f:close()
        return text
end

-- prints "error STATUS CODE" and exits 1 for a hybrid.Error, raises anything else
local function report(e)
        if not hybrid.Error.is(e) then error(e, 0) end
        print(string.format("error %d %s", e.status, e.code))
        os.exit(1)
end

function commands.keygen(path)
        hybrid.token.keygen(path)
end

function commands.tokissue(isskey, holderpub, sub, out)
        local tok = hybrid.token.issue{key = isskey, iss = "acme", sub = sub, aud = "hub1",
                                       holder = holderpub, caps = TOKEN_CAPS, ttl = 3600}
        local f = assert(io.open(out, "w"))
        f:write(tok, "\n")
        f:close()
end

function commands.tokverify(tokfile, isspub)
        local ok, v = pcall(hybrid.token.verify, (read_file(tokfile):gsub("%s+$", "")),
                            {audience = "hub1", trust = {acme = isspub}})
        if not ok then report(v) end
        print(string.format("ok sub=%s iss=%s", v.sub, v.iss))
end

function commands.tokstore(sock, tokfile, key, furi, text)
        local opts = {socket = sock, app = "org.example.lua.tok"}
        if tokfile ~= "-" then opts.token, opts.key = tokfile, key end
        local ok, r = pcall(function()
                local store = hybrid.store(opts)
                store:put(furi, text)
                local got = store:get(furi)
                store:close()
                return got
        end)
        if not ok then report(r) end
        print("ok " .. tostring(r))
end

local nargs = {echo = 2, copy = 4, serve = 2, call = 4, listen = 4, fire = 5, leak = 3,
               keygen = 1, tokissue = 4, tokverify = 2, tokstore = 5}
local cmd = arg[1]
if not nargs[cmd] or #arg - 1 ~= nargs[cmd] then
        io.stderr:write("usage: lua5.4 peer.lua echo|copy|serve|call|listen|fire ARGS (see peer.py)\n")
        os.exit(2)
end
commands[cmd](table.unpack(arg, 2))
