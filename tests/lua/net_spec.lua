-- net_spec.lua - networks from Lua: every builder with shapes, parameter and FLOP
-- counts worked out by hand, a forward pass of hand-set weights against hand-computed
-- outputs, model files, clones, node handles, the printed table, a battery of misuse
-- that must raise (never crash), and memory that stays bounded while nets come and go.
local lop = require "lopper"

-- Temporary file name (os.tmpname creates the file; the caller removes it).
local function tmpfile(suffix)
  local base = os.tmpname()
  os.remove(base)
  return base .. (suffix or "")
end

-- Every builder once: input 3x8x8.  Expected per-node values, worked out by hand
-- (FLOPs: multiply-add = 2; conv 2*cout*(cin/groups)*kh*kw*Ho*Wo, linear 2*in*out,
-- batchnorm 2 per value, relu and add (inputs-1) per value, pools kernel area per
-- output value, global average pooling 1 per input value; concat, flatten and
-- dropout free; batchnorm holds 4 values per channel).
local function every_builder()
  local net = lop.net{input = {3, 8, 8}, seed = 7}
  assert.are.equal("conv1", net:conv2d("conv1", "input", {out = 4, kernel = 3, pad = 1}))
  net:batchnorm("bn1", "conv1")
  net:relu("relu1", "bn1")
  net:maxpool("pool1", "relu1", {kernel = 2})
  net:conv2d("conv2", "pool1", {out = 4, kernel = 1, bias = false})
  net:add("sum", {"pool1", net:node("conv2")})
  net:concat("cat", {"sum", "pool1"})
  net:avgpool("ap", "cat", {kernel = 2})
  net:global_avgpool("gap", "ap")
  net:flatten("fl", "ap")
  net:dropout("drop", "fl", {p = 0.25})
  net:linear("fc", "drop", {out = 10})
  return net
end

local EXPECTED = {
  -- name, kind, inputs, shape, params, flops
  {"input", "input", {}, {3, 8, 8}, 0, 0},
  {"conv1", "conv2d", {"input"}, {4, 8, 8}, 4 * 3 * 9 + 4, 2 * 4 * 3 * 9 * 64},
  {"bn1", "batchnorm", {"conv1"}, {4, 8, 8}, 4 * 4, 2 * 256},
  {"relu1", "relu", {"bn1"}, {4, 8, 8}, 0, 256},
  {"pool1", "maxpool", {"relu1"}, {4, 4, 4}, 0, 4 * 64},
  {"conv2", "conv2d", {"pool1"}, {4, 4, 4}, 16, 2 * 4 * 4 * 16},
  {"sum", "add", {"pool1", "conv2"}, {4, 4, 4}, 0, 64},
  {"cat", "concat", {"sum", "pool1"}, {8, 4, 4}, 0, 0},
  {"ap", "avgpool", {"cat"}, {8, 2, 2}, 0, 4 * 32},
  {"gap", "global_avgpool", {"ap"}, {8}, 0, 32},
  {"fl", "flatten", {"ap"}, {32}, 0, 0},
  {"drop", "dropout", {"fl"}, {32}, 0, 0},
  {"fc", "linear", {"drop"}, {10}, 32 * 10 + 10, 2 * 32 * 10},
}

-- input 1x3x3 -> conv 2x2 (+bias) -> relu -> flatten -> linear 2, weights set by hand.
local function tiny_net()
  local net = lop.net{input = {1, 3, 3}}
  net:conv2d("c", "input", {out = 1, kernel = 2})
  net:relu("r", "c")
  net:flatten("f", "r")
  net:linear("l", "f", {out = 2})
  net:node("c"):weight():copy(lop.tensor{{{{1, 2}, {3, 4}}}})
  net:node("c"):bias():fill(-50)
  net:node("l"):weight():copy(lop.tensor{{1, 1, 1, 1}, {1, -1, 2, -2}})
  net:node("l"):bias():copy(lop.tensor{0.5, -1})
  return net
end

-- Batch of two: the 1..9 ramp and zeros.
local function tiny_input()
  return lop.tensor{{{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}}, {{{0, 0, 0}, {0, 0, 0}, {0, 0, 0}}}}
end

local function near(a, b, tol)
  return math.abs(a - b) <= (tol or 1e-5) * math.max(1, math.abs(b))
end

describe("lop.net builders", function()
  it("give every node the hand-computed shape, inputs, params and FLOPs", function()
    local net = every_builder()
    assert.are.equal(#EXPECTED, net:size())
    local nodes = net:nodes()
    local params, flops = 0, 0
    for i, e in ipairs(EXPECTED) do
      local h = nodes[i]
      assert.are.equal(e[1], h.name)
      assert.are.equal(e[2], h.kind)
      assert.are.equal(i, h.id)
      assert.are.same(e[3], h:inputs())
      assert.are.same(e[4], h:shape())
      assert.are.equal(e[5], h:params(), e[1])
      assert.are.equal(e[6], h:flops(), e[1])
      params, flops = params + e[5], flops + e[6]
    end
    assert.are.equal(params, net:params())
    assert.are.equal(flops, net:flops())
    assert.are.same({3, 8, 8}, net:input_shape())
    assert.are.same({10}, net:output_shape())
  end)

  it("reads kernel, stride and padding as one size or {h, w}, and groups", function()
    local net = lop.net{input = {3, 8, 8}}
    net:conv2d("c", "input", {out = 6, kernel = {3, 1}, stride = {2, 1}, pad = {1, 0}, groups = 3})
    local c = net:node("c")
    -- Ho = (8 + 2 - 3) // 2 + 1 = 4, Wo = 8; weight 6 x (3/3) x 3 x 1 plus 6 biases
    assert.are.same({6, 4, 8}, c:shape())
    assert.are.same({6, 1, 3, 1}, c:weight():shape())
    assert.are.equal(6 * 3 + 6, c:params())
    assert.are.equal(2 * 6 * 1 * 3 * 1 * 4 * 8, c:flops())
    assert.are.same({out = 6, kernel = {3, 1}, stride = {2, 1}, pad = {1, 0}, groups = 3,
                     bias = true}, c:attrs())
    -- max-pool 3x3, stride 2, pad 1 on 6x4x8: (4 + 2 - 3) // 2 + 1 = 2, (8 + 2 - 3) // 2 + 1 = 4
    net:maxpool("p", "c", {kernel = 3, stride = 2, pad = 1})
    assert.are.same({6, 2, 4}, net:node("p"):shape())
    assert.are.same({kernel = {3, 3}, stride = {2, 2}, pad = {1, 1}, ceil_mode = false},
                    net:node("p"):attrs())
    -- a feature-vector input, linear without bias
    local v = lop.net{input = {5}, name = "x"}
    v:linear("l", "x", {out = 3, bias = false})
    assert.are.same({5}, v:input_shape())
    assert.are.equal(15, v:params())
    assert.is_nil(v:node("l"):bias())
    assert.are.same({out = 3, bias = false}, v:node("l"):attrs())
    assert.are.same({input = {5}}, v:node("x"):attrs())
  end)

  it("build relu6, pad, and pools in ceil mode or leaving padding out of averages", function()
    local net = lop.net{input = {2, 5, 5}}
    assert.are.equal("p", net:pad("p", "input", {top = 1, right = 2}))
    net:relu6("r6", "p")
    net:maxpool("mp", "r6", {kernel = 2, stride = 2, ceil_mode = true})
    net:avgpool("ap", "r6", {kernel = 3, stride = 2, pad = 1, ceil_mode = true,
                             exclude_pad = true})
    -- pad: 2 x (5 + 1) x (5 + 2); 2x2 windows, stride 2, ceil mode: ceil((6 - 2) / 2) + 1
    -- = 3 rows, ceil((7 - 2) / 2) + 1 = 4 columns; 3x3, stride 2, pad 1:
    -- ceil((6 + 2 - 3) / 2) + 1 = 4, ceil((7 + 2 - 3) / 2) + 1 = 4 (both last windows
    -- start inside the input, so none is dropped)
    assert.are.same({2, 6, 7}, net:node("p"):shape())
    assert.are.same({2, 6, 7}, net:node("r6"):shape())
    assert.are.same({2, 3, 4}, net:node("mp"):shape())
    assert.are.same({2, 4, 4}, net:node("ap"):shape())
    assert.are.equal(0, net:params())
    -- FLOPs: pad none, relu6 one per value, pools the kernel area per output value
    local flops = {p = 0, r6 = 2 * 6 * 7, mp = 4 * 2 * 3 * 4, ap = 9 * 2 * 4 * 4}
    for name, f in pairs(flops) do assert.are.equal(f, net:node(name):flops(), name) end
    assert.are.same({top = 1, bottom = 0, left = 0, right = 2}, net:node("p"):attrs())
    assert.are.same({}, net:node("r6"):attrs())
    assert.are.same({kernel = {2, 2}, stride = {2, 2}, pad = {0, 0}, ceil_mode = true},
                    net:node("mp"):attrs())
    assert.are.same({kernel = {3, 3}, stride = {2, 2}, pad = {1, 1}, ceil_mode = true,
                     exclude_pad = true}, net:node("ap"):attrs())
    -- attrs() are builder options: the same calls on a second net give the same nodes
    local again = lop.net{input = {2, 5, 5}}
    for _, name in ipairs{"p", "r6", "mp", "ap"} do
      local h = net:node(name)
      again[h.kind](again, name, h:inputs()[1], h:attrs())
      assert.are.same(h:attrs(), again:node(name):attrs())
      assert.are.same(h:shape(), again:node(name):shape())
    end
  end)

  it("give relu6, pad and ceil-mode pools the outputs computed by hand", function()
    -- A 1x2x3 input padded with a row above and a column on the right, then relu6:
    --   0  0  0  0
    --  -1  3  9  0    ->   0 3 6 0
    --   7 -2  5  0         6 0 5 0      (and zeros on top)
    local x = lop.tensor{{{{-1, 3, 9}, {7, -2, 5}}}}
    local function run(pool, opts)
      local net = lop.net{input = {1, 2, 3}}
      net:pad("p", "input", {top = 1, right = 1})
      net:relu6("r6", "p")
      if pool then net[pool](net, "pool", "r6", opts) end
      return net:forward(x):totable()[1][1]
    end
    local function same(want, got)
      assert.are.equal(#want, #got)
      for i = 1, #want do
        for j = 1, #want[i] do
          assert.is_true(near(got[i][j], want[i][j]), ("[%d][%d] = %g, want %g"):format(
                         i, j, got[i][j], want[i][j]))
        end
      end
    end
    same({{0, 0, 0, 0}, {0, 3, 6, 0}, {6, 0, 5, 0}}, run())
    -- 2x2 windows, stride 2, ceil mode over 3x4: rows {0, 1} and {2} (the window's
    -- second row is past the end, and there is no padding for it to count as)
    same({{3, 6}, {6, 5}}, run("maxpool", {kernel = 2, ceil_mode = true}))
    same({{3 / 4, 6 / 4}, {6 / 2, 5 / 2}}, run("avgpool", {kernel = 2, ceil_mode = true}))
    -- 3x3 windows, stride 3, pad 1: ceil((3 + 2 - 3) / 3) + 1 = 2 rows (rows -1..1 and
    -- 2..4), ceil((4 + 2 - 3) / 3) + 1 = 2 columns (-1..1, 2..4).  With padding in the
    -- divisor a window counts its cells inside [-1, 4) x [-1, 5): 9, 9, 6, 6; without,
    -- its cells inside the input: 4, 4, 2, 2
    local k3 = {kernel = 3, pad = 1, ceil_mode = true}
    same({{3 / 9, 6 / 9}, {6 / 6, 5 / 6}}, run("avgpool", k3))
    k3.exclude_pad = true
    same({{3 / 4, 6 / 4}, {6 / 2, 5 / 2}}, run("avgpool", k3))
  end)

  it("records batchnorm and dropout settings", function()
    local net = lop.net{input = {2, 4, 4}}
    net:batchnorm("bn", "input", {eps = 1e-3, momentum = 0.5})
    net:dropout("d", "bn", {p = 0.1})
    local a = net:node("bn"):attrs()
    assert.is_true(near(a.eps, 1e-3) and near(a.momentum, 0.5))
    assert.is_true(near(net:node("d"):attrs().p, 0.1))
  end)

  it("take node handles wherever a name is expected", function()
    local net = lop.net{input = {2, 4, 4}}
    local r = net:node(net:relu("r", net:node("input")))
    assert.are.equal("r", r.name)
    assert.are.equal(r, net:node("r"))
    assert.are_not.equal(r, net:node("input"))
    assert.is_true(net:has("r"))
    assert.is_false(net:has("nope"))
  end)
end)

describe("net:forward", function()
  it("matches outputs computed by hand", function()
    -- conv: [1 2; 3 4] over the 1..9 ramp = 37 47 67 77, minus 50 = -13 -3 17 27;
    -- relu -> 0 0 17 27; linear rows: 0+0+17+27+0.5 = 44.5, 0-0+34-54-1 = -21.
    -- The zero image gives conv -50, relu 0, so just the biases.
    local y = tiny_net():forward(tiny_input())
    assert.are.same({2, 2}, y:shape())
    local want = {{44.5, -21}, {0.5, -1}}
    for i = 1, 2 do
      for j = 1, 2 do
        assert.is_true(near(y:get(i, j), want[i][j]), ("y[%d][%d] = %g"):format(i, j, y:get(i, j)))
      end
    end
  end)

  it("returns a copy that later passes leave alone", function()
    local net = tiny_net()
    local y1 = net:forward(tiny_input())
    net:forward(lop.tensor(1, 1, 3, 3))
    assert.is_true(near(y1:get(1, 1), 44.5))
  end)

  it("accepts train mode", function()
    local net = tiny_net()
    local y = net:forward(tiny_input(), {train = true})
    assert.is_true(near(y:get(1, 1), 44.5)) -- no batchnorm or dropout: same values
  end)

  it("sees weight changes made through shared tensors", function()
    local net = tiny_net()
    net:node("l"):weight():fill(0)
    local y = net:forward(tiny_input())
    assert.is_true(near(y:get(1, 1), 0.5) and near(y:get(1, 2), -1))
  end)

  it("times every node", function()
    local net = every_builder()
    local total, per_node = net:time{batch = 2, reps = 3}
    assert.is_true(total >= 0)
    for _, e in ipairs(EXPECTED) do
      assert.is_number(per_node[e[1]])
    end
  end)

  it("times training steps node by node without changing the net", function()
    local net = every_builder()
    local w = net:node("conv1"):weight():clone()
    local step, fwd, bwd = net:time{batch = 2, reps = 2, train = true}
    local sum = 0
    for _, e in ipairs(EXPECTED) do
      sum = sum + fwd[e[1]] + bwd[e[1]]
    end
    assert.is_true(step > 0 and sum <= step * (1 + 1e-9))
    assert.are.same(w:totable(), net:node("conv1"):weight():totable())
  end)
end)

describe("model files", function()
  it("round-trip structure, weights and outputs", function()
    local net = every_builder()
    net:forward(lop.tensor(4, 3, 8, 8):fill(0.5), {train = true}) -- move the BN statistics
    local x = lop.tensor(2, 3, 8, 8)
    for c = 1, 3 do
      for i = 1, 8 do
        for j = 1, 8 do
          x:set((c * 17 + i * 5 + j * 3) % 11 / 11 - 0.5, 1, c, i, j)
          x:set((c + i * j) % 7 / 7, 2, c, i, j)
        end
      end
    end
    local path = tmpfile(".lop")
    net:save(path)
    local back = lop.load(path)
    os.remove(path)
    assert.are.equal(net:size(), back:size())
    assert.are.equal(net:params(), back:params())
    assert.are.equal(net:flops(), back:flops())
    for i, h in ipairs(back:nodes()) do
      assert.are.equal(EXPECTED[i][1], h.name)
      assert.are.same(net:node(h.name):attrs(), h:attrs())
    end
    assert.are.same(net:node("bn1"):param("running_mean"):totable(),
                    back:node("bn1"):param("running_mean"):totable())
    assert.are.same(net:forward(x):totable(), back:forward(x):totable())
  end)

  it("keep relu6, pad and the pools' ceil_mode and exclude_pad", function()
    local net = lop.net{input = {2, 7, 6}, seed = 3}
    net:pad("p", "input", {top = 2, bottom = 1, right = 3})
    net:conv2d("c", "p", {out = 3, kernel = 3})
    net:relu6("r6", "c")
    net:maxpool("mp", "r6", {kernel = 3, stride = 2, ceil_mode = true})
    net:avgpool("ap", "mp", {kernel = 2, pad = 1, ceil_mode = true, exclude_pad = true})
    local path = tmpfile(".lop")
    net:save(path)
    local back = lop.load(path)
    os.remove(path)
    for _, h in ipairs(net:nodes()) do
      assert.are.equal(h.kind, back:node(h.name).kind)
      assert.are.same(h:attrs(), back:node(h.name):attrs())
    end
    local x = lop.tensor(2, 2, 7, 6)
    for i = 1, 7 do
      for j = 1, 6 do x:set(i * j % 5 - 2, 1, 1, i, j) x:set((i + 2 * j) % 7, 2, 2, i, j) end
    end
    assert.are.same(net:forward(x):totable(), back:forward(x):totable())
  end)

  it("refuse a missing or garbage file with a message naming it", function()
    local missing = tmpfile("-missing.lop")
    local ok, err = pcall(lop.load, missing)
    assert.is_false(ok)
    assert.truthy(err:find(missing, 1, true), err)
    local garbage = tmpfile(".lop")
    local f = assert(io.open(garbage, "wb"))
    f:write("this is not a model file\n", string.rep("\0\1\2", 100))
    f:close()
    ok, err = pcall(lop.load, garbage)
    os.remove(garbage)
    assert.is_false(ok)
    assert.truthy(err:find(garbage, 1, true), err)
  end)

  it("report a save that cannot happen", function()
    local path = tmpfile("-dir") .. "/no/such/dir/x.lop"
    local ok, err = pcall(every_builder().save, every_builder(), path)
    assert.is_false(ok)
    assert.truthy(err:find(path, 1, true), err)
  end)
end)

describe("net:clone", function()
  it("is independent of the original", function()
    local net = tiny_net()
    local copy = net:clone()
    assert.are.equal(net:params(), copy:params())
    assert.are.same(net:forward(tiny_input()):totable(), copy:forward(tiny_input()):totable())
    copy:node("l"):bias():fill(100)
    copy:linear("extra", "l", {out = 1})
    assert.is_true(near(net:forward(tiny_input()):get(2, 1), 0.5))
    assert.is_false(net:has("extra"))
    net:close()
    assert.are.same({2, 1}, copy:forward(tiny_input()):shape())
    assert.is_true(near(copy:node("l"):bias():get(1), 100))
  end)
end)

describe("node handles", function()
  it("expose parameters as tensors sharing the net's storage", function()
    local net = every_builder()
    local conv = net:node("conv1")
    assert.are.same({4, 3, 3, 3}, conv:weight():shape())
    assert.are.same({4}, conv:bias():shape())
    conv:weight():set(42, 1, 1, 1, 1)
    assert.are.equal(42, conv:param("weight"):get(1, 1, 1, 1))
    assert.is_nil(net:node("conv2"):bias())
    assert.is_nil(net:node("relu1"):weight())
    local bn = net:node("bn1")
    assert.are.same({1, 1, 1, 1}, bn:param("weight"):totable())
    assert.are.same({1, 1, 1, 1}, bn:param("running_var"):totable())
    assert.are.same({4}, bn:grad("weight"):shape())
    assert.is_nil(bn:grad("running_mean"))
  end)

  it("keep their tensors and net alive", function()
    local w
    do
      local h = every_builder():node("fc")
      collectgarbage()
      collectgarbage()
      assert.are.equal("fc", h.name) -- the handle kept the net
      w = h:weight()
    end
    collectgarbage()
    collectgarbage()
    assert.are.same({10, 32}, w:shape())
    assert.is_number(w:sum())
  end)

  it("print name, kind and shape", function()
    local net = every_builder()
    assert.are.equal("node conv1 (conv2d) 4x8x8", tostring(net:node("conv1")))
    assert.are.equal("node fc (linear) 10", tostring(net:node("fc")))
  end)

  it("list the node's parameters when asked for a missing one", function()
    local ok, err = pcall(function() return every_builder():node("conv1"):param("nope") end)
    assert.is_false(ok)
    assert.truthy(err:find("nope", 1, true) and err:find("weight, bias", 1, true), err)
    ok, err = pcall(function() return every_builder():node("relu1"):grad("weight") end)
    assert.is_false(ok)
    assert.truthy(err:find("none", 1, true), err)
  end)

  it("raise once surgery made them stale, and say so when printed", function()
    -- conv1's group runs through the add (merged with conv2's) and both concat
    -- segments into fc; pruning it moves every node's parameters or shape
    local net = every_builder()
    local conv, fc, relu = net:node("conv1"), net:node("fc"), net:node("relu1")
    local w = conv:weight()
    net:prune("conv1", {1, 3})
    for i, use in ipairs{
      function() return conv.name end,
      function() return conv:weight() end,
      function() return fc:shape() end,
      function() return relu:flops() end,
      function() return net:node(conv) end,
      function() return net:conv2d("x", relu, {out = 1}) end,
    } do
      local ok, err = pcall(use)
      assert.is_false(ok, "use " .. i)
      assert.truthy(tostring(err):find("stale node handle for '", 1, true), err)
    end
    assert.are.equal("node conv1 (stale)", tostring(conv))
    assert.are.same({4, 3, 3, 3}, w:shape())   -- tensors handed out stay valid
    assert.are.same({2, 3, 3, 3}, net:node("conv1"):weight():shape())
    assert.are.same({10, 16}, net:node("fc"):weight():shape())   -- 2 channels x 2 x 2, twice
  end)
end)

describe("printing a net", function()
  it("shows every node with its shape, params and FLOPs, and a total", function()
    local s = tostring(every_builder())
    for _, e in ipairs(EXPECTED) do
      assert.truthy(s:find("%f[%w_]" .. e[1] .. "%f[^%w_]"), e[1])
    end
    assert.truthy(s:find("4x8x8", 1, true))
    assert.truthy(s:find("13.8K", 1, true)) -- conv1: 13824 FLOPs
    assert.truthy(s:find("total: 13 nodes, 474 params", 1, true), s)
    assert.truthy(s:find("FLOPs count a multiply-add as 2", 1, true))
  end)
end)

describe("closing", function()
  it("is idempotent and makes every use raise 'net is closed'", function()
    local net = every_builder()
    local h = net:node("conv1")
    local w = h:weight()
    net:close()
    net:close()
    assert.are.equal("net (closed)", tostring(net))
    assert.are.equal("node conv1 (net closed)", tostring(h))
    local uses = {
      function() return net:params() end,
      function() return net:flops() end,
      function() return net:size() end,
      function() return net:nodes() end,
      function() return net:node("conv1") end,
      function() return net:has("conv1") end,
      function() return net:forward(lop.tensor(1, 3, 8, 8)) end,
      function() return net:input_shape() end,
      function() return net:output_shape() end,
      function() return net:clone() end,
      function() return net:time() end,
      function() return net:save(tmpfile(".lop")) end,
      function() return net:relu("r", "fc") end,
      function() return h.name end,
      function() return h:weight() end,
      function() return h:shape() end,
    }
    for i, use in ipairs(uses) do
      local ok, err = pcall(use)
      assert.is_false(ok, "use " .. i)
      assert.truthy(tostring(err):find("net is closed", 1, true), err)
    end
    assert.are.same({4, 3, 3, 3}, w:shape()) -- tensors handed out stay valid
    do
      local scoped <close> = every_builder()
      assert.are.equal(13, scoped:size())
    end
  end)
end)

describe("misuse", function()
  it("raises a message for each bad call and never crashes", function()
    local net = every_builder()
    local other = lop.net{input = {3, 8, 8}}
    local closed = lop.net{input = {3, 8, 8}}
    local stray = closed:node("input")
    closed:close()
    local t = lop.tensor(2)
    t:close()
    local conv = net:node("conv1")
    local cases = {
      -- lop.net
      function() return lop.net() end,
      function() return lop.net(5) end,
      function() return lop.net{} end,
      function() return lop.net{input = {0, 8, 8}} end,
      function() return lop.net{input = {3, 8}} end,
      function() return lop.net{input = {3, 8, 8.5}} end,
      function() return lop.net{input = "3x8x8"} end,
      function() return lop.net{input = {3, 8, 8}, sed = 1} end,
      function() return lop.net{input = {3, 8, 8}, seed = 1.5} end,
      function() return lop.net{input = {3, 8, 8}, name = 5} end,
      function() return lop.net{input = {3, 8, 8}, name = "bad name"} end,
      function() return lop.net{input = {3, 8, 8}, name = "a\0b"} end,
      function() return lop.net{input = {3, 8, 8}, [1] = 2} end,
      -- builders: names, inputs, options
      function() return net:conv2d(5, "input", {out = 1}) end,
      function() return net:conv2d(nil, "input", {out = 1}) end,
      function() return net:conv2d("", "input", {out = 1}) end,
      function() return net:conv2d(string.rep("n", 200), "input", {out = 1}) end,
      function() return net:conv2d("x\0y", "input", {out = 1}) end,
      function() return net:conv2d("conv1", "input", {out = 1}) end,
      function() return net:conv2d("x", "nope", {out = 1}) end,
      function() return net:conv2d("x", 5, {out = 1}) end,
      function() return net:conv2d("x", {}, {out = 1}) end,
      function() return net:conv2d("x", other:node("input"), {out = 1}) end,
      function() return net:conv2d("x", stray, {out = 1}) end,
      function() return net:conv2d("x", "input") end,
      function() return net:conv2d("x", "input", 5) end,
      function() return net:conv2d("x", "input", {out = 1, kernal = 3}) end,
      function() return net:conv2d("x", "input", {out = 1, [1] = 3}) end,
      function() return net:conv2d("x", "input", {out = -1}) end,
      function() return net:conv2d("x", "input", {out = 0}) end,
      function() return net:conv2d("x", "input", {out = 2.5}) end,
      function() return net:conv2d("x", "input", {out = "4"}) end,
      function() return net:conv2d("x", "input", {out = 2 ^ 40}) end,
      function() return net:conv2d("x", "input", {out = math.huge}) end,
      function() return net:conv2d("x", "input", {out = 1, kernel = 0}) end,
      function() return net:conv2d("x", "input", {out = 1, kernel = {3}}) end,
      function() return net:conv2d("x", "input", {out = 1, kernel = {3, 3, 3}}) end,
      function() return net:conv2d("x", "input", {out = 1, kernel = {3, "3"}}) end,
      function() return net:conv2d("x", "input", {out = 1, kernel = 100}) end,
      function() return net:conv2d("x", "input", {out = 1, stride = 0}) end,
      function() return net:conv2d("x", "input", {out = 1, pad = -1}) end,
      function() return net:conv2d("x", "input", {out = 1, groups = 0}) end,
      function() return net:conv2d("x", "input", {out = 4, groups = 2}) end, -- 3 channels
      function() return net:conv2d("x", "input", {out = 1, bias = 1}) end,
      function() return net:conv2d("x", "fc", {out = 1}) end, -- rank-1 input
      function() return net:batchnorm("x", "input", {eps = 0}) end,
      function() return net:batchnorm("x", "input", {eps = "small"}) end,
      function() return net:batchnorm("x", "input", {eps = 1e300}) end,
      function() return net:batchnorm("x", "input", {momentum = 2}) end,
      function() return net:batchnorm("x", "input", {momentum = 0 / 0}) end,
      function() return net:relu("x", "input", {inplace = true}) end,
      function() return net:relu("x") end,
      function() return net:maxpool("x", "input") end,
      function() return net:maxpool("x", "input", {kernel = 0}) end,
      function() return net:maxpool("x", "input", {kernel = 2, pad = 2}) end,
      function() return net:maxpool("x", "input", {kernel = 20}) end,
      function() return net:avgpool("x", "input", {kernel = 2, stride = -1}) end,
      function() return net:avgpool("x", "input", {size = 2}) end,
      function() return net:maxpool("x", "input", {kernel = 2, exclude_pad = true}) end,
      function() return net:maxpool("x", "input", {kernel = 2, ceil_mode = 1}) end,
      function() return net:avgpool("x", "input", {kernel = 2, exclude_pad = "yes"}) end,
      function() return net:maxpool("x", "input", {kernel = 20, stride = 1, ceil_mode = true}) end,
      function() return net:avgpool("x", "fc", {kernel = 2, ceil_mode = true}) end,
      function() return net:relu6("x", "input", {cap = 6}) end,
      function() return net:relu6("x") end,
      function() return net:pad("x", "input", {top = -1}) end,
      function() return net:pad("x", "input", {left = 1.5}) end,
      function() return net:pad("x", "input", {right = "1"}) end,
      function() return net:pad("x", "input", {bottom = 1025}) end, -- the engine's bound
      function() return net:pad("x", "input", {pad = 1}) end,
      function() return net:pad("x", "input", 1) end,
      function() return net:pad("x", "fc", {top = 1}) end, -- rank-1 input
      function() return net:global_avgpool("x", "fc") end,
      function() return net:flatten("x", nil) end,
      function() return net:linear("x", "input", {out = 10}) end, -- needs a flatten
      function() return net:linear("x", "fc") end,
      function() return net:linear("x", "fc", {out = 10, bias = "yes"}) end,
      function() return net:dropout("x", "fc", {p = 1}) end,
      function() return net:dropout("x", "fc", {p = -0.5}) end,
      function() return net:dropout("x", "fc", {rate = 0.5}) end,
      function() return net:add("x", "input") end,
      function() return net:add("x", {"input"}) end,
      function() return net:add("x", {"input", 5}) end,
      function() return net:add("x", {"input", "nope"}) end,
      function() return net:add("x", {"input", "conv1"}) end, -- 3x8x8 + 4x8x8
      function() return net:add("x", {"input", "input"}, {scale = 2}) end,
      function() return net:concat("x", {"input", "pool1"}) end, -- 8x8 vs 4x4
      function() return net:concat("x", {"fc", stray}) end,
      -- queries
      function() return net:node("nope") end,
      function() return net:node(5) end,
      function() return net:node() end,
      function() return net:node(other:node("input")) end,
      function() return net:has({}) end,
      function() return conv:param("nope") end,
      function() return conv:param() end,
      function() return conv:grad("running_mean") end,
      function() return conv.weight(net) end,
      function() return net.params(conv) end,
      function() return net.params(5) end,
      function() return conv.shape(t) end,
      -- running
      function() return net:forward() end,
      function() return net:forward({1, 2, 3}) end,
      function() return net:forward(lop.tensor(2, 3, 8, 9)) end,
      function() return net:forward(lop.tensor(2, 3, 8)) end,
      function() return net:forward(lop.tensor(3, 8, 8)) end,
      function() return net:forward(t) end,
      function() return net:forward(lop.tensor(1, 3, 8, 8), {train = 1}) end,
      function() return net:forward(lop.tensor(1, 3, 8, 8), {trian = true}) end,
      function() return net:forward(lop.tensor(1, 3, 8, 8), true) end,
      function() return lop.net{input = {3}}:forward(lop.tensor(1, 3)) end, -- no layers
      function() return net:time{batch = 0} end,
      function() return net:time{reps = 0} end,
      function() return net:time{bach = 2} end,
      function() return net:time(5) end,
      -- files
      function() return lop.load() end,
      function() return lop.load({}) end,
      function() return lop.load("a\0b") end,
      function() return net:save() end,
      function() return net:save(5 > 4) end,
    }
    for i, case in ipairs(cases) do
      local ok, err = pcall(case)
      assert.is_false(ok, "case " .. i .. " did not raise")
      assert.is_string(err, "case " .. i)
      assert.is_true(#err > 0, "case " .. i)
    end
    -- nothing above changed the net
    assert.are.equal(#EXPECTED, net:size())
    assert.are.same({1, 10}, net:forward(lop.tensor(1, 3, 8, 8)):shape())
  end)

  it("names an unknown option and the node in the message", function()
    local net = every_builder()
    local ok, err = pcall(net.conv2d, net, "c9", "fc", {out = 1, kernal = 3})
    assert.is_false(ok)
    assert.truthy(err:find("kernal", 1, true) and err:find("c9", 1, true), err)
    ok, err = pcall(net.maxpool, net, "m9", "input", {kernel = 2, exclude_pad = true})
    assert.truthy(err:find("unknown option 'exclude_pad'", 1, true) and
                  err:find("m9", 1, true), err)
    ok, err = pcall(net.pad, net, "p9", "input", {bottom = 2000})
    assert.truthy(err:find("net:pad: pad 'p9': padding top 0, bottom 2000", 1, true), err)
    ok, err = pcall(net.node, net, "nope")
    assert.truthy(err:find("no node named 'nope'", 1, true), err)
    ok, err = pcall(net.forward, net, lop.tensor(1, 3, 8, 9))
    assert.truthy(err:find("3, 8, 8", 1, true), err) -- the engine's message
  end)
end)

local util = dofile("tests/lua/util.lua")
local rss_kb, under_asan = util.rss_kb, util.under_asan

describe("memory", function()
  it("stays bounded while 2000 nets and their tensors come and go", function()
    -- Each round: a net with a 256x256 linear layer (263 kB of weights, the same of
    -- gradients), a forward pass and a weight tensor.  If the collector never freed
    -- the C side, 2000 rounds would hold over 1 GB.
    local function round()
      local net = lop.net{input = {256}}
      net:linear("fc", "input", {out = 256})
      local y = net:forward(lop.tensor(2, 256))
      local w = net:node("fc"):weight()
      return y:numel() + w:numel()
    end
    for _ = 1, 50 do round() end
    collectgarbage()
    collectgarbage()
    local lua_before, rss_before = collectgarbage("count"), rss_kb()
    local rss_peak = rss_before or 0
    for i = 1, 2000 do
      round()
      if rss_before and i % 50 == 0 then rss_peak = math.max(rss_peak, rss_kb()) end
    end
    collectgarbage()
    collectgarbage()
    local lua_growth = collectgarbage("count") - lua_before
    assert.is_true(lua_growth < 1024, ("Lua heap grew by %.0f kB"):format(lua_growth))
    if rss_before then
      local limit = under_asan() and 600 * 1024 or 200 * 1024
      local growth = rss_peak - rss_before
      assert.is_true(growth < limit, ("resident memory grew by %d kB"):format(growth))
    end
  end)
end)
