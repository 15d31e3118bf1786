-- resnet.lua - multi-branch pruning of ResNet-20/56, block by block.
--
-- Default (ThiNet's handling): only the inner channels of each basic block are pruned
-- (the first conv's filters = the second conv's inputs); block outputs keep their
-- width, so every add and shortcut stays intact.
--
-- --residual (He et al.'s handling): as well, each block's first conv gets a channel
-- pick in front ("sampler"), so its input channels are selected and pruned while the
-- block input the shortcut reads stays whole; and each block's second conv is refitted
-- against the ORIGINAL block output minus what the shortcut now delivers.  All targets
-- come from the original network, so error accumulated upstream is corrected too.
--
-- --stages: the residual stages are pruned too - the stem or projection shortcut and
-- every block output of a stage lose the same channels, so adds, batchnorms and ReLUs
-- on the block outputs shrink as well.  Each stage's channels are selected by the sum
-- of the relative errors of every layer reading them (the stage's first convs, the
-- next stage's first conv and shortcut, or the classifier), and each of those layers
-- is refitted; every step takes its targets from the original network, and each
-- block's second conv matches the original block sum, as with --residual.
--
-- One keep ratio for every pruned layer, found by bisection to hit the FLOPs target
-- (--speedup), or given with --keep; or, with --widths auto or --latency-ms, one per
-- layer chosen for the budget (lop.widths).
--
--   build/lopper scripts/resnet.lua --model models/resnet20.lop --speedup 2
--   build/lopper scripts/resnet.lua --model models/resnet20.lop --speedup 2 --solver lasso --residual
--   build/lopper scripts/resnet.lua --model models/resnet20.lop --speedup 2 --stages
--   build/lopper scripts/resnet.lua --model models/resnet56.lop --speedup 2 --widths auto
local lop = require "lopper"

local r = lop.recipe.start(arg, lop.recipe.budget_options({
  model = {default = "models/resnet20.lop"},
  speedup = {type = "number", min = 1, exclusive_min = true, default_text = "from --keep",
             help = "target reduction of the whole network's FLOPs (overrides --keep)"},
  residual = {default = false,
              help = "He et al.: select each block's input channels too, and refit its "
                     .. "last conv to the original block sum"},
  stages = {default = false,
            help = "prune the residual stages too (stem or shortcut and block outputs "
                   .. "together), every step against the original's outputs"},
}, "one fraction for every pruned layer"),
   "Prune every ResNet block's inner channels (and with --residual its inputs, with "
   .. "--stages the residual stages), block by block.")
if r.opt.stages and r.opt.residual then
  error("--stages and --residual exclude each other: --stages prunes the block inputs as "
        .. "whole stages and matches the block sums already", 0)
end

-- Per block: its first conv (reads the block input) and second conv (reads the inner
-- channels), by the builder's names.
local blocks = {}
for _, h in ipairs(r.net:nodes()) do
  local stem = h.kind == "conv2d" and h.name:match("^(s%d+b%d+)_conv2$")
  if stem then blocks[#blocks + 1] = {first = stem .. "_conv1", second = h.name} end
end
if #blocks == 0 then error("no ResNet blocks (sSbB_conv2 nodes) in " .. r.opt.model, 0) end

-- What gets pruned, in order: the input channels of these convs (with --stages, in
-- graph order: each stage's channels, then the inner channels of its blocks).
local steps = {}
if r.opt.stages then
  local second = {}
  for _, b in ipairs(blocks) do second[b.second] = true end
  for _, e in ipairs(lop.pruner.plan(r.net, {solver = r.opt.solver})) do
    if #e.producers > 1 and e.reason then
      print(("stage %s is not pruned: %s"):format(e.producer, e.reason))
    elseif #e.producers > 1 then
      steps[#steps + 1] = {conv = e.consumer, how = {reference = r.original}}
    elseif e.consumer and second[e.consumer] then
      steps[#steps + 1] = {conv = e.consumer, how = {reference = r.original, residual = true}}
    end
  end
else
  for _, b in ipairs(blocks) do
    if r.opt.residual then
      r.net:insert_pick(b.first)
      r.original:insert_pick(b.first)   -- an identity pick: same outputs, same targets
      steps[#steps + 1] = {conv = b.first, how = {reference = r.original}}
    end
    steps[#steps + 1] = {conv = b.second,
                         how = r.opt.residual and {reference = r.original, residual = true}}
  end
end

local convs, keep = {}, {}
for i, s in ipairs(steps) do convs[i], keep[i] = s.conv, r.opt.keep end
if r.opt.speedup or r.opt.latency_ms then
  keep = r:budget_fractions(convs)
elseif r.opt.widths == "auto" then
  error("--widths auto needs a budget: --speedup or --latency-ms", 0)
end
local low, high = math.min(table.unpack(keep)), math.max(table.unpack(keep))
print(("keeping %s of the input channels of %d convolutions in %d blocks%s"):format(
  low == high and ("%.3f"):format(low) or ("%.3f-%.3f"):format(low, high), #steps, #blocks,
  r.opt.stages and " (stages included)" or ""))
for i, s in ipairs(steps) do
  print(("step %d/%d"):format(i, #steps))
  r:prune_input_of(s.conv, keep[i], s.how)
  r:finetune(r.opt.finetune, "after " .. s.conv)
end
print("final fine-tune")
r:finetune(r.opt.final, "final")
r:finish()
