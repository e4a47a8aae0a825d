-- a table built per element, then one field read back: same as rec.mmadt
local t0 = os.clock()
local s = 0
for i = 1, 1000000 do
        local r = { a = i, b = i * 2 }
        s = s + r.b
end
local ms = (os.clock() - t0) * 1000
print(string.format("%.3f %s", ms, tostring(s)))
