-- a callback list per key stands in for subscriptions; writes queue messages that are
-- delivered after the writing loop, as the VM delivers them after the statement: same as
-- sub.mmadt
local t0 = os.clock()
local store, subs = {}, {}
local queue, qh, qt = {}, 1, 0

local function subscribe(key, fn)
        local l = subs[key] or {}
        subs[key] = l
        l[#l + 1] = fn
end

local function write(key, v)
        store[key] = v
        if subs[key] then
                qt = qt + 1
                queue[qt] = { key, v }
        end
end

local function deliver()
        while qh <= qt do
                local m = queue[qh]
                queue[qh] = nil
                qh = qh + 1
                for _, fn in ipairs(subs[m[1]]) do
                        fn(m[2])
                end
        end
end

subscribe('a', function(v) write('b', v) end)
subscribe('b', function(v) write('c', v) end)
subscribe('c', function(v) write('acc', v + (store.acc or 0)) end)
for i = 1, 100000 do
        write('a', i)
end
deliver()
local ms = (os.clock() - t0) * 1000
print(string.format("%.3f %s", ms, tostring(store.acc)))
