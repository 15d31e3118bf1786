-- bench_pruned.lua - issue 18's pruned-network target, re-measured with the engine of
-- this checkout: for every row of docs/results.md, the batch-64 speed-up of the pruned
-- model over its original should be at least 0.9 of the FLOPs cut.
--
-- The pruned models of those runs (build/results/*.lop) took hours to make, but a
-- network's speed depends only on its layer widths, not its weights.  So each distinct
-- pruned shape is made again cheaply: the row's own recipe command (from
-- docs/results/NAME.lua) with no fine-tuning, on a small subset of the data - the keep
-- counts come from the command's options, not from the data; automatic widths (the
-- generic recipe's, and any recipe's --widths auto) do come from the data, so those
-- rows keep their calibration images (a few minutes each, once) - and the result must
-- have exactly the row's recorded "after" parameters and FLOPs, or the bench stops.
-- Every convolution's width is checked against the row's plot
-- (docs/results/NAME.widths.svg) too.  Rows with the same parameters, FLOPs and plotted
-- widths share one shape (the fine-tuned _ft rows and the keep-0.5 sweeps are
-- ThiNet's shape) and one measurement.  Models are kept under build/bench/pruned/, so
-- a second run only times.
--
-- Timing follows docs/performance.md "Measuring latency": each original and its pruned
-- shapes in alternation (lop.latency), each figure the fastest pass.  Threads: as
-- LOP_THREADS says (docs/results.md was measured with LOP_THREADS=1).
local lop = require "lopper"

local opt = lop.options(arg, {
  reps = {default = 40, type = "int", min = 5,
          help = "timed batch-1 passes per network (half as many at batch 64)"},
  dir = {default = "build/bench/pruned", help = "where the recreated models are kept"},
}, {description = "Speed-up of every docs/results.md pruning run against its FLOPs cut."})

local TARGET = 0.9
-- The recipe run again: no fine-tuning, calibration on a few images, quick closing
-- measurement (the options given last win).
local QUICK = "--finetune 0 --final 0 --train_size 500 --test_size 100 --images 50 "
              .. "--reps 1 --no-progress"
-- The generic recipe (scripts/prune.lua) may choose its widths from the data (--widths
-- auto), so it keeps its calibration as recorded and drops only the fine-tuning.
local QUICK_PRUNE = "--epochs 0 --step_epochs 0 --hints 0 --distill 0 --reps 1 --no-progress"
-- A paper recipe with --widths auto chooses them from the original's statistics on its
-- calibration images, before any fine-tuning: those stay as recorded.
local QUICK_AUTO = "--finetune 0 --final 0 --test_size 100 --reps 1 --no-progress"

io.stdout:setvbuf("line")

-- The rows of docs/results.md's table, in its order.
local function result_rows()
  local rows = {}
  for line in io.lines("docs/results.md") do
    local name = line:match("^| ([%w_]+) | %d%d%d%d%-")
    if name then rows[#rows + 1] = dofile("docs/results/" .. name .. ".lua") end
  end
  if #rows == 0 then error("bench_pruned: no result rows in docs/results.md", 0) end
  return rows
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- The widths a row's plot (docs/results/NAME.widths.svg) draws: per convolution, the
-- bar heights before and after pruning.
local function plotted_widths(name)
  local f = assert(io.open("docs/results/" .. name .. ".widths.svg"))
  local svg = f:read("a")
  f:close()
  local bars = {}
  for before, after, conv in svg:gmatch('height="([%d.]+)" fill="#1f77b4"/>\n<rect [^>]-'
                                        .. 'height="([%d.]+)" fill="#d62728"/>\n<text [^>]->'
                                        .. '([%w_]+)</text>') do
    bars[#bars + 1] = {conv = conv, before = tonumber(before), after = tonumber(after)}
  end
  if #bars == 0 then error("bench_pruned: no bars in " .. name .. ".widths.svg", 0) end
  return bars
end

local function widths_key(bars)
  local t = {}
  for i, b in ipairs(bars) do t[i] = b.conv .. "=" .. b.after end
  return table.concat(t, ",")
end

-- Shapes by recorded (params, FLOPs) and plotted widths, each with the rows that share it and the first
-- row whose command runs a recipe on a shipped model (fine-tuning runs start from
-- another run's model and change no width).
local function shapes_of(rows)
  local shapes, by_key = {}, {}
  for _, r in ipairs(rows) do
    local bars = plotted_widths(r.name)
    local key = ("%d/%d/%s"):format(r.after.params, math.tointeger(r.after.flops),
                                    widths_key(bars))
    local s = by_key[key]
    if not s then
      s = {rows = {}, params = r.after.params, flops = r.after.flops, bars = bars}
      by_key[key] = s
      shapes[#shapes + 1] = s
    end
    s.rows[#s.rows + 1] = r
    if not s.recipe and r.command:match("%-%-model models/") then s.recipe = r end
  end
  for _, s in ipairs(shapes) do
    if not s.recipe then
      error("bench_pruned: no recipe command among " .. s.rows[1].name .. "'s shape", 0)
    end
    s.original = s.recipe.command:match("%-%-model (%S+)")
    s.path = ("%s/%s.lop"):format(opt.dir, s.recipe.name)
  end
  return shapes
end

-- The recreated model must be the row's: its params and FLOPs exactly, and every
-- convolution as wide as the row's plot draws it (bar heights scale with channels).
local function check(s, net)
  if net:params() ~= s.params or net:flops() ~= s.flops then
    error(("bench_pruned: %s: recreated %s has %d params and %.0f FLOPs, the row recorded "
           .. "%d and %.0f"):format(s.recipe.name, s.path, net:params(), net:flops(),
           s.params, s.flops), 0)
  end
  local original = lop.load(s.original)
  for _, b in ipairs(s.bars) do
    local want = b.after / b.before * original:node(b.conv):shape()[1]
    local got = net:node(b.conv):shape()[1]
    if math.abs(want - got) > 0.1 then
      error(("bench_pruned: %s: recreated %s has %d channels in %s, the row's plot %.1f")
            :format(s.recipe.name, s.path, got, b.conv, want), 0)
    end
  end
  original:close()
  return net
end

local function recreate(s)
  if exists(s.path) then return check(s, lop.load(s.path)) end
  local cmd = s.recipe.command:gsub("%-%-out %S+", "")
  local quick = cmd:match("scripts/prune%.lua") and QUICK_PRUNE
                or cmd:match("%-%-widths auto") and QUICK_AUTO or QUICK
  cmd = ("%s %s --out '%s' > '%s.log' 2>&1"):format(cmd, quick, s.path, s.path)
  print(("recreating %s's shape: %s"):format(s.recipe.name, cmd))
  if os.execute(cmd) ~= true then
    error(("bench_pruned: the recipe failed (see %s.log): %s"):format(s.path, cmd), 0)
  end
  return check(s, lop.load(s.path))
end

local rows = result_rows()
local shapes = shapes_of(rows)
os.execute(("mkdir -p '%s'"):format(opt.dir))
local t0 = lop.clock()
for _, s in ipairs(shapes) do s.net = recreate(s) end

-- Time each original with its shapes, in alternation.
local originals, order = {}, {}
for _, s in ipairs(shapes) do
  if not originals[s.original] then
    originals[s.original] = {net = lop.load(s.original), shapes = {}}
    order[#order + 1] = s.original
  end
  table.insert(originals[s.original].shapes, s)
end
for _, path in ipairs(order) do
  local o = originals[path]
  local nets = {o.net}
  for _, s in ipairs(o.shapes) do nets[#nets + 1] = s.net end
  local t = lop.latency(nets, {reps = opt.reps})
  for i, s in ipairs(o.shapes) do
    s.b64 = t[1].ms64 / t[i + 1].ms64
    s.b1 = t[1].ms1 / t[i + 1].ms1
    s.cut = o.net:flops() / s.flops
  end
  o.ms64 = t[1].ms64
end

local threads = os.getenv("LOP_THREADS")
print(("\nPruned networks, %s: batch-64 speed-up against FLOPs cut (target >= %.1f), the "
       .. "original and its recreated shapes timed in alternation, fastest of %d passes at "
       .. "batch 64 (%d at batch 1)"):format(threads and ("LOP_THREADS=" .. threads)
       or "engine threads one per core", TARGET, opt.reps // 2, opt.reps))
print("| row | FLOPs cut | b64 speed-up | speed-up / FLOPs cut | target 0.9 | b1 speed-up | measurement |")
print("|---|---|---|---|---|---|---|")
for _, r in ipairs(rows) do
  for _, s in ipairs(shapes) do
    for _, sr in ipairs(s.rows) do
      if sr == r then
        local share = s.recipe == r and "own" or ("shares " .. s.recipe.name .. "'s (same widths)")
        print(("| %s | %.2fx | %.2fx | %.2f | %s | %.2fx | %s |"):format(r.name, s.cut, s.b64,
              s.b64 / s.cut, s.b64 / s.cut >= TARGET and "met" or "missed", s.b1, share))
      end
    end
  end
end
local base = {}
for _, path in ipairs(order) do
  base[#base + 1] = ("%s %.1f ms"):format(path, originals[path].ms64)
end
print(("(originals at batch 64: %s; %d shapes for %d rows; %.0f s)"):format(
  table.concat(base, ", "), #shapes, #rows, lop.clock() - t0))
