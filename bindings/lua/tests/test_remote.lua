-- SPDX-License-Identifier: MIT
-- Remote brokers and the caller info from Lua: hybrid.connect{socket = "ws://..."} and
-- wss:// (ca_file =, pin =) against a real hybridd with listen.http and listen.https on port
-- 0, the refusals as hybrid.Error tables, info.transport / info.principal for Unix, ws and
-- wss callers, and register_event(..., {cluster = true}) refused 501 outside a cluster.
local T = require("helper")
local hybrid = require("hybrid")

local BUILTIN = "@localhost/org.hybridos.bus/builtin"
local APP = "org.example.lua.remote"
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local CERTS = here .. "/../../../tests/edge/certs"

local dir = T.tmpdir()
hybrid.token.keygen(dir .. "/iss.key")
hybrid.token.keygen(dir .. "/holder.key")
hybrid.token.keygen(dir .. "/rogue.key")
local function issue(key, file)
        T.write(dir .. "/" .. file, hybrid.token.issue{
                key = dir .. "/" .. key, iss = "acme", sub = "alice", aud = "hub1",
                holder = dir .. "/holder.key.pub", ttl = 3600,
                caps = {["bus://localhost/#"] = "call,reg,sub,pub", ["/#"] = "read,write"}})
end
issue("iss.key", "tok")
issue("rogue.key", "rogue") -- signed by a key the daemon does not trust
local TOK, KEY = dir .. "/tok", dir .. "/holder.key"

local d = T.daemon(string.format([[
listen:
  http: 127.0.0.1:0
  https: 127.0.0.1:0
tls: {cert: %s/server.pem, key: %s/server.key}
auth:
  tokens: accept
  audience: hub1
  issuers:
    acme: %s/iss.key.pub
log: {level: info}
]], CERTS, CERTS, dir))

local function from_log(pattern, what)
        local v
        T.ok(T.wait_until(30, function()
                v = (T.read(d.log) or ""):match(pattern)
                return v ~= nil
        end), what .. " in the daemon's log: " .. (T.read(d.log) or ""))
        return v
end
local WS = "ws://127.0.0.1:" .. from_log("edge: HTTP on 127%.0%.0%.1:([1-9]%d*)", "the HTTP port") ..
           "/bus/ws"
-- the server's certificate names localhost
local WSS = "wss://localhost:" ..
            from_log("listening on https://127%.0%.0%.1:([1-9]%d*)", "the HTTPS port") .. "/bus/ws"
local PIN = T.read(CERTS .. "/server.pin"):gsub("%s+$", "")
local WRONG_PIN = T.read(CERTS .. "/wrongca.pin"):gsub("%s+$", "")

-- $HYBRID_CA / $HYBRID_PIN must not decide the trust: the cases name their own (Lua cannot
-- unset a variable: meson sets them empty, which the library reads as unset)
assert((os.getenv("HYBRID_CA") or "") == "" and (os.getenv("HYBRID_PIN") or "") == "",
       "run with $HYBRID_CA and $HYBRID_PIN unset or empty")

local function remote(url, more)
        local o = {socket = url, app = APP, token = TOK, key = KEY}
        for k, v in pairs(more or {}) do o[k] = v end
        return hybrid.connect(o)
end

local function until_(cond, what, ...)
        local buses = {...}
        T.ok(T.wait_until(20, function()
                for _, b in ipairs(buses) do b:process(0) end
                return cond()
        end), what)
end

return {
        {"ws://: connect, call, the store", function()
                local bus <close> = remote(WS)
                T.ok(bus.name:match("^@localhost/org%.example%.lua%.remote/"), bus.name)
                T.eq(bus:call(BUILTIN, "echo", {x = hybrid.list{1, "two"}}), {x = {1, "two"}}, "echo")
                T.raises(404, "HYB_E_NOT_FOUND", bus.call, bus, BUILTIN, "noSuchMethod", {})
                local st <close> = hybrid.store{socket = WS, app = APP, token = TOK, key = KEY}
                st:put("/remote/lua", 21.5)
                T.eq(st:get("/remote/lua"), 21.5, "read back over ws")
        end},

        {"wss://: with the CA, the pin (bare or sha256//), both", function()
                for _, more in ipairs{{ca_file = CERTS .. "/ca.pem"}, {pin = PIN},
                                      {pin = "sha256//" .. PIN},
                                      {pin = PIN, ca_file = CERTS .. "/ca.pem"}} do
                        local bus <close> = remote(WSS, more)
                        T.eq(bus:call(BUILTIN, "echo", "tls"), "tls", "echo over wss")
                end
        end},

        {"wss:// refusals: wrong pin or CA (HYB_E_AUTH), nothing to verify by (EINVAL)", function()
                local e = T.raises(500, "HYB_E_AUTH", remote, WSS, {pin = WRONG_PIN})
                T.ok(e.message:find("pinned", 1, true), e.message)
                T.raises(500, "HYB_E_AUTH", remote, WSS, {ca_file = CERTS .. "/wrongca.pem"})
                T.raises(500, "HYB_E_AUTH", remote, WSS, {ca_file = CERTS .. "/wrongca.pem", pin = PIN})
                T.raises(400, "EINVAL", remote, WSS)
                T.raises(400, "EINVAL", remote, WSS, {pin = "not a pin"})
        end},

        {"ws:// refusals: no token, an untrusted token, a wrong path", function()
                T.raises(401, "HYB_E_UNAUTHORIZED", hybrid.connect, {socket = WS, app = APP})
                T.raises(401, "HYB_E_UNAUTHORIZED", remote, WS, {token = dir .. "/rogue"})
                T.raises(404, nil, remote, (WS:gsub("/bus/ws$", "/nothing/here")))
        end},

        {"info.transport and info.principal for Unix, ws and wss callers", function()
                local srv <close> = hybrid.connect{socket = d.sock, app = APP, runner = "srv"}
                local loc <close> = hybrid.connect{socket = d.sock, app = APP, runner = "loc"}
                local wsc <close> = remote(WS, {runner = "ws"})
                local wssc <close> = remote(WSS, {runner = "wss", ca_file = CERTS .. "/ca.pem"})
                srv:procedure("whoami", nil, function(_, info)
                        return {caller = info.caller, method = info.method,
                                transport = info.transport, principal = info.principal}
                end)
                for _, c in ipairs{{loc, "unix", nil}, {wsc, "ws", "alice"}, {wssc, "wss", "alice"}} do
                        local got, err
                        c[1]:call_async(srv.name, "whoami", {}, function(r, e) got, err = r, e end)
                        until_(function() return got ~= nil or err ~= nil end, "the answer", c[1], srv)
                        T.eq(err, nil, "no error")
                        T.eq(got, {caller = c[1].name, method = "whoami", transport = c[2],
                                   principal = c[3]}, c[2] .. " caller")
                end
        end},

        {"register_event{cluster = true} outside a cluster: 501", function()
                local bus <close> = hybrid.connect{socket = d.sock, app = APP, runner = "ev"}
                T.raises(501, "HYB_E_NOT_IMPLEMENTED", bus.register_event, bus, "TEMP", {cluster = true})
                -- the refused bubble is not registered; a plain one still is
                T.raises(404, nil, bus.fire, bus, "TEMP", 1, {counted = true})
                bus:register_event("TEMP")
                local delivered, failed = bus:fire("TEMP", 1, {counted = true})
                T.eq({delivered, failed}, {0, 0}, "counts")
        end},
}
