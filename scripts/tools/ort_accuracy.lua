-- ort_accuracy.lua - a model's Fashion-MNIST test accuracy in Lopper and, exported to
-- ONNX, in ONNX Runtime (npm onnxruntime-node, tests/ort; scripts/tools/install_deps.sh
-- installs it): both classify the same preprocessed images (padded to 32x32 and
-- normalised as lop.data.fashion_mnist does), and the script prints both accuracies,
-- how many predictions differ, and the largest logit difference relative to
-- max(1, max |logit|).  The shipped VGG-16 (the default model) gives 93.94% in both,
-- no prediction apart, logits within 4.6e-7 (2026-12-02, 72 s on 2 cores).
-- tests/lua/torchvision_spec.lua checks the first 1,000 images on every test run.
--
--   build/lopper scripts/tools/ort_accuracy.lua
--   build/lopper scripts/tools/ort_accuracy.lua --test_size 1000 MODEL.lop
local lop = require "lopper"
local ort = dofile("tests/ort/ort.lua")

local opt = lop.options(arg, {
  test_size = {type = "int", min = 1, max = 10000, default_text = "all 10000",
               help = "classify the first N test images"},
  batch = {default = 250, type = "int", min = 1, help = "images per forward pass"},
  threads = {default = 2, type = "int", min = 1, help = "ONNX Runtime's threads"},
}, {description = "Fashion-MNIST test accuracy of a model in Lopper and in ONNX Runtime.",
    positional = "[MODEL.lop]"})
if #opt > 1 then error("expected at most one model file", 0) end
local model = opt[1] or "models/vgg16.lop"

local ok, why = ort.available()
if not ok then error(why, 0) end
local data = lop.recipe.fashion_mnist{train_size = 1, test_size = opt.test_size}
local net = lop.recipe.load(model)
local file = os.tmpname() .. ".onnx"
net:save(file)
local start = lop.clock()
local r = ort.classify(net, file, data.test, {batch = opt.batch, threads = opt.threads})
os.remove(file)
local n, hits_lop, hits_ort, differ = #r.labels, 0, 0, 0
for i = 1, n do
  if r.lopper[i] == r.labels[i] then hits_lop = hits_lop + 1 end
  if r.ort[i] == r.labels[i] then hits_ort = hits_ort + 1 end
  if r.lopper[i] ~= r.ort[i] then differ = differ + 1 end
end
print(("%s on %d Fashion-MNIST test images (%.0f s):"):format(model, n, lop.clock() - start))
print(("  Lopper        top-1 %.2f%%"):format(100 * hits_lop / n))
print(("  ONNX Runtime  top-1 %.2f%%"):format(100 * hits_ort / n))
print(("  predictions that differ: %d; largest logit difference %.2g (relative)"):format(
      differ, r.max_err))
