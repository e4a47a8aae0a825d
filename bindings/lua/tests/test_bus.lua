-- SPDX-License-Identifier: MIT
-- The bus from Lua against a real hybridd: calls (sync, async), procedures served from
-- Lua and called from Lua and from C (the hybrid CLI), argument policies (400), access
-- lists (403), deadlines (504), events with patterns, errors.
local T = require("helper")
local hybrid = require("hybrid")

local BUILTIN = "@localhost/org.hybridos.bus/builtin"
local d = T.daemon("log: {level: warning}\n")

local function connect(app)
        return hybrid.connect{socket = d.sock, app = app or "org.example.lua"}
end

-- processes bus (and others) until cond() holds; fails after a generous bound
local function until_(cond, what, ...)
        local buses = {...}
        local ok = T.wait_until(20, function()
                for _, b in ipairs(buses) do b:process(0) end
                return cond()
        end)
        T.ok(ok, what)
end

local function cli(...)
        local args = {}
        for i, a in ipairs({...}) do args[i] = T.q(a) end
        return T.sh(T.q(T.HYBRID_CLI) .. " --bus " .. T.q(d.sock) .. " " .. table.concat(args, " "))
end

-- runs the CLI in the background while bus serves, returns its output and whether it
-- exited 0
local function cli_while_serving(bus, ...)
        local args = {}
        for i, a in ipairs({...}) do args[i] = T.q(a) end
        local job = T.bg(T.q(T.HYBRID_CLI) .. " --bus " .. T.q(d.sock) .. " " ..
                         table.concat(args, " "))
        until_(job.done, "the CLI finishes", bus)
        return T.read(job.out) or "", job.rc() == 0
end

return {
        {"connect: name and echo", function()
                local bus = connect()
                T.ok(bus.name:match("^@localhost/org%.example%.lua/[%w_]+$"), "bus.name " .. bus.name)
                local r = bus:call(BUILTIN, "echo", {words = "hi"}, {timeout = 5})
                T.eq(r, {words = "hi"}, "echo")
                bus:close()
                T.ok(not bus:is_open(), "closed")
        end},

        {"async call: the callback gets the result from process()", function()
                local bus = connect()
                local got, err, calls = nil, nil, 0
                bus:call_async(BUILTIN, "echo", {n = 7}, function(r, e)
                        got, err, calls = r, e, calls + 1
                end, {timeout = 5})
                T.eq(calls, 0, "not called before process")
                until_(function() return calls > 0 end, "async reply", bus)
                T.eq(err, nil, "no error")
                T.eq(got, {n = 7}, "async result")
                -- an async error is the callback's second argument
                local e2
                bus:call_async("@localhost/org.example.absent/x", "m", {}, function(_, e)
                        e2 = e
                end, {timeout = 5})
                until_(function() return e2 ~= nil end, "async error", bus)
                T.ok(hybrid.Error.is(e2), "a hybrid.Error")
                T.eq(e2.status, 404, "async 404")
                bus:close()
        end},

        {"close with async calls in flight: each fn gets a 502, once", function()
                local bus = connect()
                local errs, calls = {}, 0
                for i = 1, 3 do
                        bus:call_async(BUILTIN, "echo", {i = i}, function(r, e)
                                calls = calls + 1
                                errs[#errs + 1] = e
                        end, {timeout = 5})
                end
                bus:close() -- their answers never read: still in flight
                T.eq(calls, 3, "every fn ran in close()")
                for _, e in ipairs(errs) do
                        T.ok(hybrid.Error.is(e) and e.status == 502, "a 502: " .. tostring(e))
                end
                -- a fn that closes the bus again, inside that close (the bus was freed under
                -- the library's loop over the calls), and one that raises: raised by close()
                local b2 = connect()
                local n2 = 0
                for i = 1, 3 do
                        b2:call_async(BUILTIN, "echo", {i = i}, function() n2 = n2 + 1; b2:close() end,
                                      {timeout = 5})
                end
                b2:call_async(BUILTIN, "echo", {}, function() error("from a fn") end, {timeout = 5})
                local ok, err = pcall(b2.close, b2)
                T.eq(n2, 3, "every fn ran, each closing again")
                T.ok(not ok and tostring(err):find("from a fn"), "close() raised the fn's error: " .. tostring(err))
                b2:close()
        end},

        {"async call: its slot collected inside its own reply callback", function()
                -- the script keeps no slot; the callback forgets it and runs a full collection
                -- before it returns: the library holds the call over the callback
                local bus = connect()
                local got = 0
                for i = 1, 200 do
                        bus:call_async(BUILTIN, "echo", {i = i}, function(r)
                                collectgarbage("collect")
                                collectgarbage("collect")
                                if r and r.i == i then got = got + 1 end
                        end, {timeout = 5})
                end
                until_(function() return got == 200 end, "200 async replies", bus)
                T.eq(got, 200, "every reply reached its callback")
                collectgarbage("collect")
                T.eq(bus:call(BUILTIN, "echo", {after = true}, {timeout = 5}), {after = true},
                     "the bus still answers")
                bus:close()
        end},

        {"a Lua procedure: called from Lua, policy 400, handler errors", function()
                local srv, cl = connect("org.example.lua.srv"), connect("org.example.lua.cl")
                srv:procedure("add", {a = "int", b = "int", note = "string?"}, function(args, info)
                        T.eq(info.method, "add")
                        if args.a < 0 then hybrid.raise(404, "no negative numbers here") end
                        if args.a == 99 then error("boom") end
                        return {sum = args.a + args.b, caller = info.caller}
                end)
                -- served from the same process: the caller calls asynchronously while both
                -- connections are processed
                local res, err
                local function call(params)
                        res, err = nil, nil
                        local done = false
                        cl:call_async(srv.name, "add", params, function(r, e)
                                res, err, done = r, e, true
                        end, {timeout = 10})
                        until_(function() return done end, "reply", cl, srv)
                end
                call({a = 2, b = 3})
                T.eq(err, nil, "no error")
                T.eq(res, {sum = 5, caller = cl.name}, "add")
                call({a = 2, b = "3"})
                T.eq(err and err.status, 400, "wrong type: 400")
                T.eq(err.code, "HYB_E_BAD_REQUEST")
                T.ok(err.message:find("b", 1, true), "the message names the key: " .. err.message)
                call({a = 2})
                T.eq(err and err.status, 400, "missing key: 400")
                call({a = 1, b = 2, note = 5})
                T.eq(err and err.status, 400, "optional key of the wrong type: 400")
                call({a = -1, b = 1})
                T.eq(err and err.status, 404, "hybrid.raise(404)")
                T.eq(err.message, "no negative numbers here")
                call({a = 99, b = 1})
                T.eq(err and err.status, 500, "a Lua error: 500")
                T.ok(err.message:find("boom", 1, true), "message " .. err.message)
                -- the same bus calling its own procedure synchronously (dispatched while waiting)
                T.eq(srv:call(srv.name, "add", {a = 20, b = 22}, {timeout = 10}).sum, 42, "self call")
                srv:close()
                cl:close()
        end},

        {"a Lua procedure called from C (hybrid call)", function()
                local srv = connect("org.example.lua.fromc")
                srv:procedure("add", {a = "int", b = "int"}, function(args)
                        return {sum = args.a + args.b}
                end)
                local out, ok = cli_while_serving(srv, "call", srv.name, "add", '{"a":40,"b":2}')
                T.ok(ok, "hybrid call exits 0: " .. out)
                T.ok(out:match('^{%s*"sum"%s*:%s*42%s*}\n'), "the CLI prints the result: " .. out)
                out, ok = cli_while_serving(srv, "call", srv.name, "add", '{"a":"x","b":2}')
                T.ok(not ok and out:match("400"), "wrong type from C: 400: " .. out)
                srv:close()
        end},

        {"bus:run() serves until a callback calls bus:stop()", function()
                local srv = connect("org.example.lua.run")
                local calls = 0
                srv:procedure("quit", nil, function()
                        calls = calls + 1
                        srv:stop()
                        return {bye = true}
                end)
                local job = T.bg(T.q(T.HYBRID_CLI) .. " --bus " .. T.q(d.sock) .. " call " ..
                                 T.q(srv.name) .. " quit")
                srv:run()
                T.eq(calls, 1, "run returned after the call that stopped it")
                T.ok(T.wait_until(20, job.done), "the CLI ends")
                T.eq(job.rc(), 0, "the CLI got its answer")
                T.ok(T.read(job.out):match('"bye"%s*:%s*true'), T.read(job.out))
                srv:close()
        end},

        {"access lists: 403 for an app not allowed", function()
                local srv = connect("org.example.lua.acl")
                srv:procedure("secret", nil, function() return {ok = true} end,
                              {for_app = "org.example.trusted"})
                T.raises(403, "HYB_E_FORBIDDEN", srv.call, srv, srv.name, "secret", {}, {timeout = 5})
                local trusted = connect("org.example.trusted")
                local r, done
                trusted:call_async(srv.name, "secret", {}, function(x, e) r, done = x or e, true end,
                                   {timeout = 10})
                until_(function() return done end, "trusted call", trusted, srv)
                T.eq(r, {ok = true}, "the allowed app gets the answer")
                -- an event bubble with an access list: a subscriber not listed gets 403
                srv:register_event("PRIVATE", {for_app = "org.example.trusted"})
                T.raises(403, "HYB_E_FORBIDDEN", srv.subscribe, connect("org.example.lua.nosy"),
                         srv.name, "PRIVATE", function() end)
                trusted:close()
                srv:close()
        end},

        {"deadlines: 504 when the callee does not answer in time", function()
                -- exec: job.pid is hybrid serve itself, stopped below
                local job = T.bg("exec " .. T.q(T.HYBRID_CLI) .. " --bus " .. T.q(d.sock) ..
                                 " serve slow '{}' --delay 60000 --runner luaslow")
                T.ok(T.wait_until(20, function()
                        return (T.read(job.out) or ""):match("^@") ~= nil
                end), "hybrid serve is ready")
                local ep = (T.read(job.out)):match("^(%S+)")
                local bus = connect()
                local e = T.raises(504, "HYB_E_CALLEE_TIMEOUT", bus.call, bus, ep, "slow", {},
                                   {timeout = 0.3})
                T.ok(tostring(e):find("504", 1, true), "tostring: " .. tostring(e))
                T.sh("kill -TERM " .. job.pid)
                bus:close()
        end},

        {"events: register, fire, subscribe with patterns", function()
                local gen = connect("org.example.lua.gen")
                local sub = connect("org.example.lua.sub")
                gen:register_event("TEMP")
                gen:register_event("OTHER")
                local got = {}
                sub:subscribe("@localhost/org.example.*/*", "TEMP*", function(v, ev)
                        got[#got + 1] = {v = v, source = ev.source, bubble = ev.bubble}
                end)
                -- a bubble registered after the pattern subscription is covered too
                gen:register_event("TEMPERATURE")
                gen:fire("OTHER", {c = 0})
                gen:fire("TEMP", {c = 21.5})
                local delivered, failed = gen:fire("TEMPERATURE", {c = 22}, {counted = true})
                T.eq(delivered, 1, "delivered to one subscriber")
                T.eq(failed, 0, "none failed")
                until_(function() return #got >= 2 end, "two events", sub)
                T.eq(#got, 2, "OTHER does not match TEMP*")
                T.eq(got[1], {v = {c = 21.5}, source = gen.name, bubble = "TEMP"}, "first event")
                T.eq(got[2].bubble, "TEMPERATURE", "second event")
                T.eq(math.type(got[2].v.c), "integer", "22 stays an integer")
                -- an error in a callback is raised by process()
                local s2 = sub:subscribe(gen.name, "TEMP", function() error("callback failed") end)
                gen:fire("TEMP", 1)
                local ok, e = pcall(function()
                        until_(function() return false end, "never", sub)
                end)
                T.ok(not ok and tostring(e):find("callback failed", 1, true), tostring(e))
                s2:cancel()
                gen:close()
                sub:close()
        end},

        {"errors: status, code, message, tostring, hybrid.Error.is", function()
                local bus = connect()
                local e = T.raises(404, "HYB_E_NOT_FOUND", bus.call, bus,
                                   "@localhost/org.example.absent/main", "getX", {})
                T.ok(type(e.message) == "string" and #e.message > 0, "a message")
                T.ok(tostring(e):match("^hybrid: 404 HYB_E_NOT_FOUND: "), tostring(e))
                T.ok(not hybrid.Error.is("text"), "a string is not a hybrid.Error")
                T.raises(409, "HYB_E_CONFLICT", hybrid.connect,
                         {socket = d.sock, app = "org.example.lua", runner = bus.name:match("[^/]+$")})
                local dir = T.tmpdir()
                -- no broker listening: HYB_E_UNAVAILABLE (hybrid/bus.h, hyb_bus_connect)
                T.raises(503, "HYB_E_UNAVAILABLE", hybrid.connect,
                         {socket = dir .. "/none.sock", app = "org.example.lua"})
                -- a value with no JSON form is refused before anything is sent
                T.raises(400, "HYB_E_TYPE", bus.call, bus, BUILTIN, "echo", {f = print})
                bus:close()
                T.raises(500, "HYB_E_CLOSED", bus.call, bus, BUILTIN, "echo", {})
        end},

        {"bus:close() from a callback ends process() and run(), and fails the own call", function()
                -- doc/lua.md: run() processes until bus:stop() or bus:close() from a callback
                local bus = connect()
                bus:register_event("Bye")
                local n = 0
                bus:subscribe(bus.name, "Bye", function() n = n + 1; bus:close() end)
                bus:fire("Bye", 1)
                bus:fire("Bye", 2)
                bus:run()
                T.eq(n, 1, "one event before the close")
                T.ok(not bus:is_open(), "closed")

                bus = connect()
                bus:register_event("Bye")
                n = 0
                bus:subscribe(bus.name, "Bye", function() n = n + 1; bus:close() end)
                bus:fire("Bye", 1)
                T.ok(T.wait_until(20, function()
                        if bus:is_open() then bus:process(0.05) end
                        return n > 0
                end), "the event came")
                T.ok(not bus:is_open(), "closed by the callback")
                T.raises(500, "HYB_E_CLOSED", bus.process, bus, 0)

                bus = connect()
                bus:procedure("bye", nil, function() bus:close(); return 1 end)
                local e = T.raises(500, "HYB_E_CLOSED", bus.call, bus, bus.name, "bye")
                T.ok(e.message:match("^connection closed"), "the message: " .. e.message)
        end},

        {"a procedure whose result or error raises when read answers 500; the bus goes on", function()
                -- a "strict" table (its __index raises for a missing field) returned by a
                -- procedure, and an error table whose fields raise when read: the Lua error must
                -- not leave through the library's frames (the caller got a plain Lua error
                -- and the bus kept a call record of a stack frame that was gone)
                local bus = connect()
                local strict = {__index = function(_, k) error("strict: no field " .. tostring(k)) end}
                bus:procedure("strict", nil, function() return setmetatable({a = 1}, strict) end)
                bus:procedure("badtext", nil, function() error(setmetatable({}, strict)) end)
                for _ = 1, 3 do
                        local e = T.raises(500, "HYB_E_INTERNAL", bus.call, bus, bus.name, "strict",
                                           nil, {timeout = 10})
                        T.ok(e.message:find("strict: no field", 1, true), "message " .. e.message)
                        T.raises(500, "HYB_E_INTERNAL", bus.call, bus, bus.name, "badtext", nil,
                                 {timeout = 10})
                        T.eq(bus:call(BUILTIN, "echo", {n = 1}, {timeout = 10}), {n = 1}, "the bus goes on")
                end
                -- called from C while bus:process() serves
                local out = cli_while_serving(bus, "call", bus.name, "strict", "{}")
                T.ok(out:find("500", 1, true) or out:find("strict", 1, true), "the CLI got 500: " .. out)
                bus:close()
        end},

        {"process(math.huge) waits like process(nil) (it returned 0 at once)", function()
                local bus = connect()
                local got = false
                bus:call_async(BUILTIN, "echo", {n = 1}, function() got = true end, {timeout = 10})
                local rounds = 0
                repeat
                        local n = bus:process(math.huge)
                        T.ok(n > 0, "process(math.huge) returned " .. n .. " with nothing done")
                        rounds = rounds + 1
                until got or rounds > 100
                T.ok(got, "the reply came")
                local s1, s2 = hybrid.store{socket = d.sock}, hybrid.store{socket = d.sock}
                local msgs = 0
                s1:watch("/lua/huge/#", function() msgs = msgs + 1 end)
                s2:put("/lua/huge/x", 1)
                rounds = 0
                repeat
                        local n = s1:process(1e300)
                        T.ok(n > 0, "store:process(1e300) returned " .. n .. " with nothing done")
                        rounds = rounds + 1
                until msgs > 0 or rounds > 100
                T.eq(msgs, 1, "the watch message came")
                s1:close(); s2:close(); bus:close()
        end},
}
