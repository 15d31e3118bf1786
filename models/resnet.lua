-- resnet.lua - the CIFAR-style ResNet reference models (He et al. 2016, section 4.2)
-- for Fashion-MNIST padded to 1x32x32: the multi-branch subject of the pruning
-- recipes.  conv3x3 1->16 + BN + ReLU, three stages of n = (depth - 2) / 6 basic
-- blocks with 16, 32 and 64 channels (stages 2 and 3 start with stride 2), global
-- average pooling and one linear layer.  A block is conv3x3(stride s)-BN-ReLU-
-- conv3x3-BN, plus a shortcut that is the identity, or a 1x1 conv with stride 2 + BN
-- where the shape changes; then add and ReLU.
--
--   local resnet = dofile("models/resnet.lua")   -- or require "models.resnet"
--   local net = resnet{depth = 20, classes = 10, seed = 1, input = {1, 32, 32}}
--
-- Node names: conv1 bn1 relu1; per block s<stage>b<block>_ conv1 bn1 relu1 conv2
-- bn2 [down downbn] add relu; then gap and fc.  depth 20 and 56 are the reference
-- models (models/resnet20.lua and models/resnet56.lua fix it).
local lop = require "lopper"

local OPTIONS = {depth = true, classes = true, seed = true, input = true}

local function check_int(v, name, lo)
  if math.type(v) ~= "integer" or v < lo then
    error(("resnet: %s must be an integer >= %d, got %s"):format(name, lo, tostring(v)), 3)
  end
end

return function(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("resnet: expected a table of options", 2) end
  for k in pairs(opts) do   -- a misspelt option must not silently build the default
    if not OPTIONS[k] then error(("resnet: unknown option '%s'"):format(tostring(k)), 2) end
  end
  local depth = opts.depth or 20
  local classes = opts.classes or 10
  local seed = opts.seed or 1
  local input = opts.input or {1, 32, 32}
  if math.type(depth) ~= "integer" or depth < 8 or (depth - 2) % 6 ~= 0 then
    error("resnet: depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110), got " .. tostring(depth), 2)
  end
  check_int(classes, "classes", 2)
  check_int(seed, "seed", 0)

  local net = lop.net{input = input, seed = seed}
  local x = net:nodes()[1].name
  x = net:conv2d("conv1", x, {out = 16, kernel = 3, stride = 1, pad = 1, bias = false})
  x = net:batchnorm("bn1", x)
  x = net:relu("relu1", x)
  local channels = 16
  for s, width in ipairs({16, 32, 64}) do
    for b = 1, (depth - 2) // 6 do
      local p = ("s%db%d_"):format(s, b)
      local stride = (s > 1 and b == 1) and 2 or 1
      local y = net:conv2d(p .. "conv1", x, {out = width, kernel = 3, stride = stride, pad = 1, bias = false})
      y = net:batchnorm(p .. "bn1", y)
      y = net:relu(p .. "relu1", y)
      y = net:conv2d(p .. "conv2", y, {out = width, kernel = 3, stride = 1, pad = 1, bias = false})
      y = net:batchnorm(p .. "bn2", y)
      local shortcut = x
      if stride ~= 1 or channels ~= width then
        shortcut = net:conv2d(p .. "down", x, {out = width, kernel = 1, stride = stride, pad = 0, bias = false})
        shortcut = net:batchnorm(p .. "downbn", shortcut)
      end
      x = net:add(p .. "add", {y, shortcut})
      x = net:relu(p .. "relu", x)
      channels = width
    end
  end
  x = net:global_avgpool("gap", x)
  net:linear("fc", x, {out = classes})
  return net
end
