-- prune_recipe_spec.lua - scripts/prune.lua, the recipe that prunes any CNN, and its
-- core lop.pruner, on small nets built here:
--   - a planted problem (half of conv1's filters are positive multiples of the other
--     half, and relu(a z) = a relu(z) for a > 0) that a 2x pruning must solve exactly:
--     the pruned net reproduces the original logits on held-out images; the same with
--     the planted channels read by two convs (selected on their combined statistics,
--     both refitted), and a residual stage of two producers read by a linear head;
--   - the FLOPs target: the keep fraction found is the largest one the channel counts
--     allow, checked against FLOPs counted by hand;
--   - a net with a residual block, a depthwise pair, a conv read by two convs, a
--     concatenation, a grouped consumer, a sliced group and a linear head: the plan
--     prunes the groups whose every reader can be refitted and skips the rest with its
--     reasons (with shared = false, also the stage and the group two convs read); the command line
--     prints the plan and the before/after table and writes an ONNX file that reads
--     back, passes python3-onnx's checker and gives the outputs of the same pruning
--     done in this process;
--   - feature hints for the fine-tune: every refitted layer once, its channels mapped to
--     the original's it kept, taken by lop.train and changing what it learns;
--   - a latency budget above the original's keeps every group whole and the command
--     line names the original's measured latency (the budget's anchor);
--   - one-line errors, before any work where they can be: an unreachable --speedup
--     (with the reachable figure), a bad --out, a missing model, images of another shape.
local lop = require "lopper"
local util = dofile("tests/lua/util.lua")

local LOPPER = os.getenv("LOPPER") or "build/lopper"
local pruner = lop.pruner
local quiet = function() end

-- Fashion-MNIST at 28x28, as the command line opens it for a 1x28x28 model.
local fm = lop.data.fashion_mnist{pad = 28, train_size = 2000, test_size = 64}

local function range(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return t
end

local function outputs(net, x) return net:forward(x):totable() end

local function entry(plan, producer)
  for _, e in ipairs(plan) do if e.producer == producer then return e end end
  error("no plan entry for " .. producer)
end

-- ---- (1) a planted problem ----------------------------------------------------------

-- conv1 -> relu -> conv2 -> relu -> gap -> fc, where conv1's filter 2j (and bias) is
-- a_j times filter 2j-1, so channel 2j = a_j * channel 2j-1 after the relu, and conv2
-- reads channel 2j with its weights for channel 2j-1 divided by a_j: each pair adds the
-- same contribution twice.  Keeping one channel of every pair and refitting conv2 is
-- exact; keeping the first four (both of pairs 1 and 2) is not.
local SCALE = {0.5, 2, 1.5, 3}

-- Plant the pairs in net: layer's filter 2j (and bias) = a_j x filter 2j-1 (the bias of
-- 2j-1 made positive: some activity through every relu), and each reader (a conv or
-- linear layer) sees channel 2j through its weights for 2j-1 divided by a_j.
local function plant_pairs(net, layer, readers)
  local w, b = net:node(layer):weight(), net:node(layer):bias()
  local cin = w:shape()[2]
  for j, a in ipairs(SCALE) do
    local src, dst = 2 * j - 1, 2 * j
    b:set(math.abs(b:get(src)) + 0.1, src)
    b:set(a * b:get(src), dst)
    for c = 1, cin do
      for ky = 1, 3 do
        for kx = 1, 3 do w:set(a * w:get(src, c, ky, kx), dst, c, ky, kx) end
      end
    end
    for _, r in ipairs(readers) do
      local rw = net:node(r):weight()
      local shape = rw:shape()
      for o = 1, shape[1] do
        if #shape == 2 then
          rw:set(rw:get(o, src) / a, o, dst)
        else
          for ky = 1, 3 do
            for kx = 1, 3 do rw:set(rw:get(o, src, ky, kx) / a, o, dst, ky, kx) end
          end
        end
      end
    end
  end
end

-- lasso must solve a planted problem exactly (every group's refit error and the held-
-- out logits' difference err); first-k keeps both channels of pairs 1 and 2, so the
-- control must fail.
local function exact_or_not(solver, done, err)
  if solver == "lasso" then
    for _, d in ipairs(done) do assert.is_true(d.error < 1e-6, d.error) end
    assert.is_true(err < 1e-5, ("held-out logits differ by %g"):format(err))
  else
    assert.is_true(done[1].error > 1e-3 and err > 1e-3, ("first-k: %g"):format(err))
  end
end

local function planted()
  local net = lop.net{input = {1, 28, 28}, seed = 11}
  net:conv2d("conv1", "input", {out = 8, kernel = 3, pad = 1})
  net:relu("relu1", "conv1")
  net:conv2d("conv2", "relu1", {out = 6, kernel = 3, pad = 1})
  net:relu("relu2", "conv2")
  net:global_avgpool("gap", "relu2")
  net:linear("fc", "gap", {out = 10})
  plant_pairs(net, "conv1", {"conv2"})
  return net
end

describe("lop.pruner", function()
  it("solves a planted 2x problem exactly with lasso and a weights refit", function()
    local original = planted()
    local plan = pruner.plan(original)
    assert.are.equal("conv2", entry(plan, "conv1").consumer)
    assert.is_false(entry(plan, "conv1").residual)
    local x = fm.test:batch(range(64))
    for _, solver in ipairs{"lasso", "first"} do
      local net = original:clone()
      -- (LASSO's coordinate descent meets two equal columns per pair here and may stop
      -- at its sweep cap: warn is quiet)
      local done = pruner.prune(net, fm.train, plan, {4}, {original = original, images = 200,
                                solver = solver, log = quiet, warn = quiet})
      assert.are.equal(1, #done)
      assert.are.same({6, 4, 3, 3}, net:node("conv2"):weight():shape())
      assert.are.equal(4, net:node("conv1"):weight():shape()[1])
      exact_or_not(solver, done, util.rel_err(outputs(net, x), outputs(original, x)))
    end
  end)

  -- conv1 (planted pairs) read by conv2a and conv2b, whose outputs are planted pairs
  -- with the same factors; their sum (a residual stage of two producers) goes through
  -- relu and gap to fc, which reads channel 2j with its weights for 2j-1 divided by a_j.
  -- Pruning both groups 2x is exact: keep one channel of every pair, refit both convs
  -- on their combined selection, then refit fc.
  it("solves a planted problem of shared groups exactly: two convs, a stage and a linear head",
     function()
    local original = lop.net{input = {1, 28, 28}, seed = 12}
    original:conv2d("conv1", "input", {out = 8, kernel = 3, pad = 1})
    original:relu("relu1", "conv1")
    for _, b in ipairs{"a", "b"} do
      original:conv2d("conv2" .. b, "relu1", {out = 8, kernel = 3, pad = 1})
      original:relu("relu2" .. b, "conv2" .. b)
    end
    original:add("sum", {"relu2a", "relu2b"})
    original:global_avgpool("gap", "sum")
    original:linear("fc", "gap", {out = 10})
    plant_pairs(original, "conv1", {"conv2a", "conv2b"})
    plant_pairs(original, "conv2a", {"fc"})   -- the same factors in both producers
    plant_pairs(original, "conv2b", {})
    local plan = pruner.plan(original)
    local first, stage = entry(plan, "conv1"), entry(plan, "conv2a")
    assert.are.same({"conv2a", "conv2b"}, first.consumers)
    assert.are.same({"conv2a", "conv2b"}, stage.producers)
    assert.are.same({"fc"}, stage.consumers)
    local x = fm.test:batch(range(64))
    for _, solver in ipairs{"lasso", "first"} do
      local net = original:clone()
      -- (fc's pooled features all have one sign, so its Gram with the bias column is
      -- ill-conditioned: the default ridge, 1e-6 of the mean diagonal, would leave 5e-4)
      local done = pruner.prune(net, fm.train, plan, {4, 4}, {original = original, images = 200,
                                solver = solver, ridge = 1e-9, log = quiet, warn = quiet})
      assert.are.equal(2, #done)
      assert.are.same({4, 4, 3, 3}, net:node("conv2a"):weight():shape())
      assert.are.same({4, 4, 3, 3}, net:node("conv2b"):weight():shape())
      assert.are.same({10, 4}, net:node("fc"):weight():shape())
      exact_or_not(solver, done, util.rel_err(outputs(net, x), outputs(original, x)))
    end
  end)

  -- ---- (2) the FLOPs target ---------------------------------------------------------

  it("finds the largest shared keep fraction under the FLOPs target", function()
    -- conv a (1 -> A) relu, max-pool 2, conv b (A -> B) relu, conv c (B -> C) relu, gap,
    -- linear C -> 10; no conv biases.  FLOPs by hand (multiply-add = 2): conv
    -- 2 k k cin cout H W, relu 1 and max-pool k k per output value, gap 1 per input value.
    local function hand(A, B, C)
      return 2 * 9 * A * 784 + A * 784 + 4 * A * 196
           + 2 * 9 * A * B * 196 + B * 196
           + 2 * 9 * B * C * 196 + C * 196 + C * 196 + 2 * C * 10
    end
    local net = lop.net{input = {1, 28, 28}, seed = 5}
    net:conv2d("a", "input", {out = 12, kernel = 3, pad = 1, bias = false})
    net:relu("a_relu", "a")
    net:maxpool("pool", "a_relu", {kernel = 2})
    net:conv2d("b", "pool", {out = 20, kernel = 3, pad = 1, bias = false})
    net:relu("b_relu", "b")
    net:conv2d("c", "b_relu", {out = 16, kernel = 3, pad = 1, bias = false})
    net:relu("c_relu", "c")
    net:global_avgpool("gap", "c_relu")
    net:linear("fc", "gap", {out = 10})
    assert.are.equal(hand(12, 20, 16), net:flops())
    local plan = pruner.plan(net)
    assert.are.equal("fc", plan[3].consumer)   -- c's channels: the linear head is refitted
    for _, speedup in ipairs{1.5, 2, 3} do
      local w = pruner.widths(net, plan, speedup)
      local A, B, C = w.counts[1], w.counts[2], w.counts[3]
      local target = hand(12, 20, 16) / speedup
      assert.are.equal(hand(A, B, C), w.flops)
      assert.is_true(hand(A, B, C) <= target)
      -- the next fraction at which a count grows (counts are ceil(f c)) overshoots
      local f = math.min(A / 12, B / 20, C / 16) + 1e-7
      assert.is_true(hand(math.ceil(f * 12), math.ceil(f * 20), math.ceil(f * 16)) > target,
                     speedup)
      -- and pruning for real lands on the same count
      local copy = net:clone()
      pruner.prune(copy, fm.train, plan, w.counts, {original = net, images = 64, log = quiet})
      assert.are.equal(w.flops, copy:flops())
    end
  end)
end)

-- ---- (3) a mixed net: what is pruned, what is skipped and why --------------------------

-- stem (a residual stage with the block's conv2), a basic block, a depthwise pair
-- (e_conv -> dw -> p_conv), p_conv read by two convs, their concatenation read by
-- m_conv, m_conv read by a grouped conv, the grouped conv's sliced output read by
-- h_conv, and a linear head.
local function mixed()
  local net = lop.net{input = {1, 28, 28}, seed = 3}
  local x = net:conv2d("stem", "input", {out = 8, kernel = 3, pad = 1, stride = 2})
  x = net:relu("stem_relu", net:batchnorm("stem_bn", x))
  local a = net:relu("b_relu1", net:batchnorm("b_bn1", net:conv2d("b_conv1", x,
                     {out = 8, kernel = 3, pad = 1})))
  a = net:batchnorm("b_bn2", net:conv2d("b_conv2", a, {out = 8, kernel = 3, pad = 1}))
  x = net:relu("b_relu", net:add("b_add", {x, a}))
  x = net:relu("e_relu", net:conv2d("e_conv", x, {out = 16, kernel = 1}))
  x = net:relu("dw_relu", net:conv2d("dw", x, {out = 16, kernel = 3, pad = 1, groups = 16}))
  x = net:relu("p_relu", net:conv2d("p_conv", x, {out = 8, kernel = 1}))
  local c1 = net:conv2d("c1", x, {out = 8, kernel = 3, pad = 1})
  local c2 = net:conv2d("c2", x, {out = 8, kernel = 1})
  x = net:relu("m_relu", net:conv2d("m_conv", net:concat("cat", {c1, c2}), {out = 16, kernel = 1}))
  x = net:relu("g_relu", net:conv2d("g_conv", x, {out = 16, kernel = 3, pad = 1, groups = 4}))
  x = net:relu("h_relu", net:conv2d("h_conv", x, {out = 16, kernel = 1}))
  net:linear("fc", net:global_avgpool("gap", x), {out = 10})
  return net
end

local SKIPS = {
  c1 = "its consumer m_conv reads a concatenation (the group is 8 of its 16 input channels)",
  c2 = "its consumer m_conv reads a concatenation (the group is 8 of its 16 input channels)",
  m_conv = "its consumer g_conv is a grouped convolution (4 groups)",
  fc = "not prunable: it reaches the network output",
}
-- skipped as well when groups several layers read or produce are not pruned (shared = false)
local UNSHARED = {
  stem = "residual stage of 2 producers (block outputs + shortcuts): pruned inside its "
         .. "blocks only, as He et al.",
  p_conv = "2 consumers (c1, c2): only a group read by one layer can be refitted",
}

describe("the plan of a mixed net", function()
  local net = mixed()
  local plan = pruner.plan(net)

  it("prunes the groups whose readers can all be refitted and skips the others with reasons",
     function()
    local pruned = {}
    for _, e in ipairs(plan) do
      if e.consumer then pruned[#pruned + 1] = e.producer
      else assert.are.equal(SKIPS[e.producer], e.reason) end
    end
    assert.are.same({"stem", "b_conv1", "e_conv", "p_conv", "g_conv", "h_conv"}, pruned)
    assert.are.equal(#pruned + 4, #plan)
    local stage, block = entry(plan, "stem"), entry(plan, "b_conv1")
    local pair, branches = entry(plan, "e_conv"), entry(plan, "p_conv")
    local sliced, head = entry(plan, "g_conv"), entry(plan, "h_conv")
    assert.are.same({"stem", "b_conv2"}, stage.producers)
    assert.are.same({"b_conv1", "e_conv"}, stage.consumers)
    assert.is_false(stage.residual)
    assert.are.equal("b_conv2", block.consumer)
    assert.is_true(block.residual)                  -- b_conv2 -> b_bn2 -> b_add
    assert.are.equal("p_conv", pair.consumer)       -- the depthwise conv goes with the group
    assert.is_false(pair.residual)
    assert.truthy(table.concat(pair.members, " "):find("dw", 1, true))
    assert.are.same({"c1", "c2"}, branches.consumers)
    assert.are.equal(4, sliced.slices)
    assert.are.equal("h_conv", sliced.consumer)
    assert.are.same({"fc"}, head.consumers)         -- through the global pooling
    -- thinet cannot keep as many channels in each slice
    assert.truthy(entry(pruner.plan(net, {solver = "thinet"}), "g_conv").reason
                  :find("splits it into 4 slices and --solver thinet", 1, true))
    -- without shared groups, the stage and the group two convs read are skipped
    local unshared = pruner.plan(net, {shared = false})
    for producer, why in pairs(UNSHARED) do
      assert.are.equal(why, entry(unshared, producer).reason)
    end
    assert.are.equal("fc", entry(unshared, "h_conv").consumer)
  end)

  it("keeps counts that are multiples of the slices, and each rule keeps as many per slice", function()
    local w = pruner.widths(net, plan, 1.5)
    for i, e in ipairs(plan) do
      if e.consumer then
        assert.are.equal(0, w.counts[i] % e.slices)
        assert.is_true(w.counts[i] >= e.slices and w.counts[i] < e.channels)
      end
    end
    local s = lop.sample(net, fm.train, "h_conv", {images = 32, points = 4})
    for _, solver in ipairs{"lasso", "random", "first", "l1"} do
      local keep = pruner.select(s, {solver = solver, keep = 0.5, slices = 4, seed = 2})
      local per = {0, 0, 0, 0}
      for _, k in ipairs(keep) do per[(k - 1) // 4 + 1] = per[(k - 1) // 4 + 1] + 1 end
      assert.are.same({2, 2, 2, 2}, per, solver)
    end
    assert.are.same({1, 2, 5, 6, 9, 10, 13, 14},
                    pruner.select(s, {solver = "first", keep = 0.5, slices = 4}))
    s:close()
  end)

  it("fine-tunes after each pruned group when asked, reporting validation top-1", function()
    local copy, lines = net:clone(), {}
    local w = pruner.widths(net, plan, 1.5)
    local before = copy:node("m_conv"):weight():clone()
    pruner.prune(copy, fm.train, plan, w.counts, {original = net, images = 32, step_epochs = 1,
                 batch = 64, lr = 0.01, val = fm.test, progress = false,
                 log = function(line) lines[#lines + 1] = line end})
    local text = table.concat(lines, "\n")
    for _, producer in ipairs{"stem", "b_conv1", "e_conv", "p_conv", "g_conv", "h_conv"} do
      assert.truthy(text:find("fine-tuned after " .. producer .. ": validation top-1", 1, true), text)
    end
    assert.truthy(text:find("epoch 1/1  train loss", 1, true), text)
    -- m_conv is no member of a pruned group: only training changes it
    local after = copy:node("m_conv"):weight()
    assert.is_true(util.rel_err(after:totable(), before:totable()) > 1e-4)
  end)

  it("fine-tunes with the teacher's soft targets only when how.distill > 0", function()
    local x = fm.test:batch(range(8))
    local function tuned(how)
      local copy = net:clone()
      how.batch, how.lr, how.progress, how.log = 64, 0.01, false, quiet
      pruner.finetune(copy, fm.train, 1, how)
      return outputs(copy, x)
    end
    local teacher = mixed()   -- another net: other logits to learn from
    local plain = tuned({})
    assert.are.same(plain, tuned({teacher = teacher, distill = 0}))
    assert.is_true(util.rel_err(tuned({teacher = teacher, distill = 0.9}), plain) > 1e-3)
  end)

  it("hints every refitted layer's output at the original's, through the channels kept",
     function()
    local copy = net:clone()
    local w = pruner.widths(net, plan, 1.5)
    local _, origins = pruner.prune(copy, fm.train, plan, w.counts,
                                    {original = net, images = 32, log = quiet})
    local hints, want = pruner.hints(plan, w.counts, origins), {}
    for i, e in ipairs(plan) do
      if e.consumer and w.counts[i] < e.channels then
        for _, name in ipairs(e.consumers) do want[name] = true end
      end
    end
    local got = {}
    for _, h in ipairs(hints) do
      assert.is_nil(got[h.student], h.student .. " hinted twice")
      got[h.student] = true
      assert.are.equal(h.student, h.teacher)
      local now, was = copy:node(h.student):shape()[1], net:node(h.student):shape()[1]
      if h.channels then   -- its own outputs pruned: one original channel per kept one
        assert.are.equal(now, #h.channels)
        assert.is_true(now < was)
        for i = 2, #h.channels do assert.is_true(h.channels[i] > h.channels[i - 1]) end
        assert.is_true(h.channels[1] >= 1 and h.channels[#h.channels] <= was)
      else
        assert.are.equal(was, now)
      end
    end
    assert.are.same(want, got)
    -- lop.train takes them, and they change the fine-tune
    local x = fm.test:batch(range(8))
    local function tuned(how)
      local c = copy:clone()
      how.batch, how.lr, how.progress, how.log, how.teacher = 64, 0.01, false, quiet, net
      pruner.finetune(c, fm.train, 1, how)
      return outputs(c, x)
    end
    local plain = tuned({})
    assert.are.same(plain, tuned({hints = hints, hint_weight = 0}))
    assert.is_true(util.rel_err(tuned({hints = hints, hint_weight = 1}), plain) > 1e-3)
  end)

  it("runs from the command line, and its ONNX output is the same pruning", function()
    local model, out = util.tmpfile(".lop"), util.tmpfile(".onnx")
    net:save(model)
    local code, text = util.run(("%s scripts/prune.lua --model %s --data fashion-mnist "
      .. "--val fashion-mnist --speedup 1.5 --images 64 --points 5 --reps 2 --out %s")
      :format(LOPPER, model, out))
    assert.are.equal(0, code, text)
    for _, want in ipairs{"plan (groups in graph order):", "prune -> 5, refit b_conv2 (block sum)",
                          "prune -> 5, refit b_conv1, e_conv", "skip: " .. SKIPS.c1,
                          "[1/6] stem: 8 -> 5 channels, sampled 64 images x 5 points at 2 layers",
                          "[5/6] g_conv: 16 -> 12 channels", "FLOPs count a multiply-add as 2",
                          "top-1", "pruned 6 groups:", "  p_conv: 8 -> 5 channels (refit c1, c2, ",
                          "skipped 4 groups:", "wrote " .. out} do
      assert.truthy(text:find(want, 1, true), want .. " not in:\n" .. text)
    end
    util.check_onnx(out)
    -- the same steps here, on the same data, give the same network
    local original = lop.load(model)
    local w = pruner.widths(original, plan, 1.5)
    local here = original:clone()
    local train = lop.data.fashion_mnist{pad = 28, test_size = 1}.train
    pruner.prune(here, train, plan, w.counts, {original = original, images = 64, points = 5,
                                              log = quiet})
    local back = lop.load(out)
    assert.are.equal(here:flops(), back:flops())
    assert.are.equal(here:params(), back:params())
    local x = fm.test:batch(range(16))
    assert.is_true(util.rel_err(outputs(back, x), outputs(here, x)) < 1e-5)
    os.remove(model)
    os.remove(out)
  end)
end)

describe("scripts/prune.lua --latency-ms", function()
  it("keeps every group whole for a budget above the original's, and names its latency",
     function()
    local model, out = util.tmpfile(".lop"), util.tmpfile(".lop")
    local original = mixed()
    original:save(model)
    local code, text = util.run(("%s scripts/prune.lua --model %s --data fashion-mnist "
      .. "--latency-ms 100000 --images 32 --points 5 --reps 2 --out %s")
      :format(LOPPER, model, out))
    assert.are.equal(0, code, text)
    local ms = text:match("target 1e%+05 ms at batch 64 %(the original: ([%d.e+-]+) ms%)")
    assert.truthy(ms and tonumber(ms) > 0, text)
    local back = lop.load(out)
    assert.are.equal(original:flops(), back:flops())
    assert.are.equal(original:params(), back:params())
    os.remove(model)
    os.remove(out)
  end)
end)

-- ---- (4) errors ------------------------------------------------------------------------

describe("scripts/prune.lua refuses", function()
  local model = util.tmpfile(".lop")
  setup(function() mixed():save(model) end)
  teardown(function() os.remove(model) end)
  local function prune(args)
    return util.run(("%s scripts/prune.lua --model %s --data fashion-mnist %s")
                    :format(LOPPER, model, args))
  end

  it("an unreachable --speedup or --latency-ms, saying what can be reached", function()
    -- the smallest widths, counted here: one channel per slice in every pruned group
    local net = lop.load(model)
    local before = net:flops()
    for _, e in ipairs(pruner.plan(net)) do
      if e.consumer then
        local keep = {}
        for j = 0, e.slices - 1 do keep[#keep + 1] = j * e.channels // e.slices + 1 end
        net:prune(e.producer, keep)
      end
    end
    local code, text = prune("--speedup 50 --out /tmp/never.onnx")
    assert.are_not.equal(0, code)
    assert.truthy(text:find("a 50x speed-up cannot be reached", 1, true), text)
    assert.truthy(text:find(("a speed-up of %.2fx at most"):format(before / net:flops()), 1, true), text)
    assert.truthy(text:find("skip: " .. SKIPS.m_conv, 1, true), text)   -- the plan came first
    -- a latency budget no widths reach, with what the narrowest measure
    code, text = prune("--latency-ms 0.000001 --images 32 --out /tmp/never.onnx")
    assert.are_not.equal(0, code)
    assert.truthy(text:find("the budget cannot be reached: 1e-06 ms asked, the narrowest "
                            .. "widths tried measure ", 1, true), text)
  end)

  it("a bad --out, or --hints without a fine-tune, before any work", function()
    for _, args in ipairs{"--out pruned.txt", "--out pruned.lop --fold-batchnorm",
                          "--out pruned.lop --hints 10"} do
      local code, text = prune(args)
      assert.are_not.equal(0, code)
      assert.truthy(text:find("--out", 1, true) or text:find("--fold-batchnorm", 1, true)
                    or text:find("--hints applies to the final fine-tune", 1, true), text)
      assert.is_nil(text:find("plan", 1, true), text)
    end
  end)

  it("a fine-tune that diverges, keeping the pruned network in --out", function()
    local out = util.tmpfile(".lop")
    local code, text = prune(("--speedup 1.5 --images 32 --points 5 --epochs 1 --lr 1e30 "
                              .. "--out %s"):format(out))
    assert.are_not.equal(0, code)
    assert.truthy(text:find("training diverged", 1, true), text)
    assert.truthy(text:find("the pruned network, before the fine-tune, is written to " .. out,
                            1, true), text)
    assert.is_nil(text:find("traceback", 1, true), text)
    local back, original = lop.load(out), lop.load(model)
    assert.is_true(back:flops() < original:flops() / 1.4, text)
    local x = lop.data.fashion_mnist{pad = 28, train_size = 1, test_size = 8}.test
                 :batch(range(8))
    for _, row in ipairs(outputs(back, x)) do
      for _, v in ipairs(row) do assert.is_true(v == v and math.abs(v) < 1e6, text) end
    end
    os.remove(out)
  end)

  it("a missing model file", function()
    local code, text = util.run(("%s scripts/prune.lua --model /nonexistent/net.onnx --data "
                                 .. "fashion-mnist --out x.onnx"):format(LOPPER))
    assert.are_not.equal(0, code)
    assert.truthy(text:find("/nonexistent/net.onnx", 1, true), text)
    assert.is_nil(text:find("traceback", 1, true), text)
  end)

  it("images of another shape, naming both shapes", function()
    local rgb = lop.net{input = {3, 28, 28}}
    rgb:linear("fc", rgb:global_avgpool("gap", rgb:conv2d("conv", "input", {out = 4, kernel = 3})),
               {out = 10})
    local path = util.tmpfile(".lop")
    rgb:save(path)
    local code, text = util.run(("%s scripts/prune.lua --model %s --data fashion-mnist --out x.onnx")
                                :format(LOPPER, path))
    os.remove(path)
    assert.are_not.equal(0, code)
    assert.truthy(text:find("--data fashion-mnist: the images are 1x28x28", 1, true), text)
    assert.truthy(text:find("the model takes 3x28x28", 1, true), text)
  end)
end)
