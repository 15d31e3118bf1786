-- layers_spec.lua - relu6, pad, and the pools' ceil_mode and exclude_pad against
-- PyTorch (Debian's python3-torch, run as onnx_spec runs it): the same inputs through
-- nets built here and through torch.nn.functional, on odd shapes where ceil-mode
-- windows hang off the end (and the last one is dropped when it would start in the
-- padding), and averages count padding or leave it out.  These are the layers the
-- ONNX reader maps torchvision's MobileNetV2, GoogLeNet, SqueezeNet and DenseNet to.
local lop = require "lopper"

local PYTHON = "/usr/bin/python3"
-- Sums taken in another order: averages may differ in the last bits.
local TOL = 1e-6

-- Each case: the per-sample input shape, the node the builder adds after the input,
-- and the same operation in PyTorch on x (N, C, H, W).
local CASES = {
  {"relu6", {2, 5, 7}, "relu6", nil, "F.relu6(x)"},
  {"pad", {2, 5, 7}, "pad", {top = 1, bottom = 2, right = 3}, "F.pad(x, (0, 3, 1, 2))"},
  {"pad, left only", {1, 1, 1}, "pad", {left = 4}, "F.pad(x, (4, 0, 0, 0))"},
  {"max ceil 3/2/1", {2, 8, 7}, "maxpool", {kernel = 3, stride = 2, pad = 1, ceil_mode = true},
   "F.max_pool2d(x, 3, 2, 1, ceil_mode=True)"},
  {"max ceil 2/2", {2, 5, 9}, "maxpool", {kernel = 2, ceil_mode = true},
   "F.max_pool2d(x, 2, 2, 0, ceil_mode=True)"},
  -- W = 5: ceil((5 + 2 - 3) / 3) + 1 = 3, but the third window would start at 5 = W:
  -- PyTorch drops it
  {"max ceil 3/3/1, last window dropped", {1, 9, 5}, "maxpool",
   {kernel = 3, stride = 3, pad = 1, ceil_mode = true},
   "F.max_pool2d(x, 3, 3, 1, ceil_mode=True)"},
  {"max ceil, kernel past the input", {1, 3, 3}, "maxpool", {kernel = 4, ceil_mode = true},
   "F.max_pool2d(x, 4, 4, 0, ceil_mode=True)"},
  {"avg ceil 3/2/1", {2, 8, 7}, "avgpool", {kernel = 3, stride = 2, pad = 1, ceil_mode = true},
   "F.avg_pool2d(x, 3, 2, 1, ceil_mode=True)"},
  {"avg ceil 3/2/1 exclude", {2, 8, 7}, "avgpool",
   {kernel = 3, stride = 2, pad = 1, ceil_mode = true, exclude_pad = true},
   "F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)"},
  {"avg 3/2/1 exclude", {2, 7, 6}, "avgpool", {kernel = 3, stride = 2, pad = 1, exclude_pad = true},
   "F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)"},
  {"avg ceil 2/2", {2, 5, 9}, "avgpool", {kernel = 2, ceil_mode = true},
   "F.avg_pool2d(x, 2, 2, 0, ceil_mode=True)"},
  {"avg ceil 5/3/2", {1, 11, 10}, "avgpool", {kernel = 5, stride = 3, pad = 2, ceil_mode = true},
   "F.avg_pool2d(x, 5, 3, 2, ceil_mode=True)"},
  {"avg ceil 5/3/2 exclude", {1, 11, 10}, "avgpool",
   {kernel = 5, stride = 3, pad = 2, ceil_mode = true, exclude_pad = true},
   "F.avg_pool2d(x, 5, 3, 2, ceil_mode=True, count_include_pad=False)"},
  {"avg ceil 3/3/1, last window dropped", {1, 9, 5}, "avgpool",
   {kernel = 3, stride = 3, pad = 1, ceil_mode = true},
   "F.avg_pool2d(x, 3, 3, 1, ceil_mode=True)"},
  {"avg ceil 3x2 / 2x1 / 1x0 exclude", {2, 6, 5}, "avgpool",
   {kernel = {3, 2}, stride = {2, 1}, pad = {1, 0}, ceil_mode = true, exclude_pad = true},
   "F.avg_pool2d(x, (3, 2), (2, 1), (1, 0), ceil_mode=True, count_include_pad=False)"},
}

local BATCH = 2

-- Inputs in [-4, 8): both sides of relu6's range, distinct enough for max pooling.
local function input_for(shape)
  local c, h, w = shape[1], shape[2], shape[3]
  local x = lop.tensor(BATCH, c, h, w)
  local values = {}
  for b = 1, BATCH do
    for k = 1, c do
      for i = 1, h do
        for j = 1, w do
          local v = ((b * 101 + k * 37 + i * 13 + j * 7) * 29 % 97) / 8 - 4
          x:set(v, b, k, i, j)
          values[#values + 1] = ("%.9g"):format(v)
        end
      end
    end
  end
  return x, table.concat(values, ",")
end

-- One Python run for every case: prints each output's shape, then its values.
local function torch_outputs(inputs)
  local lines = {"import torch", "import torch.nn.functional as F"}
  for i, case in ipairs(CASES) do
    local s = case[2]
    lines[#lines + 1] = ("x = torch.tensor([%s]).reshape(%d, %d, %d, %d)"):format(
      inputs[i], BATCH, s[1], s[2], s[3])
    lines[#lines + 1] = "y = " .. case[5]
    lines[#lines + 1] = "print(' '.join(str(d) for d in y.shape))"
    lines[#lines + 1] = "print(' '.join('%.9g' % v for v in y.flatten().tolist()))"
  end
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  local p = assert(io.popen(PYTHON .. " " .. script .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  os.remove(script)
  assert(ok, "PyTorch could not run the reference (install python3-torch):\n" .. out)
  local results, n = {}, 0
  for line in out:gmatch("[^\n]+") do
    n = n + 1
    local i = (n + 1) // 2
    results[i] = results[i] or {}
    local list = {}
    for v in line:gmatch("%S+") do list[#list + 1] = tonumber(v) end
    if n % 2 == 1 then results[i].shape = list else results[i].values = list end
  end
  return results
end

describe("new layers against PyTorch", function()
  local xs, inputs = {}, {}
  for i, case in ipairs(CASES) do xs[i], inputs[i] = input_for(case[2]) end
  local ref

  setup(function() ref = torch_outputs(inputs) end)

  for i, case in ipairs(CASES) do
    it(case[1], function()
      local net = lop.net{input = case[2]}
      net[case[3]](net, "y", "input", case[4])
      local y = net:forward(xs[i])
      local s, want, k = y:shape(), ref[i].values, 0
      assert.are.same(ref[i].shape, s)
      assert.are.equal(#want, y:numel())
      for b = 1, s[1] do
        for c = 1, s[2] do
          for r = 1, s[3] do
            for q = 1, s[4] do
              k = k + 1
              local got = y:get(b, c, r, q)
              assert.is_true(math.abs(got - want[k]) <= TOL * math.max(1, math.abs(want[k])),
                             ("[%d, %d, %d, %d] = %.9g, PyTorch %.9g"):format(b, c, r, q, got,
                                                                            want[k]))
            end
          end
        end
      end
    end)
  end
end)
