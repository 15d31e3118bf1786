-- bench_data.lua - whether image decoding keeps up with training: images per second
-- that an image folder decodes and preprocesses the ImageNet way (JPEG, resize to
-- 256, crop 224x224, normalise) against images per second the engine trains a
-- ResNet-18 at 224x224 (batch 16).  The JPEGs (500x375, quality 90: smooth colour
-- gradients with noise, so they compress like photographs) are written with PIL into
-- build/; the ResNet-18 is torchvision's, exported to ONNX with its batchnorms (random
-- weights: only the time matters).  Decoding is timed on the caller's thread through
-- lop.data.read_image (what one loader worker does per image), and through the
-- loader with 1 and 2 workers.  Part of `make bench`; reported, not asserted.
local lop = require "lopper"

local opt = lop.options(arg, {
  images = {default = 200, type = "int", min = 1, help = "JPEGs to write and decode"},
  batches = {default = 3, type = "int", min = 1, help = "training batches of 16 timed"},
  dir = {default = "build/bench_data", type = "string", metavar = "DIR",
         help = "where the JPEGs and the ONNX file go"},
}, {description = "Images/s decoded from a JPEG folder vs images/s of ResNet-18 training."})

local PYTHON = "/usr/bin/python3"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  if not ok then error(cmd .. " failed:\n" .. out, 2) end
  return out
end

local function python(src, ...)
  local path = opt.dir .. "/snippet.py"
  local f = assert(io.open(path, "w"))
  f:write(src)
  f:close()
  return sh(PYTHON .. " " .. path .. " " .. table.concat({...}, " "))
end

sh("mkdir -p " .. opt.dir)
local root = opt.dir .. "/jpeg"
python([[
import os, sys
import numpy as np
from PIL import Image
root, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(5)
y, x = np.mgrid[0:375, 0:500]
for i in range(n):
    d = os.path.join(root, "class%d" % (i % 2))
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "%05d.jpg" % i)
    if os.path.exists(path):
        continue
    f = rng.uniform(20, 90, 6)
    base = np.stack([128 + 90 * np.sin(x / f[c] + i) * np.cos(y / f[c + 3] - c)
                     for c in range(3)], axis=-1)
    img = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path, quality=90)
]], root, opt.images)

local PIPELINE = {size = 224, resize = 256, normalize = "imagenet"}
local files = {}
for line in sh("find " .. root .. " -name '*.jpg' | sort"):gmatch("[^\n]+") do
  files[#files + 1] = line
end
assert(#files >= opt.images, "JPEGs missing in " .. root)

-- Decoding on this thread: read_image does what a loader worker's read() does.
lop.data.read_image(files[1], PIPELINE)
local t0 = lop.clock()
for i = 1, opt.images do lop.data.read_image(files[i], PIPELINE) end
local one = opt.images / (lop.clock() - t0)
print(("decode JPEG 500x375 + resize 256 + crop 224, one thread: %7.1f images/s"):format(one))

-- Through the loader: a loop over the set (evaluating a net too small to cost
-- anything) runs as fast as the set's workers decode.
local tiny = lop.net{input = {3, 224, 224}, seed = 1}
tiny:global_avgpool("gap", "input")
tiny:flatten("flat", "gap")
tiny:linear("fc", "flat", {out = 2})
local decode = {one}
for _, workers in ipairs{1, 2} do
  local o = {workers = workers}
  for k, v in pairs(PIPELINE) do o[k] = v end
  local ds = lop.data.folder(root, o)
  t0 = lop.clock()
  local r = lop.evaluate(tiny, ds, {batch = 16, progress = false})
  local rate = r.n / (lop.clock() - t0)
  decode[#decode + 1] = rate
  print(("  through the loader, %d worker%s:               %7.1f images/s"):format(
    workers, workers > 1 and "s" or " ", rate))
end

-- Training: torchvision's ResNet-18, batchnorm kept, on 3x224x224 inputs.
local onnx = opt.dir .. "/resnet18_train.onnx"
local code = os.execute(PYTHON .. " -c 'import torch, torchvision' 2>/dev/null")
if not code then
  print("(python3-torch or python3-torchvision missing: no training comparison)")
  return
end
python([[
import os, sys
sys.path.insert(0, "tests/onnx")
import make_fixtures as mf
import torch
import torchvision.models as tv
torch.manual_seed(1)
model = tv.resnet18().eval()   # eval: batchnorm exported as inference-mode nodes, kept
mf.export(model, torch.randn(2, 3, 224, 224), sys.argv[1], torch.onnx.TrainingMode.PRESERVE, True)
]], onnx)
local net = lop.load(onnx)
-- Any 3x224x224 images will do: CIFAR-10-format records of noise, zero-padded to 224.
local n = 16 * (opt.batches + 1)
local rec = {}
for i = 1, n do
  local px = {}
  for k = 1, 3072 do px[k] = string.char((k * 7 + i * 13) % 256) end
  rec[i] = string.char(i % 10) .. table.concat(px)
end
local bin = opt.dir .. "/noise.bin"
local f = assert(io.open(bin, "wb"))
f:write(table.concat(rec))
f:close()
local data = lop.data.cifar10(bin):pad(224)
local warm = data:subset(1, 16)
lop.train(net, warm, {epochs = 1, batch = 16, progress = false})   -- allocations, caches
local timed = data:subset(17, 16 * opt.batches)
t0 = lop.clock()
lop.train(net, timed, {epochs = 1, batch = 16, progress = false})
local train = #timed / (lop.clock() - t0)
print(("train ResNet-18 at 224x224, batch 16 (forward, backward, SGD): %7.1f images/s"):format(train))
local best = math.max(table.unpack(decode))
print(("decoding (best of the three) is %.1fx the training rate"):format(best / train))
