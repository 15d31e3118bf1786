-- report.lua - the numbers a pruning result is judged by, in tables a person reads:
-- lop.measure (top-1, params, FLOPs, measured latency at batch 1 and 64), lop.report
-- (the same per node), lop.compare (two networks side by side with ratios) and
-- lop.compare_many (a row per network, ratios against the first).
-- FLOPs count a multiply-add as 2; latency is the fastest of repeated forward passes
-- (net:time: on a shared machine every slower pass also times the other processes).
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

local function fastest(values) return math.min(table.unpack(values)) end

-- Refuses (naming the caller fn) what is not a non-empty list of networks.
local function check_nets(fn, nets)
  if type(nets) ~= "table" or #nets == 0 then
    error(fn .. ": expected a list of networks", 3)
  end
  for i, net in ipairs(nets) do
    local ok, time = pcall(function() return net.time end)
    if not ok or type(time) ~= "function" then
      error(("%s: entry %d is not a network (%s)"):format(fn, i, type(net)), 3)
    end
  end
end

-- lop.latency({net, ...}, {reps = 20}) -> {{ms1 =, ms64 =}, ...}: forward latency at
-- batch 1 (reps passes) and batch 64 (reps / 2 passes, at least one a round), in ms.
-- The passes are spread over 5 rounds that time every net in turn; each figure is the
-- fastest pass of all rounds, so a burst of load during one net's round does not tip
-- a comparison.
function lop.latency(nets, opts)
  opts = check_opts("lop.latency", opts, {reps = true})
  local reps = opts.reps or 20
  check_nets("lop.latency", nets)
  local out = {}
  for i = 1, #nets do out[i] = {ms1 = {}, ms64 = {}} end
  for _ = 1, ROUNDS do
    for i, net in ipairs(nets) do
      table.insert(out[i].ms1, (net:time{batch = 1, reps = math.ceil(reps / ROUNDS)}))
      table.insert(out[i].ms64, (net:time{batch = 64,
                                          reps = math.ceil(math.max(1, reps // 2 / ROUNDS))}))
    end
  end
  for i = 1, #nets do out[i] = {ms1 = fastest(out[i].ms1), ms64 = fastest(out[i].ms64)} end
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
  lines[#lines + 1] = "(FLOPs count a multiply-add as 2; latency: fastest of repeated runs)"
  return table.concat(lines, "\n")
end

-- Measurements of a list of entries, each a network or a measurement from lop.measure:
-- the networks are measured (top-1 on opts.data) and timed in alternation.  nil and
-- the index of a measurement that has no latency.
local function measure_all(entries, opts)
  local out, nets, at = {}, {}, {}
  for i, x in ipairs(entries) do
    if type(x) == "table" then
      out[i] = x
    else
      out[i] = lop.measure(x, {data = opts.data, latency = false})
      at[#nets + 1] = i
      nets[#nets + 1] = x
    end
  end
  if #nets > 0 then
    for k, t in ipairs(lop.latency(nets, {reps = opts.reps})) do
      out[at[k]].ms1, out[at[k]].ms64 = t.ms1, t.ms64
    end
  end
  for i, m in ipairs(out) do
    if not m.ms1 then return nil, i end
  end
  return out
end

local function times(x, y) return y > 0 and ("%.2fx"):format(x / y) or "-" end
local function percent(v) return ("%.2f%%"):format(100 * v) end
local function points(x, y) return ("%+.2f pt"):format(100 * (y - x)) end
local function ms(v) return ("%.3f ms"):format(v) end

-- lop.compare(before, after, {data = ds, reps = 20, names = {"before", "after"}})
-- -> table string, and the two measurements.  before and after are networks (timed
-- in alternation) or measurements from lop.measure.  Ratios read "before / after", so
-- 3.0x means three times fewer FLOPs or a three times faster forward pass.
function lop.compare(a, b, opts)
  opts = check_opts("lop.compare", opts, {data = true, reps = true, names = true})
  local names = opts.names or {"before", "after"}
  local m = measure_all({a, b}, opts)
  if not m then
    error("lop.compare: a measurement without latency (lop.measure with latency = false)", 2)
  end
  local ma, mb = m[1], m[2]
  local rows = {("%-20s %12s %12s %10s"):format("", names[1], names[2], "ratio")}
  local function row(label, x, y, fmt, ratio)
    rows[#rows + 1] = ("%-20s %12s %12s %10s"):format(label, fmt(x), fmt(y), ratio)
  end
  if ma.top1 and mb.top1 then
    row("top-1", ma.top1, mb.top1, percent, points(ma.top1, mb.top1))
  end
  row("params", ma.params, mb.params, si, times(ma.params, mb.params))
  row("FLOPs", ma.flops, mb.flops, si, times(ma.flops, mb.flops))
  row("latency, batch 1", ma.ms1, mb.ms1, ms, times(ma.ms1, mb.ms1))
  row("latency, batch 64", ma.ms64, mb.ms64, ms, times(ma.ms64, mb.ms64))
  rows[#rows + 1] = "(FLOPs count a multiply-add as 2; ratios are before/after; latency is " ..
                    "the fastest of repeated forward passes)"
  return table.concat(rows, "\n"), ma, mb
end

-- lop.compare_many({net or measurement, ...}, {names = {...}, data = ds, reps = 20})
-- -> table string, and the measurements: one row per entry (named by names[i]) with
-- top-1 (when every entry has one), params, FLOPs and latency at batch 1 and 64, each
-- beside its ratio against the first entry (first / row, so 3.0x means three times
-- fewer FLOPs; top-1 as the change in points).  The networks among the entries are
-- timed in alternation, all of them in each round.
function lop.compare_many(entries, opts)
  opts = check_opts("lop.compare_many", opts, {data = true, reps = true, names = true})
  if type(entries) ~= "table" or #entries == 0 then
    error("lop.compare_many: expected a list of networks or measurements", 2)
  end
  local names = opts.names
  if type(names) ~= "table" or #names ~= #entries then
    error(("lop.compare_many: names must list one name per entry (%d)"):format(#entries), 2)
  end
  local m, bare = measure_all(entries, opts)
  if not m then
    error(("lop.compare_many: entry %d is a measurement without latency (lop.measure with "
           .. "latency = false)"):format(bare), 2)
  end
  local top1 = true
  for _, x in ipairs(m) do top1 = top1 and x.top1 ~= nil end
  local first = m[1]
  -- columns: a title, the value of a measurement, its ratio against the first
  local columns = {}
  if top1 then
    columns[1] = {"top-1", function(x) return percent(x.top1) end,
                  function(x) return points(first.top1, x.top1) end}
  end
  for _, q in ipairs{{"params", "params", si}, {"FLOPs", "flops", si},
                     {"batch 1", "ms1", ms}, {"batch 64", "ms64", ms}} do
    local title, key, fmt = q[1], q[2], q[3]
    columns[#columns + 1] = {title, function(x) return fmt(x[key]) end,
                             function(x) return times(first[key], x[key]) end}
  end
  local cells = {{""}}
  for _, c in ipairs(columns) do table.move({c[1], ""}, 1, 2, #cells[1] + 1, cells[1]) end
  for i, x in ipairs(m) do
    local row = {names[i]}
    for _, c in ipairs(columns) do
      table.move({c[2](x), i == 1 and "" or c[3](x)}, 1, 2, #row + 1, row)
    end
    cells[#cells + 1] = row
  end
  local width = {}
  for _, row in ipairs(cells) do
    for j, v in ipairs(row) do width[j] = math.max(width[j] or 0, #v) end
  end
  local lines = {}
  for _, row in ipairs(cells) do
    local out = {("%-" .. width[1] .. "s"):format(row[1])}
    for j = 2, #row do out[j] = ("%" .. width[j] .. "s"):format(row[j]) end
    lines[#lines + 1] = table.concat(out, "  "):gsub("%s+$", "")
  end
  lines[#lines + 1] = ("(FLOPs count a multiply-add as 2; ratios are %s/row; batch 1 and "
                       .. "batch 64: latency, the fastest of repeated forward passes)")
                      :format(names[1])
  return table.concat(lines, "\n"), m
end

-- lop.compare_layers(before, after, {batch = 64, reps = 5}) -> table string, and
-- {node name -> {before =, after = ms}}: where a pruned network's speed-up comes from.
-- The two networks are timed in turn over 5 rounds of reps passes (each node's fastest
-- pass).  Each node of either network gets a row - latency, speed-up, FLOPs cut and
-- GFLOP/s on both sides - and the rows end with the nodes whose speed-up falls
-- furthest short of their FLOPs cut, by the ms that costs (measured after minus
-- before / FLOPs cut).
function lop.compare_layers(a, b, opts)
  opts = check_opts("lop.compare_layers", opts, {batch = true, reps = true})
  check_nets("lop.compare_layers", {a, b})
  local batch, reps = opts.batch or 64, opts.reps or 5
  local samples = {{}, {}}
  for _ = 1, ROUNDS do
    for i, net in ipairs{a, b} do
      local _, per_node = net:time{batch = batch, reps = reps}
      for name, ms in pairs(per_node) do
        samples[i][name] = samples[i][name] or {}
        table.insert(samples[i][name], ms)
      end
    end
  end
  local ms = {}
  for i, side in ipairs{"before", "after"} do
    for name, v in pairs(samples[i]) do
      ms[name] = ms[name] or {}
      ms[name][side] = fastest(v)
    end
  end
  local order, seen, flops = {}, {}, {}
  for i, net in ipairs{a, b} do
    for _, h in ipairs(net:nodes()) do
      if not seen[h.name] then order[#order + 1], seen[h.name] = h, true end
      flops[h.name] = flops[h.name] or {}
      flops[h.name][i] = h:flops() * batch
    end
  end
  local function cell(fmt, v) return v and fmt:format(v) or "-" end
  local function ms_cell(h, v)   -- 0 ms: run by the node before it, fused
    return v == 0 and h.kind ~= "input" and "fused" or cell("%.3f", v)
  end
  local function ratio(x, y) return x and y and y > 0 and x / y or nil end
  local function gflops(f, msec)
    return f and msec and msec > 0 and f / (1e6 * msec) or nil
  end
  local lines = {("%-14s %-15s %10s %10s %9s %9s %9s %9s"):format("node", "kind",
                 ("ms@%d"):format(batch), "after", "speed-up", "FLOPs cut", "GFLOP/s", "after")}
  local short = {}
  for _, h in ipairs(order) do
    local t, f = ms[h.name] or {}, flops[h.name]
    local cut = ratio(f[1], f[2])
    lines[#lines + 1] = ("%-14s %-15s %10s %10s %9s %9s %9s %9s"):format(h.name, h.kind,
      ms_cell(h, t.before), ms_cell(h, t.after), cell("%.2fx", ratio(t.before, t.after)),
      cell("%.2fx", cut), cell("%.1f", gflops(f[1], t.before)),
      cell("%.1f", gflops(f[2], t.after)))
    if cut and t.before and t.after then
      short[#short + 1] = {name = h.name, lost = t.after - t.before / cut}
    end
  end
  table.sort(short, function(x, y) return x.lost > y.lost end)
  local worst = {}
  for i = 1, math.min(5, #short) do
    if short[i].lost > 0 then
      worst[#worst + 1] = ("%s %.3f ms"):format(short[i].name, short[i].lost)
    end
  end
  lines[#lines + 1] = ("furthest short of their FLOPs cut: %s"):format(
    #worst > 0 and table.concat(worst, ", ") or "none")
  lines[#lines + 1] = "(FLOPs count a multiply-add as 2; ratios are before/after; latency is "
                      .. "the fastest of repeated forward passes; \"-\": not in that "
                      .. "network; \"fused\": computed by a convolution, batchnorm or add "
                      .. "before it)"
  return table.concat(lines, "\n"), ms
end
