-- torchvision_spec.lua - ONNX import, pruning and export proved on real architectures,
-- with PyTorch and ONNX Runtime as the independent references.  tests/onnx/
-- make_torchvision.py builds torchvision 0.14's resnet18, resnet50, mobilenet_v2,
-- densenet121, squeezenet1_1, googlenet, regnet_x_400mf and mnasnet0_5 with seeded
-- random weights and exports each at 64x64 in eval mode (batchnorm folded) and with
-- batchnorm kept.  For every export:
--   - Lopper's output on a fixed input equals PyTorch's within TOL, parameters and
--     FLOPs equal PyTorch's counts, the trainable parameters torchvision's published
--     ones; written back to ONNX, the file passes python3-onnx's checker and reads
--     back to identical outputs;
--   - the channel groups are what the architecture implies (residual stages, dense and
--     inception concatenations, depthwise and grouped convolutions), each prints;
--   - halving every prunable group (random keep lists, the same number in each slice of
--     a grouped convolution) gives a net that runs, whose ONNX export passes
--     python3-onnx's checker, gives Lopper's outputs in ONNX Runtime (within ORT_TOL)
--     and reads back to identical outputs.
-- Also: resnet18 at 224x224 against torchvision's published size and multiply-adds,
-- two architectures outside the supported set refused naming operator and node, and
-- the shipped VGG-16 classifying Fashion-MNIST test images identically in ONNX
-- Runtime (scripts/tools/ort_accuracy.lua does all 10,000).  Nothing is skipped: a
-- missing tool (python3-torch, ONNX Runtime) or a net the reader cannot load yet fails
-- with the reason.
local lop = require "lopper"
local util = dofile("tests/lua/util.lua")
local ort = dofile("tests/ort/ort.lua")
local run, rel_err, names, tmpfile = util.run, util.rel_err, util.names, util.tmpfile

local LOPPER = os.getenv("LOPPER") or "build/lopper"
local DIR = (LOPPER:match("^(.*)/[^/]*$") or ".") .. "/torchvision"   -- under build/
local NETS = {"resnet18", "resnet50", "mobilenet_v2", "densenet121", "squeezenet1_1",
              "googlenet", "regnet_x_400mf", "mnasnet0_5"}
-- max |difference| <= TOL * max(1, max |reference|), as onnx_spec measures (the
-- outputs reach 640 on resnet50: the scale is the output's, not 1).  Measured on these
-- nets: Lopper against PyTorch at most 7.4e-7, ONNX Runtime against Lopper on the
-- pruned exports at most 7.6e-7, on VGG-16's logits 4.6e-7 - float32 sums taken in
-- other orders through up to 120 layers.
local TOL = 1e-5
local ORT_TOL = 1e-5
-- torchvision 0.14's published parameter counts (the weights' "num_params").
local PUBLISHED = {
  resnet18 = 11689512, resnet50 = 25557032, mobilenet_v2 = 3504872, densenet121 = 7978856,
  squeezenet1_1 = 1235496, googlenet = 6624904, regnet_x_400mf = 5495976,
  mnasnet0_5 = 2218512,
}

-- ---- helpers ----------------------------------------------------------------------

local loaded = {}   -- file -> net, shared by one export's cases, dropped by the last

local function load(file)
  if not loaded[file] then loaded[file] = lop.load(DIR .. "/" .. file) end
  return loaded[file]
end

local function drop(file)
  if loaded[file] then loaded[file]:close() end
  loaded[file] = nil
end

-- Trainable parameters: all of them but batchnorm's running statistics.
local function trainable(net)
  local n = net:params()
  for _, node in ipairs(net:nodes()) do
    if node.kind == "batchnorm" then
      n = n - node:param("running_mean"):numel() - node:param("running_var"):numel()
    end
  end
  return n
end

local function channels(net, name) return net:node(name):shape()[1] end

-- The member entries of node `name` in group g.
local function entries(g, name)
  local out = {}
  for _, m in ipairs(g.members) do
    if m.node == name then out[#out + 1] = m end
  end
  return out
end

local function count_role(g, role)
  local n = 0
  for _, m in ipairs(g.members) do
    if m.role == role then n = n + 1 end
  end
  return n
end

local function nodes_of(net, kind)
  local out = {}
  for _, node in ipairs(net:nodes()) do
    if node.kind == kind then out[#out + 1] = node end
  end
  return out
end

-- "plain", "depthwise" (one filter per input channel) or "grouped".
local function conv_kind(net, node)
  local a = node:attrs()
  if a.groups == 1 then return "plain" end
  local cin = channels(net, node:inputs()[1])
  return (a.groups == cin and a.out == cin) and "depthwise" or "grouped"
end

local function group_of(net, name)
  local g, why = net:group_of(name)
  assert(g, ("no group for '%s': %s"):format(name, tostring(why)))
  return g
end

-- The distinct groups of the given nodes' outputs, by index, and how many there are.
local function groups_of(net, nodes)
  local by_index, n = {}, 0
  for _, node in ipairs(nodes) do
    local g = group_of(net, node.name)
    if not by_index[g.index] then n = n + 1 end
    by_index[g.index] = g
  end
  return by_index, n
end

local function sorted_channels(by_index)
  local out = {}
  for _, g in pairs(by_index) do out[#out + 1] = g.channels end
  table.sort(out)
  return out
end

-- ---- what every architecture's groups must satisfy ---------------------------------

-- A group's print: a handful of members' names (of up to 127 characters) and its size.
local PRINT_MAX = 2000

local function check_groups_generic(net, gs)
  assert(#gs > 0, "no channel groups")
  local prunable = 0
  local nodes = net:nodes()
  local last = nodes[#nodes].name
  for _, g in ipairs(gs) do
    -- printed sensibly: its size, its producer (or, short, its chain of members), why
    -- it cannot be pruned; long groups in a summary rather than every member
    local s = tostring(g)
    assert.are.equal("string", type(s))
    local function has(text)
      assert(s:find(text, 1, true), ("'%s' not in the print of group %d: %s"):format(text,
             g.index, s))
    end
    has(("%d channels"):format(g.channels))
    if (g.slices or 1) > 1 then has(("in %d slices"):format(g.slices)) end
    has(g.producer or g.members[1].node)
    if not g.prunable then has("not prunable: " .. tostring(g.why)) end
    assert(#s <= PRINT_MAX, ("group %d prints in %d characters (at most %d): %s"):format(
           g.index, #s, PRINT_MAX, s:sub(1, 300) .. "..."))
    if g.prunable then
      prunable = prunable + 1
    else
      assert(g.why and #g.why > 0, "an unprunable group without a reason: " .. s)
    end
  end
  assert(prunable > 0, "no prunable group")
  local out = group_of(net, last)   -- the logits
  assert(not out.prunable and out.why:find("output", 1, true),
         "the group of the network's output must not be prunable: " .. tostring(out))
  -- every convolution and linear layer is in its output's group: depthwise ones carry
  -- it through, the others produce it
  for _, node in ipairs(nodes) do
    if node.kind == "conv2d" or node.kind == "linear" then
      local g = group_of(net, node.name)
      local role = node.kind == "conv2d" and conv_kind(net, node) == "depthwise" and "pass"
                   or "producer"
      local e = entries(g, node.name)
      assert(#e == 1 and e[1].role == role, ("'%s' should be a %s of %s"):format(
             node.name, role, tostring(g)))
    end
  end
end

-- The groups that meet at each add: both inputs are members; `stages` such groups
-- of the given widths, prunable as a whole, each with `producers[k]` producers (its
-- blocks' last convolutions and the stem or projection shortcut).
local function check_residual_stages(net, widths, producers)
  local adds = nodes_of(net, "add")
  assert(#adds > 0, "no add nodes")
  for _, add in ipairs(adds) do
    local g = group_of(net, add.name)
    for _, input in ipairs(add:inputs()) do
      assert(#entries(g, input) == 1, ("'%s' (an input of '%s') is not in %s"):format(
             input, add.name, tostring(g)))
    end
  end
  local stages = groups_of(net, adds)
  assert.are.same(widths, sorted_channels(stages))
  local got = {}
  for _, g in pairs(stages) do
    assert(g.prunable, "a residual stage should be prunable as a whole: " .. tostring(g))
    got[#got + 1] = count_role(g, "producer")
  end
  table.sort(got)
  local want = {table.unpack(producers)}
  table.sort(want)
  assert.are.same(want, got)
end

-- Concatenations lay their inputs' groups side by side: each input's group is its own,
-- prunable, and what reads the concat (a consumer, or a batchnorm split across the
-- groups) sits in input j's group at the offset of input j.
local function check_concats(net, count, inputs_each)
  local concats = {}
  for _, node in ipairs(nodes_of(net, "concat")) do
    if #node:inputs() > 1 then concats[#concats + 1] = node end
  end
  assert.are.equal(count, #concats)
  for _, cat in ipairs(concats) do
    local ins = cat:inputs()
    if inputs_each then assert.are.equal(inputs_each, #ins) end
    local offset, seen = 0, {}
    for j, input in ipairs(ins) do
      local g = group_of(net, input)
      assert(not seen[g.index], ("inputs of '%s' share %s"):format(cat.name, tostring(g)))
      seen[g.index] = true
      assert(g.prunable, ("input %d of '%s': %s"):format(j, cat.name, tostring(g)))
      local found = false
      for _, m in ipairs(g.members) do
        if m.role ~= "producer" and m.offset == offset then found = true end
      end
      assert(found, ("nothing reads input %d of '%s' at offset %d in %s"):format(
             j, cat.name, offset, tostring(g)))
      offset = offset + channels(net, input)
    end
    assert.are.equal(channels(net, cat.name), offset)
  end
  return concats
end

-- A batchnorm that reads a concatenation is split across the concat's groups: a pass
-- member of each, at offsets that tile its channels.
local function check_split_batchnorms(net, gs, count)
  local split = 0
  for _, bn in ipairs(nodes_of(net, "batchnorm")) do
    local input = net:node(bn:inputs()[1])
    if input.kind == "concat" and #input:inputs() > 1 then
      split = split + 1
      local pieces = {}
      for _, g in ipairs(gs) do
        for _, m in ipairs(entries(g, bn.name)) do
          assert.are.equal("pass", m.role)
          pieces[#pieces + 1] = {m.offset, g.channels}
        end
      end
      table.sort(pieces, function(a, b) return a[1] < b[1] end)
      assert.are.equal(#input:inputs(), #pieces)
      local at = 0
      for _, p in ipairs(pieces) do
        assert.are.equal(at, p[1])
        at = at + p[2]
      end
      assert.are.equal(channels(net, bn.name), at)
    end
  end
  assert.are.equal(count, split)
end

-- Depthwise convolutions pass their group through: it holds the producer before them
-- and the consumer after them.
local function check_depthwise(net, count)
  local n = 0
  for _, conv in ipairs(nodes_of(net, "conv2d")) do
    if conv_kind(net, conv) == "depthwise" then
      n = n + 1
      local g = group_of(net, conv.name)
      assert.are.equal("pass", entries(g, conv.name)[1].role)
      assert.are.equal(channels(net, conv.name), g.channels)
      assert(count_role(g, "producer") >= 1 and count_role(g, "consumer") >= 1,
             "a depthwise conv's group needs a producer and a consumer: " .. tostring(g))
      assert(g.prunable, tostring(g))
    end
  end
  assert.are.equal(count, n)
end

-- Grouped (not depthwise) convolutions: the groups on both sides are split into as
-- many slices as the conv has groups, and stay prunable (a keep list keeps the same
-- number of channels in each slice).
local function check_grouped(net, count)
  local n = 0
  for _, conv in ipairs(nodes_of(net, "conv2d")) do
    if conv_kind(net, conv) == "grouped" then
      n = n + 1
      local k = conv:attrs().groups
      for _, side in ipairs{conv:inputs()[1], conv.name} do
        local g = group_of(net, side)
        assert(g.prunable and g.slices == k, ("'%s' has %d groups: %s should be prunable "
               .. "in %d slices, is %s with slices = %s"):format(conv.name, k, side, k,
               g.prunable and "prunable" or "not prunable", tostring(g.slices)))
      end
    end
  end
  assert.are.equal(count, n)
end

local EXPECT = {
  resnet18 = function(net)
    check_residual_stages(net, {64, 128, 256, 512}, {3, 3, 3, 3})
  end,
  resnet50 = function(net)
    check_residual_stages(net, {256, 512, 1024, 2048}, {4, 5, 7, 4})
  end,
  mobilenet_v2 = function(net)
    check_depthwise(net, 17)
    check_residual_stages(net, {24, 32, 64, 96, 160}, {2, 3, 3, 4, 3})
  end,
  densenet121 = function(net, gs)
    check_concats(net, 58)
    check_split_batchnorms(net, gs, 58)
  end,
  squeezenet1_1 = function(net)
    check_concats(net, 8, 2)
  end,
  googlenet = function(net)
    check_concats(net, 9, 4)
  end,
  regnet_x_400mf = function(net)
    check_residual_stages(net, {32, 64, 160, 400}, {2, 3, 8, 13})
    check_grouped(net, 22)
  end,
  mnasnet0_5 = function(net)
    check_depthwise(net, 17)
    check_residual_stages(net, {16, 24, 40, 48, 96}, {3, 3, 3, 2, 4})
  end,
}

-- ---- pruning ----------------------------------------------------------------------

-- Keep half of each slice's channels (at least one), chosen at random; 1-based.
local function half_keep(g)
  local slices = g.slices or 1
  local per = g.channels // slices
  local keep = {}
  for s = 0, slices - 1 do
    local pool = {}
    for c = 1, per do pool[c] = s * per + c end
    for i = per, 2, -1 do   -- Fisher-Yates
      local j = math.random(i)
      pool[i], pool[j] = pool[j], pool[i]
    end
    local take = {}
    for i = 1, math.max(1, per // 2) do take[i] = pool[i] end
    table.sort(take)
    for _, c in ipairs(take) do keep[#keep + 1] = c end
  end
  return keep
end

-- ---- the cases --------------------------------------------------------------------

describe("torchvision architectures", function()
  setup(function()
    local code, out = run(("%s tests/onnx/make_torchvision.py %s"):format(util.PYTHON, DIR))
    assert(code == 0, "cannot build the torchvision fixtures with PyTorch; install "
           .. "python3-torch python3-torchvision python3-onnx (scripts/tools/install_deps.sh "
           .. "does):\n" .. out)
  end)

  teardown(function()
    for file in pairs(loaded) do drop(file) end
  end)

  for _, name in ipairs(NETS) do
    for _, variant in ipairs{"", "_bn"} do
      local file = name .. variant .. ".onnx"
      local folded = variant == ""

      it(file .. ": PyTorch's outputs, parameters and FLOPs; written back, checked, the same",
         function()
        local ref = dofile(DIR .. "/" .. name .. ".ref.lua")
        local net = load(file)
        local x = lop.tensor(ref.input)
        local y = net:forward(x):totable()
        local err = rel_err(y, ref.output)
        assert(err <= TOL, ("%s: relative error %.3g > %g"):format(file, err, TOL))
        assert.are.equal(folded and ref.params_folded or ref.params, net:params())
        assert.are.equal(folded and ref.flops_folded or ref.flops, net:flops())
        if not folded then
          assert.are.equal(ref.trainable, trainable(net))
          assert.are.equal(PUBLISHED[name], trainable(net))
        end
        local out = tmpfile(".onnx")
        net:save(out)
        util.check_onnx(out)
        local back = lop.load(out)
        os.remove(out)
        assert.are.same(names(net), names(back))
        assert.are.same(y, back:forward(x):totable())
        assert.are.equal(net:params(), back:params())
        assert.are.equal(net:flops(), back:flops())
        back:close()
      end)

      it(file .. ": channel groups as the architecture implies, each printable", function()
        local net = load(file)
        local gs = net:groups()
        check_groups_generic(net, gs)
        EXPECT[name](net, gs)
      end)

      it(file .. ": every prunable group halved runs, exports, and ONNX Runtime and a "
         .. "re-import give Lopper's outputs", function()
        local ref = dofile(DIR .. "/" .. name .. ".ref.lua")
        local net = load(file)
        loaded[file] = nil   -- pruned below: no later case may reuse it
        local params, flops = net:params(), net:flops()
        math.randomseed(16)
        local want = {}
        for _, g in ipairs(net:groups()) do
          if g.prunable then
            local keep = half_keep(g)
            assert(g.producer, "a prunable group without a producer: " .. tostring(g))
            net:prune(g.producer, keep)
            want[g.producer] = #keep
          end
        end
        for producer, n in pairs(want) do
          assert.are.equal(n, group_of(net, producer).channels)
        end
        assert(net:params() < params and net:flops() < flops)
        local x = lop.tensor(ref.input)
        local y = net:forward(x):totable()
        assert.are.same({ref.batch, 1000}, {#y, #y[1]})
        for _, v in ipairs(util.flatten(y)) do assert(v == v and math.abs(v) < math.huge) end

        local out, fold = tmpfile(".onnx"), tmpfile(".onnx")
        local files = {out}
        net:save(out)
        if not folded then   -- and as deployed: batchnorm folded into the convolutions
          net:save(fold, {fold_batchnorm = true})
          files[2] = fold
        end
        util.check_onnx(table.unpack(files))
        local jobs, results = {}, {}
        for k, f in ipairs(files) do
          results[k] = tmpfile(".f32")
          jobs[k] = {model = f, input = DIR .. "/" .. name .. ".input.f32",
                     shape = {ref.batch, 3, ref.size, ref.size}, output = results[k]}
        end
        ort.run(jobs)
        for k, f in ipairs(files) do
          local err = rel_err(ort.read_f32(results[k]), y)
          os.remove(results[k])
          assert(err <= ORT_TOL, ("%s pruned%s: ONNX Runtime's relative error %.3g > %g")
                 :format(file, k == 2 and ", batchnorm folded" or "", err, ORT_TOL))
        end
        local back = lop.load(out)
        assert.are.same(names(net), names(back))
        assert.are.same(y, back:forward(x):totable())
        assert.are.equal(net:params(), back:params())
        assert.are.equal(net:flops(), back:flops())
        back:close()
        net:close()
        for _, f in ipairs(files) do os.remove(f) end
      end)
    end
  end

  it("resnet18 at 224x224: torchvision's 11,689,512 parameters, 1.81 G multiply-adds",
     function()
    local ref = dofile(DIR .. "/resnet18_224.ref.lua")
    -- PyTorch's count of the convolutions' and the linear layer's multiply-adds;
    -- torchvision publishes 1.81 GFLOPS (multiply-adds) and 11,689,512 parameters
    assert.are.equal(1814073344, ref.macs)
    assert.are.equal(11689512, ref.trainable)
    local net = lop.load(DIR .. "/resnet18_224.onnx")
    -- the eval export: batchnorm folded into biased convolutions
    assert.are.equal(ref.params_folded, net:params())
    -- (its 20 batchnorms' 2 x 4,800 affine values became 4,800 convolution biases)
    assert.are.equal(11689512 - 4800, net:params())
    -- the engine's FLOPs: 2 per multiply-add of conv2d and linear, plus one per ReLU
    -- output and add output, 9 per max-pool output, one per pooled input
    local conv, other = 0, 0
    for _, node in ipairs(net:nodes()) do
      if node.kind == "conv2d" or node.kind == "linear" then
        conv = conv + node:flops()
      else
        other = other + node:flops()
      end
    end
    assert.are.equal(2 * ref.macs, conv)
    assert.are.equal(ref.flops_folded, conv + other)
    assert.are.equal(ref.flops_folded, net:flops())
    net:close()
  end)

  describe("refuses, naming the operator and the node", function()
    local REFUSE = {
      efficientnet_b0 = {Sigmoid = true, Mul = true},          -- SiLU, squeeze-excitation
      shufflenet_v2_x0_5 = {Reshape = true, Transpose = true}, -- the channel shuffle
    }
    for name, ops in pairs(REFUSE) do
      it(name, function()
        local nodes = dofile(DIR .. "/REFUSED.lua")[name]
        local ok, err = pcall(lop.load, DIR .. "/" .. name .. ".onnx")
        assert.is_false(ok)
        err = tostring(err)
        local node, op = err:match("node '([^']+)' %((%w+)%)")
        assert(node, "no node named in: " .. err)
        assert(ops[op], ("%s: refused for %s, expected one of its unsupported operators: %s")
               :format(name, op, err))
        local found = false
        for _, n in ipairs(nodes) do
          if n[1] == node and n[2] == op then found = true end
        end
        assert(found, ("%s: the message names '%s' (%s), which is not a node of the file")
               :format(name, node, op))
        assert(err:find(name .. ".onnx", 1, true), err)
      end)
    end
  end)
end)

describe("VGG-16 through ONNX Runtime", function()
  it("classifies 1,000 Fashion-MNIST test images exactly as Lopper", function()
    local data = lop.data.fashion_mnist{train_size = 1, test_size = 1000}
    local net = lop.load("models/vgg16.lop")
    local file = tmpfile(".onnx")
    net:save(file)
    util.check_onnx(file)
    local r = ort.classify(net, file, data.test, {threads = 2})
    os.remove(file)
    assert.are.equal(1000, #r.ort)
    local differ = 0
    for i = 1, #r.ort do
      if r.ort[i] ~= r.lopper[i] then differ = differ + 1 end
    end
    assert.are.equal(0, differ)
    assert(r.max_err <= ORT_TOL, ("logits: relative error %.3g > %g"):format(r.max_err, ORT_TOL))
  end)
end)
