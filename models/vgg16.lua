-- vgg16.lua - the VGG-16 reference model, sized for Fashion-MNIST padded to 1x32x32.
-- It is the single-branch subject of the pruning recipes, so it keeps VGG-16's shape
-- and node names (conv3_2, fc6, ...): 13 conv3x3 + BN + ReLU in five blocks with
-- max-pooling after blocks 1-4 (none after block 5, whose map is 2x2), then VGG's
-- fully connected head of three linear layers with ReLU and dropout.  The head is
-- deliberately the paper's, so replacing it by global average pooling is a real step.
--
--   local vgg16 = dofile("models/vgg16.lua")   -- or require "models.vgg16"
--   local net = vgg16{width = 0.5, classes = 10, seed = 1, input = {1, 32, 32}}
--   vgg16.conv_names   -- {"conv1_1", "conv1_2", "conv2_1", ..., "conv5_3"}
--
-- width multiplies every channel count (64..512 and the 512-wide head); the default
-- 0.5 is the shipped model.  Convolutions have no bias: BatchNorm follows each.
local lop = require "lopper"

local OPTIONS = {width = true, classes = true, seed = true, input = true}

local BLOCKS = {{64, 64}, {128, 128}, {256, 256, 256}, {512, 512, 512}, {512, 512, 512}}

local vgg16 = {}

-- The 13 convolutions' names in network order - the layer list the pruning recipes
-- walk (pruning conv k's filters is pruning conv k+1's input channels).
vgg16.conv_names = {}
for b, widths in ipairs(BLOCKS) do
  for i = 1, #widths do vgg16.conv_names[#vgg16.conv_names + 1] = ("conv%d_%d"):format(b, i) end
end

local function check_int(v, name, lo)
  if math.type(v) ~= "integer" or v < lo then
    error(("vgg16: %s must be an integer >= %d, got %s"):format(name, lo, tostring(v)), 3)
  end
end

-- vgg16{...} builds the network (the table is callable, so it reads as a function).
local function build(_, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("vgg16: expected a table of options", 2) end
  for k in pairs(opts) do   -- a misspelt option must not silently build the default
    if not OPTIONS[k] then error(("vgg16: unknown option '%s'"):format(tostring(k)), 2) end
  end
  local width = opts.width or 0.5
  local classes = opts.classes or 10
  local seed = opts.seed or 1
  local input = opts.input or {1, 32, 32}
  if type(width) ~= "number" or not (width > 0 and width <= 4) then
    error("vgg16: width must be a number in (0, 4], got " .. tostring(width), 2)
  end
  check_int(classes, "classes", 2)
  check_int(seed, "seed", 0)
  local function scaled(c) return math.max(1, math.floor(c * width + 0.5)) end

  local net = lop.net{input = input, seed = seed}
  local x = net:nodes()[1].name
  for b, widths in ipairs(BLOCKS) do
    for i, c in ipairs(widths) do
      local id = b .. "_" .. i
      x = net:conv2d("conv" .. id, x, {out = scaled(c), kernel = 3, stride = 1, pad = 1, bias = false})
      x = net:batchnorm("bn" .. id, x)
      x = net:relu("relu" .. id, x)
    end
    if b < #BLOCKS then
      x = net:maxpool("pool" .. b, x, {kernel = 2, stride = 2})
    end
  end
  x = net:flatten("flatten", x)
  for _, l in ipairs({6, 7}) do
    x = net:linear("fc" .. l, x, {out = scaled(512)})
    x = net:relu("relu" .. l, x)
    x = net:dropout("drop" .. l, x, {p = 0.5})
  end
  net:linear("fc8", x, {out = classes})
  return net
end

return setmetatable(vgg16, {__call = build})
