-- train.lua - train a reference model (models/vgg16.lua, resnet20, resnet56) on
-- Fashion-MNIST padded to 32x32 and normalised, with random-crop and flip
-- augmentation, SGD with Nesterov momentum and a cosine learning rate; evaluate on
-- the test set after every epoch; save the model as a .lop (atomically).  This is the
-- recipe behind the shipped checkpoints (README says the exact commands):
--
--   build/lopper scripts/train.lua --model vgg16 --epochs 12 --out models/vgg16.lop
--   build/lopper scripts/train.lua --model resnet20 --epochs 12 --out models/resnet20.lop
--
-- Quick runs: --train_size 2000 --test_size 1000.  --help lists every option.
local lop = require "lopper"

local opt = lop.options(arg, {
  model = {default = "vgg16", choices = {"vgg16", "resnet20", "resnet56"}, help = "architecture"},
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
}, {description = "Train a reference model on Fashion-MNIST and save it as a .lop file."})

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

-- The builders live in models/ beside this script's directory, wherever it is run from.
local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
local build = dofile(here .. "/../models/" .. opt.model .. ".lua")
local net = build(opt.model == "vgg16" and {width = opt.width or 0.5, seed = opt.seed}
                  or {seed = opt.seed})

io.stdout:setvbuf("line")
local data = lop.data.fashion_mnist{pad = 32, normalize = true,
                                    train_size = opt.train_size, test_size = opt.test_size}
print(("%s%s: %d params, %.1f MFLOPs per image (multiply-add = 2 FLOPs)"):format(
  opt.model, opt.model == "vgg16" and (" width " .. (opt.width or 0.5)) or "",
  net:params(), net:flops() / 1e6))
print(("Fashion-MNIST 1x32x32: %d train, %d test images; %d epochs, batch %d, lr %g cosine, "
       .. "momentum %g%s, weight decay %g, crop %d, flip %s, seed %d"):format(
  #data.train, #data.test, opt.epochs, opt.batch, lr, opt.momentum,
  opt.nesterov and " (nesterov)" or "", opt.weight_decay, opt.crop, tostring(opt.flip), opt.seed))

local last, seconds = nil, 0
local train = lop.train(net, data.train, {
  epochs = opt.epochs, batch = opt.batch, lr = lr, momentum = opt.momentum,
  nesterov = opt.nesterov, weight_decay = opt.weight_decay, schedule = "cosine",
  crop = opt.crop, flip = opt.flip, seed = opt.seed, progress = opt.progress,
  on_epoch = function(e)   -- e.lr is the rate of the epoch's last step
    last = lop.evaluate(net, data.test, {batch = 256, progress = opt.progress})
    seconds = seconds + e.seconds
    print(("epoch %2d/%d  lr %.5f  train loss %.4f top1 %6.2f%%  test loss %.4f top1 %6.2f%%  %6.1f s"):format(
      e.epoch, opt.epochs, e.lr, e.loss, 100 * e.top1, last.loss, 100 * last.top1, e.seconds))
  end,
})

net:save(opt.out)
print(("saved %s: test top-1 %.2f%% (%d images), train top-1 %.2f%% in the last epoch, "
       .. "%d params, %.1f MFLOPs, %.1f min of training"):format(
  opt.out, 100 * last.top1, last.n, 100 * train.top1, net:params(), net:flops() / 1e6, seconds / 60))
