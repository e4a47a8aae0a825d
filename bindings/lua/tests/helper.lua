-- SPDX-License-Identifier: MIT
-- helper.lua - the small test framework of the Lua binding's suite and its daemons.
--
-- Test files return a list of {name, fn}; run.lua runs them.  Daemons are real hybridd
-- processes ($HYBRIDD) on a socket in a fresh temp dir, started with a config text and
-- waited for (their socket appears), stopped with SIGTERM.
local T = {}

local function sh_quote(s)
        return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
T.q = sh_quote

--- T.sh(cmd) -> ok, output (stdout and stderr), exit code
function T.sh(cmd)
        local p = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\"", "r"))
        local out = p:read("a")
        p:close()
        local rc = tonumber(out:match("rc=(%d+)\n?$"))
        out = out:gsub("rc=%d+\n?$", "")
        return rc == 0, out, rc
end

local function env(name)
        local v = os.getenv(name)
        assert(v and v ~= "", name .. " is not set (run the suite through meson test)")
        return v
end
T.HYBRIDD = env("HYBRIDD")
T.HYBRID_CLI = env("HYBRID_CLI")

local dirs = {}
--- T.tmpdir() -> a fresh directory (mode 0700), removed when the suite ends
function T.tmpdir()
        local ok, out = T.sh("mktemp -d")
        assert(ok, out)
        local d = out:gsub("%s+$", "")
        dirs[#dirs + 1] = d
        return d
end

function T.write(path, text)
        local f = assert(io.open(path, "w"))
        f:write(text)
        f:close()
end

function T.read(path)
        local f = io.open(path, "r")
        if not f then return nil end
        local s = f:read("a")
        f:close()
        return s
end

local function exists_socket(path)
        local ok = T.sh("test -S " .. sh_quote(path))
        return ok
end

-- alive(pid): the process exists and has not exited (an exited process may stay a zombie
-- until something reaps it: not alive)
local function alive(pid)
        local stat = T.read("/proc/" .. pid .. "/stat")
        if not stat then return false end
        local state = stat:match("^%d+ %b() (%a)")
        return state ~= nil and state ~= "Z" and state ~= "X"
end

--- T.wait_until(seconds, fn): polls fn every 20 ms until it returns true; false at the
--- end of the (generous) bound.
function T.wait_until(seconds, fn)
        local hybrid = require("hybrid")
        local deadline = hybrid.core.hyb_now_usec() + math.floor(seconds * 1e6)
        while hybrid.core.hyb_now_usec() < deadline do
                if fn() then return true end
                T.sh("sleep 0.02")
        end
        return fn()
end

local daemons = {}
--- T.daemon(config_yaml) -> {sock=, dir=, pid=, log=}: a hybridd in a fresh temp dir.
function T.daemon(config)
        local dir = T.tmpdir()
        local d = {dir = dir, sock = dir .. "/bus.sock", log = dir .. "/d.log"}
        T.write(dir .. "/d.yaml", config or "log: {level: warning}\n")
        local cmd = string.format("%s --foreground --socket %s --config %s >%s 2>&1 & echo $!",
                                  sh_quote(T.HYBRIDD), sh_quote(d.sock),
                                  sh_quote(dir .. "/d.yaml"), sh_quote(d.log))
        local p = assert(io.popen(cmd, "r"))
        d.pid = assert(tonumber(p:read("l")))
        p:close()
        daemons[#daemons + 1] = d
        local up = T.wait_until(20, function()
                return exists_socket(d.sock) or not alive(d.pid)
        end)
        assert(up and exists_socket(d.sock), "hybridd did not start: " .. (T.read(d.log) or ""))
        return d
end

--- T.mosquitto() -> {port=, url=, pid=, log=} or nil, why: a mosquitto broker on a free
--- loopback port (anonymous clients), stopped by T.cleanup; nil when mosquitto or its
--- clients are not installed.
function T.mosquitto()
        local mq
        for _, m in ipairs({"/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"}) do
                if T.sh("test -x " .. sh_quote(m)) then mq = m; break end
        end
        if not mq or not T.sh("command -v mosquitto_sub && command -v mosquitto_pub") then
                return nil, "mosquitto (and mosquitto-clients) is not installed"
        end
        local ok, out = T.sh("/usr/bin/python3 -c 'import socket; s = socket.socket(); " ..
                             "s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'")
        assert(ok, out)
        local port = assert(tonumber(out:match("%d+")))
        local dir = T.tmpdir()
        local b = {port = port, url = "mqtt://127.0.0.1:" .. port, log = dir .. "/mosquitto.log"}
        local uid = select(2, T.sh("id -u")):gsub("%s+", "")
        T.write(dir .. "/mosquitto.conf", "listener " .. port .. " 127.0.0.1\nallow_anonymous true\n" ..
                (uid == "0" and "user root\n" or ""))
        local p = assert(io.popen(string.format("%s -c %s >%s 2>&1 & echo $!", sh_quote(mq),
                                                sh_quote(dir .. "/mosquitto.conf"),
                                                sh_quote(b.log)), "r"))
        b.pid = assert(tonumber(p:read("l")))
        p:close()
        daemons[#daemons + 1] = b
        local up = T.wait_until(20, function()
                return T.sh("/usr/bin/python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", " ..
                            port .. "), 1).close()'") or not alive(b.pid)
        end)
        assert(up and alive(b.pid), "mosquitto did not start: " .. (T.read(b.log) or ""))
        return b
end

function T.stop(d)
        if d.stopped then return end
        d.stopped = true
        T.sh("kill -TERM " .. d.pid)
        T.wait_until(20, function() return not alive(d.pid) end)
end

--- T.bg(cmd) -> {out=, pid=, done=, rc=}: a background shell command, its output in a
--- file; done() is true once it has exited (its status written by the shell that ran it:
--- an exited child may stay visible to kill -0 until something reaps it), rc() its status.
function T.bg(cmd)
        local dir = T.tmpdir()
        local job = {out = dir .. "/out", rcfile = dir .. "/rc"}
        local p = assert(io.popen(string.format("(%s; echo $? >%s.tmp; mv %s.tmp %s) >%s 2>&1 & echo $!",
                                                cmd, sh_quote(job.rcfile), sh_quote(job.rcfile),
                                                sh_quote(job.rcfile), sh_quote(job.out)), "r"))
        job.pid = assert(tonumber(p:read("l")))
        p:close()
        job.rc = function()
                local s = T.read(job.rcfile)
                return s and tonumber(s:match("%d+"))
        end
        job.done = function() return job.rc() ~= nil end
        return job
end

function T.cleanup()
        for _, d in ipairs(daemons) do T.stop(d) end
        for _, d in ipairs(dirs) do T.sh("rm -rf " .. sh_quote(d)) end
end

-- ---------------------------------------------------------------- assertions

local function show(v, depth)
        depth = depth or 0
        if math.type(v) == "float" then return string.format("%.17g", v) end
        if type(v) == "string" then return string.format("%q", v) end
        if type(v) ~= "table" or depth > 8 then return tostring(v) end
        local mt = getmetatable(v)
        if mt and mt.__tostring then return tostring(v) end
        local keys = {}
        for k in pairs(v) do keys[#keys + 1] = k end
        table.sort(keys, function(a, b) return show(a) < show(b) end)
        local parts = {}
        for _, k in ipairs(keys) do
                parts[#parts + 1] = "[" .. show(k, depth + 1) .. "]=" .. show(v[k], depth + 1)
        end
        return "{" .. table.concat(parts, ", ") .. "}"
end
T.show = show

--- T.eq(a, b, what): deep equality; numbers also by math.type; floats by their bits.
local function deq(a, b)
        if type(a) ~= type(b) then return false end
        if type(a) == "number" then
                if math.type(a) ~= math.type(b) then return false end
                if math.type(a) == "float" then
                        return string.pack("<d", a) == string.pack("<d", b)
                end
                return a == b
        end
        if type(a) ~= "table" or rawequal(a, b) then return a == b end
        for k, v in pairs(a) do
                if not deq(v, b[k]) then return false end
        end
        for k in pairs(b) do
                if a[k] == nil then return false end
        end
        return true
end
T.deq = deq

function T.eq(got, want, what)
        if not deq(got, want) then
                error(string.format("%s: got %s, want %s", what or "value", show(got),
                                    show(want)), 2)
        end
end

function T.ok(v, what)
        if not v then error((what or "assertion") .. " failed", 2) end
        return v
end

--- T.raises(status, code, fn, ...) -> the hybrid.Error fn raised
function T.raises(status, code, fn, ...)
        local hybrid = require("hybrid")
        local ok, e = pcall(fn, ...)
        if ok then error("no error raised (want " .. status .. ")", 2) end
        if not hybrid.Error.is(e) then error("not a hybrid.Error: " .. tostring(e), 2) end
        if e.status ~= status or (code and e.code ~= code) then
                error(string.format("got %s, want %d %s", tostring(e), status, code or ""), 2)
        end
        return e
end

return T
