-- time_nets.lua - whole-network timings for comparing two builds (docs/performance.md,
-- "Winograd"): for each model given (default models/vgg16.lop and
-- models/resnet20.lop), a training step at batch 64, a forward pass at batch 64 and at
-- batch 1, as one line each of total ms and then the per-node ms of its conv2d layers
-- (training: forward/backward).  Run two builds in alternation and keep each line's
-- fastest: `build/lopper tests/bench/time_nets.lua [model.lop ...]`.
local lop = require("lopper")

local models = {...}
if #models == 0 then models = {"models/vgg16.lop", "models/resnet20.lop"} end

local function convs(net)
  local names = {}
  for _, n in ipairs(net:nodes()) do
    if n.kind == "conv2d" then names[#names + 1] = n.name end
  end
  return names
end

for _, path in ipairs(models) do
  local net = lop.load(path)
  local names = convs(net)
  local total, fwd, bwd = net:time{batch = 64, reps = 5, train = true}
  local parts = {}
  for _, name in ipairs(names) do
    parts[#parts + 1] = string.format("%s=%.2f/%.2f", name, fwd[name], bwd[name])
  end
  print(string.format("%s train64 %.2f %s", path, total, table.concat(parts, " ")))
  for _, cfg in ipairs{{64, 5, "fwd64"}, {1, 50, "fwd1"}} do
    local t, per = net:time{batch = cfg[1], reps = cfg[2]}
    parts = {}
    for _, name in ipairs(names) do
      parts[#parts + 1] = string.format("%s=%.3f", name, per[name])
    end
    print(string.format("%s %s %.3f %s", path, cfg[3], t, table.concat(parts, " ")))
  end
  net:close()
end
