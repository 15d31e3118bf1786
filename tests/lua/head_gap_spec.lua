-- head_gap_spec.lua - ThiNet-GAP's head surgery on the shipped VGG-16: the flatten +
-- fully connected head becomes global average pooling + one linear layer, the
-- least-squares fit starts it close to the old head, and a short fine-tune brings the
-- network back to within a point of the original accuracy (on a test subset).
local lop = require "lopper"

local CHECKPOINT = "models/vgg16.lop"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

describe("net:replace_head_gap", function()
  it("refuses a network without a flatten + fully connected head", function()
    local net = dofile("models/resnet20.lua"){}
    local ok, err = pcall(net.replace_head_gap, net)
    assert.is_false(ok)
    assert.truthy(err:find("no flatten", 1, true))
    assert.are.equal(73, net:size())
  end)

  it("rebuilds the head as GAP + one linear layer named like the old output", function()
    local net = dofile("models/vgg16.lua"){width = 0.25}
    local old_params = net:params()
    local head = 0
    for _, name in ipairs{"fc6", "fc7", "fc8"} do head = head + net:node(name):params() end
    net:replace_head_gap()
    assert.is_false(net:has("fc6"))
    assert.is_false(net:has("flatten"))
    assert.are.equal("global_avgpool", net:node("gap").kind)
    local fc = net:node("fc8")
    assert.are.same({"gap"}, fc:inputs())
    assert.are.same({10, 128}, fc:weight():shape())
    assert.are.equal(old_params - head + 128 * 10 + 10, net:params())
    assert.are.same({10}, net:output_shape())
  end)

  if not exists(CHECKPOINT) then
    pending("the shipped " .. CHECKPOINT .. " (train it: docs/training.md)")
    return
  end

  it("fine-tunes back to within one point of the shipped model's accuracy #accuracy",
     function()
    local data = lop.data.fashion_mnist{train_size = 6000, test_size = 2000}
    local net = lop.load(CHECKPOINT)
    local before = lop.evaluate(net, data.test, {progress = false}).top1
    net:replace_head_gap{data = data.train, images = 2000}
    local fitted = lop.evaluate(net, data.test, {progress = false}).top1
    lop.train(net, data.train, {epochs = 1, batch = 64, lr = 0.005, crop = 2, flip = true,
                                progress = false})
    local after = lop.evaluate(net, data.test, {progress = false}).top1
    print(("# head_gap: before %.4f, least-squares head %.4f, after fine-tune %.4f")
          :format(before, fitted, after))
    assert.is_true(fitted > 0.5, "the least-squares head starts far above chance")
    assert.is_true(after >= before - 0.01)
  end)
end)
