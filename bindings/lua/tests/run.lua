-- SPDX-License-Identifier: MIT
-- run.lua - runs the Lua binding's suite: every test_*.lua beside this file (or the files
-- named as arguments).  Each returns a list of {name, fn}; a case fails when fn raises.
-- Ends with the line "N passed, N failed" and exits 1 when one failed.
local T = require("helper")
local hybrid = require("hybrid")

local files = {...}
if #files == 0 then
        local ok, out = T.sh("ls test_*.lua")
        assert(ok, out)
        for f in out:gmatch("[^\n]+") do files[#files + 1] = f end
end

local passed, failed = 0, 0
for _, file in ipairs(files) do
        local chunk = assert(loadfile(file))
        local ok, cases = pcall(chunk)
        if not ok then
                failed = failed + 1
                print(string.format("FAIL %s: loading: %s", file, tostring(cases)))
        else
                for _, c in ipairs(cases) do
                        local name, fn = c[1], c[2]
                        local t0 = hybrid.core.hyb_now_usec()
                        local ok2, err = xpcall(fn, function(e)
                                return debug.traceback(tostring(e), 2)
                        end)
                        if ok2 then
                                passed = passed + 1
                                print(string.format("ok   %s: %s (%.2f s)", file, name,
                                                    (hybrid.core.hyb_now_usec() - t0) / 1e6))
                        else
                                failed = failed + 1
                                print(string.format("FAIL %s: %s: %s", file, name, err))
                        end
                end
        end
        collectgarbage()
end
T.cleanup()
print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1, true) -- closes the state: every __gc runs
