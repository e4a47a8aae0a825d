-- two filters and a count: same as filter.mmadt
local t0 = os.clock()
local c = 0
for i = 1, 1000000 do
        if i > 250000 and i % 3 == 0 then
                c = c + 1
        end
end
local ms = (os.clock() - t0) * 1000
print(string.format("%.3f %s", ms, tostring(c)))
