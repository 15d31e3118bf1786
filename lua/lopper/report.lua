-- report.lua - the numbers a pruning result is judged by, in tables a person reads:
-- lop.measure (top-1, params, FLOPs, measured latency at batch 1 and 64), lop.report
-- (the same per node) and lop.compare (two networks side by side with ratios).
-- FLOPs count a multiply-add as 2; latency is the median of repeated forward passes.
-- Networks compared are timed in alternation (lop.latency), because on a shared
-- machine the speed of the same pass drifts by tens of percent within minutes.
local lop = ...

local function si(x)
  if x >= 1e9 then return ("%.2fG"):format(x / 1e9) end
  if x >= 1e6 then return ("%.2fM"):format(x / 1e6) end
  if x >= 1e3 then return ("%.1fK"):format(x / 1e3) end
  return ("%d"):format(x)
end

local function check_opts(fn, opts, known)
  opts = opts or {}
  if type(opts) ~= "table" then error(fn .. ": options must be a table", 3) end
  for k in pairs(opts) do
    if not known[k] then error(("%s: unknown option '%s'"):format(fn, tostring(k)), 3) end
  end
  return opts
end

local ROUNDS = 5

local function median(values)
  table.sort(values)
  local n = #values
  return n % 2 == 1 and values[(n + 1) // 2] or (values[n // 2] + values[n // 2 + 1]) / 2
end

-- lop.latency({net, ...}, {reps = 20}) -> {{ms1 =, ms64 =}, ...}: forward latency at
-- batch 1 (reps passes) and batch 64 (reps / 2 passes, at least one a round), in ms.
-- The passes are spread over 5 rounds that time every net in turn; each figure is the
-- median of its rounds' medians.  (One batch-64 pass a round was too few: on a shared
-- machine the same pair of networks then gave speed-ups 0.69-0.92 of the FLOPs cut.)
function lop.latency(nets, opts)
  opts = check_opts("lop.latency", opts, {reps = true})
  local reps = opts.reps or 20
  if type(nets) ~= "table" or #nets == 0 then
    error("lop.latency: expected a list of networks", 2)
  end
  for i, net in ipairs(nets) do
    local ok, time = pcall(function() return net.time end)
    if not ok or type(time) ~= "function" then
      error(("lop.latency: entry %d is not a network (%s)"):format(i, type(net)), 2)
    end
  end
  local out = {}
  for i = 1, #nets do out[i] = {ms1 = {}, ms64 = {}} end
  for _ = 1, ROUNDS do
    for i, net in ipairs(nets) do
      table.insert(out[i].ms1, (net:time{batch = 1, reps = math.ceil(reps / ROUNDS)}))
      table.insert(out[i].ms64, (net:time{batch = 64,
                                          reps = math.ceil(math.max(1, reps // 2 / ROUNDS))}))
    end
  end
  for i = 1, #nets do out[i] = {ms1 = median(out[i].ms1), ms64 = median(out[i].ms64)} end
  return out
end

-- lop.measure(net, {data = ds, reps = 20, latency = true}) -> {params, flops, ms1, ms64,
-- top1, loss} (top1/loss only with data; ms1/ms64 unless latency = false).
function lop.measure(net, opts)
  opts = check_opts("lop.measure", opts, {data = true, reps = true, latency = true})
  local m = {params = net:params(), flops = net:flops()}
  if opts.latency ~= false then
    local t = lop.latency({net}, {reps = opts.reps})[1]
    m.ms1, m.ms64 = t.ms1, t.ms64
  end
  if opts.data then
    local e = lop.evaluate(net, opts.data)
    m.top1, m.loss = e.top1, e.loss
  end
  return m
end

-- lop.report(net, {batch = 64, reps = 10}) -> a per-node table (string): params,
-- FLOPs and measured latency of every node, and the totals.
function lop.report(net, opts)
  opts = check_opts("lop.report", opts, {batch = true, reps = true})
  local batch, reps = opts.batch or 64, opts.reps or 10
  local total, per_node = net:time{batch = batch, reps = reps}
  local lines = {("%-14s %-15s %10s %10s %10s %6s"):format("node", "kind", "params", "FLOPs",
                 ("ms@%d"):format(batch), "%time")}
  for _, h in ipairs(net:nodes()) do
    local ms = per_node[h.name] or 0
    lines[#lines + 1] = ("%-14s %-15s %10s %10s %10.3f %5.1f%%"):format(h.name, h.kind,
      si(h:params()), si(h:flops()), ms, total > 0 and 100 * ms / total or 0)
  end
  lines[#lines + 1] = ("%-30s %10s %10s %10.3f"):format("total", si(net:params()),
    si(net:flops()), total)
  lines[#lines + 1] = "(FLOPs count a multiply-add as 2; latency: median of repeated runs)"
  return table.concat(lines, "\n")
end

-- lop.compare(before, after, {data = ds, reps = 20, names = {"before", "after"}})
-- -> table string, and the two measurements.  before and after are networks (timed
-- in alternation) or measurements from lop.measure.  Ratios read "before / after", so
-- 3.0x means three times fewer FLOPs or a three times faster forward pass.
function lop.compare(a, b, opts)
  opts = check_opts("lop.compare", opts, {data = true, reps = true, names = true})
  local names = opts.names or {"before", "after"}
  local both = type(a) ~= "table" and type(b) ~= "table"
  local function measured(x)
    if type(x) == "table" then return x end
    return lop.measure(x, {data = opts.data, reps = opts.reps, latency = not both})
  end
  local ma, mb = measured(a), measured(b)
  if both then
    local t = lop.latency({a, b}, {reps = opts.reps})
    ma.ms1, ma.ms64, mb.ms1, mb.ms64 = t[1].ms1, t[1].ms64, t[2].ms1, t[2].ms64
  end
  if not (ma.ms1 and mb.ms1) then
    error("lop.compare: a measurement without latency (lop.measure with latency = false)", 2)
  end
  local rows = {("%-20s %12s %12s %10s"):format("", names[1], names[2], "ratio")}
  local function row(label, x, y, fmt, ratio)
    rows[#rows + 1] = ("%-20s %12s %12s %10s"):format(label, fmt(x), fmt(y), ratio)
  end
  if ma.top1 and mb.top1 then
    row("top-1", ma.top1, mb.top1, function(v) return ("%.2f%%"):format(100 * v) end,
        ("%+.2f pt"):format(100 * (mb.top1 - ma.top1)))
  end
  local function times(x, y) return y > 0 and ("%.2fx"):format(x / y) or "-" end
  row("params", ma.params, mb.params, si, times(ma.params, mb.params))
  row("FLOPs", ma.flops, mb.flops, si, times(ma.flops, mb.flops))
  local ms = function(v) return ("%.3f ms"):format(v) end
  row("latency, batch 1", ma.ms1, mb.ms1, ms, times(ma.ms1, mb.ms1))
  row("latency, batch 64", ma.ms64, mb.ms64, ms, times(ma.ms64, mb.ms64))
  rows[#rows + 1] = "(FLOPs count a multiply-add as 2; ratios are before/after; latency is " ..
                    "the median of repeated forward passes)"
  return table.concat(rows, "\n"), ma, mb
end
