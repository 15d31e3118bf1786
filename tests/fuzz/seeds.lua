-- seeds.lua ONNX_DIR LOP_DIR - the seed corpus of the fuzz harnesses (tests/fuzz/,
-- docs/tests.md), generated at build time so nothing binary is committed: a few tiny
-- networks covering every layer kind Lopper writes (conv with bias or not, strided,
-- padded, grouped and depthwise; batchnorm; relu; max and average pooling; global
-- pooling; flatten; linear; add; concat; dropout; a channel pick; a vector input),
-- each saved as ONNX (batchnorm kept, and folded) and as .lop.  Small on purpose:
-- the fuzzer mutates structure, not megabytes of weights.
local lop = require "lopper"

local onnx_dir, lop_dir = arg[1], arg[2]
assert(onnx_dir and lop_dir, "usage: lopper tests/fuzz/seeds.lua ONNX_DIR LOP_DIR")

local nets = {}

nets.plain = function()
  local net = lop.net{input = {3, 8, 8}, seed = 1}
  net:conv2d("conv1", "input", {out = 4, kernel = 3, pad = 1})
  net:batchnorm("bn1", "conv1")
  net:relu("relu1", "bn1")
  net:maxpool("pool1", "relu1", {kernel = 2})
  net:conv2d("conv2", "pool1", {out = 4, kernel = 3, stride = 2, pad = 1, bias = false})
  net:avgpool("pool2", "conv2", {kernel = 2, stride = 1, pad = 1})
  net:flatten("flat", "pool2")
  net:linear("fc", "flat", {out = 3})
  return net
end

nets.residual = function()
  local net = lop.net{input = {2, 6, 6}, seed = 2}
  net:conv2d("stem", "input", {out = 4, kernel = 3, pad = 1})
  net:relu("stem_relu", "stem")
  net:conv2d("a", "stem_relu", {out = 4, kernel = 3, pad = 1, bias = false})
  net:batchnorm("a_bn", "a")
  net:add("sum", {"a_bn", "stem_relu"})
  net:relu("sum_relu", "sum")
  net:global_avgpool("gap", "sum_relu")
  net:linear("fc", "gap", {out = 2})
  return net
end

nets.branches = function()
  local net = lop.net{input = {4, 5, 5}, seed = 3}
  net:conv2d("left", "input", {out = 2, kernel = 1})
  net:conv2d("right", "input", {out = 4, kernel = 3, pad = 1, groups = 2})
  net:conv2d("dw", "right", {out = 4, kernel = 3, pad = 1, groups = 4})
  net:concat("cat", {"left", "dw"})
  net:batchnorm("cat_bn", "cat")
  net:conv2d("mix", "cat_bn", {out = 3, kernel = 1})
  net:insert_pick("mix")
  net:maxpool("pool", "mix", {kernel = 3, stride = 2, pad = 1})
  net:global_avgpool("gap", "pool")
  net:dropout("drop", "gap", {p = 0.25})
  net:linear("fc", "drop", {out = 2, bias = false})
  return net
end

nets.vector = function()
  local net = lop.net{input = {6}, seed = 4}
  net:linear("fc1", "input", {out = 5})
  net:batchnorm("bn", "fc1")
  net:relu("relu", "bn")
  net:dropout("drop", "relu", {p = 0.5})
  net:linear("fc2", "drop", {out = 3})
  return net
end

local names = {}
for name in pairs(nets) do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do
  local net = nets[name]()
  net:save(onnx_dir .. "/" .. name .. ".onnx")
  if name == "plain" or name == "residual" then   -- where a batchnorm follows a conv
    net:save(onnx_dir .. "/" .. name .. "_folded.onnx", {fold_batchnorm = true})
  end
  net:save(lop_dir .. "/" .. name .. ".lop")
end
