-- fold_batchnorm_spec.lua - net:fold_batchnorm() on ResNet-20 with batchnorm
-- statistics and affine terms set away from their defaults: every batchnorm folds into
-- the conv before it (the count returned, the names gone, the convs keep theirs and
-- gain a bias), evaluation gives the same outputs, the folded net still trains, and a
-- net with nothing to fold is left alone.
local lop = require "lopper"
local util = require "tests.lua.util"

-- Every value of tensor t uniform in [lo, hi).
local function randomize(t, lo, hi)
  local v = t:totable()
  for i = 1, #v do v[i] = lo + (hi - lo) * math.random() end
  t:copy(lop.tensor(v))
end

local function random_input(n, shape)
  local c, h, w = shape[1], shape[2], shape[3]
  local x = lop.tensor(n, c, h, w)
  for b = 1, n do for k = 1, c do for i = 1, h do for j = 1, w do
    x:set(2 * math.random() - 1, b, k, i, j)
  end end end end
  return x
end

describe("net:fold_batchnorm", function()
  it("folds every batchnorm of ResNet-20 into its conv; evaluation is unchanged", function()
    math.randomseed(18)
    local net = dofile("models/resnet20.lua"){}
    local convs, bns = {}, {}
    for _, node in ipairs(net:nodes()) do
      if node.kind == "conv2d" then convs[#convs + 1] = node.name end
      if node.kind == "batchnorm" then
        bns[#bns + 1] = node.name
        randomize(node:param("weight"), 0.5, 1.5)
        randomize(node:param("bias"), -0.5, 0.5)
        randomize(node:param("running_mean"), -0.2, 0.2)
        randomize(node:param("running_var"), 0.5, 2)
      end
    end
    assert.are.equal(#convs, #bns)   -- each conv of ResNet-20 has its batchnorm
    local x = random_input(2, net:input_shape())
    local want = net:forward(x):totable()
    local size, params = net:size(), net:params()
    local bn_params = 0
    for _, name in ipairs(bns) do bn_params = bn_params + net:node(name):params() end
    local conv_bias = 0
    for _, name in ipairs(convs) do
      conv_bias = conv_bias + (net:node(name):bias() and 0 or net:node(name):shape()[1])
    end

    assert.are.equal(#bns, net:fold_batchnorm())
    assert.are.equal(size - #bns, net:size())
    assert.are.equal(params - bn_params + conv_bias, net:params())
    for _, name in ipairs(bns) do assert.is_false(net:has(name)) end
    for _, name in ipairs(convs) do assert.is_truthy(net:node(name):bias()) end
    local err = util.rel_err(net:forward(x):totable(), want)
    assert.is_true(err <= 1e-5, ("relative error %g"):format(err))

    -- a different model, but a trainable one: a step changes the biases
    local before = net:node("conv1"):bias():totable()
    local data = lop.data.tensor(random_input(8, net:input_shape()), {0, 1, 2, 3, 4, 5, 6, 7}, 10)
    lop.train(net, data, {epochs = 1, batch = 4, lr = 0.01, progress = false})
    assert.are_not.same(before, net:node("conv1"):bias():totable())

    assert.are.equal(0, net:fold_batchnorm())   -- nothing left to fold
    assert.are.equal(size - #bns, net:size())
  end)

  it("leaves a batchnorm after a pool or a shared conv, and stale handles raise", function()
    local net = lop.net{input = {2, 6, 6}}
    net:conv2d("c", "input", {out = 3, pad = 1})
    net:relu("r", "c")
    net:batchnorm("bn", "c")
    net:add("sum", {"r", "bn"})
    net:maxpool("mp", "sum", {kernel = 2})
    net:batchnorm("bn2", "mp")
    local handle = net:node("bn2")
    assert.are.equal(0, net:fold_batchnorm())
    assert.are.same({"input", "c", "r", "bn", "sum", "mp", "bn2"}, util.names(net))
    assert.are.equal("bn2", handle.name)   -- nothing changed: the handle holds
    net:conv2d("c2", "bn2", {out = 2, bias = false})
    net:batchnorm("bn3", "c2")
    assert.are.equal(1, net:fold_batchnorm())
    assert.has_error(function() return handle.kind end)
    assert.are.same({"input", "c", "r", "bn", "sum", "mp", "bn2", "c2"}, util.names(net))
  end)
end)
