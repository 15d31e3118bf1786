-- recipe.lua - what every pruning recipe in scripts/ shares, so each recipe file reads
-- as its method and nothing else: the common command-line options (parsed the same
-- way everywhere), the data, the selection step by solver name, fine-tuning, and the
-- closing before/after table plus the saved model.
--
--   local r = lop.recipe.start(arg, {keep = {default = 0.5}}, "What this recipe does.")
--   ... r.net, r.original, r.data, r.opt ...
--   r:prune_input_of("conv3_2")       -- sample, select (r.opt.solver), reconstruct
--   r:finetune(r.opt.finetune)
--   r:finish()                        -- prints the table, saves r.opt.out
local lop = ...

local recipe = {}
lop.recipe = recipe

-- The options every recipe takes; a recipe passes overrides (new defaults or extra
-- options) as a spec table of its own.
local function common_spec()
  return {
    model = {default = "models/vgg16.lop", type = "string", metavar = "FILE",
             help = "the trained model to prune"},
    out = {type = "string", metavar = "FILE", help = "where to save the pruned model",
           default_text = "<model>.pruned.lop"},
    solver = {default = "thinet", choices = {"thinet", "lasso", "l1", "first", "random"},
              help = "channel selection rule"},
    keep = {default = 0.5, type = "number", min = 0, exclusive_min = true, max = 1,
            help = "fraction of channels kept in each pruned layer"},
    images = {default = 500, type = "int", min = 1, help = "calibration images per layer"},
    points = {default = 10, type = "int", min = 1, help = "sampled positions per image"},
    finetune = {default = 1, type = "number", min = 0,
                help = "fine-tuning epochs after each pruned layer (fractions allowed)"},
    final = {default = 3, type = "number", min = 0, help = "fine-tuning epochs at the end"},
    lr = {default = 0.005, type = "number", min = 0, exclusive_min = true,
          help = "fine-tuning learning rate (cosine within each fine-tune)"},
    batch = {default = 128, type = "int", min = 2, help = "fine-tuning minibatch"},
    train_size = {type = "int", min = 2, max = 60000, default_text = "all 60000",
                  help = "fine-tune and calibrate on the first N training images"},
    test_size = {type = "int", min = 1, max = 10000, default_text = "all 10000",
                 help = "evaluate on the first N test images"},
    seed = {default = 1, type = "int", min = 0, help = "sampling, shuffling, augmentation"},
    progress = {type = "bool", default_text = "when stderr is a terminal",
                help = "show progress lines on stderr"},
    reps = {default = 20, type = "int", min = 1,
            help = "timed batch-1 passes per latency measurement (half as many at batch 64)"},
  }
end

local Recipe = {}
Recipe.__index = Recipe

function recipe.start(arg, overrides, description)
  local spec = common_spec()
  for k, v in pairs(overrides or {}) do   -- fields of a common option, or a new one
    spec[k] = spec[k] or {}
    for field, value in pairs(v) do spec[k][field] = value end
  end
  local opt = lop.options(arg, spec, {description = description})
  opt.out = opt.out or (opt.model:gsub("%.lop$", "") .. ".pruned.lop")
  io.stdout:setvbuf("line")
  local r = setmetatable({opt = opt, log = {}}, Recipe)
  r.net = lop.load(opt.model)
  r.original = r.net:clone()
  r.data = lop.data.fashion_mnist{train_size = opt.train_size, test_size = opt.test_size}
  r.before = lop.measure(r.original, {data = r.data.test, latency = false})
  print(("%s: test top-1 %.2f%%, %.2fM params, %.2fM FLOPs (multiply-add = 2)")
        :format(opt.model, 100 * r.before.top1, r.before.params / 1e6, r.before.flops / 1e6))
  return r
end

-- Channels to keep of the conv's input, by the recipe's solver, from statistics s.
function Recipe:select(s, keep_fraction)
  local solver, frac = self.opt.solver, keep_fraction or self.opt.keep
  if solver == "random" then return lop.select.random(s, {keep = frac, seed = self.opt.seed}) end
  return lop.select[solver](s, {keep = frac})
end

-- Prune the input channels of conv `name` (and the filters producing them): sample,
-- select, reconstruct (ThiNet scales the kept channels; the others refit weights).
-- how.reference: take targets Y from this (original) network instead - He et al.'s
-- correction of the error accumulated upstream; how.residual: also match the sum of
-- the residual block this conv ends (see lop.sample).
function Recipe:prune_input_of(name, keep_fraction, how)
  how = how or {}
  local t0 = os.time()
  local s = lop.sample(self.net, self.data.train, name, {images = self.opt.images,
                       points = self.opt.points, seed = self.opt.seed,
                       reference = how.reference, residual = how.residual})
  local keep = self:select(s, keep_fraction)
  local before = s:channels()
  local _, err = lop.reconstruct(self.net, name, s, keep,
                                 {mode = self.opt.solver == "thinet" and "scale" or "weights"})
  s:close()
  print(("  %-10s input channels %4d -> %4d  (%s, reconstruction error %.4f, %ds)")
        :format(name, before, #keep, self.opt.solver, err, os.time() - t0))
end

-- Each call sees other batches: its own seed (--seed, then +1 per call) and, for a
-- fraction of an epoch, the next window of the training set.
function Recipe:finetune(epochs, label)
  if epochs <= 0 then return end
  local d = self.data.train
  local whole = math.floor(epochs)
  local frac = epochs - whole
  self.finetunes = (self.finetunes or 0) + 1
  local function run(ds, n)
    lop.train(self.net, ds, {epochs = n, batch = self.opt.batch, lr = self.opt.lr,
                             crop = 2, flip = true, seed = self.opt.seed + self.finetunes - 1,
                             progress = self.opt.progress,
                             on_epoch = n > 1 and function(e)   -- a line per epoch in logs
                               print(("    epoch %d/%d  train loss %.4f top-1 %.2f%%  %.0f s")
                                     :format(e.epoch, n, e.loss, 100 * e.top1, e.seconds))
                             end or nil})
  end
  if whole > 0 then run(d, whole) end
  if frac > 0 then
    local count = math.max(2, math.floor(frac * #d))
    local part = d:subset(1 + (self.finetunes - 1) * count % (#d - count + 1), count)
    run(part, 1)
    part:close()
  end
  local e = lop.evaluate(self.net, self.data.test, {progress = false})
  print(("  fine-tuned %s (%.2g epochs): test top-1 %.2f%%"):format(label or "", epochs,
        100 * e.top1))
end

-- Keep fractions for the input channels of each conv in `consumers` that bring the
-- network's FLOPs to `target`: fraction i = min(1, scale * stretch[i]) (stretch > 1
-- keeps a layer wider; all 1 when omitted), one scale found by bisection on FLOPs
-- counted on pruned copies.  Returns the fractions and the FLOPs they give.
function Recipe:keep_for_flops(consumers, target, stretch)
  local function fractions(scale)
    local k = {}
    for i = 1, #consumers do k[i] = math.min(1, scale * (stretch and stretch[i] or 1)) end
    return k
  end
  local function flops_with(k)
    local net = self.original:clone()
    for i, name in ipairs(consumers) do
      local g = net:group_of(net:node(name):inputs()[1])
      local keep = {}
      for c = 1, math.max(1, math.ceil(k[i] * g.channels - 1e-9)) do keep[c] = c end
      net:prune(g, keep)
    end
    local f = net:flops()
    net:close()
    return f
  end
  local lo, hi = 0, 1
  for _ = 1, 30 do
    local mid = (lo + hi) / 2
    if flops_with(fractions(mid)) > target then hi = mid else lo = mid end
  end
  local k = fractions(lo)
  return k, flops_with(k)
end

-- VGG-16's convolutions in order; pruning conv k's filters is pruning conv k+1's inputs.
recipe.VGG16_CONVS = {"conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2",
                      "conv3_3", "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2",
                      "conv5_3"}

-- ThiNet's schedule on VGG-16: the first ten convolutions' filters, one layer at a time,
-- each followed by a short fine-tune.
function Recipe:thinet_first_ten()
  for i = 1, 10 do
    local consumer = recipe.VGG16_CONVS[i + 1]
    print(("layer %d/10"):format(i))
    self:prune_input_of(consumer)
    self:finetune(self.opt.finetune, "after " .. consumer)
  end
end

-- A bar chart of every convolution's output channels before and after pruning.
function Recipe:widths_svg()
  local names, before, after = {}, {}, {}
  for _, node in ipairs(self.original:nodes()) do
    if node.kind == "conv2d" and self.net:has(node.name) then
      names[#names + 1] = node.name
      before[#before + 1] = node:shape()[1]
      after[#after + 1] = self.net:node(node.name):shape()[1]
    end
  end
  return lop.svg.bars{title = ("%s: output channels per convolution"):format(self.opt.out),
                      y_label = "channels", categories = names,
                      series = {{name = "before", values = before},
                                {name = "after", values = after}}}
end

-- The closing table (top-1, params, FLOPs, latency at batch 1 and 64, ratios), the
-- saved model and the per-layer widths plot beside it; returns both measurements.
-- The original is timed again now, in alternation with the pruned network.
function Recipe:finish()
  local before = self.before
  local after = lop.measure(self.net, {data = self.data.test, latency = false})
  local t = lop.latency({self.original, self.net}, {reps = self.opt.reps})
  before.ms1, before.ms64, after.ms1, after.ms64 = t[1].ms1, t[1].ms64, t[2].ms1, t[2].ms64
  local text = lop.compare(before, after)
  print("\n" .. text)
  self.net:save(self.opt.out)
  print("saved " .. self.opt.out)
  local plot = self.opt.out:gsub("%.lop$", "") .. ".widths.svg"
  lop.write_text(plot, self:widths_svg())
  print("per-layer widths plotted in " .. plot)
  return before, after
end
