-- resnet.lua - multi-branch pruning of ResNet-20/56: only the inner channels of each
-- basic block are pruned (the first conv's filters = the second conv's inputs), as
-- ThiNet does for residual networks; block outputs keep their width, so every add and
-- shortcut stays intact.  One keep ratio for all blocks, found by bisection to hit the
-- FLOPs target (--speedup), or given with --keep.  --residual adds He et al.'s
-- handling: each block's second conv is refitted against the ORIGINAL network's block
-- output minus what the shortcut now delivers (targets from the original, so error
-- accumulated upstream is corrected too).
--
--   build/lopper scripts/resnet.lua --model models/resnet20.lop --speedup 2
--   build/lopper scripts/resnet.lua --model models/resnet20.lop --speedup 2 --solver lasso --residual
local lop = require "lopper"

local r = lop.recipe.start(arg, {
  model = {default = "models/resnet20.lop"},
  speedup = {type = "number", min = 1, exclusive_min = true, default_text = "from --keep",
             help = "target reduction of the whole network's FLOPs (overrides --keep)"},
  residual = {default = false,
              help = "He et al.: refit each block's last conv to the original block sum"},
}, "Prune the inner channels of every ResNet block, layer by layer.")

-- The second conv of every block: its input channels are the block's inner channels.
local inner = {}
for _, h in ipairs(r.net:nodes()) do
  if h.kind == "conv2d" and h.name:match("^s%d+b%d+_conv2$") then inner[#inner + 1] = h.name end
end
if #inner == 0 then error("no ResNet blocks (sSbB_conv2 nodes) in " .. r.opt.model, 0) end

local frac = r.opt.keep
if r.opt.speedup then
  local target = r.before.flops / r.opt.speedup
  local k, flops = r:keep_for_flops(inner, target)
  frac = k[1]
  if flops > target * 1.001 then
    print(("note: pruning inner channels alone cannot reach %.2fx fewer FLOPs"):format(
      r.opt.speedup))
  end
end
print(("keeping %.3f of the inner channels of %d blocks"):format(frac, #inner))
for i, name in ipairs(inner) do
  print(("block %d/%d"):format(i, #inner))
  r:prune_input_of(name, frac, r.opt.residual and {reference = r.original, residual = true})
  r:finetune(r.opt.finetune, "after " .. name)
end
print("final fine-tune")
r:finetune(r.opt.final, "final")
r:finish()
