-- lasso_vgg16.lua - Channel Pruning (He et al., ICCV 2017) on VGG-16: the whole model
-- layer by layer, selecting each layer's input channels by LASSO and refitting the
-- layer by least squares, with inputs X from the network pruned so far and targets Y
-- from the ORIGINAL network, so each step also corrects the error accumulated
-- upstream.  Per-layer keep ratios hit a FLOPs target (--speedup 2 or 4): deeper
-- layers are kept wider, as in the paper, by one shared scale found by bisection; or,
-- with --widths auto or --latency-ms, are chosen per layer for the budget (lop.widths).
--
--   build/lopper scripts/lasso_vgg16.lua --speedup 4
--   build/lopper scripts/lasso_vgg16.lua --speedup 4 --widths auto
local lop = require "lopper"
local vgg16 = require "models.vgg16"

local r = lop.recipe.start(arg, lop.recipe.budget_options({
  solver = {default = "lasso"},
  speedup = {default = 2, type = "number", min = 1, exclusive_min = true,
             help = "target reduction of the whole network's FLOPs"},
  finetune = {default = 0},
}, "deeper layers kept wider, as in the paper"),
  "He et al.'s LASSO channel pruning of VGG-16 to a FLOPs or latency target, layer by layer.")

-- conv_k's filters are conv_{k+1}'s inputs; later layers are harder to prune, so their
-- ratio is stretched towards 1 by WIDER.
local NEXT = table.move(vgg16.conv_names, 2, 13, 1, {})
local WIDER = {1, 1, 1, 1, 1.1, 1.1, 1.1, 1.25, 1.25, 1.25, 1.5, 1.5}

local keep = r:budget_fractions(NEXT, WIDER)
local shown = {}
for i, v in ipairs(keep) do shown[i] = ("%s %.2f"):format(NEXT[i], v) end
print("keep: " .. table.concat(shown, ", "))

for i, consumer in ipairs(NEXT) do
  print(("layer %d/%d"):format(i, #NEXT))
  r:prune_input_of(consumer, keep[i], {reference = r.original})
  r:finetune(r.opt.finetune, "after " .. consumer)
end
-- He et al. report accuracy by reconstruction alone, too: evaluate before fine-tuning.
print(("all layers pruned, before the final fine-tune: test top-1 %.2f%%"):format(
  100 * lop.evaluate(r.net, r.data.test, {progress = false}).top1))
print("final fine-tune")
r:finetune(r.opt.final, "final")
r:finish()
