-- select_spec.lua - selection and reconstruction from Lua: every rule returns ceil(keep
-- * c) increasing 1-based channels; reconstruction removes them from the conv and its
-- producer; impossible requests (keep outside (0, 1], a non-conv node, statistics of
-- another layer, statistics made stale by surgery) raise clear errors; a list of
-- layers is sampled as each alone; the fit for
-- training's dropout is asked for by option; around a
-- grouped convolution l1 and hessian keep as many of each slice, sampling the grouped
-- conv is refused and an uneven keep list fails at the prune, with a clear message.  The rules'
-- correctness is checked on planted problems in tests/test_select.c and
-- tests/test_sample.c; here the Lua face.
local lop = require "lopper"
local vgg16 = dofile("models/vgg16.lua")

local data = lop.data.fashion_mnist{train_size = 96, test_size = 16}

local function increasing_in(keep, c)
  for i, k in ipairs(keep) do
    assert.is_true(math.type(k) == "integer" and k >= 1 and k <= c)
    if i > 1 then assert.is_true(k > keep[i - 1]) end
  end
end

describe("lop.select", function()
  local net = vgg16{width = 0.125, seed = 7}
  local s = lop.sample(net, data.train, "conv2_2", {images = 32, points = 4})

  it("samples statistics of the conv's input channels", function()
    assert.are.equal(16, s:channels())
    assert.are.equal(32 * 4, s:samples())
    assert.truthy(tostring(s):find("16 input channels", 1, true))
  end)

  it("returns ceil(keep * c) increasing channels from every rule", function()
    for _, rule in ipairs{"first", "random", "l1", "thinet", "lasso"} do
      for _, frac in ipairs{1 / 16, 0.3, 0.5, 1} do
        local keep = lop.select[rule](s, {keep = frac})
        assert.are.equal(math.ceil(frac * 16 - 1e-9), #keep, rule)
        increasing_in(keep, 16)
      end
    end
    assert.are.same({1, 2, 3, 4, 5, 6, 7, 8}, lop.select.first(s, {keep = 0.5}))
    assert.are.same(lop.select.random(s, {keep = 0.5, seed = 3}),
                    lop.select.random(s, {keep = 0.5, seed = 3}))
    local _, beta, info = lop.select.lasso(s, {keep = 0.5})
    assert.are.equal(16, #beta)
    assert.is_true(info.converged)
    assert.is_true(math.type(info.sweeps) == "integer" and info.sweeps >= 1)
    assert.is_true(info.lambda >= 0)
  end)

  it("refuses impossible requests", function()
    for _, bad in ipairs{0, -0.5, 1.5, "half"} do
      for _, rule in ipairs{"first", "random", "l1", "thinet", "lasso"} do
        local ok, err = pcall(lop.select[rule], s, {keep = bad})
        assert.is_false(ok)
        assert.truthy(tostring(err):find("keep", 1, true))
      end
    end
    assert.is_false(pcall(lop.select.thinet, s, {kep = 0.5}))
    assert.is_false(pcall(lop.sample, net, data.train, "relu2_2"))
    assert.is_false(pcall(lop.sample, net, data.train, "nope"))
    assert.is_false(pcall(lop.select.hessian, net, data.train, "bn2_1", {keep = 0.5}))
  end)
end)

describe("lop.reconstruct", function()
  it("removes the unselected channels from the conv and from their producer", function()
    local net = vgg16{width = 0.125, seed = 8}
    local s = lop.sample(net, data.train, "conv3_1", {images = 32, points = 4})
    local keep = lop.select.thinet(s, {keep = 0.5})
    local other = lop.sample(net, data.train, "conv2_2", {images = 8, points = 2})
    local ok, err = pcall(lop.reconstruct, net, "conv3_1", other, keep)
    assert.is_false(ok)
    assert.truthy(err:find("another layer", 1, true))
    assert.is_false(pcall(lop.reconstruct, net, "conv3_1", s, keep, {mode = "magic"}))
    local same, rel = lop.reconstruct(net, "conv3_1", s, keep, {mode = "scale"})
    assert.are.equal(net, same)
    -- least squares can always fall back to zero, which leaves an error of exactly 1
    assert.is_true(rel >= 0 and rel <= 1 + 1e-6, tostring(rel))
    assert.are.same({8, 16, 16}, net:node("conv2_2"):shape())
    assert.are.same({32, 8, 3, 3}, net:node("conv3_1"):weight():shape())
    local out = net:forward((data.test:batch({1, 2})))
    assert.are.same({2, 10}, out:shape())
    -- the statistics are stale now
    ok, err = pcall(lop.reconstruct, net, "conv3_1", s, keep)
    assert.is_false(ok)
    assert.truthy(err:find("sample again", 1, true))
  end)

  it("fits for training's dropout on request, only where dropout feeds the layer", function()
    -- fc7 reads fc6 through dropout (p = 0.5): the fit for training differs; conv3_1
    -- reads no dropout: the same weights either way.  (The math: test_refit_dropout.c.)
    local function refit(layer, how)
      local net = vgg16{width = 0.125, seed = 9}
      local s = lop.sample(net, data.train, layer, {images = 64, points = 4})
      lop.reconstruct(net, layer, s, lop.select.first(s, {keep = 0.5}), how)
      return net:node(layer):weight():totable()
    end
    assert.are.same(refit("conv3_1", {}), refit("conv3_1", {dropout = true}))
    assert.are_not.same(refit("fc7", {}), refit("fc7", {dropout = true}))
    assert.are.same(refit("fc7", {}), refit("fc7", {dropout = false}))
    local net = vgg16{width = 0.125, seed = 9}
    local s = lop.sample(net, data.train, "fc7", {images = 16, points = 1})
    local ok, err = pcall(lop.reconstruct, net, "fc7", s, {1, 2}, {dropout = "yes"})
    assert.is_false(ok)
    assert.truthy(err:find("dropout", 1, true), err)
  end)

  it("ranks a layer's own filters by Hessian importance", function()
    local net = vgg16{width = 0.125, seed = 9}
    local before = net:node("conv2_1"):weight():clone()
    local keep, lambda, products, score = lop.select.hessian(net, data.train, "conv2_1",
                                                             {keep = 0.25, images = 16,
                                                              batch = 8, max_iter = 3})
    assert.are.equal(4, #keep)
    increasing_in(keep, 16)
    -- the kept filters are the four with the largest returned importance
    assert.are.equal(16, #score)
    local kept = {}
    for _, j in ipairs(keep) do kept[j] = true end
    for j = 1, 16 do
      assert.is_true(score[j] >= 0)
      for _, k in ipairs(keep) do
        if not kept[j] then assert.is_true(score[j] <= score[k]) end
      end
    end
    assert.is_true(math.type(products) == "integer" and products >= 1 and products <= 3)
    assert.is_number(lambda)
    -- the network is left as it was
    local w = net:node("conv2_1"):weight()
    for i = 1, 16 do assert.are.equal(before:get(i, 1, 1, 1), w:get(i, 1, 1, 1)) end
  end)
end)

-- A chain c1 -> relu -> c2 with biased convs: the defects below were planted here.
local function chain(pick)
  local net = lop.net{input = {1, 32, 32}, seed = 11}
  net:conv2d("c1", "input", {out = 8, kernel = 3, pad = 1, stride = 4, bias = true})
  net:relu("r1", "c1")
  net:conv2d("c2", "r1", {out = 3, kernel = 3, pad = 1, bias = true})
  if pick then net:insert_pick("c2") end
  return net
end

describe("lop.select.l1", function()
  -- c1's filter j is all mag[j]: the L1 ranking of c1's output channels is planted.
  local mag = {0.1, 3, 0.2, 2, 5, 0.3, 4, 0.05}
  local function planted(pick)
    local net = chain(pick)
    local w = net:node("c1"):weight()
    for j = 1, 8 do
      for e = 1, 9 do w:set(mag[j], j, 1, math.ceil(e / 3), (e - 1) % 3 + 1) end
    end
    return net
  end

  it("keeps the channels whose producing filters are largest", function()
    local s = lop.sample(planted(false), data.train, "c2", {images = 8, points = 2})
    assert.are.same({2, 4, 5, 7}, lop.select.l1(s, {keep = 0.5}))
  end)

  it("looks through a channel pick to the filters the picked channels come from", function()
    -- It once ranked the pick's index entries, keeping the highest-numbered channels.
    local net = planted(true)
    local s = lop.sample(net, data.train, "c2", {images = 8, points = 2})
    assert.are.same({2, 4, 5, 7}, lop.select.l1(s, {keep = 0.5}))
    -- pick channel j (0-based) reads c1's channel (j + 2) % 8
    local index = net:node("c2_pick"):param("index")
    for j = 0, 7 do index:set((j + 2) % 8, j + 1) end
    s = lop.sample(net, data.train, "c2", {images = 8, points = 2})
    assert.are.same({2, 3, 5, 8}, lop.select.l1(s, {keep = 0.5}))
  end)
end)

-- c1 (8) -> r1 -> g (3x3, 8 in 2 groups) -> r2 -> c2 (3) -> flat -> fc (10): g's
-- output group has two slices of 4 channels, and so has its input group.
local function grouped_chain()
  local net = lop.net{input = {1, 32, 32}, seed = 12}
  net:conv2d("c1", "input", {out = 8, kernel = 3, pad = 1, stride = 4})
  net:relu("r1", "c1")
  net:conv2d("g", "r1", {out = 8, kernel = 3, pad = 1, groups = 2})
  net:relu("r2", "g")
  net:conv2d("c2", "r2", {out = 3, kernel = 3, pad = 1})
  net:flatten("flat", "c2")
  net:linear("fc", "flat", {out = 10})
  return net
end

-- How many of keep fall in channels 1..4 and 5..8.
local function per_half(keep)
  local n = {0, 0}
  for _, k in ipairs(keep) do n[k <= 4 and 1 or 2] = n[k <= 4 and 1 or 2] + 1 end
  return n
end

describe("selection around a grouped convolution", function()
  it("ranks l1 within each slice, so the keep list can be pruned", function()
    -- globally the four largest are 2, 5, 7, 8 (three in the second slice)
    local mag = {0.1, 3, 0.2, 2, 5, 0.3, 4, 6}
    local net = grouped_chain()
    local w = net:node("g"):weight()
    for j = 1, 8 do
      for a = 1, 4 do
        for e = 1, 9 do w:set(mag[j], j, a, math.ceil(e / 3), (e - 1) % 3 + 1) end
      end
    end
    local s = lop.sample(net, data.train, "c2", {images = 8, points = 2})
    local keep = lop.select.l1(s, {keep = 0.5})
    assert.are.same({2, 4, 5, 8}, keep)
    -- a fraction of each slice: ceil(0.3 * 4) = 2 of each
    assert.are.same({2, 2}, per_half(lop.select.l1(s, {keep = 0.3})))
    net:prune(net:group_of("g"), keep)
    assert.are.same({4, 4, 3, 3}, net:node("g"):weight():shape())   -- 2 filters per group
    assert.are.same({3, 4, 3, 3}, net:node("c2"):weight():shape())
  end)

  it("ranks Hessian importance within each slice of the layer's filters", function()
    local net = grouped_chain()
    for _, layer in ipairs{"g", "c1"} do   -- c1's filters are g's input group
      local keep = lop.select.hessian(net, data.train, layer, {keep = 0.25, images = 8,
                                                               batch = 4, max_iter = 2})
      assert.are.same({1, 1}, per_half(keep), layer)
      increasing_in(keep, 8)
    end
    net:prune("c1", lop.select.hessian(net, data.train, "c1", {keep = 0.5, images = 8,
                                                               batch = 4, max_iter = 2}))
    assert.are.same({8, 2, 3, 3}, net:node("g"):weight():shape())
  end)

  it("refuses to sample the grouped convolution itself", function()
    local ok, err = pcall(lop.sample, grouped_chain(), data.train, "g", {images = 8})
    assert.is_false(ok)
    assert.are.equal("lop.sample: grouped convolution 'g': sample does not support it yet",
                     err:match("lop%.sample: .*"))
  end)

  it("leaves an uneven keep list to a clear refusal by the prune", function()
    local net = grouped_chain()
    local s = lop.sample(net, data.train, "c2", {images = 8, points = 2})
    local ok, err = pcall(lop.reconstruct, net, "c2", s, {1, 2, 3, 5})
    assert.is_false(ok)
    assert.truthy(err:find("keep 1 of the 4 channels in slice 2, but 3 in slice 1: "
                           .. "grouped convolution 'g' (2 groups)", 1, true), err)
    assert.are.same({3, 8, 3, 3}, net:node("c2"):weight():shape())
  end)
end)

describe("reference targets", function()
  it("refit a biased conv to the reference's output whatever its own bias", function()
    -- The current c2's bias differs from the reference's by delta; the refit of all
    -- channels must give back the reference's output exactly (targets once subtracted
    -- the reference's bias while the fit was added to the current one: off by delta).
    local ref = chain(false)
    local net = ref:clone()
    local bias, delta = net:node("c2"):bias(), {0.7, -0.4, 0.25}
    for k = 1, 3 do bias:set(bias:get(k) + delta[k], k) end
    local x = data.test:batch({1, 2, 3, 4})
    local function gap()
      local a, b = ref:forward(x), net:forward(x)
      local most = 0
      for i = 1, a:numel() do
        local ia = {1 + (i - 1) // (3 * 64), 1 + ((i - 1) // 64) % 3, 1 + ((i - 1) // 8) % 8,
                    1 + (i - 1) % 8}
        most = math.max(most, math.abs(a:get(table.unpack(ia)) - b:get(table.unpack(ia))))
      end
      return most
    end
    assert.is_true(gap() > 0.69)
    local s = lop.sample(net, data.train, "c2", {images = 64, points = 8, reference = ref})
    lop.reconstruct(net, "c2", s, {1, 2, 3, 4, 5, 6, 7, 8})
    assert.is_true(gap() < 1e-3, "gap " .. gap())
  end)
end)

describe("binding errors", function()
  it("carry one prefix: the Lua function's name, not also the engine's", function()
    local net = chain(false)
    local ok, err = pcall(lop.sample, net, data.train, "c2", {images = 1000})
    assert.is_false(ok)
    assert.truthy(err:find("lop.sample: 1000 images asked", 1, true), err)
  end)
end)

-- He et al.'s residual handling, on a planted block: the current network's shortcut
-- is the reference's plus a known per-channel shift d, everything else equal, so the
-- exact fix is to move the last conv's bias by -d/a (a = its batchnorm's scale) and
-- keep its weights.  Sampling with residual = true and refitting must make the block's
-- sum match the reference's again; without it the sums stay d apart.
describe("lop.sample residual targets", function()
  local function block()
    local net = lop.net{input = {1, 32, 32}, seed = 5}
    net:conv2d("c0", "input", {out = 4, kernel = 3, pad = 1, stride = 4})
    net:batchnorm("b0", "c0")
    net:relu("r0", "b0")
    net:conv2d("c1", "r0", {out = 3, kernel = 3, pad = 1})
    net:batchnorm("b1", "c1")
    net:relu("r1", "b1")
    net:conv2d("c2", "r1", {out = 4, kernel = 1, bias = true})
    net:batchnorm("b2", "c2")
    net:batchnorm("bsc", "r0")
    net:add("sum", {"b2", "bsc"})
    -- non-trivial batchnorm statistics, so a differs from 1
    for _, name in ipairs{"b0", "b1", "b2", "bsc"} do
      local n = net:node(name)
      for c = 1, n:param("weight"):numel() do
        n:param("weight"):set(0.5 + 0.25 * c, c)
        n:param("running_var"):set(0.3 * c, c)
        n:param("running_mean"):set(0.1 * c - 0.2, c)
      end
    end
    return net
  end
  local d = {0.3, -0.2, 0.5, 0.1}
  local x = data.test:batch({1, 2, 3, 4, 5, 6, 7, 8})

  local function max_gap(a, b)
    local ta, tb, gap = a:forward(x):totable(), b:forward(x):totable(), 0
    local function walk(u, v)
      if type(u) == "number" then gap = math.max(gap, math.abs(u - v)) return end
      for i = 1, #u do walk(u[i], v[i]) end
    end
    walk(ta, tb)
    return gap
  end

  for _, residual in ipairs{true, false} do
    it(residual and "refit the last conv so the block's sum matches the reference"
                or "leave the shortcut's shift in place without them", function()
      local ref, net = block(), block()
      local beta = net:node("bsc"):param("bias")
      for c = 1, 4 do beta:set(beta:get(c) + d[c], c) end
      assert.is_true(max_gap(ref, net) > 0.49)
      local s = lop.sample(net, data.train, "c2", {images = 64, points = 8,
                                                   reference = ref, residual = residual})
      lop.reconstruct(net, "c2", s, {1, 2, 3})
      if residual then
        assert.is_true(max_gap(ref, net) < 1e-3, "gap " .. max_gap(ref, net))
      else
        assert.is_true(max_gap(ref, net) > 0.49)
      end
    end)
  end

  it("are refused where there is no residual path or no reference", function()
    local ref, net = block(), block()
    for _, case in ipairs{{"c1", ref, "one two-input add"}, {"c2", nil, "reference"}} do
      local ok, err = pcall(lop.sample, net, data.train, case[1],
                            {images = 8, reference = case[2], residual = true})
      assert.is_false(ok)
      assert.truthy(err:find(case[3], 1, true), err)
    end
  end)
end)

-- Groups that several layers read (tests/test_sample_shared.c checks the numbers): from
-- Lua, a linear layer can be sampled, statistics combined and a group refitted at once,
-- and every misuse is a clear error, never a crash.
describe("shared groups", function()
  local function shared()
    local net = lop.net{input = {1, 32, 32}, seed = 4}
    net:relu("r", net:conv2d("a", "input", {out = 6, kernel = 3, pad = 1}))
    net:conv2d("b", "r", {out = 4, kernel = 3, pad = 1})
    net:conv2d("c", "r", {out = 5, kernel = 1})
    net:linear("fc", net:global_avgpool("gap", "r"), {out = 10})
    return net
  end

  it("sample each reader, select on the combination, refit all at once", function()
    local net = shared()
    local parts = {}
    for i, layer in ipairs{"b", "c", "fc"} do
      parts[i] = lop.sample(net, data.train, layer, {images = 32, points = 4})
    end
    assert.are.equal(32, parts[3]:samples())   -- a linear layer: one row per image
    local s = lop.combine(parts)
    assert.are.equal(6, s:channels())
    local keep = lop.select.thinet(s, {keep = 0.5})
    local ok, err = pcall(lop.reconstruct, net, "b", s, keep)
    assert.is_false(ok)
    assert.truthy(err:find("combined statistics select channels but cannot refit", 1, true), err)
    local _, errors = lop.reconstruct_group(net, parts, keep)
    assert.are.equal(3, #errors)
    assert.are.same({4, 3, 3, 3}, net:node("b"):weight():shape())
    assert.are.same({10, 3}, net:node("fc"):weight():shape())
    assert.are.equal(3, net:node("a"):shape()[1])
  end)

  it("sample a list of readers in one pass, each as it samples alone", function()
    local net, other = shared(), shared()
    local how = {images = 32, points = 4, reference = other,
                 reference_channels = {false, false, false}}
    local together = lop.sample(net, data.train, {"b", "c", "fc"}, how)
    assert.are.equal(3, #together)
    how.reference_channels = nil
    for i, layer in ipairs{"b", "c", "fc"} do
      local alone = lop.sample(net, data.train, layer, how)
      assert.are.equal(alone:samples(), together[i]:samples())
      local _, beta_alone = lop.select.lasso(alone, {keep = 0.5})
      local _, beta_together = lop.select.lasso(together[i], {keep = 0.5})
      assert.are.same(beta_alone, beta_together)
    end
  end)

  it("refuse misuse with the function's name", function()
    local net, other = shared(), shared()
    local sb = lop.sample(net, data.train, "b", {images = 8})
    local so = lop.sample(other, data.train, "c", {images = 8})
    for _, case in ipairs{
      {lop.combine, {{}}, "a list of statistics"},
      {lop.combine, {{1}}, "lop.combine: item 1 is not live statistics"},
      {lop.combine, {{sb, so}}, "lop.combine: item 2 was sampled from another network"},
      {lop.reconstruct_group, {net, {sb, so}, {1, 2}}, "item 2 was sampled from another network"},
      {lop.reconstruct_group, {net, {sb}, {1, 9}}, "keep[2] must be a channel in 1..6"},
      {lop.reconstruct_group, {net, {sb}, {1}, {mode = "magic"}}, "mode must be 'weights' or 'scale'"},
      {lop.sample, {net, data.train, "r"}, "not a conv2d or linear layer"},
      {lop.sample, {net, data.train, {}}, "a list of one or more layers"},
      {lop.sample, {net, data.train, {"b", "r"}}, "lop.sample: layers[2] is not a conv2d or linear layer"},
      {lop.sample, {net, data.train, {"b", 3}}, "lop.sample: layers[2] must be a node name or handle, not number"},
      {lop.sample, {net, data.train, {"b"}, {reference = other, reference_channels = 3}},
       "reference_channels must list one map (or false) per layer"},
      {lop.sample, {net, data.train, {"b"}, {reference = other, reference_channels = {false, false}}},
       "reference_channels lists 2 maps for 1 layers"},
      {lop.sample, {net, data.train, {"b", "c"}, {reference = other, reference_channels = {{1, 2}, false}}},
       "reference_channels lists 2 channels, the layer has 4 outputs"},
      {lop.sample, {net, data.train, "b", {reference = other, reference_channels = {1, 2}}},
       "reference_channels lists 2 channels, the layer has 4 outputs"},
      {lop.sample, {net, data.train, "b", {reference = other, reference_channels = {1, 2, 3, 0}}},
       "reference_channels[4] must be a channel index >= 1"},
      {lop.sample, {net, data.train, "b", {reference = other, reference_channels = {1, 2, 3, 5}}},
       "ref_channels[3] = 4 is not a channel of the reference's 'b' (0..3)"},
    } do
      local ok, err = pcall(case[1], table.unpack(case[2]))
      assert.is_false(ok)
      assert.truthy(err:find(case[3], 1, true), err)
    end
  end)
end)
