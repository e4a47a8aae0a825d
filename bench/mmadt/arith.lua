-- arithmetic over 1..1000000, folded: same as arith.mmadt
local t0 = os.clock()
local s = 0
for i = 1, 1000000 do
        s = s + (i + 1) * 2
end
local ms = (os.clock() - t0) * 1000
print(string.format("%.3f %s", ms, tostring(s)))
