-- bench_select.lua - how long channel selection takes on a layer of real size: the
-- shipped VGG-16's conv4_2 reads 256 channels through a 3x3 kernel.  Times sampling
-- (500 images x 10 points by default), each rule selecting half of the channels from
-- the statistics, both reconstructions, and the Hessian power iteration on conv4_1 (its
-- 256 filters).  Part of `make bench`; wall-clock seconds, reported, not asserted.
local lop = require "lopper"

local opt = lop.options(arg, {
  model = {default = "models/vgg16.lop", type = "string", metavar = "FILE",
           help = "trained VGG-16"},
  layer = {default = "conv4_2", type = "string", help = "the conv whose inputs are pruned"},
  images = {default = 500, type = "int", min = 1, help = "calibration images"},
  points = {default = 10, type = "int", min = 1, help = "sampled positions per image"},
  hessian_images = {default = 128, type = "int", min = 2, help = "images for the Hessian"},
}, {description = "Time sampling, selection and reconstruction on one VGG-16 layer."})

local net = lop.load(opt.model)
local data = lop.data.fashion_mnist{test_size = 1}
local producer = net:node(net:node(opt.layer):inputs()[1])   -- through bn, relu, pool
while producer.kind ~= "conv2d" do producer = net:node(producer:inputs()[1]) end

local function timed(f)
  local t0 = lop.clock()
  local a, b, c = f()
  return lop.clock() - t0, a, b, c
end

local work = net:clone()
local t, s = timed(function()
  return lop.sample(work, data.train, opt.layer, {images = opt.images, points = opt.points})
end)
local w = net:node(opt.layer):weight():shape()
print(("%s (%dx%d kernel, %d input channels, %d filters): sampling %d images x %d points "
       .. "= %d rows: %.2f s"):format(opt.layer, w[3], w[4], w[2], w[1], opt.images,
       opt.points, s:samples(), t))

for _, rule in ipairs{"first", "random", "l1", "thinet", "lasso"} do
  local dt, keep = timed(function() return lop.select[rule](s, {keep = 0.5}) end)
  print(("  select %-7s keep %d of %d: %8.4f s"):format(rule, #keep, s:channels(), dt))
end
s:close()
work:close()

for _, mode in ipairs{"scale", "weights"} do
  local copy = net:clone()
  local st = lop.sample(copy, data.train, opt.layer, {images = opt.images, points = opt.points})
  local keep = lop.select.first(st, {keep = 0.5})
  local dt, _, err = timed(function()
    return lop.reconstruct(copy, opt.layer, st, keep, {mode = mode})
  end)
  print(("  reconstruct (%-7s) and remove: %8.4f s (relative error %.4f)"):format(mode, dt, err))
  st:close()
  copy:close()
end

local dt, keep, lambda, products = timed(function()
  return lop.select.hessian(net, data.train, producer.name, {keep = 0.5,
                            images = opt.hessian_images})
end)
print(("  hessian on %s (%d filters, %d images): %d Hessian-vector products, top eigenvalue "
       .. "%.4g: %.2f s (%.3f s per product)"):format(producer.name, 2 * #keep,
       opt.hessian_images, products, lambda, dt, dt / products))
