-- prune_data_spec.lua - scripts/prune.lua on a user's own files, the way the end-to-end
-- example (scripts/examples/prune_onnx_fashion.sh) runs it, on a small scale:
--   - an ONNX model pruned with --data/--val given as image folders of PNGs and, in a
--     second run, as .npy arrays holding the same pixels in the same order: the two
--     runs must write the same network (the readers agree, and nothing else differs);
--   - the pruned ONNX file classifies the test folder in ONNX Runtime exactly as Lopper
--     does (scripts/tools/ort_accuracy.lua: same accuracy, no prediction apart);
--   - bad data stops the run with one line naming the file: an empty class folder, a
--     .npy without its labels, labels out of the model's range.
local lop = require "lopper"
local util = dofile("tests/lua/util.lua")

local LOPPER = os.getenv("LOPPER") or "build/lopper"
local DIR = (LOPPER:match("^(.*)/[^/]*$") or ".") .. "/prune_data_spec"   -- under build/
local NORM = "--mean 0.2860 --std 0.3530"

local function sh(cmd)
  local code, out = util.run(cmd)
  assert(code == 0, cmd .. " failed:\n" .. out)
  return out
end

-- The folder and .npy copies of Fashion-MNIST items [first, first + count) of a split:
-- DIR/<name>/ (PNGs) and DIR/<name>_x.npy, _y.npy with the items in the folder's order
-- (by class, then by index), uint8 [N, 1, 28, 28] and int64 labels.
local function write_data(name, split, count)
  sh(("%s scripts/tools/write_image_folder.py %s/%s --split %s --count %d")
     :format(util.PYTHON, DIR, name, split, count))
  local prefix = split == "train" and "train" or "t10k"
  local script = DIR .. "/write_npy.py"
  local f = assert(io.open(script, "w"))
  f:write(([[
import gzip, numpy as np
src = "/usr/share/datasets/fashion-mnist/%s"
x = np.frombuffer(gzip.open(src + "-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
y = np.frombuffer(gzip.open(src + "-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
x, y = x.reshape(-1, 1, 28, 28)[:%d], y[:%d]
order = np.argsort(y, kind="stable")
np.save("%s/%s_x.npy", x[order])
np.save("%s/%s_y.npy", y[order].astype(np.int64))
]]):format(prefix, count, count, DIR, name, DIR, name))
  f:close()
  sh(util.PYTHON .. " " .. script)
end

local function prune(model, args, out)
  return util.run(("%s scripts/prune.lua --model %s %s %s --speedup 1.5 --images 200 "
                   .. "--points 5 --reps 2 --out %s"):format(LOPPER, model, NORM, args, out))
end

describe("scripts/prune.lua on image folders and .npy files", function()
  local model = DIR .. "/net.onnx"
  setup(function()
    sh("rm -rf " .. DIR .. " && mkdir -p " .. DIR)
    local net = lop.net{input = {1, 28, 28}, seed = 3}
    local x = net:relu("r1", net:conv2d("c1", "input", {out = 8, kernel = 3, pad = 1}))
    x = net:relu("r2", net:conv2d("c2", x, {out = 12, kernel = 3, pad = 1}))
    x = net:relu("r3", net:conv2d("c3", net:maxpool("p", x, {kernel = 2}), {out = 8, kernel = 3}))
    net:linear("fc", net:flatten("f", net:global_avgpool("g", x)), {out = 10})
    net:save(model)
    write_data("train", "train", 300)
    write_data("test", "test", 200)
  end)
  teardown(function() sh("rm -rf " .. DIR) end)

  it("prunes alike from a folder and from .npy, and ONNX Runtime agrees with Lopper", function()
    local from_folder, from_npy = DIR .. "/folder.onnx", DIR .. "/npy.onnx"
    local code, text = prune(model, ("--data %s/train --val %s/test"):format(DIR, DIR), from_folder)
    assert.are.equal(0, code, text)
    for _, want in ipairs{"prune -> 6, refit c2", "prune -> 9, refit c3", "prune -> 6, refit fc",
                          "top-1", "pruned 3 groups:", "wrote " .. from_folder} do
      assert.truthy(text:find(want, 1, true), want .. " not in:\n" .. text)
    end
    code, text = prune(model, ("--data %s/train_x.npy --labels %s/train_y.npy --val "
                               .. "%s/test_x.npy --val-labels %s/test_y.npy")
                              :format(DIR, DIR, DIR, DIR), from_npy)
    assert.are.equal(0, code, text)
    local a, b = lop.load(from_folder), lop.load(from_npy)
    assert.are.equal(a:flops(), b:flops())
    assert.is_true(a:flops() < lop.load(model):flops() / 1.5)
    for _, node in ipairs{"c1", "c2", "c3", "fc"} do
      assert.are.same(a:node(node):weight():totable(), b:node(node):weight():totable())
    end
    util.check_onnx(from_folder)

    local report = sh(("%s scripts/tools/ort_accuracy.lua %s --data %s/test %s")
                      :format(LOPPER, from_folder, DIR, NORM))
    local mine = report:match("Lopper%s+top%-1 ([%d.]+)%%")
    local theirs = report:match("ONNX Runtime%s+top%-1 ([%d.]+)%%")
    assert.truthy(mine and theirs, report)
    assert.are.equal(mine, theirs)
    assert.truthy(report:find("on 200 test images", 1, true), report)
    assert.truthy(report:find("predictions that differ: 0;", 1, true), report)
  end)

  it("stops with one line naming the bad file", function()
    sh(("mkdir -p %s/train/zz_empty"):format(DIR))
    local code, text = prune(model, ("--data %s/train"):format(DIR), DIR .. "/x.onnx")
    sh(("rmdir %s/train/zz_empty"):format(DIR))
    assert.are_not.equal(0, code)
    assert.truthy(text:find("zz_empty", 1, true), text)
    assert.is_nil(text:find("traceback", 1, true), text)

    code, text = prune(model, ("--data %s/train_x.npy"):format(DIR), DIR .. "/x.onnx")
    assert.are_not.equal(0, code)
    assert.truthy(text:find("--labels", 1, true), text)

    sh(util.PYTHON .. (" -c 'import numpy as np; np.save(\"%s/bad_y.npy\", "
                       .. "np.arange(300, dtype=np.int64) %% 12)'"):format(DIR))
    code, text = prune(model, ("--data %s/train_x.npy --labels %s/bad_y.npy"):format(DIR, DIR),
                       DIR .. "/x.onnx")
    assert.are_not.equal(0, code)
    assert.truthy(text:find("12 classes, but the model has 10 outputs", 1, true), text)
  end)
end)
