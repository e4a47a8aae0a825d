-- build '<i>-<i>-' per element and keep those that sort after '9': same as str.mmadt
local t0 = os.clock()
local c = 0
for i = 1, 1000000 do
        local x = tostring(i) .. '-'
        x = x .. x
        if x > '9' then
                c = c + 1
        end
end
local ms = (os.clock() - t0) * 1000
print(string.format("%.3f %s", ms, tostring(c)))
