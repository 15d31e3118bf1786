-- onnx_to_torch_spec.lua - tests/bench/onnx_to_torch.py, the reader that gives PyTorch
-- the very network Lopper runs in `make bench`, computes what the file says:
--   - a net Lopper writes (conv + batchnorm with random statistics + relu + maxpool +
--     add + global pooling + linear, and dropout) gives PyTorch's eval output equal
--     to Lopper's forward pass on a fixed input (the command-line form);
--   - a net PyTorch writes (batchnorm kept, as make bench exports ResNet-18) gives the
--     original torch module's output, and so does Lopper reading the same file;
--   - in train mode the module trains: one SGD step moves its weights and batchnorm's
--     running statistics, with momentum as ONNX says;
--   - an operator outside the set is refused naming the node and the operator.
-- Skipped, with a message, when /usr/bin/python3 lacks torch or onnx.
local lop = require "lopper"
local util = dofile("tests/lua/util.lua")
local ort = dofile("tests/ort/ort.lua")   -- for its raw float32 file helpers
local write_f32, read_f32 = ort.write_f32, ort.read_f32

local TOL = 1e-4   -- relative, as util.rel_err measures
local CONVERTER = "tests/bench/onnx_to_torch.py"
local have_torch = util.run(util.PYTHON .. " -c 'import torch, onnx'") == 0

-- A fixed input batch as a flat list and as a tensor.
local function fixed_input(shape)
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  local flat = {}
  for i = 1, n do flat[i] = math.sin(0.37 * i) + 0.1 * math.cos(1.3 * i) end
  local x = lop.tensor(table.unpack(shape))
  local k = 0
  for b = 1, shape[1] do
    for c = 1, shape[2] do
      for h = 1, shape[3] do
        for w = 1, shape[4] do
          k = k + 1
          x:set(flat[k], b, c, h, w)
        end
      end
    end
  end
  return flat, x
end

local function flat_output(y) return util.flatten(y:totable()) end

-- Batchnorm statistics and affine terms away from 0 and 1, so that they matter.
local function randomize_bn(net, name, seed)
  local node = net:node(name)
  for i, p in ipairs{"weight", "bias", "running_mean", "running_var"} do
    local t = node:param(p)
    for c = 1, t:numel() do
      local v = math.sin(seed + 7 * i + 3.1 * c)
      t:set((p == "running_var" or p == "weight") and 0.6 + 0.5 * v * v or 0.4 * v, c)
    end
  end
end

local function lopper_net()
  local net = lop.net{input = {2, 9, 9}, seed = 3}
  local x = net:nodes()[1].name
  local a = net:conv2d("c1", x, {out = 6, kernel = 3, pad = 1})
  a = net:relu("r1", net:batchnorm("bn1", a))
  local p = net:maxpool("pool", a, {kernel = 2})
  local b = net:conv2d("c2", p, {out = 6, kernel = 3, pad = 1, bias = false})
  b = net:batchnorm("bn2", b)
  local s = net:relu("r2", net:add("sum", {b, p}))
  s = net:dropout("drop", net:global_avgpool("gap", s), {p = 0.3})
  net:linear("fc", s, {out = 5})
  randomize_bn(net, "bn1", 1)
  randomize_bn(net, "bn2", 2)
  return net
end

-- The torch side of the second case, run once: writes the exported file, the input and
-- the torch module's own output; converts the file and writes its eval output; trains
-- the converted module one step; tries a Sigmoid.  Prints key=value lines.
local TORCH_CASE = [[
import sys
import torch, torch.nn as nn
sys.path.insert(0, "tests/bench")
import onnx_to_torch
out = sys.argv[1]
torch.manual_seed(5)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 1))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x):
        x = self.stem(x)
        return self.head(torch.relu(x + self.body(x)))

net = Net()
g = torch.Generator().manual_seed(7)
for m in net.modules():
    if isinstance(m, nn.BatchNorm2d):
        m.weight.data = 0.5 + torch.rand(8, generator=g)
        m.bias.data = torch.randn(8, generator=g) * 0.2
        m.running_mean = torch.randn(8, generator=g) * 0.3
        m.running_var = 0.5 + torch.rand(8, generator=g)
net.eval()
x = torch.randn(2, 3, 11, 11, generator=g)
torch.onnx.export(net, x, out + ".onnx", input_names=["input"], output_names=["output"],
                  opset_version=13, training=torch.onnx.TrainingMode.PRESERVE,
                  do_constant_folding=False, dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
x.numpy().astype("<f4").tofile(out + ".in.f32")
with torch.no_grad():
    net(x).numpy().astype("<f4").tofile(out + ".ref.f32")
conv = onnx_to_torch.load(out + ".onnx").eval()
with torch.no_grad():
    conv(x).numpy().astype("<f4").tofile(out + ".conv.f32")

# train mode: one step moves the weights and the running statistics by momentum 0.1
conv.train()
bn = [m for m in conv.modules() if isinstance(m, nn.BatchNorm2d)][0]
w0, mean0 = conv.layers[0].weight.detach().clone(), bn.running_mean.clone()
opt = torch.optim.SGD(conv.parameters(), lr=0.1, momentum=0.9)
stem = conv.layers[0](x)
nn.functional.cross_entropy(conv(x), torch.tensor([1, 3])).backward()
opt.step()
expect = 0.9 * mean0 + 0.1 * stem.detach().mean((0, 2, 3))
print("trainable=%d" % all(p.requires_grad for p in conv.parameters()))
print("params=%d" % sum(p.numel() for p in conv.parameters()))
print("torch_params=%d" % sum(p.numel() for p in net.parameters()))
print("weight_moved=%d" % (not torch.equal(w0, conv.layers[0].weight.detach())))
print("bn_mean_err=%g" % (bn.running_mean - expect).abs().max().item())

class Bad(nn.Module):
    def forward(self, x):
        return torch.sigmoid(x)
torch.onnx.export(Bad(), x, out + ".bad.onnx", input_names=["input"], opset_version=13)
try:
    onnx_to_torch.load(out + ".bad.onnx")
    print("refused=none")
except onnx_to_torch.ConversionError as e:
    print("refused=%s" % e)
]]

describe("onnx_to_torch.py", function()
  if not have_torch then
    it("needs /usr/bin/python3 with torch and onnx", function()
      pending("skipped: /usr/bin/python3 lacks torch or onnx (scripts/tools/install_deps.sh)")
    end)
    return
  end

  it("gives PyTorch the output Lopper computes for a net Lopper wrote", function()
    local net = lopper_net()
    local path = util.tmpfile(".onnx")
    net:save(path)
    local flat, x = fixed_input{3, 2, 9, 9}
    write_f32(path .. ".in", flat)
    local code, out = util.run(("%s %s %s %s.in %s.out"):format(util.PYTHON, CONVERTER, path,
                                                               path, path))
    assert.are.equal(0, code, out)
    local theirs = read_f32(path .. ".out")
    local mine = flat_output(net:forward(x))
    assert.are.equal(15, #theirs)
    assert.is_true(util.rel_err(theirs, mine) <= TOL,
                   ("relative error %g"):format(util.rel_err(theirs, mine)))
    for _, f in ipairs{path, path .. ".in", path .. ".out"} do os.remove(f) end
  end)

  describe("on a net PyTorch wrote", function()
    local base = util.tmpfile("")
    local script = base .. ".py"
    local f = assert(io.open(script, "w"))
    f:write(TORCH_CASE)
    f:close()
    local code, out = util.run(("%s %s %s"):format(util.PYTHON, script, base))
    local said = {}
    for k, v in out:gmatch("([%w_]+)=([^\n]*)") do said[k] = v end
    teardown(function()
      for _, s in ipairs{".py", ".onnx", ".in.f32", ".ref.f32", ".conv.f32", ".bad.onnx"} do
        os.remove(base .. s)
      end
    end)

    it("runs", function() assert.are.equal(0, code, out) end)

    it("gives the torch module's own output, and so does Lopper", function()
      local ref = read_f32(base .. ".ref.f32")
      assert.are.equal(8, #ref)
      local conv = read_f32(base .. ".conv.f32")
      assert.is_true(util.rel_err(conv, ref) <= TOL, ("converted: %g"):format(util.rel_err(conv, ref)))
      local _, x = fixed_input{2, 3, 11, 11}
      local flat = read_f32(base .. ".in.f32")
      local k = 0
      for b = 1, 2 do for c = 1, 3 do for h = 1, 11 do for w = 1, 11 do
        k = k + 1
        x:set(flat[k], b, c, h, w)
      end end end end
      local mine = flat_output(lop.load(base .. ".onnx"):forward(x))
      assert.is_true(util.rel_err(mine, ref) <= TOL, ("Lopper: %g"):format(util.rel_err(mine, ref)))
    end)

    it("trains in train mode: weights move, batchnorm's running mean by momentum 0.1", function()
      assert.are.equal("1", said.trainable)
      assert.are.equal(said.torch_params, said.params)
      assert.are.equal("1", said.weight_moved)
      assert.is_true(tonumber(said.bn_mean_err) < 1e-6, said.bn_mean_err)
    end)

    it("refuses an operator outside its set, naming node and operator", function()
      assert.is_truthy(said.refused)
      assert.is_truthy(said.refused:find("(Sigmoid): operator Sigmoid is not supported", 1, true),
                       said.refused)
    end)
  end)
end)
