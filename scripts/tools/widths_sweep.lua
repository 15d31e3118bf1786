-- widths_sweep.lua - do automatic widths (lop.widths) beat one shared keep fraction at
-- the same measured latency?  For each FLOPs target: the uniform widths are pruned
-- first and their batch latency measured as a fraction of the original's (the two timed
-- in alternation); automatic widths are then chosen for that fraction
-- (lop.widths.choose, measured on this machine), both networks pruned the same way
-- (lop.pruner: --solver, full refit, targets from the original), evaluated, fine-tuned
-- alike and evaluated again, and timed in alternation with the original.  Each target's
-- outcome is saved the moment it is done (--record), and the plot of top-1 against
-- measured latency as a fraction of the original's (--plot) is redrawn from all saved
-- outcomes.  Latency needs an otherwise idle machine.
--
--   build/lopper scripts/tools/widths_sweep.lua --model models/vgg16.lop --speedups 2,3.25,4
local lop = require "lopper"
local pruner = lop.pruner

local opt = lop.options(arg, {
  model = {default = "models/vgg16.lop", type = "string", metavar = "FILE"},
  speedups = {default = "2,3.25,4", type = "string", metavar = "X,Y,...",
              help = "FLOPs targets for the uniform widths"},
  solver = {default = "lasso", choices = {"lasso", "thinet", "l1", "first", "random"}},
  sensitivity = {default = "reconstruction", choices = {"reconstruction", "loss"},
                 help = "what ranks the automatic widths' cuts (lop.widths.sensitivity)"},
  epochs = {default = 1, type = "number", min = 0, help = "the same fine-tune for both"},
  lr = {default = 0.001, type = "number", min = 0, exclusive_min = true},
  batch = {default = 64, type = "int", min = 2, help = "latency batch and fine-tuning minibatch"},
  images = {default = 500, type = "int", min = 1},
  points = {default = 10, type = "int", min = 1},
  reps = {default = 10, type = "int", min = 1, help = "timed passes per latency figure"},
  train_size = {type = "int", min = 2, max = 60000, default_text = "all 60000"},
  seed = {default = 1, type = "int", min = 0},
  record = {type = "string", metavar = "FILE", default_text = "docs/results/widths_<model>.lua",
            help = "the saved outcomes, one per target (results.lua puts them on the "
                   .. "results page)"},
  plot = {type = "string", metavar = "FILE", default_text = "docs/results/widths_<model>.svg"},
}, {description = "Automatic against uniform widths at equal measured latency."})

io.stdout:setvbuf("line")
local command = "build/lopper scripts/tools/widths_sweep.lua " .. table.concat(arg, " ")
local git = io.popen("git rev-parse --short HEAD 2>/dev/null")
local commit = git:read("l") or "unknown"
git:close()
local stem = opt.model:match("([^/]+)%.%w+$") or "model"
local record = opt.record or ("docs/results/widths_%s.lua"):format(stem)
local plot = opt.plot or ("docs/results/widths_%s.svg"):format(stem)
os.execute("mkdir -p " .. (record:match("^(.*)/[^/]*$") or "."))

local original = lop.recipe.load(opt.model)
local data = lop.recipe.fashion_mnist{train_size = opt.train_size}
local function top1(net) return lop.evaluate(net, data.test, {progress = false}).top1 end
local plan = pruner.plan(original, {solver = opt.solver})
local how = {original = original, solver = opt.solver, images = opt.images,
             points = opt.points, seed = opt.seed, log = function() end}

-- Prune a copy to counts, evaluate, fine-tune, evaluate: {counts, before, after}.
local function run(counts, label)
  local net = original:clone()
  pruner.prune(net, data.train, plan, counts, how)
  local r = {counts = counts, before = top1(net), flops = net:flops()}
  if opt.epochs > 0 then
    pruner.finetune(net, data.train, opt.epochs, {lr = opt.lr, batch = opt.batch, crop = 2,
                    flip = true, seed = opt.seed, log = function() end}, label)
  end
  r.after = top1(net)
  return r, net
end

local ok, outcomes = pcall(dofile, record)
outcomes = ok and type(outcomes) == "table" and outcomes or {}

local function redraw()
  local series = {{name = "uniform, no fine-tune", points = {}},
                  {name = "automatic, no fine-tune", points = {}},
                  {name = ("uniform, %g epoch(s)"):format(opt.epochs), points = {}},
                  {name = ("automatic, %g epoch(s)"):format(opt.epochs), points = {}}}
  table.sort(outcomes, function(a, b) return a.speedup < b.speedup end)
  for _, o in ipairs(outcomes) do
    table.insert(series[1].points, {o.uniform.fraction, 100 * o.uniform.before})
    table.insert(series[2].points, {o.auto.fraction, 100 * o.auto.before})
    table.insert(series[3].points, {o.uniform.fraction, 100 * o.uniform.after})
    table.insert(series[4].points, {o.auto.fraction, 100 * o.auto.after})
  end
  if #outcomes == 0 then return end
  lop.write_text(plot, lop.svg.lines{
    title = ("%s: top-1 against measured latency (batch %d)"):format(stem, opt.batch),
    x_label = "latency, fraction of the original's", y_label = "top-1 %", series = series})
end

for text in opt.speedups:gmatch("[^,]+") do
  local speedup = tonumber(text) or error("--speedups: not a number: " .. text, 0)
  local t0 = lop.clock()
  local uniform, unet = run(pruner.widths(original, plan, speedup).counts, "uniform")
  -- the budget: the uniform net's latency as a fraction of the original's, the two
  -- timed in alternation (lop.widths anchors its own timings to the original alike)
  local t = lop.widths.alternate_ms({original, unet}, opt.batch, opt.reps)
  local fraction = t[2] / t[1]
  local w = lop.widths.choose(original, data.train, plan, {
    latency_fraction = fraction, batch = opt.batch, reps = opt.reps, images = opt.images,
    points = opt.points, seed = opt.seed, solver = opt.solver, sensitivity = opt.sensitivity})
  local auto, anet = run(w.counts, "auto")
  t = lop.widths.alternate_ms({original, unet, anet}, opt.batch, opt.reps, 9)
  uniform.ms, auto.ms = t[2], t[3]
  uniform.fraction, auto.fraction = t[2] / t[1], t[3] / t[1]
  local budget = fraction * t[1]   -- in ms as the original measured in this alternation
  local o = {speedup = speedup, budget = budget, budget_fraction = fraction,
             chosen_fraction = w.cost / w.reference_ms, fits = w.fits, original_ms = t[1],
             uniform = uniform, auto = auto, minutes = (lop.clock() - t0) / 60,
             flops = original:flops(), batch = opt.batch, date = os.date("!%Y-%m-%d"),
             command = command, commit = commit}
  for i, out in ipairs(outcomes) do if out.speedup == speedup then table.remove(outcomes, i) end end
  outcomes[#outcomes + 1] = o
  lop.write_record(record, outcomes, "widths_sweep.lua outcomes of " .. opt.model)
  redraw()
  print(("%.2fx FLOPs: uniform %.2f%% -> %.2f%% at %.2f ms (%.3f of the original's %.2f ms; "
         .. "%.2fx FLOPs); automatic %.2f%% -> %.2f%% at %.2f ms (%.3f; %.2fx FLOPs; chosen "
         .. "for %.3f of the original, measured %.3f there)")
        :format(speedup, 100 * uniform.before, 100 * uniform.after, uniform.ms,
                uniform.fraction, t[1], original:flops() / uniform.flops, 100 * auto.before,
                100 * auto.after, auto.ms, auto.fraction, original:flops() / auto.flops,
                fraction, w.cost / w.reference_ms))
end
print("outcomes in " .. record .. ", plot in " .. plot)
