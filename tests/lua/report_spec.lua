-- report_spec.lua - the measurement helpers: lop.latency times networks in
-- alternation and reports the fastest pass (checked with stand-in networks whose :time
-- answers are planted), lop.measure, lop.compare and lop.compare_many agree with counts
-- done by hand on tiny real networks, and malformed calls are refused with a message.
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

-- conv 1 -> 4 channels, 3x3, bias, on 1x6x6: 4 * 9 + 4 = 40 params; each of the 4 * 36
-- outputs takes 9 multiply-adds (2 FLOPs each) -> 2592 FLOPs.  Fewer outputs cut both
-- in proportion.
local function tiny(out)
  local net = lop.net{input = {1, 6, 6}}
  net:conv2d("conv", "input", {out = out, kernel = 3, pad = 1})
  return net
end

describe("lop.latency", function()
  it("times the networks in turn, round after round, and takes the fastest pass", function()
    -- reps = 20: 20 passes at batch 1 and 10 at batch 64 over 5 rounds
    local log = {}
    local a = fake("a", log, {[1] = {5, 1, 4, 2, 3}, [64] = {50, 10, 40, 20, 30}})
    local b = fake("b", log, {[1] = {9, 9, 1, 9, 1}, [64] = {7, 8, 6, 100, 5}})
    local t = lop.latency({a, b}, {reps = 20})
    assert.are.same({{ms1 = 1, ms64 = 10}, {ms1 = 1, ms64 = 5}}, t)
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

describe("lop.compare_many", function()
  -- The row whose first cell is `name`, split at the gaps of two or more spaces.
  local function row(text, name)
    for line in text:gmatch("[^\n]+") do
      if line:sub(1, #name + 2) == name .. "  " then
        local cells = {}
        for cell in (line .. "  "):gmatch("(.-)%s%s+") do cells[#cells + 1] = cell end
        return cells
      end
    end
  end

  it("gives each entry a row with its ratios against the first", function()
    local first = {top1 = 0.9, params = 400, flops = 2000, ms1 = 2, ms64 = 8}
    local second = {top1 = 0.85, params = 100, flops = 500, ms1 = 0.5, ms64 = 4}
    local third = {top1 = 0.95, params = 300, flops = 1000, ms1 = 4, ms64 = 10}
    local text, m = lop.compare_many({first, second, third},
                                     {names = {"base", "half", "more"}})
    assert.are.same({first, second, third}, m)
    assert.are.same({"base", "90.00%", "400", "2.0K", "2.000 ms", "8.000 ms"},
                    row(text, "base"), text)
    assert.are.same({"half", "85.00%", "-5.00 pt", "100", "4.00x", "500", "4.00x",
                     "0.500 ms", "4.00x", "4.000 ms", "2.00x"}, row(text, "half"), text)
    assert.are.same({"more", "95.00%", "+5.00 pt", "300", "1.33x", "1.0K", "2.00x",
                     "4.000 ms", "0.50x", "10.000 ms", "0.80x"}, row(text, "more"), text)
    assert.truthy(text:find("ratios are base/row", 1, true), text)
  end)

  it("measures and times the networks among the entries, and drops a missing top-1",
     function()
    local planted = {top1 = 0.5, params = 40, flops = 2592, ms1 = 1, ms64 = 2}
    local text, m = lop.compare_many({planted, tiny(2), tiny(1)},
                                     {names = {"four", "two", "one"}, reps = 3})
    assert.are.same({20, 1296}, {m[2].params, m[2].flops})
    assert.are.same({10, 648}, {m[3].params, m[3].flops})
    assert.is_true(m[2].ms1 > 0 and m[2].ms64 > 0 and m[3].ms1 > 0 and m[3].ms64 > 0)
    assert.is_nil(text:find("top-1", 1, true), text)   -- the networks have no top-1
    local two = row(text, "two")
    assert.are.same({"20", "2.00x", "1.3K", "2.00x"}, table.move(two, 2, 5, 1, {}), text)
    assert.are.same({"10", "4.00x", "648", "4.00x"},
                    table.move(row(text, "one"), 2, 5, 1, {}), text)
    assert.are.equal(("%.3f ms"):format(m[2].ms1), two[6])
    assert.are.equal(("%.2fx"):format(1 / m[2].ms1), two[7])
  end)

  it("refuses malformed calls", function()
    local bare = lop.measure(tiny(4), {latency = false})
    assert.has_error(function() lop.compare_many({tiny(4), bare}, {names = {"x", "y"}}) end,
      "lop.compare_many: entry 2 is a measurement without latency (lop.measure with "
      .. "latency = false)")
    assert.has_error(function() lop.compare_many({tiny(4)}, {names = {"x", "y"}}) end,
                     "lop.compare_many: names must list one name per entry (1)")
    assert.has_error(function() lop.compare_many({}, {names = {}}) end,
                     "lop.compare_many: expected a list of networks or measurements")
    assert.has_error(function() lop.compare_many({tiny(4)}, {names = {"x"}, batch = 1}) end,
                     "lop.compare_many: unknown option 'batch'")
  end)
end)

describe("lop.compare_layers", function()
  -- A stand-in network with the given nodes ({name, kind, flops per image}) whose
  -- :time answers per-node times from a list, one entry per call, logging the batch.
  local function layered(nodes, rounds, log)
    local calls = 0
    local net = {}
    function net.time(_, o)
      calls = calls + 1
      log[#log + 1] = ("%d x%d"):format(o.batch, o.reps)
      return 0, rounds[calls]
    end
    function net.nodes()
      local out = {}
      for _, n in ipairs(nodes) do
        out[#out + 1] = {name = n[1], kind = n[2], flops = function() return n[3] end}
      end
      return out
    end
    return net
  end

  it("takes each node's fastest round and names the layers short of their FLOPs cut",
     function()
    local log = {}
    local a = layered({{"conv", "conv2d", 400}, {"relu", "relu", 100}}, {
      {conv = 10, relu = 2}, {conv = 12, relu = 2}, {conv = 11, relu = 2},
      {conv = 50, relu = 2}, {conv = 9, relu = 2}}, log)
    local b = layered({{"conv", "conv2d", 100}, {"relu", "relu", 50}, {"gap", "gap", 0}}, {
      {conv = 5, relu = 1, gap = 0.5}, {conv = 5, relu = 1, gap = 0.5},
      {conv = 6, relu = 1, gap = 0.5}, {conv = 4, relu = 1, gap = 0.5},
      {conv = 5, relu = 1, gap = 0.5}}, log)
    local text, ms = lop.compare_layers(a, b, {batch = 8, reps = 3})
    assert.are.same({before = 9, after = 4}, ms.conv)
    assert.are.same({before = 2, after = 1}, ms.relu)
    assert.are.same({after = 0.5}, ms.gap)
    assert.are.same({"8 x3", "8 x3", "8 x3", "8 x3", "8 x3", "8 x3", "8 x3", "8 x3", "8 x3",
                     "8 x3"}, log)
    -- conv: 9 / 4 = 2.25x faster for 4x fewer FLOPs, so 4 - 9 / 4 = 1.75 ms short; relu
    -- is exactly as much faster as it is cheaper, and gap has no "before"
    assert.truthy(text:find("conv%s+conv2d%s+9.000%s+4.000%s+2.25x%s+4.00x"), text)
    assert.truthy(text:find("gap%s+gap%s+-%s+0.500%s+-"), text)
    assert.truthy(text:find("furthest short of their FLOPs cut: conv 1.750 ms\n", 1, true), text)
  end)

  it("refuses what is not two networks", function()
    local net = lop.net{input = {1, 4, 4}}
    assert.has_error(function() lop.compare_layers(net, 7) end,
                     "lop.compare_layers: entry 2 is not a network (number)")
    assert.has_error(function() lop.compare_layers(net, net, {rounds = 2}) end,
                     "lop.compare_layers: unknown option 'rounds'")
  end)
end)

describe("scripts/tools/profile_layers.lua", function()
  local LOPPER = os.getenv("LOPPER") or "build/lopper"
  local function run(args)
    local p = io.popen(LOPPER .. " scripts/tools/profile_layers.lua " .. args .. " 2>&1")
    local out = p:read("a")
    return p:close() == true, out
  end

  it("prints the per-layer table of two saved models, and wants exactly two", function()
    local paths = {}
    for i, width in ipairs{4, 2} do
      local net = lop.net{input = {1, 6, 6}}
      net:conv2d("conv", "input", {out = width, kernel = 3, pad = 1})
      paths[i] = os.tmpname() .. ".lop"
      net:save(paths[i])
    end
    local ok, out = run(("%s %s --batch 2 --reps 1"):format(paths[1], paths[2]))
    assert.is_true(ok, out)
    assert.truthy(out:find("conv%s+conv2d%s+[%d.]+%s+[%d.]+%s+[%d.]+x%s+2.00x"), out)
    ok, out = run(paths[1])
    assert.is_false(ok)
    assert.truthy(out:find("expected two model files, BEFORE.lop AFTER.lop (got 1)", 1, true),
                  out)
    for _, p in ipairs(paths) do os.remove(p) end
  end)
end)
