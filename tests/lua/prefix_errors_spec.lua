-- prefix_errors_spec.lua - lop.select.thinet_order and lop.select.errors from Lua: the
-- order lists every channel once and its prefixes are lop.select.thinet's keep lists;
-- the errors of a few counts equal what lop.reconstruct reports for the same channels
-- on clones of the net (sampled alike), in both refit modes; wrong arguments raise
-- errors naming the function.  Every count against lop_reconstruct is checked in
-- tests/test_prefix_errors.c.
local lop = require "lopper"
local vgg16 = dofile("models/vgg16.lua")

local data = lop.data.fashion_mnist{train_size = 96, test_size = 16}

-- The functions called by name and not in tail position, as in a script, so that Lua
-- names them in argument errors (called by pcall directly they would be '?').
local named = {
  errors = function(...) local r = lop.select.errors(...) return r end,
  thinet_order = function(...) local r = lop.select.thinet_order(...) return r end,
}
local function try(name, ...) return pcall(named[name], ...) end

local function sorted_prefix(order, n)
  local keep = table.move(order, 1, n, 1, {})
  table.sort(keep)
  return keep
end

describe("lop.select.thinet_order and lop.select.errors", function()
  local net = vgg16{width = 0.125, seed = 7}
  local original = vgg16{width = 0.125, seed = 11}
  local sampling = {images = 32, points = 8, reference = original}
  local s = lop.sample(net, data.train, "conv2_1", sampling)
  local c = s:channels()

  it("ranks every channel, each prefix being ThiNet's keep list", function()
    local order = lop.select.thinet_order(s)
    assert.are.equal(c, #order)
    local seen = {}
    for _, ch in ipairs(order) do
      assert.is_true(math.type(ch) == "integer" and ch >= 1 and ch <= c and not seen[ch])
      seen[ch] = true
    end
    for n = 1, c do
      assert.are.same(lop.select.thinet(s, {keep = n / c}), sorted_prefix(order, n))
    end
  end)

  it("gives the error lop.reconstruct reports for every kept count", function()
    local order = lop.select.thinet_order(s)
    for _, mode in ipairs{"weights", "scale"} do
      local errors = lop.select.errors(s, order, {mode = mode})
      assert.are.equal(c, #errors)
      for k = 2, c do
        assert.is_true(errors[k] <= errors[k - 1] * (1 + 1e-9), mode)
      end
      for _, k in ipairs{1, c // 2, c} do
        local clone = net:clone()
        local cs = lop.sample(clone, data.train, "conv2_1", sampling)
        local _, rel = lop.reconstruct(clone, "conv2_1", cs, sorted_prefix(order, k),
                                       {mode = mode})
        assert.is_true(math.abs(errors[k] - rel) <= 1e-6 * rel,
                       ("%s, %d kept: %.10g vs %.10g"):format(mode, k, errors[k], rel))
      end
    end
    -- the default mode is the weights refit, the default ridge 1e-6
    assert.are.same(lop.select.errors(s, order, {mode = "weights", ridge = 1e-6}),
                    lop.select.errors(s, order))
  end)

  it("raises errors naming the function on wrong arguments", function()
    local order = lop.select.thinet_order(s)
    local twice = table.move(order, 1, c, 1, {})
    twice[2] = twice[1]
    local cases = {
      {{net, order}, "errors"},
      {{s, "order"}, "errors"},
      {{s, {1, 2}}, "order must list all " .. c .. " channels, not 2"},
      {{s, twice}, ("channel %d is listed twice"):format(twice[1])},
      {{s, {0, table.unpack(order, 2)}}, "order[1] must be a channel in 1.." .. c},
      {{s, {1.5, table.unpack(order, 2)}}, "order[1] must be a channel"},
      {{s, order, {mode = "magic"}}, "mode must be 'weights' or 'scale', not 'magic'"},
      {{s, order, {ridge = -1}}, "ridge"},
      {{s, order, {rigde = 1e-6}}, "rigde"},
    }
    for _, case in ipairs(cases) do
      local ok, err = try("errors", table.unpack(case[1]))
      assert.is_false(ok, case[2])
      assert.truthy(tostring(err):find("errors", 1, true), tostring(err))
      assert.truthy(tostring(err):find(case[2], 1, true), tostring(err))
    end
    local ok, err = try("thinet_order", net)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("thinet_order", 1, true), tostring(err))
    local closed = lop.sample(net, data.train, "conv2_1", {images = 4, points = 2})
    closed:close()
    ok, err = try("thinet_order", closed)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("thinet_order", 1, true), tostring(err))
    ok, err = try("errors", closed, order)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("errors", 1, true), tostring(err))
    -- statistics of a net that changed since are refused (the bias is the net's)
    local pruned = net:clone()
    local t = lop.sample(pruned, data.train, "conv2_1", {images = 8, points = 4})
    lop.reconstruct(pruned, "conv2_1", t, sorted_prefix(order, 4))
    ok, err = try("errors", t, order)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("sample again", 1, true), tostring(err))
  end)
end)
