-- models_spec.lua - the reference model builders (models/vgg16.lua, models/resnet.lua
-- and its resnet20 / resnet56 wrappers) against the architectures DESIGN.md describes:
-- node names and counts, shapes, parameter and FLOP counts recomputed here by hand
-- from the layer list, the FLOP share of VGG's first ten convolutions, a finite
-- forward pass; then a smoke run of scripts/train.lua as a child process.
local lop = require "lopper"

local LOPPER = os.getenv("LOPPER") or "build/lopper"

-- Counts of a layer list described by hand: each entry is one layer with the sizes a
-- textbook formula needs.  FLOPs follow the engine's documented convention
-- (multiply-add = 2): conv 2*k*k*cin*cout*H*W, linear 2*in*out, batchnorm 2 per
-- value, relu and add 1 per output value, max-pool k*k per output value, global
-- average pooling 1 per input value; flatten and dropout are free.
local function tally(layers)
  local params, flops = 0, 0
  for _, l in ipairs(layers) do
    local n = (l.c or 0) * (l.h or 1) * (l.w or l.h or 1)
    if l[1] == "conv" then
      params = params + l.k * l.k * l.cin * l.c
      flops = flops + 2 * l.k * l.k * l.cin * l.c * l.h * l.h
    elseif l[1] == "bn" then
      params, flops = params + 4 * l.c, flops + 2 * n
    elseif l[1] == "relu" or l[1] == "add" then
      flops = flops + n
    elseif l[1] == "pool" then
      flops = flops + 4 * n
    elseif l[1] == "gap" then
      flops = flops + l.c * l.hin * l.hin
    elseif l[1] == "linear" then
      params, flops = params + l.cin * l.c + l.c, flops + 2 * l.cin * l.c
    end
  end
  return params, flops
end

-- A random batch [n, 1, 32, 32].
local function batch(n)
  local x = lop.tensor(n, 1, 32, 32)
  local rng = 12345
  for i = 1, n do
    for y = 1, 32 do
      for z = 1, 32 do
        rng = (rng * 1103515245 + 12345) % 2147483648
        x:set(rng / 2147483648 * 2 - 1, i, 1, y, z)
      end
    end
  end
  return x
end

local function all_finite(t)
  for _, row in ipairs(t:totable()) do
    for _, v in ipairs(row) do
      if v ~= v or v == math.huge or v == -math.huge then return false end
    end
  end
  return true
end

-- Convolutions of a net as {name, kernel, out, in} from their weights' shapes.
local function convs(net)
  local list = {}
  for _, node in ipairs(net:nodes()) do
    if node.kind == "conv2d" then
      local s = node:weight():shape()
      list[#list + 1] = {name = node.name, k = s[3], out = s[1], cin = s[2]}
    end
  end
  return list
end

describe("models/vgg16.lua", function()
  local vgg16 = dofile("models/vgg16.lua")
  local net = vgg16{width = 0.5, classes = 10, seed = 1}

  -- VGG-16 at width 0.5 on 1x32x32, layer by layer.
  local function reference()
    local layers, cin, h = {}, 1, 32
    for b, widths in ipairs({{32, 32}, {64, 64}, {128, 128, 128}, {256, 256, 256}, {256, 256, 256}}) do
      for _, c in ipairs(widths) do
        layers[#layers + 1] = {"conv", k = 3, cin = cin, c = c, h = h}
        layers[#layers + 1] = {"bn", c = c, h = h}
        layers[#layers + 1] = {"relu", c = c, h = h}
        cin = c
      end
      if b < 5 then
        h = h // 2
        layers[#layers + 1] = {"pool", c = cin, h = h}
      end
    end
    assert(h == 2)
    layers[#layers + 1] = {"linear", cin = 256 * 2 * 2, c = 256}
    layers[#layers + 1] = {"relu", c = 256}
    layers[#layers + 1] = {"linear", cin = 256, c = 256}
    layers[#layers + 1] = {"relu", c = 256}
    layers[#layers + 1] = {"linear", cin = 256, c = 10}
    return layers
  end

  it("has VGG's nodes, in order, with VGG's names", function()
    local names = {}
    for _, node in ipairs(net:nodes()) do names[#names + 1] = node.name end
    -- input + 13 x (conv, bn, relu) + 4 pools + flatten + 3 linear + 2 relu + 2 dropout
    assert.are.equal(1 + 39 + 4 + 1 + 3 + 2 + 2, #names)
    local expected = {}
    for b, n in ipairs({2, 2, 3, 3, 3}) do
      for i = 1, n do
        for _, p in ipairs({"conv", "bn", "relu"}) do expected[#expected + 1] = p .. b .. "_" .. i end
      end
      if b < 5 then expected[#expected + 1] = "pool" .. b end
    end
    for _, n in ipairs({"flatten", "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8"}) do
      expected[#expected + 1] = n
    end
    assert.are.same(expected, {table.unpack(names, 2)})
    assert.are.equal("maxpool", net:node("pool4").kind)
    assert.are.same({2, 2}, net:node("pool4"):attrs().kernel)
    assert.are.same({2, 2}, net:node("pool4"):attrs().stride)
    assert.are.equal("dropout", net:node("drop7").kind)
  end)

  it("ends in a 2x2 map and 10 outputs", function()
    assert.are.same({256, 2, 2}, net:node("conv5_3"):shape())
    assert.are.same({256, 2, 2}, net:node("relu5_3"):shape())
    assert.are.same({1024}, net:node("flatten"):shape())
    assert.are.same({256}, net:node("fc6"):shape())
    assert.are.same({10}, net:node("fc8"):shape())
    assert.are.same({32, 32, 32}, net:node("conv1_2"):shape())
    assert.are.same({64, 8, 8}, net:node("pool2"):shape())
  end)

  it("has convolutions without bias and the scaled widths", function()
    local c = convs(net)
    assert.are.equal(13, #c)
    local widths = {32, 32, 64, 64, 128, 128, 128, 256, 256, 256, 256, 256, 256}
    local cin = 1
    for i, conv in ipairs(c) do
      assert.are.same({3, widths[i], cin}, {conv.k, conv.out, conv.cin})
      cin = widths[i]
      local a = net:node(conv.name):attrs()
      assert.are.same({{1, 1}, {1, 1}, false}, {a.stride, a.pad, a.bias})
      assert.is_nil(net:node(conv.name):bias())
    end
  end)

  it("has the parameter and FLOP counts of the layer list", function()
    local params, flops = tally(reference())
    -- by hand: conv 9*(1*32 + 32*32 + 32*64 + 64*64 + 64*128 + 2*128*128 + 128*256
    -- + 5*256*256) = 3,677,472; BN 4*2112 = 8,448; fc 262,400 + 65,792 + 2,570
    assert.are.equal(3677472 + 8448 + 262400 + 65792 + 2570, params)
    assert.are.equal(params, net:params())
    assert.are.equal(flops, net:flops())
  end)

  it("puts about 90% of the FLOPs in the first 10 convolutions", function()
    local first10, seen = 0, 0
    for _, l in ipairs(reference()) do
      if l[1] == "conv" and seen < 10 then
        first10 = first10 + 2 * 9 * l.cin * l.c * l.h * l.h
        seen = seen + 1
      end
    end
    local share = first10 / net:flops()
    assert.is_true(share >= 0.85 and share <= 0.95, ("share %.4f"):format(share))
  end)

  it("scales with the width and the number of classes", function()
    local full = vgg16{width = 1, classes = 7}
    assert.are.same({512, 2, 2}, full:node("conv5_3"):shape())
    assert.are.same({512}, full:node("fc7"):shape())
    assert.are.same({7}, full:node("fc8"):shape())
    assert.are.same({32, 2, 2}, vgg16{width = 0.0625}:node("conv5_3"):shape())
  end)

  it("runs a finite forward pass on a batch of 2", function()
    local y = net:forward(batch(2))
    assert.are.same({2, 10}, y:shape())
    assert.is_true(all_finite(y))
  end)

  it("is also a module, and the seed decides the weights", function()
    local mod = require "models.vgg16"
    local a, b, c = mod{seed = 3}, mod{seed = 3}, mod{seed = 4}
    assert.are.same(a:node("conv2_1"):weight():totable(), b:node("conv2_1"):weight():totable())
    assert.are_not.same(a:node("conv2_1"):weight():totable(), c:node("conv2_1"):weight():totable())
  end)

  it("rejects bad options", function()
    for _, case in ipairs({
      {{width = 0}, "width must be a number in %(0, 4%]"},
      {{width = "half"}, "width must be a number"},
      {{classes = 1}, "classes must be an integer >= 2"},
      {{seed = 1.5}, "seed must be an integer >= 0"},
      {{widht = 0.5}, "unknown option 'widht'"},
    }) do
      local ok, err = pcall(vgg16, case[1])
      assert.is_false(ok)
      assert.matches("vgg16: " .. case[2], err)
    end
  end)
end)

describe("models/resnet.lua", function()
  local resnet = dofile("models/resnet.lua")

  -- CIFAR ResNet-(6n+2) on 1x32x32, layer by layer.
  local function reference(n)
    local layers = {{"conv", k = 3, cin = 1, c = 16, h = 32}, {"bn", c = 16, h = 32}, {"relu", c = 16, h = 32}}
    local cin, h = 16, 32
    for s, c in ipairs({16, 32, 64}) do
      for b = 1, n do
        local down = s > 1 and b == 1
        if down then h = h // 2 end
        layers[#layers + 1] = {"conv", k = 3, cin = cin, c = c, h = h}
        layers[#layers + 1] = {"bn", c = c, h = h}
        layers[#layers + 1] = {"relu", c = c, h = h}
        layers[#layers + 1] = {"conv", k = 3, cin = c, c = c, h = h}
        layers[#layers + 1] = {"bn", c = c, h = h}
        if down then
          layers[#layers + 1] = {"conv", k = 1, cin = cin, c = c, h = h}
          layers[#layers + 1] = {"bn", c = c, h = h}
        end
        layers[#layers + 1] = {"add", c = c, h = h}
        layers[#layers + 1] = {"relu", c = c, h = h}
        cin = c
      end
    end
    layers[#layers + 1] = {"gap", c = 64, hin = 8}
    layers[#layers + 1] = {"linear", cin = 64, c = 10}
    return layers
  end

  local function kinds(net)
    local k3, k1, lin, count = 0, 0, 0, 0
    for _, c in ipairs(convs(net)) do
      if c.k == 3 then k3 = k3 + 1 elseif c.k == 1 then k1 = k1 + 1 end
    end
    for _, node in ipairs(net:nodes()) do
      count = count + 1
      if node.kind == "linear" then lin = lin + 1 end
    end
    return k3, k1, lin, count
  end

  it("builds resnet20: 19 conv3x3, 2 downsampling 1x1 convs, 1 linear", function()
    local net = dofile("models/resnet20.lua"){seed = 1}
    local k3, k1, lin, count = kinds(net)
    assert.are.same({19, 2, 1}, {k3, k1, lin})
    -- input + stem 3 + 9 blocks x 7 + 2 x (down, downbn) + gap + fc
    assert.are.equal(1 + 3 + 63 + 4 + 2, count)
    local params, flops = tally(reference(3))
    -- He et al. quote 0.27M; by hand: conv 269,968 + BN 4*784 + fc 650
    assert.are.equal(269968 + 3136 + 650, params)
    assert.are.equal(params, net:params())
    assert.are.equal(flops, net:flops())
  end)

  it("names blocks by stage and position", function()
    local net = resnet{depth = 20}
    assert.are.same({16, 32, 32}, net:node("relu1"):shape())
    assert.are.same({16, 32, 32}, net:node("s1b3_relu"):shape())
    assert.are.same({32, 16, 16}, net:node("s2b1_conv1"):shape())
    assert.are.same({32, 16, 16}, net:node("s2b1_downbn"):shape())
    assert.are.same({64, 8, 8}, net:node("s3b1_down"):shape())
    assert.are.same({64, 8, 8}, net:node("s3b3_add"):shape())
    assert.are.same({64}, net:node("gap"):shape())
    assert.are.same({10}, net:node("fc"):shape())
    assert.are.equal("add", net:node("s2b2_add").kind)
    assert.are.equal("global_avgpool", net:node("gap").kind)
    for _, missing in ipairs({"s1b1_down", "s2b2_down", "s3b4_conv1"}) do
      assert.is_false(pcall(net.node, net, missing))
    end
  end)

  it("wires shortcuts: identity within a stage, projection across", function()
    local net = resnet{depth = 20}
    local function inputs(name) return net:node(name):inputs() end
    assert.are.same({"s1b1_bn2", "relu1"}, inputs("s1b1_add"))
    assert.are.same({"s1b2_bn2", "s1b1_relu"}, inputs("s1b2_add"))
    assert.are.same({"s2b1_bn2", "s2b1_downbn"}, inputs("s2b1_add"))
    assert.are.same({"s1b3_relu"}, inputs("s2b1_down"))
    assert.are.same({"s1b3_relu"}, inputs("s2b1_conv1"))
    assert.are.same({"s3b3_relu"}, inputs("gap"))
    local function conv(name)
      local a = net:node(name):attrs()
      return {a.kernel[1], a.stride[1], a.pad[1], a.bias}
    end
    assert.are.same({3, 1, 1, false}, conv("conv1"))
    assert.are.same({3, 2, 1, false}, conv("s2b1_conv1"))
    assert.are.same({3, 1, 1, false}, conv("s2b1_conv2"))
    assert.are.same({1, 2, 0, false}, conv("s3b1_down"))
    assert.are.same({3, 1, 1, false}, conv("s3b2_conv1"))
  end)

  it("builds resnet56 from the same builder: 55 conv3x3", function()
    local net = require("models.resnet56"){}
    local k3, k1, lin, count = kinds(net)
    assert.are.same({55, 2, 1}, {k3, k1, lin})
    assert.are.equal(1 + 3 + 27 * 7 + 4 + 2, count)
    local params, flops = tally(reference(9))
    assert.are.equal(params, net:params())
    assert.are.equal(flops, net:flops())
    assert.are.same({10}, net:node("fc"):shape())
  end)

  it("runs a finite forward pass on a batch of 2", function()
    for _, depth in ipairs({20, 56}) do
      local y = resnet{depth = depth}:forward(batch(2))
      assert.are.same({2, 10}, y:shape())
      assert.is_true(all_finite(y))
    end
  end)

  it("rejects bad options", function()
    for _, case in ipairs({
      {resnet, {depth = 21}, "resnet: depth must be 6n %+ 2"},
      {resnet, {depth = 2}, "resnet: depth must be 6n %+ 2"},
      {resnet, {classes = 0}, "resnet: classes must be an integer >= 2"},
      {resnet, {with = 2}, "resnet: unknown option 'with'"},
      {dofile("models/resnet20.lua"), {depth = 56}, "resnet20: depth is 20"},
    }) do
      local ok, err = pcall(case[1], case[2])
      assert.is_false(ok)
      assert.matches(case[3], err)
    end
  end)
end)

describe("scripts/train.lua", function()
  local out = os.tmpname() .. ".lop"
  teardown(function() os.remove(out) end)

  local function run(args)
    local p = assert(io.popen(("%s scripts/train.lua %s 2>&1"):format(LOPPER, args)))
    local text = p:read("a")
    local ok, _, code = p:close()
    return text, ok and 0 or code
  end

  it("trains resnet20 for one epoch on a subset and saves a loadable model", function()
    local text, code = run("--model resnet20 --epochs 1 --train_size 512 --test_size 256 --batch 64 --out " .. out)
    assert.are.equal(0, code, text)
    assert.truthy(text:find("epoch  1/1", 1, true), text)
    local top1 = tonumber(text:match("saved [^\n]*: test top%-1 ([%d.]+)%%"))
    assert.is_not_nil(top1, text)
    local net = lop.load(out)
    assert.are.equal(dofile("models/resnet20.lua"){}:params(), net:params())
    -- the saved model is the trained one: it scores what the script printed
    local data = lop.data.fashion_mnist{pad = 32, normalize = true, train_size = 2, test_size = 256}
    local r = lop.evaluate(net, data.test)
    assert.is_true(math.abs(100 * r.top1 - top1) < 0.01, ("%g vs %g"):format(100 * r.top1, top1))
  end)

  it("trains a saved model further with --from", function()
    local text, code = run("--from models/resnet20.lop --lr 0.001 --epochs 1 --train_size 256 "
                           .. "--test_size 256 --batch 64 --out " .. out)
    assert.are.equal(0, code, text)
    assert.truthy(text:find("models/resnet20.lop: 273754 params", 1, true), text)
    -- a trained start: far above the few percent a new net reaches on 256 images
    local top1 = tonumber(text:match("saved [^\n]*: test top%-1 ([%d.]+)%%"))
    assert.is_true(top1 > 85, text)
  end)

  it("stops after an epoch and resumes to the same model as one uninterrupted run", function()
    local base = "--model resnet20 --epochs 2 --train_size 256 --test_size 128 --batch 64 "
                 .. "--momentum 0 --out "   -- no momentum: a resumed run is then exact
    local whole, out = os.tmpname() .. ".lop", os.tmpname() .. ".lop"   -- out: not yet there
    local text, code = run(base .. whole)
    assert.are.equal(0, code, text)
    local function gone(path) local f = io.open(path); if f then f:close() end; return f == nil end
    text, code = run(base .. out .. " --stop_after 1")
    assert.are.equal(0, code, text)
    assert.truthy(text:find("stopped after epoch 1/2", 1, true), text)
    assert.is_true(gone(out), "no final model yet")
    assert.is_false(gone(out .. ".resume.lua"))
    assert.is_false(gone(out .. ".epoch1.lop"))
    text, code = run(base .. out .. " --resume --seed 2")
    assert.are_not.equal(0, code)
    assert.truthy(text:find("the interrupted run had --seed 1, this command 2", 1, true), text)
    text, code = run(base .. out .. " --resume")
    assert.are.equal(0, code, text)
    assert.truthy(text:find("resuming after epoch 1/2", 1, true), text)
    assert.falsy(text:find("epoch  1/2  lr", 1, true), text)
    assert.truthy(text:find("epoch  2/2  lr", 1, true), text)
    assert.is_true(gone(out .. ".resume.lua") and gone(out .. ".epoch1.lop"), "cleaned up")
    local x = lop.data.fashion_mnist{pad = 32, normalize = true, train_size = 2, test_size = 8}
                 .test:batch{1, 2, 3, 4, 5, 6, 7, 8}
    assert.are.same(lop.load(whole):forward(x):totable(), lop.load(out):forward(x):totable())
    os.remove(whole)
    os.remove(out)
    text, code = run(base .. out .. " --resume")
    assert.are_not.equal(0, code)
    assert.truthy(text:find("no interrupted run to continue", 1, true), text)
  end)

  it("refuses bad options before training", function()
    local text, code = run("--model resnet20 --width 0.5 --out " .. out)
    assert.are_not.equal(0, code)
    assert.truthy(text:find("--width applies to vgg16 only", 1, true), text)
    text, code = run("--model vgg19 --out " .. out)
    assert.are_not.equal(0, code)
    assert.truthy(text:find("expected one of vgg16, resnet20, resnet56", 1, true), text)
    text, code = run("--model vgg16 --epochs 3 --stop_after 3 --out " .. out)
    assert.are_not.equal(0, code)
    assert.truthy(text:find("must be less than --epochs 3", 1, true), text)
    text, code = run("--from models/resnet20.lop --out " .. out)
    assert.are_not.equal(0, code)
    assert.truthy(text:find("--from needs --lr", 1, true), text)
    text, code = run("--from models/resnet20.lop --lr 0.01 --width 0.5 --out " .. out)
    assert.are_not.equal(0, code)
    assert.truthy(text:find("--width applies to a new model", 1, true), text)
    text, code = run("--model vgg16")
    assert.are_not.equal(0, code)
    assert.truthy(text:find("missing required option --out", 1, true), text)
    text, code = run("--model vgg16 --out /nonexistent-dir/m.lop")
    assert.are_not.equal(0, code)
    assert.truthy(text:find("cannot write next to --out", 1, true), text)
    assert.falsy(text:find("epoch", 1, true), text)
  end)
end)
