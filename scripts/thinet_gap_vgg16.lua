-- thinet_gap_vgg16.lua - ThiNet-GAP: ThiNet on VGG-16's first ten convolutions (see
-- thinet_vgg16.lua), then the fully connected head is replaced by global average
-- pooling and one linear layer - fitted by least squares to the old head's logits on
-- calibration images - and the network is fine-tuned.
--
--   build/lopper scripts/thinet_gap_vgg16.lua --keep 0.5
local lop = require "lopper"
local vgg16 = require "models.vgg16"

local r = lop.recipe.start(arg, {}, "ThiNet-GAP on VGG-16: ThiNet layer by layer, then a "
                           .. "global-average-pooling head.")

local head = 0
for _, name in ipairs{"fc6", "fc7", "fc8"} do
  if r.net:has(name) then head = head + r.net:node(name):params() end
end
print(("the fully connected head holds %.1f%% of the parameters"):format(
  100 * head / r.net:params()))

-- ThiNet's steps, as in thinet_vgg16.lua: the filters of conv1_1 .. conv4_3, one layer
-- at a time, each pruned as the next conv's input channels.
for i = 1, 10 do   -- conv i's filters = conv i+1's inputs
  print(("layer %d/10"):format(i))
  r:prune_input_of(vgg16.conv_names[i + 1])
  r:finetune(r.opt.finetune, "after " .. vgg16.conv_names[i + 1])
end
r.net:replace_head_gap{data = r.data.train, images = math.min(2000, #r.data.train)}
print(("head replaced by global average pooling + %s"):format(tostring(r.net:node("fc8"))))
print("final fine-tune")
r:finetune(r.opt.final, "final")
r:finish()
