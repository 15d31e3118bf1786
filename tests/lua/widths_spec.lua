-- widths_spec.lua - lop.widths, the per-group widths for a budget:
--   - allocate: on hand-made tables the greedy narrows the group whose narrowing costs
--     the least error per saving, may jump several candidates at once, stops as soon
--     as the savings meet the need (within rounding), and refuses a need no allocation
--     meets;
--   - sensitivity: each entry's error at k kept channels equals what lop.reconstruct
--     (or, for a group several layers read, the sum of lop.reconstruct_group's errors)
--     reports for the first k channels of ThiNet's order, refitted on a clone;
--   - loss sensitivity: zero at full width, never falling as channels go, and at a
--     measured width at least the loss rise of a clone the recipe's pruner.prune
--     narrows there alone (exactly that where no wider width measured more), linear
--     in between;
--   - costs: FLOPs saved at each candidate equal the FLOPs of a clone pruned here;
--   - choose for a FLOPs target lands within 5% and its counts prune to that cost, and
--     goes on towards 99-100% of it; the latency path gives counts and a measured cost
--     (its accuracy against the budget is a benchmark's business, not a timed test's);
--     a latency fraction is taken of the net's own measured latency, and one above 1
--     keeps every group whole.
local lop = require "lopper"

local quiet = function() end
local fm = lop.data.fashion_mnist{pad = 28, train_size = 600, test_size = 16}

-- stem (a residual stage with the block's conv2) -> block -> conv c -> gap -> fc
local function small()
  local net = lop.net{input = {1, 28, 28}, seed = 21}
  local x = net:conv2d("stem", "input", {out = 8, kernel = 3, pad = 1, stride = 2})
  x = net:relu("stem_relu", net:batchnorm("stem_bn", x))
  local a = net:relu("b_relu1", net:batchnorm("b_bn1", net:conv2d("b_conv1", x,
                     {out = 12, kernel = 3, pad = 1})))
  a = net:batchnorm("b_bn2", net:conv2d("b_conv2", a, {out = 8, kernel = 3, pad = 1}))
  x = net:relu("b_relu", net:add("b_add", {x, a}))
  x = net:relu("c_relu", net:conv2d("c", x, {out = 16, kernel = 3, pad = 1}))
  net:linear("fc", net:global_avgpool("gap", x), {out = 10})
  return net
end

local function entry_index(plan, producer)
  for i, e in ipairs(plan) do if e.producer == producer then return i end end
end

describe("lop.widths.allocate", function()
  -- two groups: A (8 channels) and B (4); savings and errors by candidate
  local plan = {{producer = "A", channels = 8, consumer = "x"},
                {producer = "B", channels = 4, consumer = "y"}}
  local costs = {grid = {{8, 6, 4, 2}, {4, 3, 2, 1}},
                 saved = {{0, 10, 20, 30}, {0, 1, 40, 45}}}
  -- error at k kept channels (lists indexed by k)
  local errors = {{0.9, 0.5, 0.5, 0.3, 0.3, 0.1, 0.05, 0},
                  {0.8, 0.2, 0.1, 0}}

  it("takes the least error per saving, jumping candidates where that pays", function()
    -- first move: A 8->6 costs 0.1/10 = 0.01 per unit; B 4->2 costs 0.2/40 = 0.005
    -- (B 4->3 saves 1 for 0.1: 0.1 per unit) - so B jumps straight to 2
    assert.are.same({[1] = 8, [2] = 2}, lop.widths.allocate(plan, errors, costs, 30))
    -- then A: 8->6 (0.01 per unit) until 50 saved
    assert.are.same({[1] = 6, [2] = 2}, lop.widths.allocate(plan, errors, costs, 50))
    assert.are.same({[1] = 8, [2] = 4}, lop.widths.allocate(plan, errors, costs, 0))
  end)

  it("reaches a need equal to every group's last saving despite rounding", function()
    -- move by move the savings sum to 0.9999999999999999, short of 0.3 + 0.7 = 1
    local p2 = {{producer = "A", channels = 3, consumer = "x"},
                {producer = "B", channels = 3, consumer = "y"}}
    local c2 = {grid = {{3, 2, 1}, {3, 2, 1}}, saved = {{0, 0.1, 0.3}, {0, 0.2, 0.7}}}
    local e2 = {{0.3, 0.1, 0}, {0.3, 0.1, 0}}
    assert.are.same({[1] = 1, [2] = 1}, lop.widths.allocate(p2, e2, c2, 0.3 + 0.7))
  end)

  it("refuses a need no allocation meets", function()
    local ok, err = pcall(lop.widths.allocate, plan, errors, costs, 76)
    assert.is_false(ok)
    assert.truthy(err:find("narrowing every pruned group to its last candidate saves 75", 1, true),
                  err)
  end)
end)

describe("lop.widths on a small residual net", function()
  local net = small()
  local plan = lop.pruner.plan(net)
  local stage, block = entry_index(plan, "stem"), entry_index(plan, "b_conv1")
  local how = {images = 60, points = 10, seed = 3}
  local errors = lop.widths.sensitivity(net, fm.train, plan, how)

  it("gives the reconstruction error of every kept count of ThiNet's order", function()
    for _, i in ipairs{stage, block} do
      local e = plan[i]
      assert.are.equal(e.channels, #errors[i])
      -- the same order, from statistics sampled the same way
      local parts = {}
      for j, name in ipairs(e.consumers) do
        parts[j] = lop.sample(net, fm.train, name, {images = 60, points = 10, seed = 3})
      end
      local order = lop.select.thinet_order(#parts == 1 and parts[1] or lop.combine(parts))
      for _, k in ipairs{1, e.channels // 2, e.channels - 1} do
        local copy = net:clone()
        local again = {}
        for j, name in ipairs(e.consumers) do
          again[j] = lop.sample(copy, fm.train, name, {images = 60, points = 10, seed = 3})
        end
        local _, errs = lop.reconstruct_group(copy, again, table.move(order, 1, k, 1, {}))
        local sum = 0
        for _, x in ipairs(errs) do sum = sum + x end
        assert.is_true(math.abs(errors[i][k] - sum) <= 1e-6 * (sum + 1e-3),
                       ("%s at %d: %g vs %g"):format(e.producer, k, errors[i][k], sum))
        copy:close()
      end
      -- fewer channels never fit better
      for k = 2, e.channels do assert.is_true(errors[i][k] <= errors[i][k - 1] + 1e-9) end
    end
  end)

  it("measures the loss each group's narrowing costs, pruned alone at 8 widths", function()
    -- trained a little, so that narrowing costs loss (untrained, it costs none)
    local trained <close> = net:clone()
    lop.train(trained, fm.train, {epochs = 3, lr = 0.05, batch = 32, seed = 1})
    local loss = lop.widths.sensitivity(trained, fm.train, plan, setmetatable(
      {sensitivity = "loss", loss_images = 200, log = quiet}, {__index = how}))
    local measured = fm.train:subset(1, 200)
    local base = lop.evaluate(trained, measured).loss
    local e = plan[block]   -- 12 channels: widths 12, 10, ..., 2, 1
    assert.are.equal(e.channels, #loss[block])
    assert.are.equal(0, loss[block][12])
    local rise = {}
    for _, k in ipairs{4, 6} do   -- each the recipe's own pruning of that group alone
      local copy <close> = trained:clone()
      lop.pruner.prune(copy, fm.train, plan, {[block] = k},
                       {original = trained, images = 60, points = 10, seed = 3, log = quiet,
                        warn = quiet})
      rise[k] = lop.evaluate(copy, measured).loss - base
    end
    assert.is_true(rise[4] > rise[6] and rise[6] > 0.01, ("%g %g"):format(rise[4], rise[6]))
    -- never falling as channels go: at least what was measured, and exactly that where
    -- no wider width measured more; 5 lies halfway between the two
    for k = 1, 11 do assert.is_true(loss[block][k] >= loss[block][k + 1]) end
    for _, k in ipairs{4, 6} do
      assert.is_true(loss[block][k] >= rise[k] - 1e-9)
      if loss[block][k] > loss[block][k + 1] then
        assert.is_true(math.abs(loss[block][k] - rise[k]) <= 1e-9 * (1 + rise[k]))
      end
    end
    assert.is_true(math.abs(loss[block][5] - math.max((rise[4] + rise[6]) / 2, loss[block][6]))
                   <= 1e-9 * (1 + rise[4]))
    local ok, err = pcall(lop.widths.sensitivity, net, fm.train, plan, {sensitivity = "magic"})
    assert.is_false(ok)
    assert.truthy(err:find('sensitivity must be "reconstruction" or "loss", got magic', 1, true),
                  err)
  end)

  it("counts the FLOPs each candidate width saves", function()
    local costs = lop.widths.costs(net, plan, {steps = 4})
    assert.are.equal(net:flops(), costs.total)
    assert.are.same({8, 6, 4, 2, 1}, costs.grid[stage])
    assert.are.same({12, 9, 6, 3, 1}, costs.grid[block])
    for _, i in ipairs{stage, block} do
      for j, n in ipairs(costs.grid[i]) do
        local copy = net:clone()
        local keep = {}
        for c = 1, n do keep[c] = c end
        if n < plan[i].channels then copy:prune(plan[i].producer, keep) end
        assert.are.equal(net:flops() - copy:flops(), costs.saved[i][j])
        copy:close()
      end
    end
  end)

  it("chooses widths for a FLOPs target within 5%, and they prune to that cost", function()
    local target = net:flops() / 2
    local w = lop.widths.choose(net, fm.train, plan, setmetatable({flops = target, log = quiet},
                                                                   {__index = how}))
    assert.is_true(w.fits)
    assert.is_true(math.abs(w.cost - target) <= 0.05 * target, w.cost)
    local copy = net:clone()
    lop.pruner.prune(copy, fm.train, plan, w.counts, {original = net, images = 60, log = quiet,
                                                       warn = quiet})
    assert.are.equal(w.cost, copy:flops())
    -- the widths differ between groups: the allocation is not a uniform fraction
    local fractions = {}
    for i, n in pairs(w.counts) do fractions[#fractions + 1] = n / plan[i].channels end
    table.sort(fractions)
    assert.is_true(fractions[#fractions] - fractions[1] > 0.1)
  end)

  it("goes on from a first fit at 95.9% of a FLOPs target to 99-100% of it", function()
    -- at 1.4x fewer FLOPs the first allocation lands at 95.9% (within 5%, where the
    -- rounds used to stop); FLOPs are counted exactly, so they go on, and single steps
    -- down from the allocation above the target land closer
    local target = net:flops() / 1.4
    local w = lop.widths.choose(net, fm.train, plan, setmetatable({flops = target, log = quiet},
                                                                   {__index = how}))
    assert.is_true(w.fits)
    assert.is_true(w.cost <= target and w.cost >= 0.99 * target, w.cost / target)
  end)

  it("measures latency on the latency path, and refuses two targets", function()
    local w = lop.widths.choose(net, fm.train, plan, setmetatable(
      {latency_ms = 1e-3, batch = 4, reps = 1, steps = 2, log = quiet}, {__index = how}))
    assert.is_true(w.cost > 0 and w.reference_ms > 0)
    for i, n in pairs(w.counts) do
      assert.is_true(n >= 1 and n <= plan[i].channels)
    end
    for _, two in ipairs{{flops = 1, latency_ms = 1}, {latency_ms = 1, latency_fraction = 0.5}} do
      local ok, err = pcall(lop.widths.choose, net, fm.train, plan, two)
      assert.is_false(ok)
      assert.truthy(err:find("give exactly one of flops, latency_ms and latency_fraction", 1,
                             true), err)
    end
    for _, bad in ipairs{0, -1, "half"} do
      local ok, err = pcall(lop.widths.choose, net, fm.train, plan, {latency_fraction = bad})
      assert.is_false(ok)
      assert.truthy(err:find("latency_fraction must be a number above 0", 1, true), err)
    end
  end)

  it("sets a latency fraction against the net's own timing; above 1 keeps every group whole",
     function()
    -- twice the net's latency: no saving is asked, whatever the timings measure
    local w = lop.widths.choose(net, fm.train, plan, setmetatable(
      {latency_fraction = 2, batch = 4, reps = 1, steps = 2, log = quiet}, {__index = how}))
    assert.is_true(w.reference_ms > 0)
    assert.are.equal(2 * w.reference_ms, w.target)
    assert.are.equal(w.reference_ms, w.total)
    for i, n in pairs(w.counts) do assert.are.equal(plan[i].channels, n) end
  end)
end)

describe("lop.widths.plot", function()
  it("draws a before and an after bar for every convolution", function()
    local net = small()
    local pruned = net:clone()
    pruned:prune("c", {1, 2, 3})
    local svg = lop.widths.plot(net, pruned, "x.lop")
    local _, bars = svg:gsub('<rect x="[%d.]+" y="[%d.]+" width="[%d.]+" height="[%d.]+"', "")
    assert.are.equal(2 * 4 + 2, bars)   -- 4 convs, plus the legend's two squares
    assert.truthy(svg:find("x.lop: output channels per convolution", 1, true))
  end)
end)
