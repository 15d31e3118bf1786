-- train_spec.lua - lop.train and lop.evaluate: a small net learns Fashion-MNIST, the
-- evaluation agrees with a hand computation from net:forward, a teacher's logits are
-- learned from (distillation), and its activations too (feature hints, through a
-- channel map), options are checked,
-- the progress-function contract holds (including errors raised in it and objects
-- closed by it), and the progress line appears only where it should.
local lop = require "lopper"

local LOPPER = os.getenv("LOPPER") or "build/lopper"

-- conv-BN-ReLU-pool twice, then a linear classifier: learns in an epoch or two.
local function small_net(seed, side)
  side = side or 28
  local net = lop.net { input = { 1, side, side }, seed = seed or 1 }
  local x = net:conv2d("conv1", "input", { out = 8, kernel = 3, pad = 1 })
  x = net:relu("relu1", net:batchnorm("bn1", x))
  x = net:maxpool("pool1", x, { kernel = 2 })
  x = net:conv2d("conv2", x, { out = 16, kernel = 3, pad = 1 })
  x = net:relu("relu2", net:batchnorm("bn2", x))
  x = net:maxpool("pool2", x, { kernel = 2 })
  net:linear("fc", net:flatten("flat", x), { out = 10 })
  return net
end

-- A 2000-image training set and a held-out 1000 (the first test images), 28x28.
local data = lop.data.fashion_mnist { pad = false, train_size = 2000, test_size = 1000 }

-- Mean cross-entropy and top-1 of net on ds computed here from the logits.
local function by_hand(net, ds)
  local idx = {}
  for i = 1, #ds do idx[i] = i end
  local x, labels = ds:batch(idx)
  local logits = net:forward(x):totable()
  local loss, hits = 0, 0
  for i, row in ipairs(logits) do
    local best, m = 1, -math.huge
    for k, v in ipairs(row) do
      if v > m then best, m = k, v end
    end
    local z = 0
    for _, v in ipairs(row) do z = z + math.exp(v - m) end
    loss = loss - (row[labels[i] + 1] - m - math.log(z))
    if best == labels[i] + 1 then hits = hits + 1 end
  end
  return loss / #logits, hits / #logits
end

describe("lop.evaluate", function()
  it("agrees with top-1 and cross-entropy computed from the logits", function()
    local net = small_net(3)
    local e = lop.evaluate(net, data.test, { batch = 96 })
    assert.are.equal(1000, e.n)
    local loss, top1 = by_hand(net, data.test)
    assert.is_true(math.abs(e.loss - loss) < 1e-4 * loss, ("loss %g vs %g"):format(e.loss, loss))
    assert.is_true(math.abs(e.top1 - top1) < 1e-9, ("top1 %g vs %g"):format(e.top1, top1))
    local e2 = lop.evaluate(net, data.test)   -- the batch size does not matter
    assert.are.equal(e.top1, e2.top1)
    assert.is_true(math.abs(e.loss - e2.loss) < 1e-6 * e.loss)
  end)
end)

describe("lop.train", function()
  it("learns: loss falls and held-out top-1 is far above chance", function()
    local net = small_net(1)
    local before = lop.evaluate(net, data.test)
    local r = lop.train(net, data.train, { epochs = 2, batch = 64, seed = 5 })
    assert.are.equal(2000, r.n)
    assert.is_true(r.top1 >= 0 and r.top1 <= 1)
    assert.is_true(r.loss > 0)
    local after = lop.evaluate(net, data.test)
    assert.are.equal(1000, after.n)
    assert.is_true(after.loss < 0.6 * before.loss,
                   ("held-out loss %g -> %g"):format(before.loss, after.loss))
    assert.is_true(after.top1 > 0.5, "held-out top-1 " .. after.top1)
    local loss, top1 = by_hand(net, data.test)
    assert.is_true(math.abs(after.top1 - top1) < 1e-9)
    assert.is_true(math.abs(after.loss - loss) < 1e-4 * loss)
  end)

  it("is repeatable: same init and seed, same result; another seed differs", function()
    local opts = { epochs = 1, batch = 100, crop = 2, flip = true, seed = 9,
                   schedule = "step", step_epochs = 1, gamma = 0.5, lr = 0.02 }
    local sub = data.train:subset(1, 500)
    local a = lop.train(small_net(2), sub, opts)
    local b = lop.train(small_net(2), sub, opts)
    assert.are.same(a, b)
    opts.seed = 10
    local c = lop.train(small_net(2), sub, opts)
    assert.are_not.same(a, c)
  end)

  it("resumes exactly: epochs run in parts give the same net as in one call", function()
    local sub = data.train:subset(1, 300)
    local probe = data.test:subset(1, 50)
    local opts = { epochs = 3, batch = 64, crop = 2, flip = true, seed = 4, lr = 0.03 }
    local function logits(net) return net:forward((probe:batch({ 1, 2, 3, 4, 5 }))):totable() end
    local function with(extra)
      local o = {}
      for k, v in pairs(opts) do o[k] = v end
      for k, v in pairs(extra) do o[k] = v end
      return o
    end
    local whole, lrs = small_net(6), {}
    lop.train(whole, sub, with { on_epoch = function(e) lrs[e.epoch] = e.lr end })
    -- Same process: the momentum buffers stay in the net, so the parts equal the whole.
    local parts, seen = small_net(6), {}
    lop.train(parts, sub, with { last_epoch = 2 })
    lop.train(parts, sub, with { first_epoch = 3,
                                 on_epoch = function(e) seen[#seen + 1] = e.epoch; lrs.part = e.lr end })
    assert.are.same({ 3 }, seen)
    assert.are.equal(lrs[3], lrs.part)
    assert.are.same(logits(whole), logits(parts))
    -- Skipping the first two epochs is not the same thing (the check can fail).
    local skipped = small_net(6)
    lop.train(skipped, sub, with { first_epoch = 3 })
    assert.are_not.same(logits(whole), logits(skipped))
    -- Through a model file (momentum restarts at zero), exact when there is none.
    opts.momentum = 0
    whole = small_net(6)
    lop.train(whole, sub, opts)
    local path = os.tmpname()
    parts = small_net(6)
    lop.train(parts, sub, with { last_epoch = 1 })
    parts:save(path)
    parts = lop.load(path)
    os.remove(path)
    lop.train(parts, sub, with { first_epoch = 2 })
    assert.are.same(logits(whole), logits(parts))
    for _, bad in ipairs { { first_epoch = 0 }, { first_epoch = 4 }, { last_epoch = 4 },
                           { first_epoch = 3, last_epoch = 2 }, { last_epoch = 0 } } do
      local ok, err = pcall(lop.train, small_net(6), sub, with(bad))
      assert.is_false(ok)
      assert.truthy(tostring(err):find("_epoch", 1, true), tostring(err))
    end
  end)

  it("rejects bad options, naming them", function()
    local net, ds = small_net(), data.train
    local cases = {
      { { lrr = 0.1 }, "lrr" },
      { { lr = 0 }, "lr" },
      { { lr = -1 }, "lr" },
      { { lr = 0 / 0 }, "lr" },
      { { lr = "0.1" }, "lr" },
      { { epochs = 0 }, "epochs" },
      { { epochs = 1.5 }, "epochs" },
      { { batch = 1 }, "batch" },
      { { momentum = 1 }, "momentum" },
      { { momentum = -0.1 }, "momentum" },
      { { weight_decay = -1 }, "weight_decay" },
      { { nesterov = 1 }, "nesterov" },
      { { schedule = "linear" }, "linear" },
      { { schedule = 3 }, "schedule" },
      { { schedule = "step" }, "step_epochs" },
      { { schedule = "step", step_epochs = 0 }, "step_epochs" },
      { { gamma = 0 }, "gamma" },
      { { crop = 29 }, "crop" },
      { { crop = -1 }, "crop" },
      { { flip = "yes" }, "flip" },
      { { seed = -1 }, "seed" },
      { { progress = 1 }, "progress" },
      { { [1] = true }, "option" },
      { "fast", "table expected" },
    }
    for k, c in ipairs(cases) do
      local ok, err = pcall(lop.train, net, ds, c[1])
      assert.is_false(ok, "case " .. k .. " should fail")
      assert.truthy(tostring(err):find(c[2], 1, true), ("case %d: %s"):format(k, tostring(err)))
    end
    for k, c in ipairs { { { batch = 0 }, "batch" }, { { epochs = 1 }, "epochs" },
                         { { progress = "yes" }, "progress" } } do
      local ok, err = pcall(lop.evaluate, net, ds, c[1])
      assert.is_false(ok, "evaluate case " .. k .. " should fail")
      assert.truthy(err:find(c[2], 1, true), err)
    end
  end)

  it("raises the engine's message when data and net do not fit", function()
    local ok, err = pcall(lop.train, small_net(1, 32), data.train)
    assert.is_false(ok)
    assert.truthy(err:find("28x28", 1, true), err)
    ok, err = pcall(lop.evaluate, small_net(1, 32), data.test)
    assert.is_false(ok)
    assert.truthy(err:find("28x28", 1, true), err)
    local five = lop.net { input = { 1, 28, 28 } }
    five:linear("fc", five:flatten("flat", "input"), { out = 5 })
    ok, err = pcall(lop.train, five, data.train)
    assert.is_false(ok)
    assert.truthy(err:find("10 class", 1, true), err)
    local closed = small_net()
    closed:close()
    local cases = {
      { lop.train, closed, data.train }, { lop.evaluate, closed, data.test },
      { lop.train, data.train, small_net() }, { lop.train, small_net() },
      { lop.evaluate, small_net(), lop.tensor(2) }, { lop.evaluate }, { lop.train, {}, {} },
      { lop.train, small_net(), data.train:subset(1, 1) },
    }
    for k, c in ipairs(cases) do
      local ok2, err2 = pcall(table.unpack(c, 1, 3))
      assert.is_false(ok2, "case " .. k .. " should fail")
      assert.is_true(type(err2) == "string" and #err2 > 0, "case " .. k)
    end
  end)

  it("stops a run that diverges and gives the net back as it was", function()
    local net = small_net(5)
    local part = data.train:subset(1, 256)
    local before = net:node("conv1"):weight():totable()
    local ok, err = pcall(lop.train, net, part, { lr = 1e30, batch = 32, progress = false })
    assert.is_false(ok)
    assert.truthy(err:find("training diverged", 1, true), err)
    assert.truthy(err:find("try a lower learning rate", 1, true), err)
    assert.are.same(before, net:node("conv1"):weight():totable())
    local top1 = lop.train(net, part, { lr = 0.05, batch = 32, progress = false }).top1
    assert.is_true(top1 > 0.1, "trains again afterwards: " .. top1)
  end)
end)

describe("lop.train with a teacher", function()
  -- Top-1 class of each image of ds by net.
  local function predictions(net, ds)
    local idx = {}
    for i = 1, #ds do idx[i] = i end
    local out = {}
    for i, row in ipairs(net:forward((ds:batch(idx))):totable()) do
      local best = 1
      for k, v in ipairs(row) do if v > row[best] then best = k end end
      out[i] = best
    end
    return out
  end
  local function agreement(a, b)
    local same = 0
    for i = 1, #a do if a[i] == b[i] then same = same + 1 end end
    return same / #a
  end
  local function labels_of(ds)
    local idx = {}
    for i = 1, #ds do idx[i] = i end
    local _, labels = ds:batch(idx)
    local out = {}
    for i, l in ipairs(labels) do out[i] = l + 1 end
    return out
  end

  it("learns the teacher's answers with distill = 1, the labels' without", function()
    -- An untrained teacher's classes are an arbitrary function of the image, unrelated
    -- to the labels: only a student that learns from its logits can match them.
    local teacher = small_net(21)
    local held = data.test:subset(1, 500)
    local wanted, truth = predictions(teacher, held), labels_of(held)
    local opts = { epochs = 2, batch = 64, seed = 3 }
    local plain = small_net(1)
    lop.train(plain, data.train, opts)
    local taught = small_net(1)
    opts.teacher, opts.distill, opts.temperature = teacher, 1, 1
    lop.train(taught, data.train, opts)
    local p, t = predictions(plain, held), predictions(taught, held)
    assert.is_true(agreement(t, wanted) > agreement(p, wanted) + 0.2,
                   ("agreement with the teacher %.3f (taught) vs %.3f (plain)")
                   :format(agreement(t, wanted), agreement(p, wanted)))
    assert.is_true(agreement(p, truth) > agreement(t, truth) + 0.3,
                   ("top-1 %.3f (plain) vs %.3f (taught)")
                   :format(agreement(p, truth), agreement(t, truth)))
  end)

  it("trains as without one when distill = 0, and leaves the teacher as it was", function()
    local sub, probe = data.train:subset(1, 300), data.test:subset(1, 20)
    local teacher = small_net(5)
    local before = teacher:forward((probe:batch({ 1, 2, 3 }))):totable()
    local a, b = small_net(2), small_net(2)
    local opts = { epochs = 1, batch = 50, crop = 2, flip = true, seed = 8 }
    lop.train(a, sub, opts)
    opts.teacher, opts.distill = teacher, 0
    lop.train(b, sub, opts)
    -- The two losses round differently (by an ulp), so the nets agree closely, not in
    -- every bit; another seed moves the logits by whole units.
    local x = probe:batch({ 1, 2, 3, 4, 5 })
    local function gap(p, q)
      local worst = 0
      for i, row in ipairs(p:forward(x):totable()) do
        local other = q:forward(x):totable()[i]
        for k, v in ipairs(row) do worst = math.max(worst, math.abs(v - other[k])) end
      end
      return worst
    end
    assert.is_true(gap(a, b) < 1e-3, "logits differ by " .. gap(a, b))
    local c = small_net(2)
    opts.seed = 9
    lop.train(c, sub, opts)
    assert.is_true(gap(a, c) > 1e-2, "another seed: logits differ by " .. gap(a, c))
    assert.are.same(before, teacher:forward((probe:batch({ 1, 2, 3 }))):totable())
  end)

  it("rejects a bad teacher or distillation option, naming it", function()
    local net, sub = small_net(), data.train:subset(1, 200)
    local closed = small_net()
    closed:close()
    local five = lop.net { input = { 1, 28, 28 } }
    five:linear("fc", five:flatten("flat", "input"), { out = 12 })
    local wide = lop.net { input = { 1, 32, 32 } }
    wide:linear("fc", wide:flatten("flat", "input"), { out = 10 })
    local cases = {
      { { teacher = net }, "another network" },
      { { teacher = "models/vgg16.lop" }, "teacher" },
      { { teacher = closed }, "closed" },
      { { teacher = five }, "teacher gives 12" },
      { { teacher = wide }, "28x28" },
      { { teacher = small_net(), distill = 1.5 }, "distill" },
      { { teacher = small_net(), distill = -0.5 }, "distill" },
      { { teacher = small_net(), temperature = 0 }, "temperature" },
      { { teacher = small_net(), temperature = 0 / 0 }, "temperature" },
    }
    for k, c in ipairs(cases) do
      local ok, err = pcall(lop.train, net, sub, c[1])
      assert.is_false(ok, "case " .. k .. " should fail")
      assert.truthy(tostring(err):find(c[2], 1, true), ("case %d: %s"):format(k, tostring(err)))
    end
    local teacher = small_net()
    local ok, err = pcall(lop.train, net, sub, { teacher = teacher, batch = 50,
                                                 progress = function() teacher:close() end })
    assert.is_false(ok)
    assert.truthy(err:find("teacher", 1, true), err)
  end)
end)

describe("lop.train with feature hints", function()
  -- Relative squared error between columns of two [n, 10] logit tables, column c of a
  -- against column map[c] of b.
  local function rel_err(a, b, map)
    local err, energy = 0, 0
    for i, row in ipairs(a) do
      for c, v in ipairs(row) do
        local t = b[i][map[c]]
        err, energy = err + (v - t) ^ 2, energy + t ^ 2
      end
    end
    return err / energy
  end
  local SAME = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }
  local SWAPPED = { 2, 1, 4, 3, 6, 5, 8, 7, 10, 9 }

  it("pulls a node's output to the teacher's, each channel to the one mapped", function()
    -- Hints at the logits of an untrained teacher with its classes swapped in pairs:
    -- the student's logit c must come to match the teacher's SWAPPED[c].
    local teacher, sub = small_net(21), data.train:subset(1, 1000)
    local x = data.test:batch((function() local t = {} for i = 1, 200 do t[i] = i end return t end)())
    local want = teacher:forward(x):totable()
    local opts = { epochs = 2, batch = 50, seed = 3, lr = 0.02 }
    local plain = small_net(1)
    lop.train(plain, sub, opts)
    local hinted = small_net(1)
    opts.teacher, opts.distill = teacher, 0
    opts.hints = { { student = "fc", teacher = "fc", channels = SWAPPED } }
    opts.hint_weight = 1
    lop.train(hinted, sub, opts)
    local p, h = plain:forward(x):totable(), hinted:forward(x):totable()
    local e_plain, e_hinted = rel_err(p, want, SWAPPED), rel_err(h, want, SWAPPED)
    assert.is_true(e_hinted < 0.25 * e_plain,
                   ("error against the mapped teacher %.3f (hinted) vs %.3f (plain)")
                   :format(e_hinted, e_plain))
    assert.is_true(rel_err(h, want, SAME) > 2 * e_hinted,
                   "the hinted net learnt the teacher's own channel order")
  end)

  it("rejects bad hints, naming the problem, before training", function()
    local net, sub, teacher = small_net(), data.train:subset(1, 200), small_net(4)
    local before = net:node("conv1"):weight():totable()
    local ok_hint = { student = "conv2", teacher = "conv2" }
    local cases = {
      { { hints = { ok_hint } }, "needs option 'teacher'" },
      { { teacher = teacher, hints = "conv2" }, "list of" },
      { { teacher = teacher, hints = {} }, "1 to 65536" },
      { { teacher = teacher, hints = { 3 } }, "hints[1] must be a table" },
      { { teacher = teacher, hints = { { teacher = "conv2" } } }, "hints[1].student" },
      { { teacher = teacher, hints = { { student = "nope", teacher = "conv2" } } }, "no node 'nope'" },
      { { teacher = teacher, hints = { { student = "input", teacher = "input" } } }, "not the input" },
      { { teacher = teacher, hints = { ok_hint, { student = "conv2", teacher = "conv1" } } },
        "differ in shape" },
      { { teacher = teacher, hints = { { student = "conv2", teacher = "conv2", channels = { 1, 2 } } } },
        "must list 16 channels" },
      { { teacher = teacher, hints = { { student = "bn1", teacher = "bn2", channels = { 1, 2, 3, 4, 5, 6, 7, 17 } } } },
        "channels[8] must be a channel in 1..16" },
      { { teacher = teacher, hints = { ok_hint }, hint_weight = -1 }, "hint_weight" },
      { { teacher = teacher, hint_weight = 2 }, "goes with option 'hints'" },
    }
    for k, c in ipairs(cases) do
      local ok, err = pcall(lop.train, net, sub, c[1])
      assert.is_false(ok, "case " .. k .. " should fail")
      assert.truthy(tostring(err):find(c[2], 1, true), ("case %d: %s"):format(k, tostring(err)))
    end
    assert.are.same(before, net:node("conv1"):weight():totable())
  end)
end)

describe("a progress function", function()
  local sub = data.train:subset(1, 600)

  it("gets every batch in order with the documented fields", function()
    local calls = {}
    local r = lop.train(small_net(), sub, { epochs = 2, batch = 100, progress = function(p)
      calls[#calls + 1] = p
    end })
    assert.are.equal(12, #calls)
    for i, p in ipairs(calls) do
      assert.are.equal("train", p.phase)
      assert.are.equal(i <= 6 and 1 or 2, p.epoch)
      assert.are.equal(2, p.epochs)
      assert.are.equal(((i - 1) % 6 + 1) * 100, p.done)
      assert.are.equal(600, p.total)
      assert.is_true(p.top1 >= 0 and p.top1 <= 1 and p.loss > 0)
      assert.is_true(p.lr > 0 and p.lr <= 0.05 and p.rate > 0 and p.eta >= 0)
      if i > 1 then assert.is_true(p.lr <= calls[i - 1].lr) end   -- cosine falls
    end
    assert.are.equal(0, calls[12].eta)
    assert.are.equal(r.loss, calls[12].loss)
    assert.are.equal(r.top1, calls[12].top1)

    local seen = {}
    local e = lop.evaluate(small_net(), sub, { batch = 256, progress = function(p)
      seen[#seen + 1] = p
    end })
    assert.are.same({ 256, 512, 600 }, { seen[1].done, seen[2].done, seen[3].done })
    assert.are.equal("eval", seen[1].phase)
    assert.is_nil(seen[1].lr)
    assert.are.equal(e.top1, seen[3].top1)
  end)

  it("times a run that stops early (last_epoch) to its own end", function()
    -- one epoch of a 1000-epoch schedule: timing to epoch 1000 would leave an ETA of
    -- about 999 epochs at the last batch
    local calls = {}
    lop.train(small_net(), sub, { epochs = 1000, last_epoch = 1, batch = 100,
                                  progress = function(p) calls[#calls + 1] = p end })
    assert.are.equal(6, #calls)
    assert.are.equal(0, calls[6].eta)
    -- (a slow first batch gets 100x of slack; the schedule's end would be 1000x)
    assert.is_true(calls[1].eta <= 100 * calls[6].done / calls[6].rate, calls[1].eta)
  end)

  it("stops training with its error, which lop.train raises", function()
    local calls = 0
    local ok, err = pcall(lop.train, small_net(), sub, { batch = 100, progress = function(p)
      calls = calls + 1
      if calls == 3 then error("enough at " .. p.done) end
    end })
    assert.is_false(ok)
    assert.truthy(err:find("enough at 300", 1, true), err)
    assert.are.equal(3, calls)
    local obj = {}
    ok, err = pcall(lop.evaluate, small_net(), sub, { batch = 50, progress = function()
      error(obj)
    end })
    assert.is_false(ok)
    assert.are.equal(obj, err)   -- the error value itself, not a copy
  end)

  it("cannot pull the net or data set from under the engine", function()
    local net, ds = small_net(), sub:subset(1, 600)
    local ok, err = pcall(lop.train, net, ds, { batch = 100, progress = function()
      ds:close()
    end })
    assert.is_false(ok)
    assert.truthy(err:find("data set", 1, true), err)
    ds = sub:subset(1, 600)
    ok, err = pcall(lop.train, net, ds, { batch = 100, progress = function()
      ds:pad(30)
    end })
    assert.is_false(ok)
    assert.truthy(err:find("data set", 1, true), err)
    ok, err = pcall(lop.evaluate, net, sub, { batch = 100, progress = function()
      net:close()
    end })
    assert.is_false(ok)
    assert.truthy(err:find("network", 1, true), err)
    net = small_net()
    ok, err = pcall(lop.train, net, sub, { batch = 100, progress = function()
      net:linear("extra", "fc", { out = 10 })
    end })
    assert.is_false(ok)
    assert.truthy(err:find("network", 1, true), err)
    -- running the same net from the callback is fine
    local inner
    lop.train(net:clone(), sub, { batch = 300, progress = function()
      inner = lop.evaluate(net, sub)
    end })
    assert.are.equal(600, inner.n)
  end)
end)

describe("on_epoch", function()
  local sub = data.train:subset(1, 601)   -- the last batch of one image is skipped

  it("runs after each epoch, and evaluating there does not disturb training", function()
    local reports, last, evals = {}, {}, {}
    local net = small_net(4)
    local r = lop.train(net, sub, { epochs = 3, batch = 100, seed = 3,
      progress = function(p) last[p.epoch] = p end,
      on_epoch = function(e)
        reports[#reports + 1] = e
        evals[#evals + 1] = lop.evaluate(net, data.test, { batch = 500 })
      end })
    assert.are.equal(3, #reports)
    for i, e in ipairs(reports) do
      assert.are.equal(i, e.epoch)
      assert.are.equal(3, e.epochs)
      assert.are.equal(600, e.done)
      assert.are.equal(last[i].loss, e.loss)
      assert.are.equal(last[i].top1, e.top1)
      assert.are.equal(last[i].lr, e.lr)
      assert.is_true(e.seconds > 0)
    end
    assert.is_true(evals[3].loss < evals[1].loss)
    local plain = small_net(4)
    local r2 = lop.train(plain, sub, { epochs = 3, batch = 100, seed = 3 })
    assert.are.same(r, r2)
    assert.are.same(lop.evaluate(plain, data.test, { batch = 500 }), evals[3])
  end)

  it("stops training with its error", function()
    local n = 0
    local ok, err = pcall(lop.train, small_net(), sub, { epochs = 5, batch = 300,
      on_epoch = function(e)
        n = n + 1
        if e.epoch == 2 then error("stop after 2") end
      end })
    assert.is_false(ok)
    assert.truthy(err:find("stop after 2", 1, true))
    assert.are.equal(2, n)
    ok, err = pcall(lop.train, small_net(), sub, { on_epoch = true })
    assert.is_false(ok)
    assert.truthy(err:find("on_epoch", 1, true))
    ok, err = pcall(lop.evaluate, small_net(), sub, { on_epoch = print })
    assert.is_false(ok)
    assert.truthy(err:find("on_epoch", 1, true))
  end)
end)

describe("the progress line", function()
  -- Run a script in a child lopper with stderr captured (not a terminal).
  local function run(body)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write([[
local lop = require "lopper"
local d = lop.data.fashion_mnist { pad = false, train_size = 256, test_size = 64 }
local net = lop.net { input = { 1, 28, 28 } }
net:linear("fc", net:flatten("flat", "input"), { out = 10 })
]], body, "\nio.stdout:write('done')\n")
    f:close()
    local p = assert(io.popen(LOPPER .. " " .. path .. " 2>&1"))
    local out = p:read("a")
    p:close()
    os.remove(path)
    return out
  end

  it("is silent when stderr is not a terminal, or with progress = false", function()
    assert.are.equal("done", run([[
lop.train(net, d.train, { batch = 64 })
lop.evaluate(net, d.test)
lop.train(net, d.train, { batch = 64, progress = false })
lop.evaluate(net, d.test, { progress = false })]]))
  end)

  it("is one updating line with progress = true, ended by a newline", function()
    local out = run([[
lop.train(net, d.train, { batch = 64, epochs = 2, progress = true })
lop.evaluate(net, d.test, { batch = 32, progress = true })]])
    local train, eval, rest = out:match("^(.-)\n(.-)\n(.*)$")
    assert.are.equal("done", rest)
    assert.is_nil(train:find("\n"))
    assert.truthy(train:find("^\rtrain epoch 1/2  64/256 "))
    assert.truthy(train:find("\rtrain epoch 2/2  256/256  %d+ img/s  ETA 0:00  loss [%d.]+  " ..
                             "top%-1 [%d.]+%%  lr [%de.-]+\27%[K$"), train)
    assert.truthy(eval:find("^\reval  32/64 "))
    assert.truthy(eval:find("\reval  64/64 .* top%-1 [%d.]+%%\27%[K$"), eval)
  end)

  it("rates a resumed run by its own images, not those of the epochs it skips", function()
    -- one epoch of 256 images either way; counting the 999 skipped epochs as done
    -- would show a rate near 1000 times the first run's
    local out = run([[
lop.train(net, d.train, { batch = 64, epochs = 1, progress = true })
lop.train(net, d.train, { batch = 64, epochs = 1000, first_epoch = 1000, progress = true })]])
    local plain, resumed = out:match("^(.-)\n(.-)\n")
    local function last_rate(line)
      local rate
      for r in line:gmatch("(%d+) img/s") do rate = tonumber(r) end
      return rate
    end
    assert.truthy(resumed:find("train epoch 1000/1000  256/256", 1, true), resumed)
    assert.is_true(last_rate(resumed) < 20 * last_rate(plain), out)
  end)

  it("ends before on_epoch runs, so that what it prints has its own line", function()
    local out = run([[
lop.train(net, d.train, { batch = 64, epochs = 2, progress = true, on_epoch = function(e)
  io.stderr:write("epoch ", e.epoch, " over\n")
end })]])
    local lines = {}
    for l in out:gmatch("[^\n]*\n?") do lines[#lines + 1] = l end
    assert.truthy(lines[1]:find("^\rtrain epoch 1/2 .*256/256.*\27%[K\n$"), lines[1])
    assert.are.equal("epoch 1 over\n", lines[2])
    assert.truthy(lines[3]:find("^\rtrain epoch 2/2 .*256/256.*\27%[K\n$"), lines[3])
    assert.are.equal("epoch 2 over\n", lines[4])
    assert.are.equal("done", lines[5])
  end)
end)
