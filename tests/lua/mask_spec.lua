-- mask_spec.lua - channel masks: masked channels output exactly zero, stay exactly
-- zero through SGD steps (momentum, weight decay and all), and removing them
-- physically leaves the network's output where it was; bad masks are refused and
-- change nothing.
local lop = require "lopper"
local vgg16 = dofile("models/vgg16.lua")
local resnet20 = dofile("models/resnet20.lua")

local function odd_channels(n)
  local keep = {}
  for c = 1, n, 2 do keep[#keep + 1] = c end
  return keep
end

local function max_abs_diff(a, b)
  local x, y = a:totable(), b:totable()
  local worst = 0
  for i = 1, #x do
    for j = 1, #x[i] do worst = math.max(worst, math.abs(x[i][j] - y[i][j])) end
  end
  return worst
end

-- Sum of |entries| of the masked (even) rows of a parameter along its first axis.
local function masked_mass(t)
  local rows = t:totable()
  local s = 0
  for r = 2, #rows, 2 do
    local v = rows[r]
    if type(v) == "number" then
      s = s + math.abs(v)
    else
      local stack = {v}
      while #stack > 0 do
        local top = table.remove(stack)
        for _, e in ipairs(top) do
          if type(e) == "table" then stack[#stack + 1] = e else s = s + math.abs(e) end
        end
      end
    end
  end
  return s
end

local data = lop.data.fashion_mnist{train_size = 128, test_size = 16}

describe("net:mask", function()
  it("keeps masked channels exactly zero through training, then removes them", function()
    local net = vgg16{width = 0.25, seed = 3}
    net:mask("conv3_1", odd_channels(64))
    net:mask("fc6", odd_channels(128))
    local w = net:node("conv3_1"):weight()
    local before_w = w:get(1, 1, 1, 1)
    lop.train(net, data.train, {epochs = 2, batch = 32, lr = 0.05, weight_decay = 5e-4,
                                progress = false})
    for _, name in ipairs{"conv3_1", "bn3_1", "fc6"} do
      local h = net:node(name)
      assert.are.equal(0, masked_mass(h:weight()), name .. " weight")
      if h:bias() then assert.are.equal(0, masked_mass(h:bias()), name .. " bias") end
    end
    assert.are_not.equal(before_w, w:get(1, 1, 1, 1))   -- kept channels did train
    local x = data.test:batch({1, 2, 3, 4})
    local out = net:forward(x)
    assert.are.equal(96, net:remove_masked())           -- 32 + 64 channels
    assert.are.same({32, 8, 8}, net:node("conv3_1"):shape())
    assert.are.same({64}, net:node("fc6"):shape())
    assert.is_true(max_abs_diff(out, net:forward(x)) < 1e-5)
    assert.are.equal(0, net:remove_masked())            -- masks are gone
  end)

  it("masks a ResNet stage group across its shortcut", function()
    local net = resnet20{seed = 2}
    net:mask("s2b1_conv2", odd_channels(32))
    lop.train(net, data.train, {epochs = 1, batch = 32, lr = 0.1, progress = false})
    for _, name in ipairs{"s2b1_bn2", "s2b1_downbn", "s2b2_bn2", "s2b3_bn2"} do
      assert.are.equal(0, masked_mass(net:node(name):weight()), name)
      assert.are.equal(0, masked_mass(net:node(name):bias()), name)
    end
    local x = data.test:batch({5, 6})
    local out = net:forward(x)
    assert.are.equal(16, net:remove_masked())
    assert.is_true(max_abs_diff(out, net:forward(x)) < 1e-5)
  end)

  it("clears a mask when given no keep list", function()
    local net = vgg16{width = 0.25, seed = 4}
    net:mask("conv2_1", {1})
    net:mask("conv2_1")
    assert.are.equal(0, net:remove_masked())
    assert.are.same({32, 16, 16}, net:node("conv2_1"):shape())
  end)

  it("refuses bad masks and changes nothing", function()
    local net = vgg16{width = 0.25, seed = 5}
    local x = data.test:batch({1, 2})
    local out = net:forward(x)
    local cases = {
      {"fc8", {1}},             -- the logits
      {"input", {1}},           -- the input
      {"conv1_1", {}},          -- keeps nothing
      {"conv1_1", {0}},
      {"conv1_1", {17}},
      {"conv1_1", {1, 1}},
      {"conv1_1", {"1"}},
      {"nope", {1}},
      {42, {1}},
    }
    for i, c in ipairs(cases) do
      local ok, err = pcall(net.mask, net, c[1], c[2])
      assert.is_false(ok, "case " .. i)
      assert.is_true(#tostring(err) > 0)
    end
    assert.are.equal(0, max_abs_diff(out, net:forward(x)))
    assert.are.equal(0, net:remove_masked())
  end)
end)
