-- npy_spec.lua - lop.data.npy against numpy: arrays numpy wrote (tests/npy/make_fixtures.py,
-- run with Debian's python3-numpy into build/npy_spec: uint8 and float32, NCHW, NHWC and
-- [N, H, W], big-endian, every integer label type, format versions 1.0, 2.0 and 3.0)
-- read back bit for bit equal to numpy's own conversion, the first 1000 Fashion-MNIST
-- test images equal to lop.data.fashion_mnist's, and every misuse one clear error.
-- Reading items of a streamed set (ds:image) needs the loader's half of the data sets;
-- until it is there (lop.data.tensor marks it), those cases are reported as pending.
local lop = require "lopper"

local util = dofile("tests/lua/util.lua")

local LOPPER = os.getenv("LOPPER") or "build/lopper"
local DIR = (LOPPER:match("^(.*)/[^/]*$") or ".") .. "/npy_spec"   -- under build/
local streamed = lop.data.tensor ~= nil
local it_streamed = streamed and it or pending

local function read_file(path)
  local f <close> = assert(io.open(path, "rb"))
  return f:read("a")
end

-- The cases of DIR/manifest.txt (see make_fixtures.py), in order.
local function manifest()
  local cases = {}
  for line in io.lines(DIR .. "/manifest.txt") do
    local w = {}
    for word in line:gmatch("%S+") do w[#w + 1] = word end
    local num = function(i) return assert(tonumber(w[i])) end
    cases[#cases + 1] = {
      name = w[1], n = num(2), c = num(3), h = num(4), w = num(5),
      channels_last = w[6] == "1", classes = num(7), want_classes = num(8),
      mean = {num(9), num(10), num(11)}, std = {num(12), num(13), num(14)},
    }
  end
  return cases
end

-- Options for a case: mean/std as lists of the channels' values (1 value when the
-- images have 1 or more than 3 channels).
local function options(case)
  local k = (case.c == 2 or case.c == 3) and case.c or 1
  local o = {channels_last = case.channels_last, mean = {}, std = {}}
  for i = 1, k do o.mean[i], o.std[i] = case.mean[i], case.std[i] end
  if case.classes > 0 then o.classes = case.classes end
  return o
end

local function open_case(case, opts)
  local base = DIR .. "/" .. case.name
  return lop.data.npy(base .. ".npy", base .. ".labels.npy", opts or options(case))
end

local function err_of(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return tostring(err)
end

describe("lop.data.npy", function()
  local cases, by_name
  setup(function()
    local code, out = util.run(("%s tests/npy/make_fixtures.py %s"):format(util.PYTHON, DIR))
    assert(code == 0, "cannot write the .npy fixtures with numpy; install python3-numpy:\n"
           .. out)
    cases, by_name = manifest(), {}
    for _, c in ipairs(cases) do by_name[c.name] = c end
  end)

  it("refuses bad arguments and options before opening anything", function()
    local im, lb = "/nonexistent/x.npy", "/nonexistent/y.npy"
    local rows = {
      {{}, "bad argument #1"},
      {{im}, "bad argument #2"},
      {{im, 5}, "bad argument #2"},
      {{im .. "\0", lb}, "zero byte"},
      {{im, lb, 5}, "bad argument #3"},
      {{im, lb, {bogus = 1}}, "unknown option 'bogus'"},
      {{im, lb, {channels_last = 1}}, "option 'channels_last' must be true or false"},
      {{im, lb, {classes = 0}}, "option 'classes' must be an integer >= 1"},
      {{im, lb, {classes = 2.5}}, "option 'classes' must be an integer"},
      {{im, lb, {mean = "x"}}, "option 'mean' must be a number or a list of numbers"},
      {{im, lb, {std = {}}}, "option 'std' must be a number or a list of 1 to 3"},
      {{im, lb, {std = {1, 2, 3, 4}}}, "got a list of 4"},
      {{im, lb, {mean = {0, "a"}}}, "value 2 of option 'mean' is a string"},
      {{im, lb, {normalize = "yes"}}, "option 'normalize' must be \"imagenet\" or \"none\""},
      {{im, lb, {normalize = true}}, "option 'normalize' must be"},
      {{im, lb, {normalize = "imagenet", mean = 0.5}}, "not both"},
      {{im, lb, {std = 0}}, "option 'std' must be positive"},
      {{im, lb, {std = {1, -1}}}, "option 'std' must be positive, got -1"},
      {{im, lb, {mean = 0 / 0}}, "std must be positive and both finite"},
      {{im, lb, {classes = 100001}}, "classes must be in 0..100000"},
    }
    for _, row in ipairs(rows) do
      local err = err_of(lop.data.npy, table.unpack(row[1], 1, 3))
      assert(err:find(row[2], 1, true), ("expected %q in: %s"):format(row[2], err))
      assert(not err:find("cannot open", 1, true), err)
    end
  end)

  it("refuses bad files with one message naming the file", function()
    local function path(name) return DIR .. "/" .. name end
    local garbage = util.tmpfile(".npy")
    local f = assert(io.open(garbage, "wb"))
    f:write("not numpy at all")
    f:close()
    local rows = {
      {path("missing.npy"), path("u8_nchw.labels.npy"), nil, "cannot open " .. path("missing")},
      {garbage, path("u8_nchw.labels.npy"), nil, garbage .. ": not a .npy file"},
      -- 5 images, 6 labels
      {path("u8_nchw.npy"), path("grey3d.labels.npy"), nil,
       path("u8_nchw.npy") .. " holds 5 images but " .. path("grey3d.labels.npy") ..
       " holds 6 labels"},
      -- labels as images, images as labels
      {path("u8_nchw.labels.npy"), path("u8_nchw.npy"), nil, "images of dtype '<i8'"},
      {path("f32_nchw_v2.npy"), path("f32_nchw_v2.npy"), nil,
       path("f32_nchw_v2.npy") .. ": labels of dtype '<f4'"},
      -- the labels go up to 3
      {path("u8_nchw.npy"), path("u8_nchw.labels.npy"), {classes = 2},
       "u8_nchw.labels.npy: the label at index 0 is 3, outside 0..1 (classes is given)"},
    }
    for _, row in ipairs(rows) do
      local err = err_of(lop.data.npy, row[1], row[2], row[3])
      assert(err:find("data.npy: ", 1, true) == 1, err)
      assert(err:find(row[4], 1, true), ("expected %q in: %s"):format(row[4], err))
    end
    os.remove(garbage)
  end)

  it_streamed("reads numpy's arrays back bit for bit, with their labels", function()
    for _, case in ipairs(cases) do
      local ds = open_case(case)
      assert.are.equal(case.n, #ds)
      assert.are.equal(case.want_classes, ds:classes())
      assert.are.same({case.c, case.h, case.w}, ds:shape())
      local want = read_file(DIR .. "/" .. case.name .. ".f32")
      local labels = read_file(DIR .. "/" .. case.name .. ".i32")
      local per = case.c * case.h * case.w
      for i = 1, case.n do
        assert.are.equal(string.unpack("<i4", labels, 4 * (i - 1) + 1), ds:label(i))
        local got = util.flatten(ds:image(i):totable())
        assert.are.equal(per, #got)
        for k = 1, per do
          local at = 4 * (per * (i - 1) + k - 1) + 1
          if string.pack("<f", got[k]) ~= want:sub(at, at + 3) then
            error(("%s: item %d value %d is %.9g, numpy says %.9g"):format(case.name, i, k,
                  got[k], (string.unpack("<f", want, at))))
          end
        end
      end
      ds:close()
    end
  end)

  it_streamed("gives the first 1000 Fashion-MNIST test images as lop.data.fashion_mnist does",
              function()
    local ds = open_case(by_name.fmnist)
    local ref = lop.data.fashion_mnist{pad = false, normalize = false, train_size = 1,
                                       test_size = 1000}.test
    assert.are.equal(#ref, #ds)
    assert.are.same(ref:shape(), ds:shape())
    for i = 1, #ds do
      assert.are.equal(ref:label(i), ds:label(i))
      assert.are.same(ref:image(i):totable(), ds:image(i):totable())
    end
  end)

  it_streamed("applies normalize = \"imagenet\" as mean and std would", function()
    local case = by_name.u8_nhwc
    local preset = open_case(case, {channels_last = true, normalize = "imagenet"})
    local given = open_case(case, {channels_last = true, mean = {0.485, 0.456, 0.406},
                                   std = {0.229, 0.224, 0.225}})
    for i = 1, #preset do
      assert.are.same(given:image(i):totable(), preset:image(i):totable())
    end
  end)

  it_streamed("refuses per-channel values that do not fit the channels", function()
    local grey = by_name.grey3d
    assert(err_of(open_case, grey, {mean = {0.1, 0.2, 0.3}}):find(
      "grey3d.npy has 1-channel images; option 'mean' has 3 values (give 1)", 1, true))
    assert(err_of(open_case, grey, {normalize = "imagenet"}):find(
      "normalize = \"imagenet\" needs 3-channel images", 1, true))
    assert(err_of(open_case, by_name.u8_c5, {std = {1, 2}}):find(
      "option 'std' has 2 values (give 1 for every channel)", 1, true))
    assert.are.equal(6, #open_case(grey, {mean = 0.5, std = {0.25}}))
  end)
end)
