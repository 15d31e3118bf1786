-- recipe.lua - what every pruning recipe in scripts/ shares, so each recipe file reads
-- as its method and nothing else: the common command-line options (parsed the same
-- way everywhere), the model and the data (a missing or unreadable file is reported in
-- one line), one pruning step by solver and refit name, fine-tuning, and the closing
-- before/after table plus the saved model.  Which layers are pruned, in what order and
-- how, is the recipe's own business.
--
--   local r = lop.recipe.start(arg, {keep = {default = 0.5}}, "What this recipe does.")
--   ... r.net, r.original, r.data, r.opt ...
--   r:prune_input_of("conv3_2")       -- sample, select (--solver), reconstruct (--refit)
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
    data = {type = "string", metavar = "DIR",
            default_text = "/usr/share/datasets/fashion-mnist",
            help = "the directory of the Fashion-MNIST files"},
    solver = {default = "thinet", choices = {"thinet", "lasso", "l1", "first", "random"},
              help = "channel selection rule"},
    refit = {default = "weights", choices = {"weights", "scale"},
             help = "how the next layer is fitted to the kept channels: weights = a "
                    .. "least-squares refit of all its weights and bias, scale = ThiNet's "
                    .. "one least-squares factor per kept channel (the paper's variant)"},
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

-- lop.load and the data openers for recipes: what they fail on (a missing file, one
-- that is not a model, a directory without the data set) is the user's mistake,
-- reported as the one line that names it (recipe.users_mistake(f, ...) calls f so).
-- Raised without a source position, it is printed without the traceback a bug in the
-- code deserves.
function recipe.users_mistake(f, ...)
  local ok, result = pcall(f, ...)
  if not ok then error(result, 0) end
  return result
end

function recipe.load(path) return recipe.users_mistake(lop.load, path) end

function recipe.fashion_mnist(opts) return recipe.users_mistake(lop.data.fashion_mnist, opts) end

-- The warning line for a LASSO selection that stopped before converging (info is the
-- third result of lop.select.lasso), naming the conv whose inputs it chose; nil when
-- it converged.
function recipe.lasso_warning(conv, info)
  if info.converged then return nil end
  return ("warning: the LASSO selection of %s's input channels did not converge (%d "
          .. "sweeps, lambda %.4g); the channels it keeps may not be the best choice")
         :format(conv, info.sweeps, info.lambda)
end

-- The latency budget's options (--latency-ms, --latency-batch), added to spec: every
-- script that chooses widths for a measured latency takes them alike.
function recipe.latency_options(spec)
  spec.latency_ms = {type = "number", min = 0, exclusive_min = true, metavar = "MS",
                     default_text = "none: --speedup",
                     help = "target latency instead: ms per forward pass at "
                            .. "--latency-batch, measured on this machine (automatic widths)"}
  spec.latency_batch = {default = 64, type = "int", min = 1,
                        help = "the batch size --latency-ms is measured at"}
  return spec
end

-- The options of the recipes pruning to a budget (lasso_vgg16.lua, resnet.lua): how the
-- per-layer keep fractions are found (Recipe:budget_fractions).  `ratios` names what the
-- recipe's own fractions are.
function recipe.budget_options(spec, ratios)
  spec.widths = {default = "ratios", choices = {"ratios", "auto"},
                 help = "ratios: " .. ratios .. ", scaled by one factor bisected to "
                        .. "--speedup; auto: per layer, from each layer's reconstruction "
                        .. "error at every width and what each width saves (lop.widths)"}
  return recipe.latency_options(spec)
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
  r.net = recipe.load(opt.model)
  r.original = r.net:clone()
  r.data = recipe.fashion_mnist{dir = opt.data, train_size = opt.train_size,
                                test_size = opt.test_size}
  r.before = lop.measure(r.original, {data = r.data.test, latency = false})
  print(("%s: test top-1 %.2f%%, %.2fM params, %.2fM FLOPs (multiply-add = 2)")
        :format(opt.model, 100 * r.before.top1, r.before.params / 1e6, r.before.flops / 1e6))
  return r
end

-- Prune the input channels of layer `name` (and the filters producing them): sample,
-- select (--solver), reconstruct (--refit: scale the kept channels, or refit weights),
-- through lop.pruner.prune_group - so when several layers read those channels (a
-- residual stage), every one is sampled and refitted and the selection weighs them
-- all.  how.reference: take targets Y from this (original) network instead - He et
-- al.'s correction of the error accumulated upstream; how.residual: also match the sum
-- of the residual block this conv ends (see lop.sample).
function Recipe:prune_input_of(name, keep_fraction, how)
  how = how or {}
  local t0 = os.time()
  local e = lop.pruner.entry(self.net, name, {solver = self.opt.solver})
  e.residual = how.residual and true or false
  local count = lop.pruner.kept(keep_fraction or self.opt.keep, e.channels, e.slices)
  self.origins = self.origins or {}
  local got = lop.pruner.prune_group(self.net, self.data.train, e, count, {
    images = self.opt.images, points = self.opt.points, seed = self.opt.seed,
    solver = self.opt.solver, refit = self.opt.refit, reference = how.reference,
    dropout = self.opt.finetune > 0 or self.opt.final > 0},   -- fit for the fine-tune
    self.origins)
  local shown = name .. (#e.consumers > 1 and (" +%d"):format(#e.consumers - 1) or "")
  print(("  %-10s input channels %4d -> %4d  (%s, %s refit, reconstruction error %.4f, %ds)")
        :format(shown, e.channels, #got.keep, self.opt.solver, self.opt.refit, got.error,
                os.time() - t0))
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

-- Keep fractions for the input channels of each conv in `consumers` chosen per layer
-- for a budget by lop.widths.choose (budget.flops, or budget.latency_ms at
-- budget.batch): sensitivity from the original's sampled statistics (--images,
-- --points, --refit), costs counted or timed on pruned copies; only the groups feeding
-- those convs are narrowed.  Returns the fractions (the chosen count over the group's
-- channels, which prune_input_of turns back into that count) and lop.widths.choose's
-- result.
function Recipe:keep_automatic(consumers, budget)
  local plan, wanted = {}, {}
  for i, name in ipairs(consumers) do wanted[name] = i end
  local index = {}   -- consumer position -> plan entry
  for k, e in ipairs(lop.pruner.plan(self.original, {solver = self.opt.solver})) do
    local mine = e.consumer and wanted[e.consumer]
    plan[k] = mine and e or setmetatable({consumer = false}, {__index = e})
    if mine then index[mine] = k end
  end
  for i, name in ipairs(consumers) do
    if not index[i] then
      error(("automatic widths: no prunable channel group is read first by %s"):format(name),
            0)
    end
  end
  local w = lop.widths.choose(self.original, self.data.train, plan, {
    flops = budget.flops, latency_ms = budget.latency_ms, batch = budget.batch,
    images = self.opt.images, points = self.opt.points, seed = self.opt.seed,
    refit = self.opt.refit})
  local fractions = {}
  for i in ipairs(consumers) do
    local e = plan[index[i]]
    fractions[i] = w.counts[index[i]] / e.channels
  end
  return fractions, w
end

-- The keep fractions of `consumers` for the budget of recipe.budget_options: --widths
-- ratios bisects one factor on `stretch` (keep_for_flops) to --speedup; --widths auto
-- or --latency-ms chooses them per layer (keep_automatic).  Prints what was reached.
function Recipe:budget_fractions(consumers, stretch)
  local o = self.opt
  if o.widths ~= "auto" and not o.latency_ms then
    local target = self.before.flops / o.speedup
    local keep, flops = self:keep_for_flops(consumers, target, stretch)
    print(("keep ratios for %.2fx fewer FLOPs (%.2fx reached)"):format(o.speedup,
          self.before.flops / flops))
    if flops > target * 1.001 then
      print(("note: these layers alone cannot reach %.2fx fewer FLOPs"):format(o.speedup))
    end
    return keep
  end
  print("choosing widths: sensitivity of every pruned layer, then its savings at each width")
  local keep, w = self:keep_automatic(consumers, {
    flops = not o.latency_ms and self.before.flops / o.speedup or nil,
    latency_ms = o.latency_ms, batch = o.latency_batch})
  if o.latency_ms then
    print(("automatic widths for %.3g ms at batch %d (the original: %.3g ms): %.3g ms "
           .. "measured%s"):format(o.latency_ms, o.latency_batch, w.reference_ms, w.cost,
                                   w.fits and "" or ", not within 5%"))
  else
    print(("automatic widths for %.2fx fewer FLOPs: %.2fx reached%s"):format(o.speedup,
          self.before.flops / w.cost, w.fits and "" or ", not within 5%"))
  end
  return keep
end

-- The closing table (top-1, params, FLOPs, latency at batch 1 and 64, ratios), the
-- saved model and the per-layer widths plot beside it (Recipe:save); returns both
-- measurements.
-- The original is timed again now, in alternation with the pruned network.
function Recipe:finish()
  local before = self.before
  local after = lop.measure(self.net, {data = self.data.test, latency = false})
  local t = lop.latency({self.original, self.net}, {reps = self.opt.reps})
  before.ms1, before.ms64, after.ms1, after.ms64 = t[1].ms1, t[1].ms64, t[2].ms1, t[2].ms64
  local text = lop.compare(before, after)
  print("\n" .. text)
  self:save()
  return before, after
end

-- Save the pruned network as --out (atomically) and its per-layer widths plot beside it.
function Recipe:save()
  self.net:save(self.opt.out)
  print("saved " .. self.opt.out)
  local plot = self.opt.out:gsub("%.lop$", "") .. ".widths.svg"
  lop.write_text(plot, lop.widths.plot(self.original, self.net, self.opt.out))
  print("per-layer widths plotted in " .. plot)
end
