-- a table stands in for the store: write k/<i>, read it back, sum: same as store.mmadt
local t0 = os.clock()
local store = {}
local s = 0
for i = 1, 100000 do
        local k = 'k/' .. i
        store[k] = i
        s = s + store[k]
end
local ms = (os.clock() - t0) * 1000
print(string.format("%.3f %s", ms, tostring(s)))
