-- SPDX-License-Identifier: MIT
-- doc/lua.md's "Ten lines" example, run as written (lua5.4, $HYBRID_BUS naming a test
-- daemon), then called from C the way the page says (`hybrid call <name> add ...`).
local T = require("helper")

local function doc_example()
        local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
        local page = assert(T.read(dir .. "/../../../doc/lua.md"), "doc/lua.md")
        local block = page:match("## Ten lines\n\n```lua\n(.-)```")
        return assert(block, "the ten-line block of doc/lua.md")
end

return {
        {"doc/lua.md: the ten-line example works as documented", function()
                local code = doc_example()
                local n = select(2, code:gsub("\n", "\n"))
                T.ok(n <= 10, "ten lines at most, has " .. n)
                local d = T.daemon("log: {level: warning}\n")
                local dir = T.tmpdir()
                T.write(dir .. "/example.lua", code)
                local job = T.bg("unset HYBRID_DB; HYBRID_BUS=" .. T.q(d.sock) .. " exec lua5.4 " ..
                                 T.q(dir .. "/example.lua"))
                T.ok(T.wait_until(20, function()
                        return (T.read(job.out) or ""):match("\n2,3,4\n") ~= nil or job.done()
                end), "the example prints its lines")
                local out = T.read(job.out)
                local name = out:match("^(@localhost/org%.example%.lua/[%w_]+)\n")
                T.ok(name, "first line: the bus name: " .. out)
                T.ok(out:find("\nhi\n5\n2,3,4\n", 1, true), "echo, store, mm-ADT lines: " .. out)
                T.ok(not job.done(), "bus:run() serves")
                local ok, res = T.sh(T.q(T.HYBRID_CLI) .. " --bus " .. T.q(d.sock) .. " call " ..
                                     T.q(name) .. " add '{\"a\":1,\"b\":2}'")
                T.ok(ok, res)
                T.eq(res, '{"sum":3}\n', "the page's hybrid call output")
                T.sh("kill -TERM " .. job.pid)
                T.stop(d)
        end},
}
