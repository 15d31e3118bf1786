-- bench_prune.lua - does pruning buy measured speed?  Prunes every prunable channel
-- group of vgg16 (width 0.5) and resnet20 to half its channels and compares params,
-- FLOPs and measured forward latency at batch 1 and 64 before and after.  Part of
-- `make bench`; numbers are reported, not asserted (the machine is shared and noisy).
local lop = require "lopper"

local opt = lop.options(arg, {
  reps = {default = 20, type = "int", min = 3, help = "timed runs per measurement"},
}, {description = "Latency of the reference models before and after halving every group."})

local function halve(net)
  local pruned = net:clone()
  for _, g in ipairs(net:groups()) do
    if g.prunable then
      local keep = {}
      for c = 1, math.max(1, g.channels // 2) do keep[c] = c end
      pruned:prune(pruned:group_of(g.producer), keep)
    end
  end
  return pruned
end

for _, model in ipairs{"vgg16", "resnet20"} do
  local net = dofile("models/" .. model .. ".lua"){}
  local small = halve(net)
  local table_text, a, b = lop.compare(net, small, {reps = opt.reps,
                                                    names = {model, "halved"}})
  print(table_text)
  local flops_ratio = a.flops / b.flops
  print(("latency speed-up / FLOPs reduction: batch 1 %.2f, batch 64 %.2f\n"):format(
    a.ms1 / b.ms1 / flops_ratio, a.ms64 / b.ms64 / flops_ratio))
end
