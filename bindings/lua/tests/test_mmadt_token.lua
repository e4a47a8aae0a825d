-- SPDX-License-Identifier: MIT
-- mm-ADT from Lua, and security tokens: keygen, issue, verify, and connecting with a
-- token to a hybridd with `auth: {tokens: require}` (doc/token.md "What each operation
-- needs": echo needs nothing, registering needs `reg`, store reads `read`).
local T = require("helper")
local hybrid = require("hybrid")

local dir = T.tmpdir()
local ISS, HOLDER, OTHER = dir .. "/iss.key", dir .. "/holder.key", dir .. "/other.key"

local function issue(caps, aud)
        return hybrid.token.issue{key = ISS, iss = "acme", sub = "alice", aud = aud or {"hub1"},
                                  holder = HOLDER .. ".pub", caps = caps, ttl = 3600}
end

return {
        {"mm-ADT: run gives the results as a list", function()
                T.eq(hybrid.mmadt.run("{1..3}.plus(1)"), {2, 3, 4}, "{1..3}.plus(1)")
                T.eq(hybrid.mmadt.run("3.plus(2).mult(2)"), {10}, "one result")
                T.eq(hybrid.mmadt.run("1.5.plus(1.0)")[1], 2.5, "reals")
                T.eq(hybrid.mmadt.run("'a'.plus('b')"), {"ab"}, "strs")
                T.eq(hybrid.mmadt.run("plus(1)", 41), {42}, "an input obj")
                local e = T.raises(400, "HYB_E_PARSE", hybrid.mmadt.run, "1.plus(")
                T.ok(#e.message > 0, "a parse message")
                T.raises(500, "HYB_E_DIV_ZERO", hybrid.mmadt.run, "1.div(0)")
        end},

        {"the SWIG-wrapped functions and constants of the headers", function()
                local core = hybrid.core
                T.eq(core.hyb_version(), "0.1.0", "hyb_version")
                T.eq(core.HYB_E_FORBIDDEN, -(core.HYB_E_BASE + 403), "HYB_E_FORBIDDEN")
                T.eq(core.hyb_err_name(core.HYB_E_CALLEE_TIMEOUT), "HYB_E_CALLEE_TIMEOUT", "name")
                T.eq(core.hyb_err_to_status(core.HYB_E_BAD_REQUEST), 400, "to status")
                T.eq(core.hyb_err_from_status(404), core.HYB_E_NOT_FOUND, "from status")
                T.eq(hybrid.furi_match("/sensors/kitchen/temp", "/sensors/+/temp"), true, "match")
                T.eq(hybrid.furi_match("/sensors/kitchen/hum", "/sensors/+/temp"), false, "no match")
                T.raises(400, "HYB_E_PARSE", hybrid.furi_match, "/a//b", "/a/#")
        end},

        {"tokens: keygen, issue, verify", function()
                local kid = hybrid.token.keygen(ISS)
                T.ok(type(kid) == "string" and #kid > 20, "a kid")
                T.ok(T.read(ISS .. ".pub"):match("BEGIN PUBLIC KEY"), "the public key file")
                local ok, mode = T.sh("stat -c %a " .. T.q(ISS))
                T.ok(ok and mode:match("^600"), "private key mode 0600: " .. mode)
                -- an errno code keeps its name
                T.raises(404, "ENOENT", hybrid.token.keygen, dir .. "/no/such/dir/k")
                hybrid.token.keygen(HOLDER)
                hybrid.token.keygen(OTHER)
                local tok = issue({["/sensors/#"] = "read,sub"})
                T.ok(tok:match("^[%w_%-]+%.[%w_%-]+%.[%w_%-]+$"), "a one-block JWS")
                local r = hybrid.token.verify(tok, {audience = "hub1", trust = {acme = ISS .. ".pub"}})
                T.eq(r.sub, "alice", "sub")
                T.eq(r.iss, "acme", "iss")
                T.eq(r.blocks, 1, "blocks")
                T.ok(math.type(r.exp) == "integer" and r.exp > os.time(), "exp in the future")
                T.eq(#r.cap, 1, "one capability")
                T.eq(r.cap[1].resource, "/sensors/#", "its resource")
                T.raises(401, "HYB_E_UNAUTHORIZED", hybrid.token.verify, tok,
                         {audience = "elsewhere", trust = {acme = ISS .. ".pub"}})
                T.raises(401, "HYB_E_UNAUTHORIZED", hybrid.token.verify, tok,
                         {audience = "hub1", trust = {acme = OTHER .. ".pub"}})
                T.raises(401, "HYB_E_UNAUTHORIZED", hybrid.token.verify, tok .. "x",
                         {audience = "hub1", trust = {acme = ISS .. ".pub"}})
        end},

        {"tokens: connect to a daemon that requires them", function()
                local tokfile = dir .. "/good.tok"
                T.write(tokfile, issue({
                        ["/sensors/#"] = "read,sub",
                        ["bus://localhost/org.example.lua.tok/#"] = "reg,pub",
                }) .. "\n")
                local d = T.daemon(string.format([[
auth:
  tokens: require
  audience: hub1
  issuers:
    acme: %s.pub
boot:
  data:
    /sensors/t: '7'
log: {level: warning}
]], ISS))
                -- no token: refused (401), whoever we are
                T.raises(401, "HYB_E_UNAUTHORIZED", hybrid.connect,
                         {socket = d.sock, app = "org.example.lua.tok"})
                T.raises(401, "HYB_E_UNAUTHORIZED", hybrid.store, {socket = d.sock})
                -- the token with its holder key: in, with the token's rights
                local bus = hybrid.connect{socket = d.sock, app = "org.example.lua.tok",
                                           token = tokfile, key = HOLDER}
                T.ok(bus.name:match("^@localhost/org%.example%.lua%.tok/"), bus.name)
                T.eq(bus:call("@localhost/org.hybridos.bus/builtin", "echo", {x = 1}), {x = 1},
                     "echo needs no right")
                bus:register_event("TEMP")
                -- registering is granted (reg), calling is not (no `call`): 403
                bus:procedure("p", nil, function() return 1 end)
                T.raises(403, "HYB_E_FORBIDDEN", bus.call, bus, bus.name, "p", {}, {timeout = 5})
                bus:close()
                local store = hybrid.store{socket = d.sock, app = "org.example.lua.tok",
                                           token = tokfile, key = HOLDER}
                T.eq(store:get("/sensors/t"), 7, "read granted")
                T.raises(403, "HYB_E_FORBIDDEN", store.put, store, "/sensors/t", 8)
                T.raises(403, "HYB_E_FORBIDDEN", store.get, store, "/other/x")
                store:close()
                -- the proof by another key than the holder's: 401
                T.raises(401, "HYB_E_UNAUTHORIZED", hybrid.connect,
                         {socket = d.sock, app = "org.example.lua.tok", token = tokfile, key = OTHER})
                -- a token file without a key
                T.ok(not pcall(hybrid.connect, {socket = d.sock, app = "org.example.lua.tok",
                                                token = tokfile}), "token without key refused")
                T.stop(d)
        end},
}
