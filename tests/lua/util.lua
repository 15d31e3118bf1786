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

-- Whether AddressSanitizer is loaded: it keeps freed memory in quarantine (256 MB by
-- default), so resident memory says less under it.
function util.under_asan()
  local f = io.open("/proc/self/maps")
  if not f then return false end
  local s = f:read("a")
  f:close()
  return s:find("libasan", 1, true) ~= nil
end

return util
