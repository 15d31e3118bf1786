-- train.lua - train a reference model (models/vgg16.lua, resnet20, resnet56) on
-- Fashion-MNIST padded to 32x32 and normalised, with random-crop and flip
-- augmentation, SGD with Nesterov momentum and a cosine learning rate; evaluate on
-- the test set after every epoch; save the model as a .lop (atomically).  This is the
-- recipe behind the shipped checkpoints (docs/training.md says the exact commands):
--
--   build/lopper scripts/train.lua --model vgg16 --epochs 12 --out models/vgg16.lop
--   build/lopper scripts/train.lua --model resnet20 --epochs 12 --out models/resnet20.lop
--
-- Quick runs: --train_size 2000 --test_size 1000.  --help lists every option.
-- --from FILE trains a saved model further instead of a new one, e.g. a pruned model
-- for more fine-tuning epochs than its recipe gave it (--lr is then required).
--
-- Long runs survive interruption: after every epoch the model so far is saved beside
-- --out (<out>.epochN.lop, with <out>.resume.lua naming it), and the same command
-- with --resume continues after the last finished epoch, with the same shuffling,
-- augmentation and learning rate as an uninterrupted run (SGD momentum restarts from
-- zero).  The files are removed when training completes.
local lop = require "lopper"

local opt = lop.options(arg, {
  model = {default = "vgg16", choices = {"vgg16", "resnet20", "resnet56"}, help = "architecture"},
  from = {type = "string", metavar = "FILE",
          help = "train this saved model further instead of a new --model"},
  width = {type = "number", min = 0, exclusive_min = true, max = 4, default_text = "0.5",
           help = "vgg16 channel width multiplier"},
  epochs = {default = 12, type = "int", min = 1, help = "training epochs"},
  batch = {default = 128, type = "int", min = 2, help = "minibatch size"},
  lr = {type = "number", min = 0, exclusive_min = true, default_text = "0.05 for vgg16, 0.1 for the resnets",
        help = "base learning rate, cosine-annealed to 0"},
  momentum = {default = 0.9, type = "number", min = 0, max = 1, exclusive_max = true,
              help = "SGD momentum"},
  nesterov = {default = true, help = "Nesterov momentum"},
  weight_decay = {default = 5e-4, type = "number", min = 0, help = "L2 on conv/linear weights"},
  crop = {default = 2, type = "int", min = 0, max = 16, help = "random-crop padding in pixels"},
  flip = {default = true, help = "random horizontal flips"},
  seed = {default = 1, type = "int", min = 0, help = "weight init, shuffling and augmentation"},
  train_size = {type = "int", min = 2, max = 60000, default_text = "all 60000",
                help = "train on the first N images"},
  test_size = {type = "int", min = 1, max = 10000, default_text = "all 10000",
               help = "test on the first N images"},
  out = {type = "string", required = true, metavar = "FILE", help = "where to save the trained model"},
  progress = {type = "bool", default_text = "when stderr is a terminal",
              help = "show a progress line on stderr"},
  resume = {default = false, help = "continue an interrupted run of the same command"},
  stop_after = {type = "int", min = 1, metavar = "N",
                help = "stop after epoch N, to be continued with --resume"},
}, {description = "Train a reference model on Fashion-MNIST and save it as a .lop file."})

if opt.stop_after and opt.stop_after >= opt.epochs then
  error(("--stop_after %d: must be less than --epochs %d"):format(opt.stop_after, opt.epochs), 0)
end
if opt.from and opt.width then
  error("--width applies to a new model, not to one loaded with --from", 0)
end
if opt.from and not opt.lr then
  error("--from needs --lr: training a trained model further wants a small rate (e.g. 0.005)", 0)
end
if opt.width and opt.model ~= "vgg16" then
  error("--width applies to vgg16 only (the resnets have fixed widths)", 0)
end
local lr = opt.lr or (opt.model == "vgg16" and 0.05 or 0.1)

-- Find out now, not after an hour of training, whether the model can be saved there.
do
  local probe = opt.out .. ".writable"
  local f, err = io.open(probe, "w")
  if not f then error("cannot write next to --out: " .. err, 0) end
  f:close()
  os.remove(probe)
end

-- What must match for --resume to continue a run: every option that shapes training.
local SETTINGS = {"model", "from", "width", "epochs", "batch", "lr", "momentum", "nesterov",
                  "weight_decay", "crop", "flip", "seed", "train_size"}
local resume_file = opt.out .. ".resume.lua"
local settings = {}
for _, k in ipairs(SETTINGS) do settings[k] = opt[k] end
settings.lr = lr

-- The run so far, from <out>.resume.lua: {epoch=, model=, seconds=, settings=}.
local function read_resume()
  local chunk, err = loadfile(resume_file, "t", {})
  if not chunk then
    error(("--resume: no interrupted run to continue (%s)"):format(err), 0)
  end
  local ok, state = pcall(chunk)
  if not ok or type(state) ~= "table" or math.type(state.epoch) ~= "integer"
     or type(state.model) ~= "string" or type(state.settings) ~= "table" then
    error(("--resume: %s is not a resume record"):format(resume_file), 0)
  end
  for _, k in ipairs(SETTINGS) do
    if state.settings[k] ~= settings[k] then
      error(("--resume: the interrupted run had --%s %s, this command %s; use the same "
             .. "options"):format(k, tostring(state.settings[k]), tostring(settings[k])), 0)
    end
  end
  return state
end

local function write_resume(epoch, model, seconds)
  lop.write_record(resume_file, {epoch = epoch, model = model, seconds = seconds,
                                 settings = settings},
                   "written by scripts/train.lua: the run so far, for --resume")
end

local net, done, seconds, saved
if opt.resume then
  local state = read_resume()
  if state.epoch >= opt.epochs then
    error(("--resume: all %d epochs are done; %s holds the model"):format(opt.epochs,
          state.model), 0)
  end
  if opt.stop_after and opt.stop_after <= state.epoch then
    error(("--stop_after %d: epoch %d is already done"):format(opt.stop_after, state.epoch), 0)
  end
  net, done, seconds, saved = lop.recipe.load(state.model), state.epoch, state.seconds,
                              state.model
  print(("resuming after epoch %d/%d from %s"):format(done, opt.epochs, state.model))
elseif opt.from then
  net, done, seconds = lop.recipe.load(opt.from), 0, 0
else
  -- The builders live in models/ beside this script's directory, wherever it is run from.
  local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
  local build = dofile(here .. "/../models/" .. opt.model .. ".lua")
  net = build(opt.model == "vgg16" and {width = opt.width or 0.5, seed = opt.seed}
              or {seed = opt.seed})
  done, seconds = 0, 0
end

io.stdout:setvbuf("line")
local data = lop.recipe.fashion_mnist{pad = 32, normalize = true,
                                      train_size = opt.train_size, test_size = opt.test_size}
print(("%s%s: %d params, %.1f MFLOPs per image (multiply-add = 2 FLOPs)"):format(
  opt.from or opt.model,
  not opt.from and opt.model == "vgg16" and (" width " .. (opt.width or 0.5)) or "",
  net:params(), net:flops() / 1e6))
print(("Fashion-MNIST 1x32x32: %d train, %d test images; %d epochs, batch %d, lr %g cosine, "
       .. "momentum %g%s, weight decay %g, crop %d, flip %s, seed %d"):format(
  #data.train, #data.test, opt.epochs, opt.batch, lr, opt.momentum,
  opt.nesterov and " (nesterov)" or "", opt.weight_decay, opt.crop, tostring(opt.flip), opt.seed))

local last
local train = lop.train(net, data.train, {
  epochs = opt.epochs, batch = opt.batch, lr = lr, momentum = opt.momentum,
  nesterov = opt.nesterov, weight_decay = opt.weight_decay, schedule = "cosine",
  crop = opt.crop, flip = opt.flip, seed = opt.seed, progress = opt.progress,
  first_epoch = done + 1, last_epoch = opt.stop_after or opt.epochs,
  on_epoch = function(e)   -- e.lr is the rate of the epoch's last step
    last = lop.evaluate(net, data.test, {batch = 256, progress = opt.progress})
    seconds = seconds + e.seconds
    print(("epoch %2d/%d  lr %.5f  train loss %.4f top1 %6.2f%%  test loss %.4f top1 %6.2f%%  %6.1f s"):format(
      e.epoch, opt.epochs, e.lr, e.loss, 100 * e.top1, last.loss, 100 * last.top1, e.seconds))
    if e.epoch < opt.epochs then   -- model first, then the record naming it, then the old one
      local model = ("%s.epoch%d.lop"):format(opt.out, e.epoch)
      net:save(model)
      write_resume(e.epoch, model, seconds)
      if saved then os.remove(saved) end
      saved = model
    end
  end,
})

if opt.stop_after then
  print(("stopped after epoch %d/%d (%.1f min of training so far); continue with the same "
         .. "options and --resume"):format(opt.stop_after, opt.epochs, seconds / 60))
  return
end
net:save(opt.out)
if saved then   -- the run is complete: its resume files are not needed
  os.remove(saved)
  os.remove(resume_file)
end
print(("saved %s: test top-1 %.2f%% (%d images), train top-1 %.2f%% in the last epoch, "
       .. "%d params, %.1f MFLOPs, %.1f min of training"):format(
  opt.out, 100 * last.top1, last.n, 100 * train.top1, net:params(), net:flops() / 1e6, seconds / 60))
