-- surgery_spec.lua - channel groups and pruning from Lua on the reference models:
-- pruning channels that were made to output zero leaves every model's output where
-- it was (each prunable group of VGG-16, ResNet-20 and ResNet-56, including the groups
-- spanning a whole ResNet stage with its downsampling shortcut, and of a RegNet-like
-- net, whose grouped convs slice their groups); random keep lists on every group
-- (half of each slice for the RegNet-like net) leave nets that run, train a step and
-- round-trip through a file; groups print as their chain of members, or a long one
-- compactly; misuse (an uneven keep list among it) raises and changes nothing; node
-- handles and group tables from before a prune refuse to be used after it.
local lop = require "lopper"

local vgg16 = dofile("models/vgg16.lua")
local resnet20 = dofile("models/resnet20.lua")
local resnet56 = dofile("models/resnet56.lua")

-- A deterministic batch [n, 1, 32, 32].
local function images(n)
  local x = lop.tensor(n, 1, 32, 32)
  for b = 1, n do
    for i = 1, 32 do
      for j = 1, 32 do
        x:set(math.sin(0.37 * i * b + 0.11 * j * j) + 0.3 * math.cos(i - 2 * j), b, 1, i, j)
      end
    end
  end
  return x
end

-- Batchnorm parameters and statistics drawn at random (a fresh model's are all equal
-- across channels, so a misplaced slice would go unseen).
local function randomize_bn(net, seed)
  math.randomseed(seed)
  for _, h in ipairs(net:nodes()) do
    if h.kind == "batchnorm" then
      local ranges = {weight = {0.5, 1.5}, bias = {-0.5, 0.5}, running_mean = {-0.3, 0.3},
                      running_var = {0.5, 1.5}}
      for name, r in pairs(ranges) do
        local t = h:param(name)
        for c = 1, t:shape()[1] do t:set(r[1] + (r[2] - r[1]) * math.random(), c) end
      end
    end
  end
  return net
end

local function zero_row(t, r)
  local s = t:shape()
  if #s == 1 then
    t:set(0, r)
  elseif #s == 2 then
    for j = 1, s[2] do t:set(0, r, j) end
  else
    for a = 1, s[2] do
      for b = 1, s[3] do
        for c = 1, s[4] do t:set(0, r, a, b, c) end
      end
    end
  end
end

-- Make the group's channels that keep leaves out output exactly zero at their source:
-- batchnorm members get gamma = beta = 0; a producer (or depthwise conv) whose output
-- no batchnorm of the group normalises gets its filters and bias zeroed.
local function zero_dropped(net, group, keep)
  local kept, normalised = {}, {}
  for _, c in ipairs(keep) do kept[c] = true end
  for _, m in ipairs(group.members) do
    local h = net:node(m.node)
    if h.kind == "batchnorm" then normalised[h:inputs()[1]] = true end
  end
  for _, m in ipairs(group.members) do
    local h = net:node(m.node)
    local owns = m.role == "producer" or (m.role == "pass" and h.kind == "conv2d")
    for c = 1, group.channels do
      if not kept[c] then
        for j = 1, m.block do
          local at = m.offset + (c - 1) * m.block + j
          if h.kind == "batchnorm" then
            h:weight():set(0, at)
            h:bias():set(0, at)
          elseif owns and not normalised[m.node] then
            zero_row(h:weight(), at)
            if h:bias() then h:bias():set(0, at) end
          end
        end
      end
    end
  end
end

-- Largest |a - b| over two equally shaped [B, K] tables, and the largest |a|.
local function compare(a, b)
  local worst, scale = 0, 0
  assert.are.equal(#a, #b)
  for i = 1, #a do
    assert.are.equal(#a[i], #b[i])
    for j = 1, #a[i] do
      worst = math.max(worst, math.abs(a[i][j] - b[i][j]))
      scale = math.max(scale, math.abs(a[i][j]))
    end
  end
  return worst, scale
end

-- About two thirds of each of the `slices` (default 1) equal slices of 1..n, as many in
-- each but at places that shift from slice to slice, in descending order: prune takes
-- any order.
local function some_channels(n, salt, slices)
  local per, keep = n // (slices or 1), {}
  for c = n, 1, -1 do
    local slice, at = (c - 1) // per, (c - 1) % per
    if (7 * ((at + slice) % per + 1) + salt) % 3 ~= 0 then keep[#keep + 1] = c end
  end
  return keep
end

-- Zero, then prune, each prunable group in turn; the output must stay where the
-- zeroing put it.  Returns the list of groups visited (as first listed).
local function check_invariance(net, x)
  local visited = {}
  for i, listed in ipairs(net:groups()) do
    if listed.prunable then
      local group = net:group_of(listed.producer)   -- the net changed since the listing
      local keep = some_channels(group.channels, i, group.slices)
      zero_dropped(net, group, keep)
      local before = net:forward(x):totable()
      net:prune(group, keep)
      local after = net:forward(x):totable()
      local worst, scale = compare(before, after)
      assert.is_true(scale > 1e-3)
      assert.is_true(worst <= 1e-5 * scale,
                     ("%s: output moved by %g (scale %g)"):format(tostring(group), worst, scale))
      assert.are.equal(#keep, net:group_of(listed.producer).channels)
      visited[#visited + 1] = listed
    end
  end
  return visited
end

local function names(group)
  local s = {}
  for _, m in ipairs(group.members) do s[#s + 1] = m.node end
  return table.concat(s, " ")
end

describe("pruning zeroed channels leaves the output unchanged", function()
  it("on VGG-16 (width 0.5): every conv group and the fc6 / fc7 groups", function()
    local net = randomize_bn(vgg16{width = 0.5}, 1)
    local flops, params = net:flops(), net:params()
    local visited = check_invariance(net, images(2))
    assert.are.equal(15, #visited)   -- 13 convolutions, fc6, fc7 (fc8 is the logits)
    assert.are.equal("fc6", visited[14].producer)
    assert.are.equal("fc7", visited[15].producer)
    assert.is_true(net:flops() < 0.7 * flops and net:params() < 0.7 * params)
  end)

  it("on ResNet-20: inner groups and the three stage-level groups", function()
    local net = randomize_bn(resnet20{}, 2)
    local visited = check_invariance(net, images(2))
    assert.are.equal(9 + 3, #visited)
    local stages = 0
    for _, g in ipairs(visited) do
      local spans = names(g)
      if spans:find("_add", 1, true) then
        stages = stages + 1
        -- a stage group holds every block's second conv and add of the stage
        local s = spans:match("s(%d)b%d_conv2") or "1"
        for b = 1, 3 do
          assert.truthy(spans:find(("s%sb%d_conv2 s%sb%d_bn2"):format(s, b, s, b), 1, true), spans)
          assert.truthy(spans:find(("s%sb%d_add"):format(s, b), 1, true), spans)
        end
        if s ~= "1" then   -- stages 2 and 3 start with the downsampling shortcut
          assert.truthy(spans:find(("s%sb1_down s%sb1_downbn"):format(s, s), 1, true), spans)
        end
      end
    end
    assert.are.equal(3, stages)
  end)

  it("on ResNet-56 (batch of one)", function()
    local net = randomize_bn(resnet56{}, 3)
    local visited = check_invariance(net, images(1))
    assert.are.equal(27 + 3, #visited)
  end)
end)

-- One training step's worth of Fashion-MNIST, padded to 32x32.
local data = lop.data.fashion_mnist{train_size = 64, test_size = 16}
local few = data.train:subset(1, 8)

local function tmpfile(suffix)
  local base = os.tmpname()
  os.remove(base)
  return base .. (suffix or "")
end

-- 1..n in a random order.
local function shuffled(n)
  local order = {}
  for c = 1, n do order[c] = c end
  for c = n, 2, -1 do
    local j = math.random(c)
    order[c], order[j] = order[j], order[c]
  end
  return order
end

-- A random non-empty subset of a group's channels (random order).
local function random_subset(group)
  local order, keep = shuffled(group.channels), {}
  for c = 1, math.random(group.channels) do keep[c] = order[c] end
  return keep
end

-- Prune every prunable group to the channels choose(group) picks (default a random
-- subset), then run, train one step and round-trip the net through a file.
local function random_surgery(net, seed, choose)
  math.randomseed(seed)
  local want = {}
  for i = 1, #net:groups() do
    local group = net:groups()[i]
    if group.prunable then
      local keep = (choose or random_subset)(group)
      net:prune(group, keep)
      want[group.producer] = #keep
    end
  end
  for producer, n in pairs(want) do
    assert.are.equal(n, net:group_of(producer).channels, producer)
  end
  local x = images(3)
  assert.are.same({3, 10}, net:forward(x):shape())

  local producer = net:groups()[1].producer
  local before = net:node(producer):weight():sum()
  local r = lop.train(net, few, {epochs = 1, batch = 8, lr = 0.01})
  assert.are.equal(8, r.n)
  assert.is_true(r.loss == r.loss and r.loss < math.huge)
  assert.are_not.equal(before, net:node(producer):weight():sum())

  local path = tmpfile(".lop")
  net:save(path)
  local back = lop.load(path)
  os.remove(path)
  assert.are.equal(net:params(), back:params())
  assert.are.equal(net:flops(), back:flops())
  assert.are.same(net:forward(x):totable(), back:forward(x):totable())
end

-- RegNet's shape in small, input 1x32x32: stem conv 3x3 (16, stride 2) + BN + ReLU,
-- two stages (widths 16 and 32, the second with stride 2) of two blocks with group
-- width 8 (2 and 4 groups): a 1x1 -> BN -> ReLU -> b 3x3 grouped -> BN -> ReLU -> c 1x1
-- -> BN, plus the identity or a 1x1 projection + BN, then add and ReLU; global average
-- pooling, linear 10.  Node names s<stage>b<block>_ a abn ar b bbn br c cbn [proj
-- projbn] add relu.
local function regnet_like()
  local net = lop.net{input = {1, 32, 32}, seed = 21}
  local x = net:conv2d("stem", "input", {out = 16, kernel = 3, stride = 2, pad = 1, bias = false})
  x = net:relu("stem_relu", net:batchnorm("stem_bn", x))
  local channels = 16
  for s, width in ipairs{16, 32} do
    for b = 1, 2 do
      local p = ("s%db%d_"):format(s, b)
      local stride = (s > 1 and b == 1) and 2 or 1
      local y = net:conv2d(p .. "a", x, {out = width, kernel = 1, bias = false})
      y = net:relu(p .. "ar", net:batchnorm(p .. "abn", y))
      y = net:conv2d(p .. "b", y, {out = width, kernel = 3, stride = stride, pad = 1,
                                   groups = width // 8, bias = false})
      y = net:relu(p .. "br", net:batchnorm(p .. "bbn", y))
      y = net:batchnorm(p .. "cbn", net:conv2d(p .. "c", y, {out = width, kernel = 1, bias = false}))
      local shortcut = x
      if stride ~= 1 or channels ~= width then
        shortcut = net:conv2d(p .. "proj", x, {out = width, kernel = 1, stride = stride, bias = false})
        shortcut = net:batchnorm(p .. "projbn", shortcut)
      end
      x = net:relu(p .. "relu", net:add(p .. "add", {y, shortcut}))
      channels = width
    end
  end
  net:linear("fc", net:global_avgpool("gap", x), {out = 10})
  return net
end

-- Half of each slice of a group's channels, at random.
local function random_half_of_each_slice(group)
  local per, keep = group.channels // group.slices, {}
  for slice = 0, group.slices - 1 do
    local order = shuffled(per)
    for i = 1, per // 2 do keep[#keep + 1] = slice * per + order[i] end
  end
  return keep
end

describe("grouped convolutions", function()
  it("slice the groups around them, which print their slices", function()
    local net = regnet_like()
    local into, out = net:group_of("s2b1_ar"), net:group_of("s2b1_br")
    assert.are.same({32, 4, true}, {into.channels, into.slices, into.prunable})
    assert.are.same({32, 4, true}, {out.channels, out.slices, out.prunable})
    assert.are.equal("s2b1_a -> s2b1_abn -> s2b1_ar -> s2b1_b[in] (32 channels in 4 slices)",
                     tostring(into))
    assert.are.equal("s1b2_b -> s1b2_bbn -> s1b2_br -> s1b2_c[in] (16 channels in 2 slices)",
                     tostring(net:group_of("s1b2_b")))
    assert.are.equal(1, net:group_of("s1b1_add").slices)   -- only 1x1 convs touch a stage
  end)

  it("keep the output where zeroing put it when pruned (every prunable group)", function()
    local net = randomize_bn(regnet_like(), 5)
    -- stage 1's (with the stem: identity shortcuts), stage 2's, and the two around
    -- each of the four grouped convs
    assert.are.equal(2 + 4 * 2, #check_invariance(net, images(2)))
    for _, b in ipairs{"s1b1_b", "s1b2_b", "s2b1_b", "s2b2_b"} do
      local node = net:node(b)
      assert.are.equal(b:sub(2, 2) == "1" and 2 or 4, node:attrs().groups, b)
      assert.is_true(node:shape()[1] < 32 and node:weight():shape()[2] < 8, b)
    end
  end)

  it("refuse an uneven keep list, naming the slices, and change nothing", function()
    local net = regnet_like()
    local x = images(1)
    local want = net:forward(x):totable()
    local ok, err = pcall(net.prune, net, "s2b1_ar", {1, 2, 3, 9})
    assert.is_false(ok)
    assert.truthy(err:find("net:prune: keep 1 of the 8 channels in slice 2, but 3 in slice "
                           .. "1: grouped convolution 's2b1_b' (4 groups)", 1, true), err)
    ok, err = pcall(net.mask, net, "s2b1_ar", {1, 2, 3, 9})
    assert.is_false(ok)
    assert.truthy(err:find("net:mask: keep 1 of the 8 channels in slice 2", 1, true), err)
    assert.are.same(want, net:forward(x):totable())
  end)
end)

describe("random keep lists on every group", function()
  it("leave VGG-16 runnable, trainable and savable", function()
    random_surgery(vgg16{width = 0.5}, 11)
  end)
  it("leave ResNet-20 runnable, trainable and savable", function()
    random_surgery(resnet20{}, 12)
  end)
  it("leave ResNet-56 runnable, trainable and savable", function()
    random_surgery(resnet56{}, 13)
  end)
  it("halving each slice leaves a RegNet-like net runnable, trainable and savable", function()
    random_surgery(regnet_like(), 14, random_half_of_each_slice)
  end)
end)

-- input 2x6x6 -> a (3) and b (2) -> cat [5] -> c -> flat -> fc (4): a concat's
-- segments and a flatten's blocks.
local function concat_net()
  local net = lop.net{input = {2, 6, 6}, seed = 5}
  net:conv2d("a", "input", {out = 3, kernel = 3, pad = 1})
  net:conv2d("b", "input", {out = 2, kernel = 1})
  net:concat("cat", {"a", "b"})
  net:conv2d("c", "cat", {out = 4, kernel = 3, stride = 2, pad = 1})
  net:relu("r", "c")
  net:flatten("flat", "r")
  net:linear("fc", "flat", {out = 4})
  return net
end

describe("groups", function()
  it("print as their chain of members, or a long one as its producers and consumers", function()
    local net = resnet20{}
    local groups = net:groups()
    assert.are.equal(13, #groups)
    assert.are.equal("group of conv1: 16 channels\n"
      .. "  producers (4): conv1, s1b1_conv2, s1b2_conv2, s1b3_conv2\n"
      .. "  consumers (5): s1b1_conv1, s1b2_conv1, s1b3_conv1, s2b1_conv1, s2b1_down\n"
      .. "  passed through by 11 nodes", tostring(groups[1]))
    assert.are.equal(20, #groups[1].members)   -- the table stays complete
    assert.are.equal("s1b1_conv1 -> s1b1_bn1 -> s1b1_relu1 -> s1b1_conv2[in] (16 channels)",
                     tostring(groups[2]))
    assert.are.equal("fc (10 channels; not prunable: it reaches the network output)",
                     tostring(groups[13]))
    assert.are.equal(tostring(groups[2]), tostring(net:group_of("s1b1_relu1")))
    local g = net:group_of(net:node("s3b2_add"))
    assert.are.equal("s3b1_conv2", g.producer)
    assert.are.equal(64, g.channels)
    assert.are.equal(1, g.slices)
    assert.truthy(tostring(g):find("\n  consumers (3): s3b2_conv1, s3b3_conv1, fc\n", 1, true))
    assert.is_true(g.prunable)
    assert.is_nil(g.why)
  end)

  it("print names whole, as long as exporters make them", function()
    -- ONNX exporters name nodes by module path; such names were once cut to their last
    -- 55 characters ("k_output/block1/...") when the model was read.
    local long = "/trunk_output/block1/block1-0/proj/proj.1/BatchNormalization/" .. ("x"):rep(50)
    local net = lop.net{input = {2, 6, 6}}
    net:conv2d("a", "input", {out = 2, kernel = 1})
    net:batchnorm(long, "a")
    net:conv2d("b", long, {out = 2, kernel = 1})
    assert.are.equal("a -> " .. long .. " -> b[in] (2 channels)", tostring(net:group_of("a")))
    assert.is_false(pcall(net.relu, net, long .. ("y"):rep(128 - #long), long))   -- too long
  end)

  it("print a long group in a few lines (ResNet-164's stem group has 140 members)", function()
    -- The printer once kept values on the stack between buffer additions: long groups
    -- aborted the process ("malloc(): invalid size") or crashed it.
    local resnet = dofile("models/resnet.lua")
    for _, depth in ipairs({164, 326}) do
      local net = resnet{depth = depth}
      local g = assert(net:group_of("conv1"))
      local lines = {}
      for line in tostring(g):gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.are.equal(4, #lines)
      assert.are.equal("group of conv1: 16 channels", lines[1])
      local roles = {}
      for _, m in ipairs(g.members) do roles[m.role] = (roles[m.role] or 0) + 1 end
      local producers = roles.producer
      assert.are.equal(("  producers (%d): conv1, s1b1_conv2, s1b2_conv2, s1b3_conv2, "
                        .. "s1b4_conv2, s1b5_conv2, ... (%d more)"):format(producers,
                                                                         producers - 6),
                       lines[2])
      assert.truthy(lines[3]:find(("^  consumers %%(%d%%): s1b1_conv1, "):format(roles.consumer)),
                    lines[3])
      assert.are.equal(("  passed through by %d nodes"):format(roles.pass), lines[4])
      net:close()
    end
  end)

  it("list members with roles, offsets and blocks", function()
    local net = concat_net()
    local groups = net:groups()
    assert.are.equal(4, #groups)
    assert.are.same({index = 2, channels = 2, slices = 1, prunable = true, producer = "b",
                     generation = groups[2].generation,
                     members = {{node = "b", role = "producer", offset = 0, block = 1},
                                {node = "cat", role = "pass", offset = 3, block = 1},
                                {node = "c", role = "consumer", offset = 3, block = 1}}},
                    setmetatable(groups[2], nil))
    -- c's 4 channels of 3x3 become blocks of 9 features of fc's input
    assert.are.same({{node = "c", role = "producer", offset = 0, block = 1},
                     {node = "r", role = "pass", offset = 0, block = 1},
                     {node = "flat", role = "pass", offset = 0, block = 9},
                     {node = "fc", role = "consumer", offset = 0, block = 9}},
                    groups[3].members)
    assert.are.equal("fc (4 channels; not prunable: it reaches the network output)",
                     tostring(groups[4]))
  end)

  it("give nil and a reason for a node carrying none or several", function()
    local net = concat_net()
    for _, name in ipairs{"input", "cat"} do
      local g, why = net:group_of(name)
      assert.is_nil(g)
      assert.truthy(why:find(name, 1, true) and why:find("no single channel group", 1, true), why)
    end
  end)

  it("that reach the input or the logits name their producer and say why not", function()
    local net = lop.net{input = {2, 6, 6}}
    net:relu("pre", "input")
    net:conv2d("a", "pre", {out = 2, kernel = 3, pad = 1})
    net:add("res", {"pre", "a"})
    net:flatten("flat", "res")
    net:linear("fc", "flat", {out = 3})
    local g = net:group_of("res")
    assert.are.equal("a", g.producer)   -- the input's consumers come first
    assert.is_false(g.prunable)
    assert.are.equal("it reaches the network input", g.why)
    assert.are.equal("pre -> a -> a[in] -> res -> flat -> fc[in] (2 channels; not prunable: "
                     .. "it reaches the network input)", tostring(g))
    for _, case in ipairs{{g, "network input"}, {"fc", "network output"}} do
      local ok, err = pcall(net.prune, net, case[1], {1})
      assert.is_false(ok)
      assert.truthy(err:find(case[2], 1, true), err)
      ok, err = pcall(net.prune, net, case[1], {9})   -- not a range error
      assert.truthy(err:find(case[2], 1, true), err)
    end
  end)

  it("keep channels in their original order whatever order keep lists them in", function()
    local net = concat_net()
    local w = net:node("a"):weight():totable()
    local fc = net:node("fc"):weight():totable()
    net:prune("c", {4, 2})
    assert.are.same({w[1], w[2], w[3]}, net:node("a"):weight():totable())
    local c = net:node("c"):weight()
    assert.are.same({2, 5, 3, 3}, c:shape())
    local now = net:node("fc"):weight():totable()
    for r = 1, 4 do   -- columns 10..18 (channel 2) then 28..36 (channel 4)
      for j = 1, 9 do
        assert.are.equal(fc[r][9 + j], now[r][j])
        assert.are.equal(fc[r][27 + j], now[r][9 + j])
      end
    end
    net:prune("b", {2})   -- the concat's second segment, by name
    assert.are.same({4, 6, 6}, net:node("cat"):shape())
    assert.are.same({2, 4, 3, 3}, net:node("c"):weight():shape())
  end)
end)

describe("misuse", function()
  it("raises and leaves the net's outputs bit-identical", function()
    local net = randomize_bn(resnet20{}, 4)
    local other = resnet20{}
    local old_group = net:group_of("s1b1_relu1")
    local old_handle = net:node("s2b1_conv1")
    net:prune(net:group_of("s2b1_conv1"), {1, 3, 5})   -- makes the two above stale
    local x = images(2)
    local want = net:forward(x):totable()
    local params, flops = net:params(), net:flops()
    local closed = resnet20{}
    closed:close()
    local group = net:group_of("s1b1_relu1")
    local cases = {
      {function() return net:prune() end, "node name or handle"},
      {function() return net:prune("conv1") end, "table expected"},
      {function() return net:prune("conv1", 3) end, "table expected"},
      {function() return net:prune("conv1", {}) end, "at least one"},
      {function() return net:prune("conv1", {1, 1}) end, "listed twice"},
      {function() return net:prune("conv1", {2, 5, 2}) end, "listed twice"},
      {function() return net:prune("conv1", {0}) end, "keep[1]"},
      {function() return net:prune("conv1", {1, -3}) end, "keep[2]"},
      {function() return net:prune("conv1", {1.5}) end, "keep[1]"},
      {function() return net:prune("conv1", {"1"}) end, "keep[1]"},
      {function() return net:prune("conv1", {true}) end, "keep[1]"},
      {function() return net:prune("conv1", {17}) end, "outside 1..16"},
      {function() return net:prune("conv1", {1, 2^40}) end, "keep[2]"},
      {function() return net:prune(group, {16, 17}) end, "outside 1..16"},
      {function() return net:prune("fc", {1}) end, "network output"},
      {function() return net:prune("input", {1}) end, "single channel group"},
      {function() return net:prune("nope", {1}) end, "no node named 'nope'"},
      {function() return net:prune(5, {1}) end, "node name or handle"},
      {function() return net:prune(old_group, {1}) end, "stale group"},
      {function() return net:prune(old_handle, {1}) end, "stale node handle"},
      {function() return net:prune(other:node("conv1"), {1}) end, "another net"},
      {function() return net:prune({}, {1}) end, "group"},
      {function() return net:prune({generation = group.generation}, {1}) end, "not a group"},
      {function() return net:prune({generation = group.generation, producer = "nope"}, {1}) end,
       "not in this network"},
      {function() return net.prune(5, "conv1", {1}) end, "net"},
      {function() return closed:prune("conv1", {1}) end, "closed"},
      {function() return net:group_of() end, "node name or handle"},
      {function() return net:group_of("nope") end, "no node named"},
      {function() return net:group_of(old_handle) end, "stale node handle"},
      {function() return net.groups(5) end, "net"},
      {function() return closed:groups() end, "closed"},
    }
    for i, case in ipairs(cases) do
      local ok, err = pcall(case[1])
      assert.is_false(ok, "case " .. i .. " did not raise")
      assert.truthy(tostring(err):find(case[2], 1, true),
                    ("case %d: '%s' lacks '%s'"):format(i, tostring(err), case[2]))
    end
    assert.are.equal(params, net:params())
    assert.are.equal(flops, net:flops())
    assert.are.same(want, net:forward(x):totable())
  end)

  it("makes node handles from before a prune stale", function()
    local net = vgg16{width = 0.5}
    local conv, bn, fc6 = net:node("conv1_2"), net:node("bn1_1"), net:node("fc6")
    local w = conv:weight()
    net:prune("conv1_1", {1, 2, 3})
    for _, use in ipairs{
      function() return conv.name end,
      function() return conv:weight() end,
      function() return bn:shape() end,
      function() return fc6:params() end,   -- untouched by this prune, stale all the same
      function() return net:node(bn) end,
    } do
      local ok, err = pcall(use)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("stale node handle", 1, true), err)
    end
    assert.are.equal("node conv1_2 (stale)", tostring(conv))
    assert.are.same({32, 32, 3, 3}, w:shape())   -- tensors handed out stay valid
    assert.are.same({32, 3, 3, 3}, net:node("conv1_2"):weight():shape())
  end)
end)

-- He et al.'s sampler from Lua: net:insert_pick(conv) on ResNet-20's block inputs.
describe("net:insert_pick", function()
  it("gives a block's first conv an input group of its own, output unchanged", function()
    local net = dofile("models/resnet20.lua"){seed = 4}
    local x = lop.tensor(2, 1, 32, 32)
    for i = 1, 2 do for y = 1, 32 do for z = 1, 32 do
      x:set(math.sin(i * 7 + y * 1.3 + z * 0.7), i, 1, y, z)
    end end end
    local before = net:forward(x):totable()
    local old = net:node("s2b2_conv1")
    local p = net:insert_pick("s2b2_conv1")
    assert.are.equal("pick", p.kind)
    assert.are.equal("s2b2_conv1_pick", p.name)
    assert.are.equal(32, p:attrs().channels)
    assert.are.same({"s2b2_conv1_pick"}, net:node("s2b2_conv1"):inputs())
    assert.is_false(pcall(old.shape, old))   -- handles from before are stale
    assert.are.same(before, net:forward(x):totable())
    local g = net:group_of(p)
    assert.is_true(g.prunable)
    assert.are.equal(32, g.channels)
    local stage = net:group_of("s2b1_add")
    assert.is_false(stage.prunable)
    assert.truthy(stage.why:find("channel pick", 1, true), stage.why)
    net:prune(g, {2, 4, 6})
    assert.are.same({32, 3, 3, 3}, net:node("s2b2_conv1"):weight():shape())
    assert.are.same({1, 3, 5}, net:node("s2b2_conv1_pick"):param("index"):totable())
  end)

  it("refuses what it cannot do", function()
    local net = dofile("models/resnet20.lua"){seed = 4}
    net:insert_pick("s1b1_conv1")
    for _, case in ipairs{{"s1b1_bn1", "not a conv2d"}, {"s1b1_conv1", "already reads a pick"},
                          {"nope", "nope"}} do
      local ok, err = pcall(net.insert_pick, net, case[1])
      assert.is_false(ok)
      assert.truthy(err:find(case[2], 1, true), err)
    end
    local ok, err = pcall(net.mask, net, net:group_of("s1b1_conv1_pick"), {1, 3, 4})
    assert.is_false(ok)
    assert.truthy(err:find("prune it instead", 1, true), err)
  end)
end)
