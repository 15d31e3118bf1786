-- thinet_vgg16.lua - ThiNet (Luo et al., ICCV 2017) on VGG-16, single-branch and
-- layer by layer: for each of the first ten convolutions, sample the next layer's
-- inputs and outputs from the current (already pruned and fine-tuned) network, keep
-- the channels whose removal the next layer notices least (greedy, on the Gram of the
-- per-channel contributions), refit the next layer's weights to them by least squares
-- (--refit scale: the paper's one factor per kept channel), remove the rest from both
-- layers, and fine-tune briefly; fine-tune longer at the end.
--
--   build/lopper scripts/thinet_vgg16.lua                  # keep 0.5, as in the paper
--   build/lopper scripts/thinet_vgg16.lua --keep 0.3 --final 5 --out models/x.lop
--   build/lopper scripts/thinet_vgg16.lua --refit scale     # ThiNet's own refit
--   build/lopper scripts/thinet_vgg16.lua --help
local lop = require "lopper"
local vgg16 = require "models.vgg16"

local r = lop.recipe.start(arg, {}, "ThiNet on VGG-16: prune the first ten convolutions "
                           .. "one at a time, fine-tuning after each.")

-- The filters of conv1_1 .. conv4_3, one layer at a time.  A conv's filters are the
-- next conv's input channels, so that is where each step samples, selects and
-- reconstructs (--refit weights by default: all of the next conv's weights and bias).
for i = 1, 10 do   -- conv i's filters = conv i+1's inputs
  print(("layer %d/10"):format(i))
  r:prune_input_of(vgg16.conv_names[i + 1])
  r:finetune(r.opt.finetune, "after " .. vgg16.conv_names[i + 1])
end
print("final fine-tune")
r:finetune(r.opt.final, "final")
r:finish()
