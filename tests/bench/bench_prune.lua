-- bench_prune.lua - does pruning buy measured speed?  Prunes every prunable channel
-- group of vgg16 (width 0.5) and resnet20 to half its channels and compares params,
-- FLOPs and measured forward latency at batch 1 and 64 before and after; then the
-- rate (GFLOP/s) of one 3x3 convolution by width, which is why the speed-up falls
-- short of the FLOPs cut: thin products run slower per FLOP.  Part of `make bench`;
-- numbers are reported, not asserted (the machine is shared and noisy).
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

print("one 3x3 convolution, C -> C channels, batch 64: GFLOP/s (forward)")
local widths = {16, 32, 64, 128, 256}
local header = {"map   "}
for _, c in ipairs(widths) do header[#header + 1] = ("C=%-5d"):format(c) end
print(table.concat(header, " "))
for _, side in ipairs{32, 16, 8, 4} do
  local row = {("%2dx%-2d "):format(side, side)}
  for _, c in ipairs(widths) do
    local net = lop.net{input = {c, side, side}}
    net:conv2d("conv", "input", {out = c, kernel = 3, pad = 1, bias = false})
    local ms = net:time{batch = 64, reps = opt.reps}
    row[#row + 1] = ("%-7.1f"):format(64 * net:flops() / (ms * 1e6))
  end
  print(table.concat(row, " "))
end
