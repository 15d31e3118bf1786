-- report_spec.lua - the measurement helpers: lop.latency times networks in
-- alternation and reports medians (checked with stand-in networks whose :time answers
-- are planted), lop.measure and lop.compare agree with counts done by hand on a tiny
-- real network, and malformed calls are refused with a message.
local lop = require "lopper"

-- A stand-in network: :time answers from a list per batch size and logs each call.
local function fake(name, log, answers)
  local next_answer = {[1] = 0, [64] = 0}
  return {time = function(_, o)
    log[#log + 1] = ("%s@%d x%d"):format(name, o.batch, o.reps)
    next_answer[o.batch] = next_answer[o.batch] + 1
    return answers[o.batch][next_answer[o.batch]], {}
  end}
end

describe("lop.latency", function()
  it("times the networks in turn, round after round, and takes medians", function()
    -- reps = 20: 20 passes at batch 1 and 10 at batch 64 over 5 rounds
    local log = {}
    local a = fake("a", log, {[1] = {5, 1, 4, 2, 3}, [64] = {50, 10, 40, 20, 30}})
    local b = fake("b", log, {[1] = {9, 9, 1, 9, 1}, [64] = {7, 8, 6, 100, 5}})
    local t = lop.latency({a, b}, {reps = 20})
    assert.are.same({{ms1 = 3, ms64 = 30}, {ms1 = 9, ms64 = 7}}, t)
    local want = {}
    for _ = 1, 5 do
      for _, n in ipairs{"a", "b"} do
        want[#want + 1] = n .. "@1 x4"
        want[#want + 1] = n .. "@64 x2"
      end
    end
    assert.are.same(want, log)
  end)

  it("refuses what is not a list of networks", function()
    assert.has_error(function() lop.latency({}) end, "lop.latency: expected a list of networks")
    assert.has_error(function() lop.latency({}, {batch = 2}) end,
                     "lop.latency: unknown option 'batch'")
    local net = lop.net{input = {1, 4, 4}}
    assert.has_error(function() lop.latency({net, 7}) end,
                     "lop.latency: entry 2 is not a network (number)")
    assert.has_error(function() lop.latency({{}}) end,
                     "lop.latency: entry 1 is not a network (table)")
  end)
end)

describe("lop.measure and lop.compare", function()
  -- conv 1 -> 4 channels, 3x3, bias, on 1x6x6: 4 * 9 + 4 = 40 params; each of the
  -- 4 * 36 outputs takes 9 multiply-adds (2 FLOPs each) -> 2592 FLOPs.  Halving the
  -- outputs halves both.
  local function tiny(out)
    local net = lop.net{input = {1, 6, 6}}
    net:conv2d("conv", "input", {out = out, kernel = 3, pad = 1})
    return net
  end

  it("count params and FLOPs and time both networks", function()
    local m = lop.measure(tiny(4), {reps = 3})
    assert.are.equal(40, m.params)
    assert.are.equal(2592, m.flops)
    assert.is_true(m.ms1 > 0 and m.ms64 > 0)
    local bare = lop.measure(tiny(4), {latency = false})
    assert.is_nil(bare.ms1)
    local text, before, after = lop.compare(tiny(4), tiny(2), {reps = 3})
    assert.are.equal(20, after.params)
    assert.are.equal(1296, after.flops)
    assert.is_true(before.ms64 > 0 and after.ms64 > 0)
    assert.truthy(text:find("FLOPs%s+2.6K%s+1.3K%s+2.00x"))
    assert.truthy(text:find("params%s+40%s+20%s+2.00x"))
  end)

  it("refuse a measurement that has no latency", function()
    local bare = lop.measure(tiny(4), {latency = false})
    assert.has_error(function() lop.compare(bare, tiny(2)) end,
      "lop.compare: a measurement without latency (lop.measure with latency = false)")
  end)
end)
