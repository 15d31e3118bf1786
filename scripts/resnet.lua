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
-- One keep ratio for every pruned layer, found by bisection to hit the FLOPs target
-- (--speedup), or given with --keep.
--
--   build/lopper scripts/resnet.lua --model models/resnet20.lop --speedup 2
--   build/lopper scripts/resnet.lua --model models/resnet20.lop --speedup 2 --solver lasso --residual
local lop = require "lopper"

local r = lop.recipe.start(arg, {
  model = {default = "models/resnet20.lop"},
  speedup = {type = "number", min = 1, exclusive_min = true, default_text = "from --keep",
             help = "target reduction of the whole network's FLOPs (overrides --keep)"},
  residual = {default = false,
              help = "He et al.: select each block's input channels too, and refit its "
                     .. "last conv to the original block sum"},
}, "Prune every ResNet block's inner channels (and with --residual its inputs), block by block.")

-- Per block: its first conv (reads the block input) and second conv (reads the inner
-- channels), by the builder's names.
local blocks = {}
for _, h in ipairs(r.net:nodes()) do
  local stem = h.kind == "conv2d" and h.name:match("^(s%d+b%d+)_conv2$")
  if stem then blocks[#blocks + 1] = {first = stem .. "_conv1", second = h.name} end
end
if #blocks == 0 then error("no ResNet blocks (sSbB_conv2 nodes) in " .. r.opt.model, 0) end

-- What gets pruned, in order: the input channels of these convs.
local steps = {}
for _, b in ipairs(blocks) do
  if r.opt.residual then
    r.net:insert_pick(b.first)
    r.original:insert_pick(b.first)   -- an identity pick: same outputs, same targets
    steps[#steps + 1] = {conv = b.first, how = {reference = r.original}}
  end
  steps[#steps + 1] = {conv = b.second,
                       how = r.opt.residual and {reference = r.original, residual = true}}
end

local convs = {}
for i, s in ipairs(steps) do convs[i] = s.conv end
local frac = r.opt.keep
if r.opt.speedup then
  local target = r.before.flops / r.opt.speedup
  local k, flops = r:keep_for_flops(convs, target)
  frac = k[1]
  if flops > target * 1.001 then
    print(("note: these layers alone cannot reach %.2fx fewer FLOPs"):format(r.opt.speedup))
  end
end
print(("keeping %.3f of the input channels of %d convolutions in %d blocks"):format(
  frac, #steps, #blocks))
for i, s in ipairs(steps) do
  print(("step %d/%d"):format(i, #steps))
  r:prune_input_of(s.conv, frac, s.how)
  r:finetune(r.opt.finetune, "after " .. s.conv)
end
print("final fine-tune")
r:finetune(r.opt.final, "final")
r:finish()
