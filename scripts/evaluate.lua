-- evaluate.lua - load models (the shipped checkpoints by default), evaluate each on the
-- Fashion-MNIST test set and print the numbers a pruning result is reported in:
-- top-1, parameters, FLOPs and measured latency.
--
--   build/lopper scripts/evaluate.lua [MODEL.lop ...]
local lop = require "lopper"

local opt = lop.options(arg, {
  test_size = {type = "int", min = 1, max = 10000, default_text = "all 10000",
               help = "evaluate on the first N test images"},
}, {description = "Evaluate models (default: the shipped ones) and print a summary table.",
    positional = "MODEL.lop..."})

local files = {}
for i = 1, #opt do files[#files + 1] = opt[i] end
if #files == 0 then
  for _, name in ipairs{"models/vgg16.lop", "models/resnet20.lop", "models/resnet56.lop"} do
    local f = io.open(name, "rb")
    if f then f:close(); files[#files + 1] = name end
  end
end
if #files == 0 then error("no checkpoints found in models/ (see docs/training.md)", 0) end

local data = lop.recipe.fashion_mnist{test_size = opt.test_size}
print(("%-22s %8s %10s %12s %12s %12s"):format("model", "top-1", "params", "MFLOPs",
      "ms batch 1", "ms batch 64"))
for _, file in ipairs(files) do
  local net = lop.recipe.load(file)
  local ev = lop.evaluate(net, data.test)
  local ms1 = net:time{batch = 1, reps = 20}
  local ms64 = net:time{batch = 64, reps = 5}
  print(("%-22s %7.2f%% %10d %12.2f %12.3f %12.2f"):format(file, 100 * ev.top1,
        net:params(), net:flops() / 1e6, ms1, ms64))
end
print("(FLOPs count a multiply-add as 2; latency is the fastest of repeated forward passes)")
