-- profile_latency.lua - a forward pass convolution by convolution, Lopper against
-- PyTorch on the same ONNX file (tests/bench/torch_layers.py): where a latency figure
-- of `make bench` is won or lost.  Lopper's columns are each node's fastest time in
-- net:time, eager and frozen (net:freeze(), the deployment form), the two timed in
-- alternation; PyTorch's each convolution run alone on the input shape it sees in the
-- network.  Writes nothing.
--
--   build/lopper tests/bench/profile_latency.lua build/bench/resnet18.onnx
local lop = require "lopper"

local opt = lop.options(arg, {
  batch = {default = 1, type = "int", min = 1, help = "images per timed pass"},
  rounds = {default = 6, type = "int", min = 1, help = "alternating rounds, eager and frozen"},
  torch = {default = true, help = "compare with PyTorch (/usr/bin/python3 with torch)"},
}, {description = "A forward pass by convolution, Lopper eager and frozen and PyTorch.",
    positional = "MODEL.onnx"})
if #opt ~= 1 then error("expected one ONNX file", 0) end

local net = lop.load(opt[1])
local frozen = net:clone():freeze()
local reps = opt.batch == 1 and 10 or 2
local whole, fastest = {math.huge, math.huge}, {{}, {}}
for _ = 1, opt.rounds do
  for k, n in ipairs{net, frozen} do
    local ms, per_node = n:time{batch = opt.batch, reps = reps}
    whole[k] = math.min(whole[k], ms)
    for name, t in pairs(per_node) do
      fastest[k][name] = math.min(fastest[k][name] or math.huge, t)
    end
  end
end

local theirs, their_whole = {}, nil
if opt.torch then
  local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
  local p = io.popen(("/usr/bin/python3 %storch_layers.py '%s' %d"):format(here, opt[1],
                                                                           opt.batch))
  for line in p:lines() do
    local name, ms = line:match("^conv (.+) (%S+)$")
    if name then theirs[name] = tonumber(ms) end
    their_whole = tonumber(line:match("^whole (%S+)$")) or their_whole
  end
  if not p:close() or not their_whole then error("torch_layers.py failed", 0) end
end

local function cell(t) return t and ("%9.3f"):format(t) or ("%9s"):format("-") end
print(("%s, forward pass at batch %d, ms (threads: %s)"):format(opt[1], opt.batch,
      os.getenv("LOP_THREADS") or "one per core"))
print(("%-46s %9s %9s %9s"):format("convolution", "eager", "frozen", "PyTorch"))
local sums = {0, 0, 0}
for _, nd in ipairs(net:nodes()) do
  if nd.kind == "conv2d" then
    local row = {fastest[1][nd.name], fastest[2][nd.name], theirs[nd.name]}
    for i = 1, 3 do sums[i] = sums[i] + (row[i] or 0) end
    print(("%-46s %s %s %s"):format(nd.name, cell(row[1]), cell(row[2]), cell(row[3])))
  end
end
print(("%-46s %s %s %s"):format("all convolutions", cell(sums[1]), cell(sums[2]),
      opt.torch and cell(sums[3]) or cell(nil)))
print(("%-46s %s %s %s"):format("whole pass", cell(whole[1]), cell(whole[2]),
      cell(their_whole)))
