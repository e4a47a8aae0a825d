-- SPDX-License-Identifier: MIT
-- hybrid.lua - the idiomatic Lua layer over the SWIG module hybrid_core (doc/lua.md).
--
--   local hybrid = require("hybrid")
--   local bus = hybrid.connect{socket = PATH, app = "org.example.lua"}
--   bus:call("@localhost/org.hybridos.bus/builtin", "echo", {words = "hi"}, {timeout = 1})
--   local store = hybrid.store{db = nil, socket = PATH}; store:put("/a/b", 5)
local core = require("hybrid_core")

local hybrid = {}
hybrid.core = core
hybrid.version = core.hyb_version()

local BusMT, StoreMT, SlotMT, ErrorMT, UriMT, TypedMT, ListMT, null = core.metatables()

-- ---------------------------------------------------------------- values

--- hybrid.null: a JSON null / noobj inside a list or a record (nil cannot be stored there).
hybrid.null = setmetatable(null, {
        __tostring = function() return "hybrid.null" end,
        __newindex = function() error("hybrid.null is read-only", 2) end,
})

UriMT.__index = UriMT
UriMT.__tostring = function(u) return u.text end
UriMT.__eq = function(a, b) return a.text == b.text end
UriMT.__name = "hybrid.Uri"

--- hybrid.uri(text): a uri value (an obj of kind uri, JSON {"@uri": text}).
function hybrid.uri(text)
        assert(type(text) == "string", "hybrid.uri: a string expected")
        return setmetatable({text = text}, UriMT)
end
hybrid.Uri = UriMT

TypedMT.__index = TypedMT
TypedMT.__name = "hybrid.Typed"
TypedMT.__tostring = function(t)
        return string.format("%s[%s]", t["@type"], tostring(t["@value"]))
end

--- hybrid.typed(type, value): a typed value such as /type/nat[5].
function hybrid.typed(type_id, value)
        return setmetatable({["@type"] = type_id, ["@value"] = value}, TypedMT)
end
hybrid.Typed = TypedMT

ListMT.__name = "hybrid.List"

--- hybrid.list(t): marks t as a list (so an empty table is an empty list, not a record).
function hybrid.list(t)
        return setmetatable(t or {}, ListMT)
end
hybrid.List = ListMT

-- ---------------------------------------------------------------- errors

ErrorMT.__name = "hybrid.Error"
ErrorMT.__index = ErrorMT
hybrid.Error = ErrorMT

--- hybrid.Error.is(e): true when e is an error raised by the library (a table with
--- status, code and message).
function ErrorMT.is(e)
        return getmetatable(e) == ErrorMT
end

--- hybrid.Error.new(status, message): an error a procedure raises to answer that status.
function ErrorMT.new(status, message)
        return core.error_new(status, message)
end

--- hybrid.raise(status, message): error(hybrid.Error.new(status, message)).
function hybrid.raise(status, message)
        error(core.error_new(status, message), 2)
end

-- ---------------------------------------------------------------- slots

-- slot -> the bus or store keeping it (weak keys): a cancelled slot leaves its owner's
-- table, so registering and cancelling again and again does not grow it
local slot_owner = setmetatable({}, {__mode = "k"})

SlotMT.__index = {cancel = function(slot)
        local owner = slot_owner[slot]
        if owner then
                owner._slots[slot] = nil
                slot_owner[slot] = nil
        end
        return core.slot_cancel(slot)
end}
SlotMT.__name = "hybrid.Slot"

-- ---------------------------------------------------------------- bus

local runner_seq = 0
local function default_runner()
        -- unique per connection of this process: p<pid>l<n>
        runner_seq = runner_seq + 1
        local pid = "0"
        local f = io.open("/proc/self/stat", "r")
        if f then
                pid = f:read("n") or "0"
                f:close()
        end
        return string.format("p%sl%d", math.tointeger(pid) or pid, runner_seq)
end

local Bus = {}
Bus.__index = Bus
Bus.__name = "hybrid.Bus"

--- hybrid.connect{socket=, app=, runner=, token=, key=, ca_file=, pin=}: a bus connection.
--- socket nil: $HYBRID_BUS, then the default socket; or a remote broker's URL
--- ws://HOST:PORT/bus/ws, wss://HOST:PORT/bus/ws.  token and key name files.  ca_file (a
--- PEM file of CA certificates) and/or pin (the SHA-256 of the server's public key) verify
--- a wss:// server (neither: $HYBRID_CA, $HYBRID_PIN).
function hybrid.connect(opts)
        opts = opts or {}
        assert(type(opts.app) == "string", "hybrid.connect: app required")
        local h = core.connect(opts.socket, opts.app, opts.runner or default_runner(),
                               opts.token, opts.key, opts.ca_file, opts.pin)
        local self = setmetatable({_h = h, _slots = {}}, Bus)
        self.name = core.bus_name(h)
        return self
end

-- Keeps a slot alive with the bus (until slot:cancel() or bus:close()).
function Bus:_keep(slot)
        self._slots[slot] = true
        slot_owner[slot] = self
        return slot
end

--- bus:call(endpoint, method, params, {timeout = seconds}) -> result (raises hybrid.Error)
function Bus:call(endpoint, method, params, opts)
        return core.bus_call(self._h, endpoint, method, params, opts and opts.timeout)
end

--- bus:call_async(endpoint, method, params, fn, {timeout = seconds}) -> slot;
--- fn(result, err) runs from bus:process() (err a hybrid.Error on failure).
function Bus:call_async(endpoint, method, params, fn, opts)
        local slot
        slot = core.bus_call_async(self._h, endpoint, method, params, opts and opts.timeout,
                function(result, err)
                        self._slots[slot] = nil
                        slot_owner[slot] = nil
                        return fn(result, err)
                end)
        return self:_keep(slot)
end

--- bus:procedure(name, policy, fn, {for_host=, for_app=}) -> slot.  policy maps argument
--- names to types ("int", "number", "string", "bool", "table", "list", "null", "any";
--- "int?" optional); a call that does not match gets 400 before fn runs.
--- fn(params, info) returns the result; error(hybrid.Error.new(404, "...")) answers 404.
function Bus:procedure(name, policy, fn, opts)
        opts = opts or {}
        return self:_keep(core.bus_procedure(self._h, name, policy, fn, opts.for_host,
                                             opts.for_app))
end

--- bus:register_event(bubble, {for_host=, for_app=, cluster=}) -> slot; cluster = true
--- sends its fires to the other hosts of the daemon's cluster too (501 outside a cluster).
function Bus:register_event(bubble, opts)
        opts = opts or {}
        return self:_keep(core.bus_register_event(self._h, bubble, opts.for_host, opts.for_app,
                                                  opts.cluster))
end

--- bus:fire(bubble, value, {counted = true}) -> delivered, failed (when counted)
function Bus:fire(bubble, value, opts)
        return core.bus_fire(self._h, bubble, value, opts and opts.counted)
end

--- bus:subscribe(endpoint_glob, bubble_glob, fn) -> slot; fn(value, {source=, bubble=})
function Bus:subscribe(endpoint_glob, bubble_glob, fn)
        return self:_keep(core.bus_subscribe(self._h, endpoint_glob, bubble_glob, fn))
end

--- bus:process(timeout) -> n: waits up to timeout seconds (nil: until something comes,
--- 0: not at all), then runs what is ready.  A callback's error is raised here.
function Bus:process(timeout)
        return core.bus_process(self._h, timeout)
end

--- bus:run(): processes until bus:stop() or bus:close() (from a callback) or the
--- connection ends.
function Bus:run()
        self._stop = false
        while not self._stop and core.bus_is_open(self._h) do
                core.bus_process(self._h, nil)
        end
end

function Bus:stop()
        self._stop = true
end

function Bus:is_open()
        return core.bus_is_open(self._h)
end

function Bus:fd()
        return core.bus_fd(self._h)
end

--- bus:close(): unregisters everything and closes the connection (idempotent).
function Bus:close()
        self._stop = true
        -- the calls in flight fail first, each fn(nil, err) with a 502 (as in Python and
        -- Node); then the procedures and subscriptions go
        core.bus_close(self._h)
        for slot in pairs(self._slots) do
                slot:cancel()
        end
        self._slots = {}
        core.bus_free(self._h)
end
Bus.__close = Bus.close

function Bus:__tostring()
        return "hybrid.Bus(" .. self.name .. ")"
end

hybrid.Bus = Bus

-- ---------------------------------------------------------------- store

local Store = {}
Store.__index = Store
Store.__name = "hybrid.Store"

--- hybrid.store{db=, socket=, app=, runner=, token=, key=, ca_file=, pin=, cluster=}: the
--- host store by the rule of the CLI: db given -> that database; else socket (or $HYBRID_BUS)
--- -> that daemon; else the daemon at the default socket if one answers, else the default
--- database.  The cluster scope //... goes to that daemon when one serves the host store
--- (it serves it with a cluster: configuration); on the embedded store to the MQTT broker
--- of cluster (mqtt://HOST[:PORT][?KEY=VALUE&...], else $HYBRID_CLUSTER), whose messages
--- store:process() delivers too; with neither, //... raises HYB_E_SCOPE.
function hybrid.store(opts)
        opts = opts or {}
        local h, where = core.store_open(opts.db, opts.socket, opts.app or "org.hybridos.cli",
                                         opts.runner or default_runner(), opts.token, opts.key,
                                         opts.ca_file, opts.pin, opts.cluster)
        return setmetatable({_h = h, _slots = {}, where = where,
                             source = core.store_source(h)}, Store)
end

--- store:get(furi) -> value (nil when nothing is stored); a pattern or branch gives a
--- table of fURI => value.
function Store:get(furi)
        return core.store_get(self._h, furi)
end

--- store:put(furi, value, {transient = true}); nil deletes.
function Store:put(furi, value, opts)
        return core.store_put(self._h, furi, value, opts and opts.transient)
end

function Store:delete(furi)
        return core.store_delete(self._h, furi)
end

--- store:watch(pattern, fn, {replay = true}) -> slot; fn(furi, value, retain) runs
--- from store:process() (value nil for a delete, retain false for a transient write).
function Store:watch(pattern, fn, opts)
        local slot = core.store_watch(self._h, pattern, fn, opts and opts.replay)
        self._slots[slot] = true
        slot_owner[slot] = self
        return slot
end

--- store:process(timeout) -> n: as bus:process.
function Store:process(timeout)
        return core.store_process(self._h, timeout)
end

function Store:close()
        for slot in pairs(self._slots) do
                slot:cancel()
        end
        self._slots = {}
        core.store_free(self._h)
end
Store.__close = Store.close

hybrid.Store = Store

-- ---------------------------------------------------------------- mm-ADT, tokens

hybrid.mmadt = {}

--- hybrid.mmadt.run(text, input) -> a list of the results of every statement.
function hybrid.mmadt.run(text, input)
        return core.mmadt_run(text, input)
end

hybrid.token = {}

--- hybrid.token.keygen(path) -> kid: a P-256 key pair at path (0600), public key at path.pub.
hybrid.token.keygen = core.token_keygen

--- hybrid.token.issue{key=, iss=, sub=, aud=, holder=, caps={[pattern]="read,sub"},
--- ttl=, dlg=} -> token text (key: the issuer's key file; holder: a public key file).
hybrid.token.issue = core.token_issue

--- hybrid.token.verify(token, {audience=, trust={[iss]=pubkey_file}}) -> claims table
--- {sub=, iss=, jti=, exp=, holder=, blocks=, cap={{resource=, actions={...}}...}}.
hybrid.token.verify = core.token_verify

--- hybrid.furi_match(furi, pattern) -> boolean
function hybrid.furi_match(f, pattern)
        local r = core.hyb_furi_match_str(f, pattern)
        if r < 0 then
                error(core.error_new(r, "bad fURI or pattern"), 2)
        end
        return r == 1
end

return hybrid
