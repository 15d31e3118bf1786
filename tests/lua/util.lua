-- util.lua - helpers the Lua specs share; load with dofile("tests/lua/util.lua")
-- (make test runs from the repository root).
local util = {}

-- Resident memory of this process in kB (Linux), or nil elsewhere.
function util.rss_kb()
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

return util
