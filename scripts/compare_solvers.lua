-- compare_solvers.lua - single-layer pruning without fine-tuning, as in the papers'
-- layer-wise comparisons: for each of VGG-16's first ten convolutions, remove 1/2,
-- 2/3 or 3/4 of its filters (the next convolution's input channels; 2x, 3x, 4x fewer
-- FLOPs for that layer pair) chosen by each rule, refit the next convolution by the
-- same least-squares reconstruction, and report the test accuracy drop and the
-- relative reconstruction error ||Y - Y'||^2 / ||Y||^2 on the sampled outputs.
--
--   build/lopper scripts/compare_solvers.lua --model models/vgg16.lop [--out results.md]
local lop = require "lopper"

local opt = lop.options(arg, {
  model = {default = "models/vgg16.lop", type = "string", metavar = "FILE",
           help = "trained VGG-16 to prune"},
  images = {default = 500, type = "int", min = 1, help = "calibration images per layer"},
  points = {default = 10, type = "int", min = 1, help = "sampled positions per image"},
  test_size = {default = 10000, type = "int", min = 1, max = 10000,
               help = "test images for the accuracy"},
  hessian_images = {default = 128, type = "int", min = 2, help = "images for the Hessian"},
  methods = {default = "first,random,l1,thinet,lasso,hessian", type = "string",
             help = "comma-separated rules to compare"},
  out = {type = "string", metavar = "FILE", help = "also write the tables as Markdown here"},
  seed = {default = 1, type = "int", min = 0, help = "sampling and random selection"},
}, {description = "Compare channel selection rules layer by layer on VGG-16."})

local LAYERS = {"conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
                "conv4_1", "conv4_2", "conv4_3", "conv5_1"}
local RATIOS = {2, 3, 4}
local methods = {}
for m in opt.methods:gmatch("[^,]+") do methods[#methods + 1] = m end

local base = lop.load(opt.model)
local data = lop.data.fashion_mnist{test_size = opt.test_size}
local top1 = lop.evaluate(base, data.test, {progress = false}).top1
io.stdout:setvbuf("line")
print(("%s: test top-1 %.2f%% on %d images; %d calibration images x %d points per layer")
      :format(opt.model, 100 * top1, opt.test_size, opt.images, opt.points))

local results = {}   -- results[ratio][method][layer] = {drop =, err =}
for _, ratio in ipairs(RATIOS) do
  results[ratio] = {}
  for _, m in ipairs(methods) do results[ratio][m] = {} end
end

for li = 1, 10 do
  local producer, consumer = LAYERS[li], LAYERS[li + 1]
  for _, ratio in ipairs(RATIOS) do
    for _, m in ipairs(methods) do
      local net = base:clone()
      local s = lop.sample(net, data.train, consumer, {images = opt.images,
                                                       points = opt.points, seed = opt.seed})
      local frac = 1 / ratio
      local keep
      if m == "hessian" then
        keep = lop.select.hessian(net, data.train, producer, {keep = frac,
                                  images = opt.hessian_images, seed = opt.seed})
      elseif m == "random" then
        keep = lop.select.random(s, {keep = frac, seed = opt.seed})
      else
        keep = lop.select[m](s, {keep = frac})
      end
      local _, err = lop.reconstruct(net, consumer, s, keep)
      local acc = lop.evaluate(net, data.test, {progress = false}).top1
      results[ratio][m][li] = {drop = 100 * (top1 - acc), err = err}
      print(("%-8s %dx %-7s  drop %6.2f pt  rel. error %.4f"):format(producer, ratio, m,
            100 * (top1 - acc), err))
      net:close()
    end
  end
end

-- Tables: one per ratio, rows = layers, columns = methods (drop / error).
local lines = {}
local function emit(s) lines[#lines + 1] = s end
for _, ratio in ipairs(RATIOS) do
  emit(("\n%dx fewer FLOPs per layer pair: test accuracy drop (points) / relative "
        .. "reconstruction error"):format(ratio))
  emit("| layer | " .. table.concat(methods, " | ") .. " |")
  emit("|---" .. string.rep("|---", #methods) .. "|")
  local mean = {}
  for li = 1, 10 do
    local row = {}
    for _, m in ipairs(methods) do
      local r = results[ratio][m][li]
      row[#row + 1] = ("%.2f / %.3f"):format(r.drop, r.err)
      mean[m] = (mean[m] or 0) + r.drop / 10
    end
    emit(("| %s | %s |"):format(LAYERS[li], table.concat(row, " | ")))
  end
  local row = {}
  for _, m in ipairs(methods) do row[#row + 1] = ("%.2f"):format(mean[m]) end
  emit(("| mean drop | %s |"):format(table.concat(row, " | ")))
end
local text = table.concat(lines, "\n")
print(text)
if opt.out then
  local f = assert(io.open(opt.out, "w"))
  f:write(("# Solver comparison\n\n`build/lopper scripts/compare_solvers.lua --model %s`, "
           .. "base top-1 %.2f%% on %d test images.\n"):format(opt.model, 100 * top1,
           opt.test_size), text, "\n")
  f:close()
end
