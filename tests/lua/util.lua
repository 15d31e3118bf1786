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

-- ---- ONNX specs (onnx_spec, torchvision_spec) -------------------------------------

util.PYTHON = "/usr/bin/python3"   -- Debian's, with python3-torch and python3-onnx

-- Runs a shell command; its exit code and its output (stdout and stderr).
function util.run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

-- The numbers of nested tables, in order, as one flat table.
function util.flatten(t, out)
  out = out or {}
  for _, v in ipairs(t) do
    if type(v) == "table" then util.flatten(v, out) else out[#out + 1] = v end
  end
  return out
end

-- Largest difference between two nested tables of numbers, relative to max(1, max |b|).
function util.rel_err(a, b)
  a, b = util.flatten(a), util.flatten(b)
  -- this file's globals are Lua's own, not busted's: plain assert
  assert(#a == #b, ("%d values, expected %d"):format(#a, #b))
  local diff, scale = 0, 1
  for i = 1, #b do
    diff = math.max(diff, math.abs(a[i] - b[i]))
    scale = math.max(scale, math.abs(b[i]))
  end
  return diff / scale
end

-- The names of a net's nodes, in order.
function util.names(net)
  local out = {}
  for _, n in ipairs(net:nodes()) do out[#out + 1] = n.name end
  return out
end

-- A fresh temporary file name ending in suffix (nothing created).
function util.tmpfile(suffix)
  local base = os.tmpname()
  os.remove(base)
  return base .. suffix
end

-- python3-onnx's checker (full check, shape inference included) on files Lopper wrote.
function util.check_onnx(...)
  local code, out = util.run(("%s tests/onnx/check_model.py %s"):format(util.PYTHON,
                             table.concat({...}, " ")))
  assert(code == 0, "onnx.checker refused a file Lopper wrote:\n" .. out)
end

return util
