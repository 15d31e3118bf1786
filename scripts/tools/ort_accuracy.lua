-- ort_accuracy.lua - a model's test accuracy in Lopper and in ONNX Runtime (npm
-- onnxruntime-node, tests/ort; scripts/tools/install_deps.sh installs it), on the same
-- preprocessed images: the proof that a model Lopper reads or writes classifies alike
-- in the runtime it is deployed with.  An .onnx model is run in ONNX Runtime as the
-- file is (not re-exported); a .lop model is exported to a temporary ONNX file first.
-- Data as scripts/prune.lua takes it (lop.pruner.open_data): fashion-mnist (the
-- default; padded and normalised as the shipped models expect), an image folder, or a
-- .npy file with --labels.  Prints both accuracies, how many predictions differ, and
-- the largest logit difference relative to max(1, max |logit|).  The shipped VGG-16
-- (the default model) gives 93.94% in both, no prediction apart, logits within 4.6e-7
-- (2026-12-02, 72 s on 2 cores); tests/lua/torchvision_spec.lua checks the first 1,000
-- images on every test run.
--
--   build/lopper scripts/tools/ort_accuracy.lua
--   build/lopper scripts/tools/ort_accuracy.lua --test-size 1000 MODEL.lop
--   build/lopper scripts/tools/ort_accuracy.lua net.onnx --data test/ --mean .286 --std .353
local lop = require "lopper"
local ort = dofile("tests/ort/ort.lua")

local opt = lop.options(arg, {
  data = {default = "fashion-mnist", metavar = "DIR|FILE.npy|fashion-mnist",
          help = "the test images (fashion-mnist: the test split)"},
  labels = {type = "string", metavar = "FILE.npy", help = "labels of a .npy --data"},
  channels_last = {default = false, help = ".npy images are N x H x W x C"},
  mean = {type = "string", metavar = "X[,X,X]", help = "folder/.npy images: subtract this"},
  std = {type = "string", metavar = "X[,X,X]", help = "then divide by this"},
  normalize = {choices = {"imagenet", "none"}, help = "a preset instead of --mean/--std"},
  resize = {type = "int", min = 1, default_text = "the model's input size",
            help = "folders: shorter side before the centre crop"},
  test_size = {type = "int", min = 1, default_text = "all",
               help = "classify the first N test images"},
  batch = {default = 250, type = "int", min = 1, help = "images per forward pass"},
  threads = {default = 2, type = "int", min = 1, help = "ONNX Runtime's threads"},
}, {description = "Test accuracy of a model in Lopper and in ONNX Runtime.",
    positional = "[MODEL.lop|MODEL.onnx]"})
if #opt > 1 then error("expected at most one model file", 0) end
local model = opt[1] or "models/vgg16.lop"

local ok, why = ort.available()
if not ok then error(why, 0) end
local net = lop.recipe.load(model)
local shape = net:input_shape()
local pruner = lop.pruner
local data = pruner.open_data(opt.data, shape, {
  what = "--data", split = "test", labels = opt.labels, channels_last = opt.channels_last,
  mean = pruner.channel_values("mean", opt.mean, shape[1]),
  std = pruner.channel_values("std", opt.std, shape[1], true),
  normalize = opt.normalize, resize = opt.resize})
if opt.test_size and opt.test_size < #data then data = data:subset(1, opt.test_size) end

local file, temporary = model, not model:match("%.onnx$")
if temporary then
  file = os.tmpname() .. ".onnx"
  net:save(file)
end
local start = lop.clock()
local r = ort.classify(net, file, data, {batch = opt.batch, threads = opt.threads})
if temporary then os.remove(file) end
local n, hits_lop, hits_ort, differ = #r.labels, 0, 0, 0
for i = 1, n do
  if r.lopper[i] == r.labels[i] then hits_lop = hits_lop + 1 end
  if r.ort[i] == r.labels[i] then hits_ort = hits_ort + 1 end
  if r.lopper[i] ~= r.ort[i] then differ = differ + 1 end
end
print(("%s on %d test images of %s (%.0f s):"):format(model, n, opt.data, lop.clock() - start))
print(("  Lopper        top-1 %.2f%%"):format(100 * hits_lop / n))
print(("  ONNX Runtime  top-1 %.2f%%"):format(100 * hits_ort / n))
print(("  predictions that differ: %d; largest logit difference %.2g (relative)"):format(
      differ, r.max_err))
