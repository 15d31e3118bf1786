-- lasso_vgg16.lua - Channel Pruning (He et al., ICCV 2017) on VGG-16: the whole model
-- layer by layer, selecting each layer's input channels by LASSO and refitting the
-- layer by least squares, with inputs X from the network pruned so far and targets Y
-- from the ORIGINAL network, so each step also corrects the error accumulated
-- upstream.  Per-layer keep ratios hit a FLOPs target (--speedup 2 or 4): deeper
-- layers are kept wider, as in the paper, by one shared scale found by bisection.
--
--   build/lopper scripts/lasso_vgg16.lua --speedup 4
local lop = require "lopper"

local r = lop.recipe.start(arg, {
  solver = {default = "lasso"},
  speedup = {default = 2, type = "number", min = 1, exclusive_min = true,
             help = "target reduction of the whole network's FLOPs"},
  finetune = {default = 0},
}, "He et al.'s LASSO channel pruning of VGG-16 to a FLOPs target, layer by layer.")

-- conv_k's filters are conv_{k+1}'s inputs; later layers are harder to prune, so their
-- ratio is stretched towards 1 by WIDER.
local NEXT = {"conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1",
              "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"}
local WIDER = {1, 1, 1, 1, 1.1, 1.1, 1.1, 1.25, 1.25, 1.25, 1.5, 1.5}

local function ratios(scale)
  local k = {}
  for i = 1, #NEXT do k[i] = math.min(1, scale * WIDER[i]) end
  return k
end

-- FLOPs after keeping ratio k[i] of each layer's channels (measured on a copy).
local function flops_with(k)
  local net = r.original:clone()
  for i, name in ipairs(NEXT) do
    local g = net:group_of(net:node(name):inputs()[1])
    local keep = {}
    for c = 1, math.max(1, math.ceil(k[i] * g.channels - 1e-9)) do keep[c] = c end
    net:prune(g, keep)
  end
  local f = net:flops()
  net:close()
  return f
end

local target = r.before.flops / r.opt.speedup
local lo, hi = 0.01, 1
for _ = 1, 30 do
  local mid = (lo + hi) / 2
  if flops_with(ratios(mid)) > target then hi = mid else lo = mid end
end
local keep = ratios(lo)
print(("keep ratios for %.1fx fewer FLOPs: %s"):format(r.opt.speedup,
      table.concat((function() local t = {} for i, v in ipairs(keep) do
        t[i] = ("%s %.2f"):format(NEXT[i], v) end return t end)(), ", ")))

for i, consumer in ipairs(NEXT) do
  print(("layer %d/%d"):format(i, #NEXT))
  r:prune_input_of(consumer, keep[i], r.original)
  r:finetune(r.opt.finetune, "after " .. consumer)
end
print("final fine-tune")
r:finetune(r.opt.final, "final")
r:finish()
