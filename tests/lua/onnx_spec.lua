-- onnx_spec.lua - ONNX in and out against independent references: small PyTorch
-- networks (tests/onnx/make_fixtures.py, run here with Debian's python3-torch) are
-- imported and must give PyTorch's outputs on a fixed input and PyTorch's parameter
-- and FLOP counts; what Lopper writes must pass python3-onnx's checker and read back
-- to the same outputs; files outside the supported set, truncated or garbage, are one
-- clear error each, never a crash.  Nothing is skipped: without python3-torch the
-- fixtures cannot be built and every case fails saying what to install.
local lop = require "lopper"

local util = dofile("tests/lua/util.lua")
local run, rel_err, names, tmpfile = util.run, util.rel_err, util.names, util.tmpfile
local check = util.check_onnx

local LOPPER = os.getenv("LOPPER") or "build/lopper"
local PYTHON = util.PYTHON
local DIR = (LOPPER:match("^(.*)/[^/]*$") or ".") .. "/onnx"   -- under build/
local NETS = {"plain", "reshaped", "residual", "concat", "grouped", "mobile", "padded"}
-- Lopper against PyTorch: max |difference| <= TOL * max(1, max |PyTorch output|).
-- Measured on these nets: at most 3.6e-7 (float32 sums taken in another order).
local TOL = 1e-5

local function load_error(path)
  local ok, err = pcall(lop.load, path)
  assert.is_false(ok)
  return tostring(err)
end

describe("ONNX", function()
  setup(function()
    local code, out = run(("%s tests/onnx/make_fixtures.py %s"):format(PYTHON, DIR))
    assert(code == 0, "cannot build the ONNX fixtures with PyTorch; install python3-torch "
           .. "python3-torchvision python3-onnx (scripts/tools/install_deps.sh does):\n" .. out)
  end)

  for _, name in ipairs(NETS) do
    for _, variant in ipairs{"", "_bn"} do
      local file = name .. variant .. ".onnx"
      local folded = variant == ""   -- PyTorch's eval export folds batchnorm

      it("imports " .. file .. " with PyTorch's outputs, parameters and FLOPs", function()
        local ref = dofile(DIR .. "/" .. name .. ".ref.lua")
        local net = lop.load(DIR .. "/" .. file)
        local err = rel_err(net:forward(lop.tensor(ref.input)):totable(), ref.output)
        assert(err <= TOL, ("%s: relative error %.3g > %g"):format(file, err, TOL))
        assert.are.equal(folded and ref.params_folded or ref.params, net:params())
        assert.are.equal(folded and ref.flops_folded or ref.flops, net:flops())
      end)

      it("writes " .. file .. " back: the checker accepts it, it reads back the same",
         function()
        local ref = dofile(DIR .. "/" .. name .. ".ref.lua")
        local net = lop.load(DIR .. "/" .. file)
        local x = lop.tensor(ref.input)
        local y = net:forward(x):totable()
        local out, fold = tmpfile(".onnx"), tmpfile(".onnx")
        net:save(out)
        net:save(fold, {fold_batchnorm = true})
        check(out, fold)
        local back = lop.load(out)
        assert.are.same(names(net), names(back))
        assert.are.same(y, back:forward(x):totable())
        assert.are.equal(net:params(), back:params())
        assert.are.equal(net:flops(), back:flops())
        -- folding as PyTorch's eval export folds: the same counts, the same outputs
        local f = lop.load(fold)
        assert.are.equal(ref.params_folded, f:params())
        assert.are.equal(ref.flops_folded, f:flops())
        local err = rel_err(f:forward(x):totable(), ref.output)
        assert(err <= TOL, ("%s folded: relative error %.3g > %g"):format(file, err, TOL))
        os.remove(out)
        os.remove(fold)
      end)
    end
  end

  it("reads initializers listed as inputs (opset 11) and weights as float_data", function()
    local ref = dofile(DIR .. "/plain.ref.lua")
    for _, file in ipairs{"plain_old.onnx", "plain_float_data.onnx"} do
      local net = lop.load(DIR .. "/" .. file)
      local err = rel_err(net:forward(lop.tensor(ref.input)):totable(), ref.output)
      assert(err <= TOL, ("%s: relative error %.3g > %g"):format(file, err, TOL))
      assert.are.equal(ref.params_folded, net:params())
    end
  end)

  it("reads a Conv's asymmetric pads attribute as a pad layer in front of it", function()
    local ref = dofile(DIR .. "/padded.ref.lua")
    local net = lop.load(DIR .. "/conv_pads.onnx")
    local err = rel_err(net:forward(lop.tensor(ref.input)):totable(), ref.output)
    assert(err <= TOL, ("conv_pads.onnx: relative error %.3g > %g"):format(err, TOL))
    local kinds = {}
    for _, n in ipairs(net:nodes()) do kinds[#kinds + 1] = n.kind end
    assert.are.same({"input", "conv2d", "pad", "conv2d", "pad", "relu", "pad"}, kinds)
  end)

  it("writes what Lopper alone builds: dropout, a channel pick, global pooling", function()
    local net = lop.net{input = {3, 8, 8}, seed = 3}
    net:conv2d("conv1", "input", {out = 6, kernel = 3, pad = 1})
    net:batchnorm("bn1", "conv1")
    net:relu("relu1", "bn1")
    net:conv2d("conv2", "relu1", {out = 4, kernel = 1})
    net:insert_pick("conv2")
    net:global_avgpool("gap", "conv2")
    net:dropout("drop", "gap", {p = 0.25})
    net:linear("fc", "drop", {out = 3})
    local x = lop.tensor(2, 3, 8, 8)
    for i = 1, 2 do for c = 1, 3 do for h = 1, 8 do for w = 1, 8 do
      x:set(math.sin(i * 7 + c * 3 + h + w * 0.5), i, c, h, w)
    end end end end
    local out = tmpfile(".onnx")
    net:save(out)
    check(out)
    local back = lop.load(out)
    assert.are.same(names(net), names(back))
    assert.are.equal("pick", back:node("conv2_pick").kind)
    assert.are.equal("dropout", back:node("drop").kind)
    assert.are.same(net:forward(x):totable(), back:forward(x):totable())
    os.remove(out)
  end)

  -- Found by fuzz_onnx (2026-12-05): a pad layer read by an average pool and by
  -- another pad came back with a second pad layer for the pool (the two paddings
  -- summed in front of it), because the reader folded the shared Pad into whichever
  -- reader came first.
  it("writes a pad layer read by a pool and another pad back as the same graph", function()
    local net = lop.net{input = {2, 6, 6}, seed = 4}
    net:conv2d("conv1", "input", {out = 3, kernel = 3, pad = 1})
    net:pad("pad1", "input", {top = 1, bottom = 1, left = 1, right = 1})
    net:avgpool("avg", "pad1", {kernel = 3, stride = 1, pad = 1})
    net:pad("pad2", "pad1", {top = 1, bottom = 1, left = 1, right = 1})
    local x = lop.tensor(1, 2, 6, 6)
    for c = 1, 2 do for h = 1, 6 do for w = 1, 6 do
      x:set(math.cos(c * 5 + h * 1.3 + w), 1, c, h, w)
    end end end
    local out = tmpfile(".onnx")
    net:save(out)
    check(out)
    local back = lop.load(out)
    assert.are.same(names(net), names(back))
    assert.are.same(net:forward(x):totable(), back:forward(x):totable())
    os.remove(out)
  end)

  it("converts both ways from the command line", function()
    local lopfile, onnxfile = tmpfile(".lop"), tmpfile(".onnx")
    local code, out = run(("%s --convert %s/plain.onnx %s"):format(LOPPER, DIR, lopfile))
    assert(code == 0, out)
    code, out = run(("%s --convert %s %s"):format(LOPPER, lopfile, onnxfile))
    assert(code == 0, out)
    local ref = dofile(DIR .. "/plain.ref.lua")
    local x = lop.tensor(ref.input)
    local a, b = lop.load(lopfile), lop.load(onnxfile)
    assert.are.same(a:forward(x):totable(), b:forward(x):totable())
    code, out = run(("%s --convert %s"):format(LOPPER, lopfile))
    assert.are_not.equal(0, code)
    assert.matches("needs an input and an output", out)
    code, out = run(("%s --convert %s/sigmoid.onnx %s"):format(LOPPER, DIR, lopfile .. "2"))
    assert.are_not.equal(0, code)
    assert.matches("Sigmoid", out)
    os.remove(lopfile)
    os.remove(onnxfile)
  end)

  describe("refuses, with one clear message", function()
    local cases = {
      -- file, what the message must contain (plain text)
      {"sigmoid.onnx", {"the_sigmoid", "operator Sigmoid is not supported", "supported: Conv"}},
      {"int_weight.onnx", {"the_conv", "INT64", "only FLOAT"}},
      {"dilated.onnx", {"the_conv", "dilations 2x2"}},
      {"clip_other.onnx", {"the_clip", "Clip to [-inf, inf] is not supported"}},
      {"truncated.onnx", {"truncated or corrupt"}},
      {"garbage.onnx", {"neither a Lopper model", "ONNX"}},
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local err = load_error(DIR .. "/" .. case[1])
        for _, want in ipairs(case[2]) do
          assert(err:find(want, 1, true), ("'%s' not in: %s"):format(want, err))
        end
      end)
    end

    it("a missing file, an unwritable target, a misused option", function()
      assert.matches("cannot open", load_error(DIR .. "/no_such.onnx"))
      local net = lop.load(DIR .. "/plain.onnx")
      local ok, err = pcall(net.save, net, DIR .. "/no_such_dir/x.onnx")
      assert.is_false(ok)
      assert.matches("cannot save", err)
      ok, err = pcall(net.save, net, tmpfile(".lop"), {fold_batchnorm = true})
      assert.is_false(ok)
      assert.matches("fold_batchnorm applies to .onnx files only", err)
      ok, err = pcall(net.save, net, tmpfile(".onnx"), {fold = true})
      assert.is_false(ok)
      assert.matches("unknown option 'fold'", err)
    end)
  end)
end)
