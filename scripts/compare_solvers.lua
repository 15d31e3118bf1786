-- compare_solvers.lua - single-layer pruning without fine-tuning, as in the papers'
-- layer-wise comparisons: for each of VGG-16's first ten convolutions, remove 1/2,
-- 2/3 or 3/4 of its filters (the next convolution's input channels; 2x, 3x, 4x fewer
-- FLOPs for that layer pair) chosen by each rule, refit the next convolution by the
-- same least-squares reconstruction (--refit weights: all its weights and bias), and
-- report the test accuracy drop and the relative reconstruction error
-- ||Y - Y'||^2 / ||Y||^2 on the sampled outputs.
--
--   build/lopper scripts/compare_solvers.lua --model models/vgg16.lop \
--       [--out docs/compare_solvers.md --plot docs/compare_solvers.svg]
local lop = require "lopper"
local vgg16 = require "models.vgg16"

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
  refit = {default = "weights", choices = {"scale", "weights"},
           help = "the reconstruction after every rule: scale = one least-squares factor "
                  .. "per kept channel (ThiNet's), weights = a least-squares refit of all "
                  .. "the next layer's weights and bias"},
  out = {type = "string", metavar = "FILE", help = "also write the tables as Markdown here"},
  plot = {type = "string", metavar = "FILE",
          help = "also draw mean accuracy drop against FLOPs reduction as SVG here"},
  seed = {default = 1, type = "int", min = 0, help = "sampling and random selection"},
}, {description = "Compare channel selection rules layer by layer on VGG-16."})

local LAYERS = vgg16.conv_names
local RATIOS = {2, 3, 4}
local methods = {}
for m in opt.methods:gmatch("[^,]+") do
  if not lop.select[m] then
    error(("unknown method '%s' (first, random, l1, thinet, lasso, hessian)"):format(m), 0)
  end
  methods[#methods + 1] = m
end

local base = lop.recipe.load(opt.model)
local data = lop.recipe.fashion_mnist{test_size = opt.test_size}
local top1 = lop.evaluate(base, data.test, {progress = false}).top1
io.stdout:setvbuf("line")
print(("%s: test top-1 %.2f%% on %d images; %d calibration images x %d points per layer")
      :format(opt.model, 100 * top1, opt.test_size, opt.images, opt.points))

local results = {}   -- results[ratio][method][layer] = {drop =, err =}
for _, ratio in ipairs(RATIOS) do
  results[ratio] = {}
  for _, m in ipairs(methods) do results[ratio][m] = {} end
end

-- The n filters of largest importance, as increasing 1-based indices.
local function top(score, n)
  local order = {}
  for j = 1, #score do order[j] = j end
  table.sort(order, function(a, b) return score[a] > score[b] end)
  local keep = table.move(order, 1, n, 1, {})
  table.sort(keep)
  return keep
end

for li = 1, 10 do
  local producer, consumer = LAYERS[li], LAYERS[li + 1]
  local hessian_score   -- one power iteration per layer serves every ratio
  for _, m in ipairs(methods) do
    if m == "hessian" then
      local t0 = os.clock()
      local _, lambda, products
      _, lambda, products, hessian_score = lop.select.hessian(base, data.train, producer,
        {keep = 1, images = opt.hessian_images, seed = opt.seed})
      print(("%-8s hessian: top eigenvalue %.4g after %d products (%.1fs)"):format(
        producer, lambda, products, os.clock() - t0))
    end
  end
  for _, ratio in ipairs(RATIOS) do
    for _, m in ipairs(methods) do
      local net = base:clone()
      local s = lop.sample(net, data.train, consumer, {images = opt.images,
                                                       points = opt.points, seed = opt.seed})
      local frac = 1 / ratio
      local keep
      if m == "hessian" then
        keep = top(hessian_score, math.ceil(frac * #hessian_score - 1e-9))
      elseif m == "random" then
        keep = lop.select.random(s, {keep = frac, seed = opt.seed})
      elseif m == "lasso" then
        local info
        keep, _, info = lop.select.lasso(s, {keep = frac})
        local warning = lop.recipe.lasso_warning(consumer, info)
        if warning then io.stderr:write(warning, "\n") end
      else
        keep = lop.select[m](s, {keep = frac})
      end
      local _, err = lop.reconstruct(net, consumer, s, keep, {mode = opt.refit})
      s:close()
      local acc = lop.evaluate(net, data.test, {progress = false}).top1
      results[ratio][m][li] = {drop = 100 * (top1 - acc), err = err}
      print(("%-8s %dx %-7s  drop %6.2f pt  rel. error %.4f"):format(producer, ratio, m,
            100 * (top1 - acc), err))
      net:close()
    end
  end
end

local mean_drop = {}   -- mean_drop[method][ratio]
for _, m in ipairs(methods) do
  mean_drop[m] = {}
  for _, ratio in ipairs(RATIOS) do
    local sum = 0
    for li = 1, 10 do sum = sum + results[ratio][m][li].drop end
    mean_drop[m][ratio] = sum / 10
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
  for li = 1, 10 do
    local row = {}
    for _, m in ipairs(methods) do
      local r = results[ratio][m][li]
      row[#row + 1] = ("%.2f / %.3f"):format(r.drop, r.err)
    end
    emit(("| %s | %s |"):format(LAYERS[li], table.concat(row, " | ")))
  end
  local row = {}
  for _, m in ipairs(methods) do row[#row + 1] = ("%.2f"):format(mean_drop[m][ratio]) end
  emit(("| mean drop | %s |"):format(table.concat(row, " | ")))
end
-- "a/b/c": a method's mean drops at the three ratios.
local function mean_drops(m)
  local parts = {}
  for i, ratio in ipairs(RATIOS) do parts[i] = ("%.2f"):format(mean_drop[m][ratio]) end
  return table.concat(parts, "/")
end

-- The papers' claim, checked cell by cell: does each reconstruction-based rule lose less
-- accuracy than each of first-k and largest-L1 (max response)?
local function has(m) return results[RATIOS[1]][m] ~= nil end
for _, good in ipairs{"thinet", "lasso"} do
  for _, naive in ipairs{"first", "l1"} do
    if has(good) and has(naive) then
      local wins, cells = 0, 0
      for _, ratio in ipairs(RATIOS) do
        for li = 1, 10 do
          cells = cells + 1
          if results[ratio][good][li].drop < results[ratio][naive][li].drop then
            wins = wins + 1
          end
        end
      end
      emit(("\n%s loses less accuracy than %s in %d of %d layer/ratio cells; mean drop "
            .. "%s vs %s points (2x, 3x, 4x)."):format(good, naive, wins, cells,
            mean_drops(good), mean_drops(naive)))
    end
  end
end
local text = table.concat(lines, "\n")
print(text)
if opt.out then
  lop.write_text(opt.out, ("# Solver comparison\n\n`build/lopper scripts/compare_solvers.lua "
    .. "%s` on %s: base top-1 %.2f%% on %d test images, %d calibration images x %d points, "
    .. "Hessian on %d images.\n%s\n"):format(table.concat(arg, " "), os.date("!%Y-%m-%d"),
    100 * top1, opt.test_size, opt.images, opt.points, opt.hessian_images, text))
end
if opt.plot then
  local series = {}
  for _, m in ipairs(methods) do
    local points = {}
    for _, ratio in ipairs(RATIOS) do points[#points + 1] = {ratio, mean_drop[m][ratio]} end
    series[#series + 1] = {name = m, points = points}
  end
  lop.write_text(opt.plot, lop.svg.lines{
    title = "VGG-16, one layer pair pruned, no fine-tuning (mean of conv1_1..conv4_3)",
    x_label = "FLOPs reduction of the pruned layer pair (x)",
    y_label = "test accuracy drop (points)", series = series})
  print("plot written to " .. opt.plot)
end
