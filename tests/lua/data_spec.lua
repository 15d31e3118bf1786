-- data_spec.lua - data sets from Lua: the Fashion-MNIST pair against the raw IDX
-- bytes and its published statistics, the IDX and CIFAR-10 loaders and every data
-- set method on tiny files written here with hand-computed contents, data sets made
-- from tensors (training, evaluation and sampling on one must match the set it was
-- copied from), and misuse that must raise a message, never crash.
local lop = require "lopper"
local util = dofile("tests/lua/util.lua")

local FMNIST = "/usr/share/datasets/fashion-mnist"
local MEAN, STD = 0.2860, 0.3530

-- Bytes [first, first + count) of a gzip-compressed file, decompressed by gzip itself.
local function gunzip_bytes(path, first, count)
  local p = assert(io.popen("gzip -dc " .. path))
  local s = p:read(first + count - 1)
  p:close()
  return { s:byte(first, first + count - 1) }
end

local tmpdir
local function tmpfile(name, bytes)
  if not tmpdir then
    tmpdir = os.tmpname()
    os.remove(tmpdir)
    assert(os.execute("mkdir -p " .. tmpdir))
  end
  local path = tmpdir .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end

-- Uncompressed IDX files: images is a list of H x W byte grids.
local function write_idx(prefix, images, labels)
  local h, w = #images[1], #images[1][1]
  local parts = { string.pack(">I4I4I4I4", 0x803, #images, h, w) }
  for _, im in ipairs(images) do
    for y = 1, h do parts[#parts + 1] = string.char(table.unpack(im[y])) end
  end
  local ip = tmpfile(prefix .. "-images", table.concat(parts))
  local lp = tmpfile(prefix .. "-labels",
                     string.pack(">I4I4", 0x801, #labels) .. string.char(table.unpack(labels)))
  return ip, lp
end

-- Four 3x2 images: item k has byte 10 * k + 2 * (y - 1) + (x - 1) at (y, x).
local SMALL = {}
for k = 1, 4 do
  SMALL[k] = {}
  for y = 1, 3 do
    SMALL[k][y] = {}
    for x = 1, 2 do SMALL[k][y][x] = 10 * k + 2 * (y - 1) + (x - 1) end
  end
end
local SMALL_LABELS = { 3, 0, 7, 1 }
local function small()
  return lop.data.idx(write_idx("small", SMALL, SMALL_LABELS))
end

local function near(a, b, tol)
  return math.abs(a - b) <= (tol or 1e-5)
end

teardown(function()
  if tmpdir then os.execute("rm -rf " .. tmpdir) end
end)

describe("lop.data.fashion_mnist", function()
  local data   -- the default preparation, loaded once

  setup(function() data = lop.data.fashion_mnist() end)

  it("loads both splits padded to 32x32 by default", function()
    assert.are.equal(60000, data.train:size())
    assert.are.equal(10000, #data.test)
    assert.are.same({ 1, 32, 32 }, data.train:shape())
    assert.are.same({ 1, 32, 32 }, data.test:shape())
    assert.are.equal(10, data.train:classes())
    assert.are.equal("dataset 60000 x 1x32x32, 10 classes", tostring(data.train))
  end)

  it("matches the raw IDX bytes, normalised and centred in a zero border", function()
    for _, split in ipairs { { data.train, "train" }, { data.test, "t10k" } } do
      local ds, prefix = split[1], split[2]
      local labels = gunzip_bytes(FMNIST .. "/" .. prefix .. "-labels-idx1-ubyte.gz", 9, 20)
      for i = 1, 20 do assert.are.equal(labels[i], ds:label(i)) end
      for i = 1, 3 do
        local raw = gunzip_bytes(FMNIST .. "/" .. prefix .. "-images-idx3-ubyte.gz",
                                 17 + (i - 1) * 784, 784)
        local img = ds:image(i)
        assert.are.same({ 1, 32, 32 }, img:shape())
        local t = img:totable()[1]
        for y = 1, 32 do
          for x = 1, 32 do
            local want = 0
            if y > 2 and y <= 30 and x > 2 and x <= 30 then
              want = (raw[(y - 3) * 28 + (x - 2)] / 255 - MEAN) / STD
            end
            assert(near(t[y][x], want), ("%s item %d at (%d, %d): %g, want %g")
                   :format(prefix, i, y, x, t[y][x], want))
          end
        end
      end
    end
  end)

  it("keeps 28x28 with pad = false and has mean 0, std 1 over the train set", function()
    local d = lop.data.fashion_mnist { pad = false }
    assert.are.same({ 1, 28, 28 }, d.train:shape())
    assert.are.equal(10000, d.test:size())
    local s, ss, n = 0, 0, 0
    for i = 1, #d.train do
      local img = d.train:image(i):totable()[1]
      for y = 1, 28 do
        local row = img[y]
        for x = 1, 28 do
          local v = row[x]
          s, ss = s + v, ss + v * v
        end
      end
      n = n + 784
    end
    local mean = s / n
    local std = math.sqrt(ss / n - mean * mean)
    assert.is_true(math.abs(mean) < 0.01, "mean " .. mean)
    assert.is_true(math.abs(std - 1) < 0.02, "std " .. std)
    d.train:close()
    d.test:close()
  end)

  it("takes the first images with train_size / test_size, raw with normalize = false", function()
    local d = lop.data.fashion_mnist { train_size = 100, test_size = 7, normalize = false,
                                       pad = 30 }
    assert.are.equal(100, #d.train)
    assert.are.equal(7, #d.test)
    assert.are.same({ 1, 30, 30 }, d.test:shape())
    for i = 1, 7 do assert.are.equal(data.test:label(i), d.test:label(i)) end
    local raw = gunzip_bytes(FMNIST .. "/t10k-images-idx3-ubyte.gz", 17, 784)
    local t = d.test:image(1):totable()[1]
    assert.are.equal(0, t[1][1])
    for y = 1, 28, 5 do
      for x = 1, 28, 3 do
        assert.is_true(near(t[y + 1][x + 1], raw[(y - 1) * 28 + x] / 255))
      end
    end
  end)

  it("names the missing file and the Debian package", function()
    local ok, err = pcall(lop.data.fashion_mnist, { dir = "/nonexistent/fmnist" })
    assert.is_false(ok)
    assert.truthy(err:find("/nonexistent/fmnist/train-images-idx3-ubyte.gz", 1, true))
    assert.truthy(err:find("dataset-fashion-mnist", 1, true))
  end)
end)

describe("a data set", function()
  it("loads IDX files with labels as stored and pixels as bytes / 255", function()
    local ds = small()
    assert.are.equal(4, #ds)
    assert.are.same({ 1, 3, 2 }, ds:shape())
    assert.are.equal(10, ds:classes())   -- (Fashion-)MNIST always has ten
    for k = 1, 4 do
      assert.are.equal(SMALL_LABELS[k], ds:label(k))
      local t = ds:image(k):totable()
      for y = 1, 3 do
        for x = 1, 2 do assert.is_true(near(t[1][y][x], SMALL[k][y][x] / 255)) end
      end
    end
  end)

  it("copies a range with subset", function()
    local ds = small()
    local sub = ds:subset(2, 2)
    assert.are.equal(2, #sub)
    assert.are.equal(SMALL_LABELS[2], sub:label(1))
    assert.are.equal(SMALL_LABELS[3], sub:label(2))
    ds:normalize(1, 2)   -- the copy must not change
    assert.is_true(near(sub:image(2):get(1, 3, 2), SMALL[3][3][2] / 255))
    ds:close()
    assert.are.equal(2, #sub)
    assert.are.equal(1, #sub:subset(2, 1))
  end)

  it("pads centred, the odd pixel at the bottom / right", function()
    local ds = small():pad(6)   -- 3x2 -> 6x6: 1 row above, 2 below, 2 columns each side
    assert.are.same({ 1, 6, 6 }, ds:shape())
    local t = ds:image(4):totable()[1]
    for y = 1, 6 do
      for x = 1, 6 do
        local sy, sx = y - 1, x - 2
        local want = (sy >= 1 and sy <= 3 and sx >= 1 and sx <= 2) and SMALL[4][sy][sx] / 255 or 0
        assert.is_true(near(t[y][x], want), ("(%d, %d)"):format(y, x))
      end
    end
    assert.are.equal(ds, ds:pad(6))   -- same size: nothing to do
  end)

  it("normalises with one mean and std", function()
    local ds = small():normalize(0.1, { 0.5 })
    for k = 1, 4 do
      local t = ds:image(k):totable()[1]
      for y = 1, 3 do
        for x = 1, 2 do assert.is_true(near(t[y][x], (SMALL[k][y][x] / 255 - 0.1) / 0.5)) end
      end
    end
  end)

  describe("from CIFAR-10 files", function()
    -- Two records: label, then R, G, B planes of 32x32; pixel p of plane c of record r
    -- is (r * 31 + c * 7 + p) % 256.
    local function cifar_file()
      local parts = {}
      for r = 0, 1 do
        parts[#parts + 1] = string.char(r == 0 and 6 or 2)
        for c = 0, 2 do
          local plane = {}
          for p = 0, 1023 do plane[p + 1] = (r * 31 + c * 7 + p) % 256 end
          for i = 1, 1024, 256 do
            parts[#parts + 1] = string.char(table.unpack(plane, i, i + 255))
          end
        end
      end
      return tmpfile("cifar.bin", table.concat(parts))
    end
    local function byte(r, c, y, x) return (r * 31 + c * 7 + (y - 1) * 32 + (x - 1)) % 256 end

    it("loads, concatenating files, and normalises per channel", function()
      local path = cifar_file()
      local ds = lop.data.cifar10 { path, path }
      assert.are.equal(4, #ds)
      assert.are.same({ 3, 32, 32 }, ds:shape())
      assert.are.equal(10, ds:classes())
      assert.are.same({ 6, 2, 6, 2 }, { ds:label(1), ds:label(2), ds:label(3), ds:label(4) })
      assert.is_true(near(ds:image(2):get(3, 5, 7), byte(1, 2, 5, 7) / 255))
      assert.are.equal(2, #lop.data.cifar10(path))
      local mean, std = { 0.1, 0.2, 0.3 }, { 0.5, 1, 2 }
      ds:normalize(mean, std)
      for _, at in ipairs { { 1, 1, 1, 1 }, { 2, 2, 17, 9 }, { 4, 3, 32, 32 } } do
        local i, c, y, x = table.unpack(at)
        local want = (byte((i - 1) % 2, c - 1, y, x) / 255 - mean[c]) / std[c]
        assert.is_true(near(ds:image(i):get(c, y, x), want))
      end
      ds:normalize(0.5, { 1, 2, 4 })   -- one mean for every channel, one std each
      local v = ds:image(1):get(2, 1, 1)
      assert.is_true(near(v, (((byte(0, 1, 1, 1) / 255 - 0.2) / 1) - 0.5) / 2))
    end)
  end)

  describe("batches", function()
    local function grid(x, b)   -- item b of batch x as a 3x2 table
      return x:totable()[b][1]
    end
    local function shifted(img, k, dy, dx, mirror)   -- the engine's documented transform
      local out = {}
      for y = 1, 3 do
        out[y] = {}
        for x = 1, 2 do
          local xs = mirror and 3 - x or x
          local row = SMALL[k][y + dy]
          local v = row and row[xs + dx]
          out[y][x] = v and v / 255 or 0
        end
      end
      return out
    end
    local function same(a, b)
      for y = 1, #a do
        for x = 1, #a[1] do
          if not near(a[y][x], b[y][x]) then return false end
        end
      end
      return true
    end

    it("gathers items in the given order with their labels", function()
      local ds = small()
      local x, labels = ds:batch { 3, 1, 3 }
      assert.are.same({ 3, 1, 3, 2 }, x:shape())
      assert.are.same({ 7, 3, 7 }, labels)
      assert.is_true(same(grid(x, 1), shifted(nil, 3, 0, 0, false)))
      assert.is_true(same(grid(x, 2), shifted(nil, 1, 0, 0, false)))
    end)

    it("flips and crops: each item is one of the allowed shifts and mirrors", function()
      local ds = small()
      local seen_mirror, seen_plain, seen_shift = false, false, false
      for seed = 1, 12 do
        local x, labels = ds:batch({ 1, 2, 3, 4 }, { crop = 1, flip = true, seed = seed })
        assert.are.same({ 4, 1, 3, 2 }, x:shape())
        assert.are.same(SMALL_LABELS, labels)
        for k = 1, 4 do
          local found = false
          for dy = -1, 1 do
            for dx = -1, 1 do
              for _, m in ipairs { false, true } do
                if not found and same(grid(x, k), shifted(nil, k, dy, dx, m)) then
                  found = true
                  seen_mirror = seen_mirror or (m and dx == 0 and dy == 0)
                  seen_plain = seen_plain or (not m and dx == 0 and dy == 0)
                  seen_shift = seen_shift or dx ~= 0 or dy ~= 0
                end
              end
            end
          end
          assert.is_true(found, ("seed %d item %d is no crop / flip of the image"):format(seed, k))
        end
        local again = ds:batch({ 1, 2, 3, 4 }, { crop = 1, flip = true, seed = seed })
        assert.are.same(x:totable(), again:totable())
      end
      assert.is_true(seen_mirror and seen_plain and seen_shift)
    end)
  end)

  describe("from a tensor (lop.data.tensor)", function()
    -- Three 2x2x3 images: value 100 * i + 10 * c + 3 * (y - 1) + x at item i, channel c.
    local function images()
      local t = lop.tensor(3, 2, 2, 3)
      for i = 1, 3 do
        for c = 1, 2 do
          for y = 1, 2 do
            for x = 1, 3 do t:set(100 * i + 10 * c + 3 * (y - 1) + x, i, c, y, x) end
          end
        end
      end
      return t
    end

    it("holds a copy of the images with the labels", function()
      local t = images()
      local ds = lop.data.tensor(t, { 4, 0, 2 })
      assert.are.equal(3, #ds)
      assert.are.same({ 2, 2, 3 }, ds:shape())
      assert.are.equal(5, ds:classes())   -- 1 + the largest label
      assert.are.same({ 4, 0, 2 }, { ds:label(1), ds:label(2), ds:label(3) })
      assert.are.equal("dataset 3 x 2x2x3, 5 classes", tostring(ds))
      t:fill(0)   -- a copy: the data set keeps its values
      for i = 1, 3 do
        local img = ds:image(i)
        assert.are.same({ 2, 2, 3 }, img:shape())
        for c = 1, 2 do
          for y = 1, 2 do
            for x = 1, 3 do
              assert.are.equal(100 * i + 10 * c + 3 * (y - 1) + x, img:get(c, y, x))
            end
          end
        end
      end
      local x, labels = ds:batch { 3, 1 }
      assert.are.equal(326, x:get(1, 2, 2, 3))
      assert.are.same({ 2, 4 }, labels)
      assert.are.same({ 0 }, { ds:skipped() })   -- in memory: nothing is ever skipped
      ds:normalize(100, 2):pad(4)   -- an ordinary data set
      assert.are.equal((211 - 100) / 2, ds:image(2):get(1, 2, 1))
      assert.are.equal(10, lop.data.tensor(images(), { 1, 1, 1 }, 10):classes())
    end)

    it("refuses what is not images with class labels", function()
      local t, bad = images(), images()
      bad:set(0 / 0, 2, 1, 1, 1)
      local cases = {
        { { lop.tensor(3, 2, 2), { 0, 0, 0 } }, "dimensions" },
        { { t, { 0, 1 } }, "2 labels for 3 images" },
        { { t, { 0, 1, 2, 3 } }, "4 labels for 3 images" },
        { { t, { 0, 1.5, 2 } }, "label 2 is 1.5" },
        { { t, { 0, "1", 2 } }, "label 2 is string" },
        { { t, { 0, 1, -1 } }, "label 3 is -1" },
        { { t, { 0, 1, 3 }, 3 }, "label 3 is 3, outside 0..2" },
        { { t, { 0, 1, 2 }, 0 }, "classes" },
        { { t, { 0, 1, 2 }, 2.5 }, "number" },
        { { bad, { 0, 1, 2 } }, "image 2 holds" },
        { { t, "labels" }, "table" },
        { { {}, { 0 } }, "tensor" },
        { { t }, "table" },
      }
      for k, c in ipairs(cases) do
        local ok, err = pcall(lop.data.tensor, table.unpack(c[1], 1, 3))
        assert.is_false(ok, "case " .. k .. " should fail")
        assert.truthy(tostring(err):find(c[2], 1, true), ("case %d: %s"):format(k, err))
      end
    end)

    it("trains, evaluates and samples like the data set it was copied from", function()
      local src = lop.data.fashion_mnist { pad = false, train_size = 161, test_size = 10 }
      local all = {}
      for i = 1, #src.train do all[i] = i end
      local x, labels = src.train:batch(all)
      local copy = lop.data.tensor(x, labels, 10)
      local function net()
        local n = lop.net { input = { 1, 28, 28 }, seed = 4 }
        local y = n:conv2d("c", "input", { out = 4, kernel = 3, stride = 2 })
        y = n:relu("r", n:batchnorm("bn", y))
        n:linear("fc", n:global_avgpool("gap", y), { out = 10 })
        return n
      end
      local a, b = net(), net()
      local opts = { epochs = 2, batch = 32, crop = 2, flip = true, seed = 7, progress = false }
      local ra, rb = lop.train(a, src.train, opts), lop.train(b, copy, opts)
      assert.are.same(ra, rb)   -- 161 = 5 batches of 32 and one image left out
      assert.are.equal(160, ra.n)
      assert.are.equal(0, ra.skipped)
      local probe = src.test:batch { 1, 2 }
      assert.are.same(a:forward(probe):totable(), b:forward(probe):totable())
      local quiet = { progress = false }
      local ea, eb = lop.evaluate(a, src.train, quiet), lop.evaluate(b, copy, quiet)
      assert.are.same(ea, eb)
      assert.are.equal(161, eb.n)
      assert.are.equal(0, eb.skipped)
      local sa = lop.sample(a, src.train, "c", { images = 50, points = 3 })
      local sb = lop.sample(b, copy, "c", { images = 50, points = 3 })
      assert.are.equal(150, sb:samples())
      assert.are.same(lop.select.thinet(sa, { keep = 0.5 }), lop.select.thinet(sb, { keep = 0.5 }))
      local bad = lop.data.tensor(lop.tensor(4, 3, 28, 28), { 0, 1, 2, 3 })
      local ok, err = pcall(lop.train, a, bad, quiet)
      assert.is_false(ok)
      local want = "train: the images are 3x28x28, the network takes 1x28x28"
      assert.truthy(err:find(want, 1, true), err)
    end)
  end)

  it("closes once; a closed data set refuses use", function()
    local ds = small()
    ds:close()
    ds:close()
    assert.are.equal("dataset (closed)", tostring(ds))
    for _, m in ipairs { "size", "shape", "classes", "image", "label", "subset", "pad",
                         "normalize", "batch", "skipped" } do
      local ok, err = pcall(ds[m], ds, 1, 1)
      assert.is_false(ok)
      assert.truthy(err:find("closed"), m)
    end
    do
      local scoped <close> = small()
      assert.are.equal(4, #scoped)
    end
  end)

  it("raises clear errors on misuse", function()
    local ds = small()
    local img, lbl = write_idx("misuse", SMALL, SMALL_LABELS)
    local short = tmpfile("short", string.pack(">I4I4", 0x801, 5) .. "\1\2")
    local cifar_bad = tmpfile("bad.bin", ("x"):rep(100))
    local t = lop.tensor(2)
    local cases = {
      { lop.data.idx, "/nonexistent/a", lbl },
      { lop.data.idx, img, "/nonexistent/b" },
      { lop.data.idx, lbl, img },                 -- swapped: wrong magic numbers
      { lop.data.idx, img, short },               -- truncated, and 5 labels for 4 images
      { lop.data.idx, img },
      { lop.data.idx, 1, {} },
      { lop.data.cifar10, {} },
      { lop.data.cifar10, { 1 } },
      { lop.data.cifar10, { cifar_bad } },
      { lop.data.cifar10, { "/nonexistent/c" } },
      { lop.data.cifar10 },
      { lop.data.fashion_mnist, { bogus = 1 } },
      { lop.data.fashion_mnist, { pad = true } },
      { lop.data.fashion_mnist, { pad = 20 } },
      { lop.data.fashion_mnist, { dir = 5 } },
      { lop.data.fashion_mnist, { train_size = 0 } },
      { lop.data.fashion_mnist, { train_size = 70000 } },
      { lop.data.fashion_mnist, { normalize = "yes" } },
      { lop.data.fashion_mnist, "dir" },
      { ds.image, ds, 0 },
      { ds.image, ds, 5 },
      { ds.image, ds, 1.5 },
      { ds.image, ds, "x" },
      { ds.label, ds },
      { ds.label, ds, -1 },
      { ds.subset, ds, 0, 1 },
      { ds.subset, ds, 2, 4 },
      { ds.subset, ds, 1, 0 },
      { ds.subset, ds, 1 },
      { ds.pad, ds, 2 },
      { ds.pad, ds, "big" },
      { ds.pad, ds, 1 << 40 },
      { ds.normalize, ds, 0, 0 },
      { ds.normalize, ds, 0, -1 },
      { ds.normalize, ds, 0 / 0, 1 },
      { ds.normalize, ds, { 1, 2 }, 1 },
      { ds.normalize, ds, {}, 1 },
      { ds.normalize, ds, { "a" }, 1 },
      { ds.normalize, ds, "0", 1 },
      { ds.batch, ds, {} },
      { ds.batch, ds, { 1, 5 } },
      { ds.batch, ds, { 0 } },
      { ds.batch, ds, { "1" } },
      { ds.batch, ds, 1 },
      { ds.batch, ds, { 1 }, { crop = 3 } },
      { ds.batch, ds, { 1 }, { crop = -1 } },
      { ds.batch, ds, { 1 }, { flip = 1 } },
      { ds.batch, ds, { 1 }, { seed = 1.5 } },
      { ds.batch, ds, { 1 }, { shuffle = true } },
      { ds.batch, ds, { 1 }, "crop" },
      { ds.size, t },
      { ds.size, {} },
      { ds.image, nil, 1 },
    }
    for k, c in ipairs(cases) do
      local ok, err = pcall(table.unpack(c, 1, 4))
      assert.is_false(ok, "case " .. k .. " should fail")
      assert.is_string(err, "case " .. k)
      assert.is_true(#err > 0, "case " .. k .. " has a message")
    end
    -- the data set is intact after all that
    assert.are.equal(4, #ds)
    assert.is_true(near(ds:image(4):get(1, 3, 2), SMALL[4][3][2] / 255))
  end)

  it("names the unknown option and the bad index", function()
    local ds = small()
    local _, err = pcall(ds.batch, ds, { 1 }, { shufle = true })
    assert.truthy(err:find("shufle", 1, true))
    _, err = pcall(ds.batch, ds, { 1, 2, 9 })
    assert.truthy(err:find("9", 1, true))
    _, err = pcall(ds.image, ds, 5)
    assert.truthy(err:find("1..4", 1, true))
  end)

  it("gives memory back when data sets are dropped", function()
    local d = lop.data.fashion_mnist { train_size = 2000, test_size = 10 }
    collectgarbage()
    local before = util.rss_kb()
    for _ = 1, 200 do
      local sub = d.train:subset(1, 2000):pad(40)   -- 12.8 MB each, 2.5 GB in all
      assert.are.equal(2000, #sub)
    end
    collectgarbage()
    local after = util.rss_kb()
    if before and after then
      assert.is_true(after - before < 256 * 1024, ("RSS grew by %d kB"):format(after - before))
    end
  end)
end)
