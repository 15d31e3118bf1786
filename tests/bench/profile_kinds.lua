-- profile_kinds.lua - a training step at batch 64 split by layer kind, Lopper against
-- PyTorch on the same ONNX file (tests/bench/torch_kinds.py): where the engine trails.
-- The per-kind sums of the engine come from net:time{train = true} (each node's
-- fastest forward and backward pass), PyTorch's from its profiler (operators' self
-- time per step; the profiler slows its step a little).  Writes nothing.
--
--   build/lopper tests/bench/profile_kinds.lua build/bench/resnet-small.onnx
local lop = require "lopper"

local opt = lop.options(arg, {
  steps = {default = 5, type = "int", min = 1, help = "timed training steps per side"},
  torch = {default = true, help = "compare with PyTorch (/usr/bin/python3 with torch)"},
}, {description = "A training step at batch 64 by layer kind, Lopper and PyTorch.",
    positional = "MODEL.onnx"})
if #opt ~= 1 then error("expected one ONNX file", 0) end

local net = lop.load(opt[1])
local step, fwd, bwd = net:time{batch = 64, reps = opt.steps, train = true}
local mine = {}
for _, nd in ipairs(net:nodes()) do
  local k = mine[nd.kind] or {0, 0}
  k[1], k[2] = k[1] + fwd[nd.name], k[2] + bwd[nd.name]
  mine[nd.kind] = k
end

local theirs, their_step = {}, nil
if opt.torch then
  local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
  local p = io.popen(("/usr/bin/python3 %storch_kinds.py '%s' %d"):format(here, opt[1], opt.steps))
  for line in p:lines() do
    local kind, f, b = line:match("^kind (%S+) (%S+) (%S+)$")
    if kind then theirs[kind] = {tonumber(f), tonumber(b)} end
    their_step = tonumber(line:match("^step (%S+)$")) or their_step
  end
  if not p:close() or not their_step then error("torch_kinds.py failed", 0) end
end

local kinds = {}
for k in pairs(mine) do if k ~= "input" then kinds[#kinds + 1] = k end end
table.sort(kinds, function(a, b) return mine[a][1] + mine[a][2] > mine[b][1] + mine[b][2] end)
print(("%s, training step at batch 64, ms (forward / backward)"):format(opt[1]))
print(("%-16s %18s %18s"):format("kind", "Lopper", "PyTorch"))
local function cell(t) return t and ("%7.1f / %7.1f"):format(t[1], t[2]) or "-" end
for _, k in ipairs(kinds) do print(("%-16s %18s %18s"):format(k, cell(mine[k]), cell(theirs[k]))) end
print(("%-16s %18.1f %18s"):format("whole step", step,
      their_step and ("%.1f"):format(their_step) or "-"))
