-- ort.lua - the Lua side of run.js: ONNX Runtime (npm onnxruntime-node, installed in
-- tests/ort/node_modules by scripts/tools/install_deps.sh) on models Lopper wrote, with
-- tensors passed as raw little-endian float32 files.  Used by
-- tests/lua/torchvision_spec.lua and scripts/tools/ort_accuracy.lua; load it with
-- dofile("tests/ort/ort.lua") from the repository root.
--
--   local ort = dofile("tests/ort/ort.lua")
--   assert(ort.available())                       -- or false, what to install
--   ort.write_f32("x.f32", tensor_or_flat_table)
--   ort.run{{model = "m.onnx", input = "x.f32", shape = {2, 3, 64, 64},
--            output = "y.f32"}, ...}              -- one Node process for all jobs
--   local y = ort.read_f32("y.f32")               -- flat table of numbers
local util = dofile("tests/lua/util.lua")
local run, flatten = util.run, util.flatten
local ort = {}

ort.DIR = "tests/ort"
ort.NODE = os.getenv("NODE") or "node"
local CHUNK = 4096   -- values per string.pack call (Lua's stack bounds table.unpack)

-- true, or false and what is missing.
function ort.available()
  local f = io.open(ort.DIR .. "/node_modules/onnxruntime-node/package.json")
  if not f then
    return false, "ONNX Runtime is not installed: run scripts/tools/install_deps.sh (it runs " ..
        "`npm ci --ignore-scripts` in " .. ort.DIR .. "; needs Node.js and npm)"
  end
  f:close()
  local code, out = run(ort.NODE .. " --version")
  if code ~= 0 then
    return false, "cannot run Node.js ('" .. ort.NODE .. " --version'): " .. out
  end
  return true
end

-- Writes values (a flat or nested table of numbers, or a lopper tensor) as float32.
function ort.write_f32(path, values)
  if type(values) ~= "table" then values = values:totable() end
  values = flatten(values)
  local f = assert(io.open(path, "wb"))
  for lo = 1, #values, CHUNK do
    local hi = math.min(lo + CHUNK - 1, #values)
    f:write(string.pack("<" .. string.rep("f", hi - lo + 1), table.unpack(values, lo, hi)))
  end
  assert(f:close())
end

local function read_packed(path, fmt)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  assert(#s % 4 == 0, path .. ": not a whole number of 4-byte values")
  local out, n = {}, #s // 4
  for lo = 1, n, CHUNK do
    local hi = math.min(lo + CHUNK - 1, n)
    local vals = {string.unpack("<" .. string.rep(fmt, hi - lo + 1), s, 4 * (lo - 1) + 1)}
    for k = 1, hi - lo + 1 do out[lo + k - 1] = vals[k] end
  end
  return out
end

function ort.read_f32(path) return read_packed(path, "f") end
function ort.read_i32(path) return read_packed(path, "i4") end

local function json(v)
  if type(v) == "table" then
    if #v > 0 or next(v) == nil then
      local parts = {}
      for i, x in ipairs(v) do parts[i] = json(x) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local parts = {}
    for k, x in pairs(v) do parts[#parts + 1] = json(tostring(k)) .. ":" .. json(x) end
    table.sort(parts)
    return "{" .. table.concat(parts, ",") .. "}"
  elseif type(v) == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c) return ("\\u%04x"):format(c:byte()) end) .. '"'
  end
  return tostring(v)
end

-- Runs the jobs (see run.js: model, input, shape, output, batch, argmax) in one Node
-- process; raises with run.js's message when one fails.  opts.threads: ONNX Runtime's
-- intra-op threads (default 1).  Returns the seconds each job's inference took.
function ort.run(jobs, opts)
  local ok, why = ort.available()
  assert(ok, why)
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(json{jobs = jobs, threads = opts and opts.threads or 1})
  f:close()
  local code, out = run(("%s %s/run.js %s"):format(ort.NODE, ort.DIR, file))
  os.remove(file)
  assert(code == 0, "ONNX Runtime (tests/ort/run.js) failed:\n" .. out)
  local seconds = {}
  for s in out:gmatch('"seconds":([%d.e+-]+)') do seconds[#seconds + 1] = tonumber(s) end
  return seconds
end

-- Classifies the images of data set ds with net in Lopper and, saved as ONNX at path,
-- in ONNX Runtime, `batch` images at a time (default 250), with opts.threads.  Returns
-- {lopper = {class...}, ort = {class...}, labels = {...}, max_err = the largest
-- difference of the two's logits relative to max(1, max |Lopper's logits|)}; classes
-- are 0-based, the first largest logit wins.
function ort.classify(net, path, ds, opts)
  opts = opts or {}
  local batch, n = opts.batch or 250, #ds
  local images, logits, classes = os.tmpname(), os.tmpname(), os.tmpname()
  local f = assert(io.open(images, "wb"))
  local r = {lopper = {}, labels = {}}
  local mine = {}
  for lo = 1, n, batch do
    local idx = {}
    for i = lo, math.min(lo + batch - 1, n) do idx[#idx + 1] = i end
    local x, labels = ds:batch(idx)
    for _, row in ipairs(net:forward(x):totable()) do
      local best = 1
      for k = 2, #row do if row[k] > row[best] then best = k end end
      r.lopper[#r.lopper + 1] = best - 1
      for _, v in ipairs(row) do mine[#mine + 1] = v end
    end
    table.move(labels, 1, #labels, #r.labels + 1, r.labels)
    local values = flatten(x:totable())
    for a = 1, #values, CHUNK do
      local b = math.min(a + CHUNK - 1, #values)
      f:write(string.pack("<" .. string.rep("f", b - a + 1), table.unpack(values, a, b)))
    end
    x:close()
  end
  assert(f:close())
  local shape = ds:shape()
  table.insert(shape, 1, n)
  ort.run({{model = path, input = images, shape = shape, batch = batch, output = logits,
            argmax = classes}}, opts)
  r.ort = ort.read_i32(classes)
  local theirs = ort.read_f32(logits)
  for _, file in ipairs{images, logits, classes} do os.remove(file) end
  assert(#theirs == #mine, "ONNX Runtime gave another number of logits")
  local diff, scale = 0, 1
  for i = 1, #mine do
    diff = math.max(diff, math.abs(theirs[i] - mine[i]))
    scale = math.max(scale, math.abs(mine[i]))
  end
  r.max_err = diff / scale
  return r
end

return ort
