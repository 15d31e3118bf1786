-- prune.lua - prune any imported CNN (ONNX or .lop) to a FLOPs target without knowing
-- its architecture: every channel group whose readers are all plain convolutions or
-- linear layers has its channels selected on calibration images (--solver; a group
-- several layers read, such as a residual stage, by the sum of their relative errors)
-- and every reader refitted by least squares (--refit), with targets from the original
-- network (He et al.); every other group - concatenations, grouped or depthwise
-- readers - is skipped with its reason.  One keep fraction for all pruned groups,
-- bisected to --speedup.  The work is lop.pruner's (lua/lopper/pruner.lua); this file
-- is its command line.
--
--   build/lopper scripts/prune.lua --model net.onnx --data train/ --val val/ \
--       --speedup 2 --solver lasso --out net.pruned.onnx
local lop = require "lopper"
local pruner = lop.pruner

local opt = lop.options(arg, lop.recipe.latency_options({
  model = {type = "string", required = true, metavar = "FILE",
           help = "the trained model: ONNX or .lop"},
  data = {type = "string", required = true, metavar = "DIR|FILE.npy|fashion-mnist",
          help = "calibration and fine-tuning images: an image folder root/<class>/<image>, "
                 .. "a .npy of images (with --labels) or fashion-mnist (its train split)"},
  labels = {type = "string", metavar = "FILE.npy", help = "labels of --data as a .npy"},
  val = {type = "string", metavar = "DIR|FILE.npy|fashion-mnist", default_text = "none",
         help = "validation images for the accuracy in the before/after table (the same "
                .. "forms; fashion-mnist: its test split); without it, no accuracy"},
  val_labels = {type = "string", metavar = "FILE.npy", help = "labels of --val as a .npy"},
  channels_last = {default = false, help = ".npy images are N x H x W x C"},
  out = {type = "string", required = true, metavar = "FILE",
         help = "the pruned model: .onnx or .lop, by extension"},
  fold_batchnorm = {default = false, help = "fold batchnorm into the convs (ONNX --out only)"},
  speedup = {default = 2, type = "number", min = 1, exclusive_min = true,
             help = "target FLOPs before / FLOPs after"},
  widths = {default = "uniform", choices = {"uniform", "auto"},
            help = "uniform: one keep fraction for every pruned group; auto: per group, "
                   .. "from each group's reconstruction error at every width and what each "
                   .. "width saves (lop.widths)"},
  sensitivity = {default = "reconstruction", choices = {"reconstruction", "loss"},
                 help = "automatic widths rank a group's narrowing by its readers' "
                        .. "reconstruction error (seconds), or by the rise of the loss on "
                        .. "2000 --data images with the group pruned alone at 8 widths "
                        .. "(minutes)"},
  solver = {default = "lasso", choices = {"lasso", "thinet", "l1", "first", "random"},
            help = "channel selection rule"},
  shared = {default = true,
            help = "prune groups several layers read or produce too (residual stages, "
                   .. "branches); --no-shared prunes residual networks inside blocks only"},
  refit = {default = "weights", choices = {"weights", "scale"},
           help = "least-squares refit of the consumer: all its weights and bias, or one "
                  .. "factor per kept channel (ThiNet's)"},
  images = {default = 500, type = "int", min = 1,
            help = "calibration images per pruned group (at most the data set's)"},
  points = {default = 10, type = "int", min = 1, help = "sampled positions per image"},
  epochs = {default = 0, type = "int", min = 0, help = "fine-tuning epochs at the end"},
  step_epochs = {default = 0, type = "int", min = 0,
                 help = "fine-tuning epochs after each pruned group (the refits then "
                        .. "match the net as fine-tuned, not the original)"},
  lr = {default = 0.005, type = "number", min = 0, exclusive_min = true,
        help = "fine-tuning learning rate (cosine within each fine-tune)"},
  distill = {default = 0, type = "number", min = 0, max = 1,
             help = "fine-tuning: weight of the original network's soft targets "
                    .. "(knowledge distillation at temperature 4; 0: the labels only)"},
  hints = {default = 0, type = "number", min = 0,
           help = "fine-tuning: weight of feature hints - every refitted layer's output "
                  .. "learns the original's, by relative squared error (0: none)"},
  batch = {default = 64, type = "int", min = 2, help = "fine-tuning minibatch"},
  mean = {type = "string", metavar = "X[,X,X]",
          help = "subtract from folder and .npy images (one number, or one per channel)"},
  std = {type = "string", metavar = "X[,X,X]", help = "then divide by this"},
  normalize = {choices = {"imagenet", "none"}, default_text = "none (fashion-mnist: as "
               .. "the shipped models were trained)",
               help = "a named normalisation instead of --mean/--std"},
  resize = {type = "int", min = 1, default_text = "the model's input size",
            help = "folders: shorter side before the centre crop to the model's input"},
  random_crop = {default = 0, type = "int", min = 0,
                 help = "fine-tuning: random crops up to N pixels off centre"},
  flip = {default = false, help = "fine-tuning: random left-right flips"},
  workers = {type = "int", min = 1, default_text = "lop.data.folder's",
             help = "folders: decoding threads"},
  skip_bad = {default = false, help = "folders: leave out unreadable images (counted)"},
  seed = {default = 1, type = "int", min = 0, help = "sampling, selection, shuffling"},
  progress = {type = "bool", default_text = "when stderr is a terminal",
              help = "show progress lines on stderr"},
  reps = {default = 20, type = "int", min = 1, help = "timed passes per latency figure"},
}), {description = "Prune any CNN (ONNX or .lop) to a FLOPs target: the plain channel "
                  .. "groups are selected and refitted, the others skipped with a reason."})

-- Refuse a bad request before any work.
local kind = opt.out:match("%.(%w+)$")
if kind ~= "onnx" and kind ~= "lop" then
  error(("--out %s: the name must end in .onnx or .lop"):format(opt.out), 0)
end
if opt.fold_batchnorm and kind ~= "onnx" then
  error("--fold-batchnorm applies to an ONNX --out only", 0)
end
if opt.hints > 0 and opt.epochs == 0 then
  error("--hints applies to the final fine-tune: give --epochs too", 0)
end
if opt.normalize and (opt.mean or opt.std) then
  error("--normalize and --mean/--std exclude each other", 0)
end
if (opt.mean == nil) ~= (opt.std == nil) then error("--mean and --std go together", 0) end
local function npy(spec) return spec ~= nil and spec:match("%.npy$") ~= nil end
if (opt.labels ~= nil) ~= npy(opt.data) then
  error("--labels goes with a .npy --data, and only with one", 0)
end
if (opt.val_labels ~= nil) ~= npy(opt.val) then
  error("--val-labels goes with a .npy --val, and only with one", 0)
end

io.stdout:setvbuf("line")
local original = lop.recipe.load(opt.model)   -- the reference: never changed
local shape = original:input_shape()

local common = {mean = pruner.channel_values("mean", opt.mean, shape[1]),
                std = pruner.channel_values("std", opt.std, shape[1], true),
                normalize = opt.normalize, channels_last = opt.channels_last,
                resize = opt.resize, workers = opt.workers, skip_bad = opt.skip_bad}
local function open(spec, what, split, labels, crop)
  local o = setmetatable({what = what, split = split, labels = labels, random_crop = crop},
                         {__index = common})
  return pruner.open_data(spec, shape, o)
end
local outputs = original:output_shape()
local function check_classes(ds, what)
  if #outputs == 1 and ds:classes() > outputs[1] then
    error(("%s: %d classes, but the model has %d outputs"):format(what, ds:classes(), outputs[1]), 0)
  end
end

-- Fine-tuning crops at random (--random-crop): lop.train pads and crops an in-memory or
-- .npy set, while a folder crops larger images itself - opened a second time for that,
-- since calibration must see the images as --val does.
local folder = opt.data ~= "fashion-mnist" and not npy(opt.data)
local data, crop = open(opt.data, "--data", "train", opt.labels, folder and 0 or opt.random_crop)
check_classes(data, "--data")
local val = opt.val and open(opt.val, "--val", "test", opt.val_labels, 0)
if val then check_classes(val, "--val") end
local tune = {data = data, crop = crop, flip = opt.flip, lr = opt.lr, batch = opt.batch,
              seed = opt.seed, progress = opt.progress, val = val, teacher = original,
              distill = opt.distill, hint_weight = opt.hints}
if folder and opt.random_crop > 0 and (opt.epochs > 0 or opt.step_epochs > 0) then
  tune.data = open(opt.data, "--data", "train", opt.labels, opt.random_crop)
end

print(("%s: input %s, %.2fM params, %.2fM FLOPs (multiply-add = 2); %d images in --data "
       .. "(%d sampled per pruned group)%s"):format(opt.model, table.concat(shape, "x"),
                            original:params() / 1e6, original:flops() / 1e6, #data,
                            math.min(opt.images, #data),
                            val and (", %d validation images"):format(#val) or ", no --val"))

-- The plan, and the widths: one keep fraction for all its pruned groups, or per group
-- for the FLOPs or latency budget (lop.widths.choose).
local plan = pruner.plan(original, {solver = opt.solver, shared = opt.shared})
if opt.step_epochs > 0 then   -- targets from the net itself: no block sums to match
  for _, e in ipairs(plan) do e.residual = false end
end
local counts
if opt.widths == "auto" or opt.latency_ms then
  print("\nchoosing widths: sensitivity of every pruned group, then its savings at each width")
  local w = lop.widths.choose(original, data, plan, {
    flops = not opt.latency_ms and original:flops() / opt.speedup or nil,
    latency_ms = opt.latency_ms, batch = opt.latency_batch, images = opt.images,
    points = opt.points, seed = opt.seed, refit = opt.refit, sensitivity = opt.sensitivity,
    solver = opt.solver})
  counts = w.counts
  print("\nplan (groups in graph order):")
  print(pruner.describe(plan, counts))
  local function shown(v)
    return opt.latency_ms and ("%.3g ms"):format(v) or ("%.4gM FLOPs"):format(v / 1e6)
  end
  if w.cost > 1.05 * w.target then
    error(("the budget cannot be reached: %s asked, the narrowest widths tried measure %s "
           .. "(see the skipped groups and their reasons in the plan)")
          :format(shown(w.target), shown(w.cost)), 0)
  end
  print(("\ntarget %s: automatic widths measure %s (%s%.1f%% off%s)\n"):format(
    opt.latency_ms and ("%.3g ms at batch %d (the original: %.3g ms)"):format(opt.latency_ms,
                                                        opt.latency_batch, w.reference_ms)
                   or ("%.2fx fewer FLOPs (%.2fM)"):format(opt.speedup, w.target / 1e6),
    opt.latency_ms and ("%.3g ms"):format(w.cost) or ("%.2fM FLOPs"):format(w.cost / 1e6),
    w.cost >= w.target and "+" or "-", 100 * math.abs(w.cost - w.target) / w.target,
    w.fits and "" or "; not within 5% after 8 rounds"))
else
  local ok, widths = pcall(pruner.widths, original, plan, opt.speedup)
  print("\nplan (groups in graph order):")
  print(pruner.describe(plan, ok and widths.counts or nil))
  if not ok then error(widths, 0) end
  counts = widths.counts
  print(("\ntarget %.2fx fewer FLOPs (%.2fM -> at most %.2fM): keep fraction %.4f of every "
         .. "pruned group gives %.2fM FLOPs, %.2fx\n"):format(opt.speedup, widths.before / 1e6,
        widths.target / 1e6, widths.fraction, widths.flops / 1e6, widths.before / widths.flops))
end

local net = original:clone()
local done, origins = pruner.prune(net, data, plan, counts, setmetatable({
  original = original, images = opt.images, points = opt.points, seed = opt.seed,
  solver = opt.solver, refit = opt.refit, step_epochs = opt.step_epochs,
  train = tune.data, dropout = opt.epochs > 0 or opt.step_epochs > 0}, {__index = tune}))
if opt.epochs > 0 then
  print("final fine-tune")
  tune.hints = pruner.hints(plan, counts, origins)
  -- (no validation pass here: the table below has it)
  local ok, err = pcall(pruner.finetune, net, tune.data, opt.epochs,
                        setmetatable({val = false}, {__index = tune}))
  if not ok then
    -- A fine-tune that diverges leaves the net as pruned: keep the pruning's work.
    if tostring(err):find("training diverged", 1, true) then
      net:save(opt.out, opt.fold_batchnorm and {fold_batchnorm = true} or nil)
      error(("%s\nthe pruned network, before the fine-tune, is written to %s")
            :format(err:gsub("^[^\n]-:%d+: ", ""), opt.out), 0)
    end
    error(err, 0)
  end
end

print("\n" .. (lop.compare(original, net, {data = val, reps = opt.reps})))
print(("\npruned %d groups:"):format(#done))
for _, r in ipairs(done) do
  print(("  %s: %d -> %d channels (refit %s, error %.3g)"):format(r.producer, r.before,
        r.after, r.consumer, r.error))
end
local skipped = {}
for _, e in ipairs(plan) do if e.reason then skipped[#skipped + 1] = e end end
print(("skipped %d groups:"):format(#skipped))
for _, e in ipairs(skipped) do print(("  %s (%d channels): %s"):format(e.producer, e.channels, e.reason)) end

net:save(opt.out, opt.fold_batchnorm and {fold_batchnorm = true} or nil)
print("wrote " .. opt.out)
local plot = opt.out:gsub("%.%w+$", "") .. ".widths.svg"
lop.write_text(plot, lop.widths.plot(original, net, opt.out))
print("per-layer widths plotted in " .. plot)
