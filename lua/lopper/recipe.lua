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
            help = "timed forward passes per latency measurement"},
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
  r.before = lop.measure(r.original, {data = r.data.test, reps = opt.reps})
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
-- reference: sample Y from this network instead (He et al.'s accumulated-error fix).
function Recipe:prune_input_of(name, keep_fraction, reference)
  local t0 = os.time()
  local s = lop.sample(self.net, self.data.train, name, {images = self.opt.images,
                       points = self.opt.points, seed = self.opt.seed,
                       reference = reference})
  local keep = self:select(s, keep_fraction)
  local before = s:channels()
  local _, err = lop.reconstruct(self.net, name, s, keep,
                                 {mode = self.opt.solver == "thinet" and "scale" or "weights"})
  s:close()
  print(("  %-10s input channels %4d -> %4d  (%s, reconstruction error %.4f, %ds)")
        :format(name, before, #keep, self.opt.solver, err, os.time() - t0))
end

function Recipe:finetune(epochs, label)
  if epochs <= 0 then return end
  local d = self.data.train
  local whole = math.floor(epochs)
  local frac = epochs - whole
  local function run(ds, n)
    lop.train(self.net, ds, {epochs = n, batch = self.opt.batch, lr = self.opt.lr,
                             crop = 2, flip = true, seed = self.opt.seed,
                             progress = self.opt.progress})
  end
  if whole > 0 then run(d, whole) end
  if frac > 0 then
    local part = d:subset(1, math.max(2, math.floor(frac * #d)))
    run(part, 1)
    part:close()
  end
  local e = lop.evaluate(self.net, self.data.test, {progress = false})
  print(("  fine-tuned %s (%.2g epochs): test top-1 %.2f%%"):format(label or "", epochs,
        100 * e.top1))
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

-- The closing table (top-1, params, FLOPs, latency at batch 1 and 64, ratios) and
-- the saved model; returns both measurements.
function Recipe:finish()
  local text, before, after = lop.compare(self.before, lop.measure(self.net,
                                          {data = self.data.test, reps = self.opt.reps}))
  print("\n" .. text)
  self.net:save(self.opt.out)
  print("saved " .. self.opt.out)
  return before, after
end
