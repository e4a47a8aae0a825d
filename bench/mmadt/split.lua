-- split into a two-element list, spill it back: same as split.mmadt
local t0 = os.clock()
local s = 0
for i = 1, 1000000 do
        local l = { i + 1, i * 2 }
        for _, v in ipairs(l) do
                s = s + v
        end
end
local ms = (os.clock() - t0) * 1000
print(string.format("%.3f %s", ms, tostring(s)))
