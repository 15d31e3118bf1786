-- folder_spec.lua - image folders from Lua (lop.data.folder, lop.data.read_image)
-- against independent references: Fashion-MNIST test images 0..999 written as PNG by
-- scripts/tools/write_image_folder.py and read back identical to lop.data.fashion_mnist
-- (same labels, the folder's order), the same images as JPEG (quality 95) within a
-- stated error of the originals and identical to PIL's own decode, the resize + crop
-- and colour-to-grey conversion against PIL on generated images, normalisation, class
-- names, skip_bad (at open and while a loop reads), misuse that must raise a message
-- naming the file or option, and training and evaluation streaming a folder through
-- the loader, equal to the same images in memory.
local lop = require "lopper"
local util = dofile("tests/lua/util.lua")

local LOPPER = os.getenv("LOPPER") or "build/lopper"
local DIR = (LOPPER:match("^(.*)/[^/]*$") or ".") .. "/folder_spec"   -- under build/
local WRITE = util.PYTHON .. " scripts/tools/write_image_folder.py "
local COUNT = 1000
local FASHION = { "T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                  "Sneaker", "Bag", "Ankle_boot" }

local function sh(cmd)
  local code, out = util.run(cmd)
  assert(code == 0, cmd .. " failed:\n" .. out)
  return out
end

-- Runs a Python program (PIL, numpy) with arguments; returns its output.
local function python(src, ...)
  local path = DIR .. "/snippet.py"
  local f = assert(io.open(path, "w"))
  f:write(src)
  f:close()
  return sh(util.PYTHON .. " " .. path .. " " .. table.concat({ ... }, " "))
end

-- The bytes of a file as a list of numbers.
local function file_bytes(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  local t = {}
  for i = 1, #s, 4096 do
    for _, b in ipairs({ s:byte(i, math.min(i + 4095, #s)) }) do t[#t + 1] = b end
  end
  return t
end

-- Largest and mean absolute difference of two flat lists.
local function diff(a, b)
  assert(#a == #b, ("%d values, expected %d"):format(#a, #b))
  local worst, sum = 0, 0
  for i = 1, #a do
    local d = math.abs(a[i] - b[i])
    worst, sum = math.max(worst, d), sum + d
  end
  return worst, sum / #a
end

local fm   -- Fashion-MNIST test images 1..COUNT, 0..1, unpadded
local order = {}   -- the folder's items: test indices (0-based) sorted by label, then index

setup(function()
  sh("rm -rf " .. DIR .. " && mkdir -p " .. DIR)
  sh(WRITE .. DIR .. "/png --count " .. COUNT)
  sh(WRITE .. DIR .. "/jpeg --count " .. COUNT .. " --format jpeg --quality 95")
  fm = lop.data.fashion_mnist { pad = false, normalize = false, test_size = COUNT }.test
  for k = 0, 9 do
    for i = 0, COUNT - 1 do
      if fm:label(i + 1) == k then order[#order + 1] = i end
    end
  end
end)

teardown(function() os.execute("rm -rf " .. DIR) end)

local function file_of(root, i, ext)
  return ("%s/%d/%05d.%s"):format(root, fm:label(i + 1), i, ext)
end

describe("lop.data.folder", function()
  it("opens Fashion-MNIST PNGs with the IDX labels in folder order", function()
    local ds, names = lop.data.folder(DIR .. "/png", { size = 28, channels = 1 })
    assert.are.equal(COUNT, #ds)
    assert.are.equal(10, ds:classes())
    assert.are.same({ "0", "1", "2", "3", "4", "5", "6", "7", "8", "9" }, names)
    for j, i in ipairs(order) do
      assert.are.equal(fm:label(i + 1), ds:label(j))
    end
  end)

  it("reads every PNG pixel-identical to lop.data.fashion_mnist", function()
    local ds = lop.data.folder(DIR .. "/png", { size = 28, channels = 1 })
    assert.are.same({ 1, 28, 28 }, ds:shape())
    assert.matches("streamed", tostring(ds))
    for j, i in ipairs(order) do
      local want = util.flatten(fm:image(i + 1):totable())
      assert.are.equal(0, (diff(util.flatten(ds:image(j):totable()), want)))
      local t = lop.data.read_image(file_of(DIR .. "/png", i, "png"), { size = 28, channels = 1 })
      assert.are.equal(0, (diff(util.flatten(t:totable()), want)))
    end
  end)

  it("reads JPEG quality 95 within 16 levels (mean under 1.5), as PIL decodes it", function()
    -- Measured on these 1000 images: 10 levels at most, 0.93 on average.
    local paths = {}
    for _, i in ipairs(order) do paths[#paths + 1] = file_of(DIR .. "/jpeg", i, "jpg") end
    python([[
import sys
from PIL import Image
with open(sys.argv[1], "wb") as out:
    for path in sys.argv[2:]:
        out.write(Image.open(path).tobytes())
]], DIR .. "/pil.raw", table.concat(paths, " "))
    local pil_bytes = file_bytes(DIR .. "/pil.raw")
    local ours, orig = {}, {}
    for _, i in ipairs(order) do
      local t = lop.data.read_image(file_of(DIR .. "/jpeg", i, "jpg"))
      assert.are.same({ 1, 28, 28 }, t:shape())
      for _, v in ipairs(util.flatten(t:totable())) do ours[#ours + 1] = v end
      for _, v in ipairs(util.flatten(fm:image(i + 1):totable())) do
        orig[#orig + 1] = math.floor(v * 255 + 0.5)
      end
    end
    local worst, mean = diff(ours, orig)
    assert.is_true(worst <= 16, "max error " .. worst)
    assert.is_true(mean < 1.5, "mean error " .. mean)
    assert.are.equal(0, (diff(ours, pil_bytes)))   -- both are libjpeg-turbo, same settings
  end)

  it("names classes by folder, sorted bytewise", function()
    sh(WRITE .. DIR .. "/named --count 50 --names fashion")
    local ds, names = lop.data.folder(DIR .. "/named", { size = 28 })
    local sorted = {}
    for _, n in ipairs(FASHION) do sorted[#sorted + 1] = n end
    table.sort(sorted)
    assert.are.same(sorted, names)
    for j = 1, #ds do
      assert.is_not_nil(names[ds:label(j) + 1])
    end
  end)

  it("skips unreadable files with skip_bad", function()
    sh("mkdir -p " .. DIR .. "/bad && cp -r " .. DIR .. "/png/3 " .. DIR .. "/bad/")
    local f = assert(io.open(DIR .. "/bad/3/zz-notes.txt", "w"))
    f:write("not an image\n")
    f:close()
    local ok, err = pcall(lop.data.folder, DIR .. "/bad", { size = 28 })
    assert.is_false(ok)
    assert.matches("bad/3/zz%-notes%.txt: not a PNG or JPEG file", err)
    local ds = lop.data.folder(DIR .. "/bad", { size = 28, skip_bad = true })
    local threes = 0
    for i = 1, COUNT do if fm:label(i) == 3 then threes = threes + 1 end end
    assert.are.equal(threes, #ds)
  end)

  it("refuses bad options and folders with a message", function()
    local png = DIR .. "/png"
    local cases = {
      { { size = 28, sise = 3 }, "unknown option 'sise'" },
      { {}, "option 'size' must be a size or {height, width}, got none" },
      { { size = { 28 } }, "option 'size' must be a size or {height, width}" },
      { { size = 0 }, "option 'size' must be an integer >= 1" },
      { { size = 28, channels = 2 }, "option 'channels' must be 1 or 3" },
      { { size = 28, normalize = "imagenet", channels = 1 }, "needs 3-channel images; the folder (option 'channels') has 1" },
      { { size = 28, normalize = "imagenet", mean = 0.5 }, "not both" },
      { { size = 28, normalize = "z" }, "'normalize' must be \"imagenet\" or \"none\"" },
      { { size = 28, mean = { 1, 2 } }, "option 'mean' has 2 values (give 1 or 3)" },
      { { size = 28, std = 0 }, "option 'std' must be positive" },
      { { size = 28, workers = 0 }, "option 'workers' must be an integer >= 1" },
      { { size = 28, flip = 1 }, "option 'flip' must be true or false" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(lop.data.folder, png, c[1])
      assert.is_false(ok)
      assert.is_truthy(err:find(c[2], 1, true), err)
      assert.is_truthy(err:find("data.folder: ", 1, true), err)
    end
    local ok, err = pcall(lop.data.folder, DIR .. "/nowhere", { size = 28 })
    assert.is_false(ok)
    assert.matches("folder_spec/nowhere", err)
    ok, err = pcall(lop.data.folder, 42, { size = 28 })
    assert.is_false(ok)
    ok, err = pcall(lop.data.folder, png)
    assert.is_false(ok)
  end)
end)

-- Generated test images for the PIL comparisons: smooth colour gradients with noise.
local PIL_IMAGES = [[
import sys
import numpy as np
from PIL import Image
root = sys.argv[1]
rng = np.random.default_rng(7)
def picture(w, h):
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 100 * np.sin(x / 7.0 + c) * np.cos(y / 11.0 - c)
                     for c in range(3)], axis=-1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
Image.fromarray(picture(97, 61)).save(root + "/wide.png")
Image.fromarray(picture(40, 90)[:, :, 1]).save(root + "/tall_grey.png")
Image.fromarray(picture(300, 200)).save(root + "/photo.jpg", quality=90)
Image.fromarray(picture(13, 11)).save(root + "/tiny.png")
]]

-- PIL's pipeline on one file: decode, convert, resize the shorter side (torchvision's
-- rule), centre crop, as raw bytes, planar [C][H][W].
local PIL_PIPELINE = [[
import sys
import numpy as np
from PIL import Image
path, mode, resize, h, w = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
im = Image.open(path).convert(mode)
if resize:
    W, H = im.size
    if W <= H:
        size = (resize, int(resize * H / W))
    else:
        size = (int(resize * W / H), resize)
    if size != im.size:
        im = im.resize(size, Image.BILINEAR)
W, H = im.size
top, left = (H - h) // 2, (W - w) // 2
a = np.asarray(im.crop((left, top, left + w, top + h)), dtype=np.uint8)
a = a.reshape(h, w, -1).transpose(2, 0, 1)
sys.stdout.write(" ".join(str(v) for v in a.ravel()))
]]

describe("lop.data.read_image", function()
  setup(function()
    sh("mkdir -p " .. DIR .. "/pil")
    python(PIL_IMAGES, DIR .. "/pil")
  end)

  -- Our pipeline on file (0..1 floats, scaled to 0..255) against PIL's (8-bit).
  local function against_pil(file, channels, resize, h, w)
    local path = DIR .. "/pil/" .. file
    local t = lop.data.read_image(path, { size = { h, w }, resize = resize,
                                          channels = channels })
    assert.are.same({ channels, h, w }, t:shape())
    local ours = util.flatten(t:totable())
    for i, v in ipairs(ours) do ours[i] = v * 255 end
    local ref = {}
    local out = python(PIL_PIPELINE, path, channels == 1 and "L" or "RGB", resize, h, w)
    for v in out:gmatch("%d+") do ref[#ref + 1] = tonumber(v) end
    return diff(ours, ref)
  end

  it("resizes and crops as PIL's BILINEAR within one level of 255", function()
    -- PIL rounds to 8 bits after each pass, we keep floats: the two differ by less
    -- than 1 (0.5 from each rounding); measured up to about 0.9.
    local cases = {
      { "wide.png", 3, 40, 36, 50 },        -- shrink 1.5x, off-square crop
      { "wide.png", 3, 20, 20, 20 },        -- shrink 3x
      { "tall_grey.png", 3, 64, 60, 64 },   -- grow 1.6x, grey repeated
      { "tall_grey.png", 1, 17, 30, 17 },
      { "photo.jpg", 3, 256, 224, 224 },    -- ImageNet's evaluation transform
      { "photo.jpg", 1, 56, 56, 56 },       -- colour to grey, then shrink 3.6x
      { "tiny.png", 3, 31, 31, 31 },        -- grow 2.8x
      { "wide.png", 3, 0, 61, 97 },         -- no resize: exact
    }
    for _, c in ipairs(cases) do
      local worst = against_pil(table.unpack(c))
      if os.getenv("FOLDER_SPEC_VERBOSE") then print(c[1], c[3], worst) end
      assert.is_true(worst <= 1.001, ("%s resize %d: %g levels from PIL"):format(c[1], c[3], worst))
      if c[3] == 0 then assert.is_true(worst < 1e-4) end   -- v / 255 * 255 in floats
    end
  end)

  it("turns colour into grey as PIL's convert('L') does", function()
    local t = lop.data.read_image(DIR .. "/pil/wide.png", { channels = 1 })
    local ref = {}
    local out = python(PIL_PIPELINE, DIR .. "/pil/wide.png", "L", 0, 61, 97)
    for v in out:gmatch("%d+") do ref[#ref + 1] = tonumber(v) end
    assert.are.equal(0, (diff(util.flatten(t:totable()), ref)))
  end)

  it("reads raw values as stored, or normalised", function()
    local raw = lop.data.read_image(DIR .. "/pil/wide.png")
    assert.are.same({ 3, 61, 97 }, raw:shape())
    local grey = lop.data.read_image(DIR .. "/pil/tall_grey.png")
    assert.are.same({ 1, 90, 40 }, grey:shape())
    local three = lop.data.read_image(DIR .. "/pil/tall_grey.png", { channels = 3 })
    assert.are.equal(grey:get(1, 5, 7), three:get(3, 5, 7))
    local n = lop.data.read_image(DIR .. "/pil/wide.png", { size = { 61, 97 },
                                                            normalize = "imagenet" })
    local mean, std = { 0.485, 0.456, 0.406 }, { 0.229, 0.224, 0.225 }
    for c = 1, 3 do
      local want = (raw:get(c, 9, 20) / 255 - mean[c]) / std[c]
      assert.is_true(math.abs(n:get(c, 9, 20) - want) < 1e-5)
    end
    local m = lop.data.read_image(DIR .. "/pil/wide.png", { size = 8, mean = { 0.5 },
                                                            std = { 0.25, 0.5, 2 } })
    assert.are.same({ 3, 8, 8 }, m:shape())
  end)

  it("draws a training crop and flip from seed", function()
    local path = DIR .. "/pil/wide.png"
    local o = { size = 32, random_crop = true, flip = true }
    local a = util.flatten(lop.data.read_image(path, o):totable())
    o.seed = 0
    assert.are.same(a, util.flatten(lop.data.read_image(path, o):totable()))   -- centred
    local differ = 0
    for seed = 1, 6 do
      o.seed = seed
      local b = util.flatten(lop.data.read_image(path, o):totable())
      assert.are.same(b, util.flatten(lop.data.read_image(path, o):totable()))
      if diff(a, b) > 0 then differ = differ + 1 end
    end
    assert.is_true(differ >= 5)
  end)

  it("refuses bad files and options with a message", function()
    local ok, err = pcall(lop.data.read_image, DIR .. "/missing.png")
    assert.is_false(ok)
    assert.matches("data.read_image: .*missing%.png: cannot open", err)
    ok, err = pcall(lop.data.read_image, DIR .. "/bad/3/zz-notes.txt")
    assert.is_false(ok)
    assert.matches("zz%-notes%.txt: not a PNG or JPEG file", err)
    ok, err = pcall(lop.data.read_image, DIR .. "/pil/wide.png", { resize = 10 })
    assert.is_false(ok)
    assert.matches("option 'resize' needs 'size'", err)
    ok, err = pcall(lop.data.read_image, DIR .. "/pil/wide.png", { size = 100 })
    assert.is_false(ok)
    assert.matches("wide%.png: the image is 97x61 %(width x height%), smaller than the 100x100 crop", err)
    ok, err = pcall(lop.data.read_image, DIR .. "/pil/wide.png", { channels = 4 })
    assert.is_false(ok)
    assert.matches("option 'channels' must be 1 or 3", err)
    local f = assert(io.open(DIR .. "/cut.jpg", "wb"))
    local g = assert(io.open(DIR .. "/pil/photo.jpg", "rb"))
    local s = g:read("a")
    g:close()
    f:write(s:sub(1, #s // 2))
    f:close()
    ok, err = pcall(lop.data.read_image, DIR .. "/cut.jpg")
    assert.is_false(ok)
    assert.matches("cut%.jpg: JPEG decoding failed: Premature end of JPEG file", err)
  end)
end)

describe("lop.train and lop.evaluate on a folder", function()
  local function small_net()
    local net = lop.net { input = { 1, 28, 28 }, seed = 3 }
    net:conv2d("c1", "input", { out = 8, kernel = 3, pad = 1 })
    net:relu("r1", "c1")
    net:global_avgpool("g", "r1")
    net:flatten("f", "g")
    net:linear("fc", "f", { out = 10 })
    return net
  end
  local quiet = function() end

  it("evaluate a folder as the same images in memory, and train on it", function()
    local ds = lop.data.folder(DIR .. "/png", { size = 28, channels = 1, workers = 2 })
    local net = small_net()
    local a = lop.evaluate(net, ds, { progress = quiet })
    local b = lop.evaluate(net, fm, { progress = quiet })
    assert.are.equal(COUNT, a.n)
    assert.are.equal(b.top1, a.top1)
    assert.is_true(math.abs(a.loss - b.loss) < 1e-5)
    -- Training with the folder's own flips: the same with 1 and 3 workers.
    local function train(workers)
      local t = lop.data.folder(DIR .. "/png", { size = 28, channels = 1, flip = true,
                                                 workers = workers })
      local n = small_net()
      local r = lop.train(n, t, { epochs = 1, batch = 50, lr = 0.05, progress = quiet })
      return r, n:node("fc"):weight():totable()
    end
    local r1, w1 = train(1)
    local r3, w3 = train(3)
    assert.are.equal(COUNT, r1.n)
    assert.is_true(r1.loss == r1.loss)
    assert.are.equal(r1.loss, r3.loss)
    assert.are.same(w1, w3)
  end)

  it("leaves a damaged image out of its batch with skip_bad", function()
    sh("rm -rf " .. DIR .. "/cut && mkdir -p " .. DIR .. "/cut && cp -r " .. DIR ..
       "/png/0 " .. DIR .. "/png/1 " .. DIR .. "/cut/")
    local victim = file_of(DIR .. "/cut", order[5], "png")   -- a class-0 image
    local f = assert(io.open(victim, "rb"))
    local bytes = f:read("a")
    f:close()
    f = assert(io.open(victim, "wb"))
    f:write(bytes:sub(1, #bytes // 2))
    f:close()
    local o = { size = 28, channels = 1 }
    local ds = lop.data.folder(DIR .. "/cut", o)   -- the scan reads only the header
    local ok, err = pcall(lop.evaluate, small_net(), ds, { progress = quiet })
    assert.is_false(ok)
    assert.matches("PNG decoding failed", err)
    o.skip_bad = true
    ds = lop.data.folder(DIR .. "/cut", o)
    local r = lop.evaluate(small_net(), ds, { progress = quiet })
    assert.are.equal(#ds - 1, r.n)
    assert.are.equal(1, r.skipped)
    local n, first = ds:skipped()
    assert.are.equal(1, n)
    assert.is_truthy(first:find(victim, 1, true), first)
  end)
end)
