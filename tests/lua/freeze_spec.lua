-- freeze_spec.lua - net:freeze(), the deployment setting: a frozen net's evaluation
-- passes keep the Winograd-transformed weights (and those of the tap-by-tap path on
-- 2x2 maps) from one pass to the next and take Winograd at batch 1 where an unfrozen
-- pass would not.  Checked against a naive convolution written here (frozen or not,
-- batch 1 or 32, F(4x4) on a 22x22 map and F(2x2) on an 11x11 one; tap by tap on a
-- 2x2 map at 16 images), kept weights shown to be reused (a write the contract says to
-- make after unfreezing is not seen while frozen), and every way of changing the
-- weights the engine offers (training, node:weight(), surgery, folding) unfreezing.
local lop = require "lopper"
local util = require "tests.lua.util"

-- Winograd F(4x4) rounds up to 40 eps per unit of sum |w| |x| (docs/performance.md);
-- these sums stay below 10, so 1e-4 relative leaves room and still catches any wrong
-- tap (a weight's contribution is about 0.1).
local TOL = 1e-4

-- input 8x22x22 -> c1 (3x3 pad 1, 8 out: F(4x4) at batch 1 when frozen) -> relu ->
-- maxpool 2 -> c2 (3x3 pad 1, 8 out on 11x11: F(2x2) at batch 1 when frozen).
local C, H = 8, 22

-- Deterministic values in [-1, 1).
local function wave(i, k)
  return ((i * 7919 + k * 104729) % 2000) / 1000 - 1
end

local function build()
  local net = lop.net{input = {C, H, H}, seed = 3}
  net:conv2d("c1", "input", {out = C, kernel = 3, pad = 1})
  net:relu("r1", "c1")
  net:maxpool("p1", "r1", {kernel = 2})
  net:conv2d("c2", "p1", {out = C, kernel = 3, pad = 1})
  return net
end

-- w[o][i][ky][kx] and b[o] as Lua tables, from the net (this unfreezes it).
local function weights_of(net, name)
  local node = net:node(name)
  return node:weight():totable(), node:bias():totable()
end

local function input(batch)
  local x = lop.tensor(batch, C, H, H)
  local i = 0
  for n = 1, batch do
    for c = 1, C do
      for y = 1, H do
        for z = 1, H do
          i = i + 1
          x:set(wave(i, 1), n, c, y, z)
        end
      end
    end
  end
  return x
end

-- The naive 3x3 pad-1 convolution of one image a[c][y][x] (tables).
local function conv3(a, w, b)
  local c, h, wd = #a, #a[1], #a[1][1]
  local out = {}
  for o = 1, #w do
    out[o] = {}
    for y = 1, h do
      out[o][y] = {}
      for z = 1, wd do
        local s = b[o]
        for i = 1, c do
          for dy = -1, 1 do
            local row = a[i][y + dy]
            if row then
              for dz = -1, 1 do
                local v = row[z + dz]
                if v then s = s + w[o][i][dy + 2][dz + 2] * v end
              end
            end
          end
        end
        out[o][y][z] = s
      end
    end
  end
  return out
end

local function relu_pool(a)
  local out = {}
  for c = 1, #a do
    out[c] = {}
    for y = 1, #a[c] // 2 do
      out[c][y] = {}
      for z = 1, #a[c][1] // 2 do
        local m = math.max(a[c][2 * y - 1][2 * z - 1], a[c][2 * y - 1][2 * z],
                           a[c][2 * y][2 * z - 1], a[c][2 * y][2 * z])
        out[c][y][z] = math.max(m, 0)
      end
    end
  end
  return out
end

-- The whole net on every image of x, naively.
local function reference(net, x)
  local w1, b1 = weights_of(net, "c1")
  local w2, b2 = weights_of(net, "c2")
  local out = {}
  for n, image in ipairs(x:totable()) do
    out[n] = conv3(relu_pool(conv3(image, w1, b1)), w2, b2)
  end
  return out
end

-- Every weight and bias of the net set to deterministic values (seed k), in the
-- order of their nested tables.
local function set_weights(net, k)
  local i = 0
  local function wave_like(v)
    if type(v) ~= "table" then
      i = i + 1
      return wave(i, k) * 0.3
    end
    local out = {}
    for j, x in ipairs(v) do out[j] = wave_like(x) end
    return out
  end
  for _, name in ipairs{"c1", "c2"} do
    for _, t in ipairs{net:node(name):weight(), net:node(name):bias()} do
      t:copy(lop.tensor(wave_like(t:totable())))
    end
  end
end

describe("net:freeze", function()
  it("is off by default, on after net:freeze(), off after net:freeze(false)", function()
    local net = build()
    assert.is_false(net:frozen())
    assert.are.equal(net, net:freeze())
    assert.is_true(net:frozen())
    net:freeze(false)
    assert.is_false(net:frozen())
    assert.has_error(function() net:freeze("yes") end)
  end)

  for _, batch in ipairs{1, 32} do
    it("gives the naive convolution's outputs at batch " .. batch .. ", pass after pass",
       function()
      local net = build()
      set_weights(net, 1)
      local x = input(batch)
      local want = reference(net, x)
      local plain = net:forward(x):totable()
      net:freeze()
      local first = net:forward(x):totable()
      local second = net:forward(x):totable()
      assert.is_true(net:frozen())
      assert.is_true(util.rel_err(plain, want) < TOL)
      assert.is_true(util.rel_err(first, want) < TOL)
      assert.are.same(first, second)   -- the kept weights: the same bits
    end)
  end

  it("keeps the transformed weights: a write it was not told of is not seen", function()
    local net = build()
    set_weights(net, 1)
    local w = net:node("c1"):weight()   -- taken before freezing: the contract's case
    local x = input(1)
    net:freeze()
    local before = net:forward(x):totable()
    w:fill(0)
    assert.are.same(before, net:forward(x):totable())
    net:freeze(false)   -- what the contract asks for: then the new weights count
    net:freeze()
    assert.is_true(util.rel_err(net:forward(x):totable(), reference(net, x)) < TOL)
  end)

  -- A 3x3 pad-1 layer on 2x2 maps from 16 images runs tap by tap on weights it
  -- transforms first (conv_taps.c's minimal filtering); frozen, it keeps them too.
  it("keeps the tap-by-tap path's transformed weights on 2x2 maps", function()
    local net = lop.net{input = {C, 2, 2}, seed = 5}
    net:conv2d("c1", "input", {out = C, kernel = 3, pad = 1})
    local i = 0
    for _, t in ipairs{net:node("c1"):weight(), net:node("c1"):bias()} do
      local values = t:totable()
      local function fill(v)
        if type(v) ~= "table" then
          i = i + 1
          return wave(i, 4) * 0.3
        end
        local out = {}
        for j, x in ipairs(v) do out[j] = fill(x) end
        return out
      end
      t:copy(lop.tensor(fill(values)))
    end
    local x = lop.tensor(16, C, 2, 2)
    for n = 1, 16 do
      for c = 1, C do
        for y = 1, 2 do
          for z = 1, 2 do x:set(wave(n * 64 + c * 4 + y * 2 + z, 5), n, c, y, z) end
        end
      end
    end
    local w, b = weights_of(net, "c1")
    local want = {}
    for n, image in ipairs(x:totable()) do want[n] = conv3(image, w, b) end
    local weight = net:node("c1"):weight()   -- taken before freezing
    assert.is_true(util.rel_err(net:forward(x):totable(), want) < TOL)
    net:freeze()
    local first = net:forward(x):totable()
    assert.is_true(util.rel_err(first, want) < TOL)
    weight:fill(0)   -- not seen while frozen: the kept weights are used
    assert.are.same(first, net:forward(x):totable())
    net:freeze(false)
    assert.is_true(util.rel_err(net:forward(x):totable(), want) > 0.5)   -- now it is
  end)

  it("is undone by every way of changing the weights", function()
    local x = input(1)
    local cases = {
      ["node:weight()"] = function(net) net:node("c1"):weight() end,
      ["node:param()"] = function(net) net:node("c2"):param("weight") end,
      ["a training pass"] = function(net) net:forward(x, {train = true}) end,
      ["pruning"] = function(net) net:prune("c1", {1, 2, 3, 4, 5, 6}) end,
      ["folding"] = function(net) net:fold_batchnorm() end,
    }
    for what, change in pairs(cases) do
      local net = build()
      set_weights(net, 2)
      net:freeze()
      net:forward(x)
      change(net)
      assert.is_false(net:frozen(), what)
      if what ~= "pruning" then   -- then the weights are set again: the outputs follow
        set_weights(net, 3)
        net:freeze()
        assert.is_true(util.rel_err(net:forward(x):totable(), reference(net, x)) < TOL, what)
      end
    end
  end)
end)
