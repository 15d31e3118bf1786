-- widths.lua - how many channels each pruned group keeps, chosen for a budget instead
-- of one shared fraction: a FLOPs target or a latency measured on this machine.  Two
-- tables drive it, both cheap:
--   - sensitivity: for every group, the reconstruction error of its readers for every
--     kept count, all from one ThiNet order (lop.select.thinet_order, then
--     lop.select.errors: one factorisation per reader, not one fit per count);
--   - cost: what each group saves at each candidate width - FLOPs counted, or the
--     measured milliseconds of the layers it touches (net:time per node, the group
--     pruned alone on a copy).
-- A greedy allocation in the style of NetAdapt / HALP then narrows, step after step,
-- the group whose next narrowing costs the least error per saving, until the savings
-- meet the budget; since savings of neighbouring groups do not simply add (a conv
-- between two narrowed groups shrinks by the product), the result is measured as a
-- whole and the allocation rerun with the shortfall until it lands within 5% (under a
-- FLOPs target, at 95-100% of it, and while rounds are left, closer: 99-100%).  A
-- target above what the whole network costs keeps every group whole.  Latency is
-- measured as a ratio to the unpruned network's, the two timed in alternation: this
-- machine's speed drifts by a quarter within minutes, the ratio far less.
--
--   local w = lop.widths.choose(original, data.train, plan, {latency_ms = 20, batch = 64})
--   pruner.prune(net, data.train, plan, w.counts, {original = original})
local lop = ...

local widths = {}
lop.widths = widths

-- Candidate counts of entry e, from all channels down: `steps` equal steps (multiples
-- of its slices, at least one per slice).
local function grid(e, steps)
  local per = e.channels // e.slices
  local step = math.max(1, math.ceil(per / steps))
  local counts = {}
  for k = per, 1, -step do counts[#counts + 1] = k * e.slices end
  if counts[#counts] ~= e.slices then counts[#counts + 1] = e.slices end
  return counts
end

local function pruned_entries(plan)
  local list = {}
  for i, e in ipairs(plan) do if e.consumer then list[#list + 1] = i end end
  return list
end

-- Measured loss sensitivity (how.sensitivity = "loss"): for every pruned entry, the
-- group pruned alone on a clone of net at 8 equal steps of its width - sampled,
-- selected (how.solver, default lasso) and refitted to net's outputs as the recipe
-- prunes - and the rise of the mean cross-entropy over the first how.loss_images (2000)
-- images of data.  Counts in between are interpolated linearly, and the table made
-- never to fall as channels go (the measurements are noisy where a cut costs nothing).
local function loss_sensitivity(net, data, plan, how)
  local log = how.log or print
  local measured = data:subset(1, math.min(#data, how.loss_images or 2000))
  local base = lop.evaluate(net, measured).loss
  local errors = {}
  for _, i in ipairs(pruned_entries(plan)) do
    local e, t0 = plan[i], lop.clock()
    local counts, rise = grid(e, 8), {}
    for _, k in ipairs(counts) do
      rise[k] = 0
      if k < e.channels then
        local copy <close> = net:clone()
        lop.pruner.prune_group(copy, data, e, k, {images = how.images, points = how.points,
                               seed = how.seed, reference = net, solver = how.solver,
                               refit = how.refit, warn = function() end}, {})
        rise[k] = math.max(0, lop.evaluate(copy, measured).loss - base)
      end
    end
    table.sort(counts)
    local at = {}
    for k = 1, e.channels do
      local lo, hi
      for _, c in ipairs(counts) do
        if c <= k then lo = c end
        if c >= k and not hi then hi = c end
      end
      at[k] = not lo and rise[hi] or lo == hi and rise[lo]
              or rise[lo] + (rise[hi] - rise[lo]) * (k - lo) / (hi - lo)
    end
    for k = e.channels - 1, 1, -1 do at[k] = math.max(at[k], at[k + 1]) end
    errors[i] = at
    log(("  loss sensitivity of %s: %d widths, %.3f at %d of %d channels, %.0f s")
        :format(e.producer, #counts - 1, at[counts[#counts // 2 + 1]],
                counts[#counts // 2 + 1], e.channels, lop.clock() - t0))
  end
  return errors
end

-- widths.sensitivity(net, data, plan, {images = 500, points = 10, seed = 1, refit =
-- "weights", sensitivity = "reconstruction" | "loss", loss_images = 2000, solver,
-- log}) -> errors[i][k]: for every pruned plan entry i, when k channels are kept (k =
-- 1..channels), the sum over its readers of the relative reconstruction error, the
-- channels ranked once by ThiNet's greedy order on the readers' combined statistics;
-- or, with sensitivity = "loss", the measured rise of the network's loss
-- (loss_sensitivity above: minutes where the reconstruction errors take seconds).
function widths.sensitivity(net, data, plan, how)
  how = how or {}
  local kind = how.sensitivity or "reconstruction"
  if kind == "loss" then return loss_sensitivity(net, data, plan, how) end
  if kind ~= "reconstruction" then
    error(("lop.widths: sensitivity must be \"reconstruction\" or \"loss\", got %s")
          :format(tostring(kind)), 2)
  end
  local errors = {}
  for _, i in ipairs(pruned_entries(plan)) do
    local parts, s = lop.pruner.sample_readers(net, data, plan[i], -- the net's own targets
      {images = how.images, points = how.points, seed = how.seed})
    local order = lop.select.thinet_order(s)
    local sum = {}
    for _, part in ipairs(parts) do
      for k, x in ipairs(lop.select.errors(part, order, {mode = how.refit or "weights"})) do
        sum[k] = (sum[k] or 0) + x
      end
    end
    if s ~= parts[1] then s:close() end
    for _, part in ipairs(parts) do part:close() end
    errors[i] = sum
  end
  return errors
end

-- The nodes whose cost a group's width changes: its members (producers, the layers it
-- passes through, its readers).
local function touched(e)
  local set = {}
  for _, name in ipairs(e.members) do set[name] = true end
  return set
end

-- widths.costs(net, plan, {measure = "flops" | "latency", steps = 32 for FLOPs, 8 for
-- latency (each a timed pass), batch = 64, reps = 5}) -> {grid = {[i] = counts}, saved =
-- {[i] = {[j] = saving at grid[i][j]}},
-- total = the whole net's FLOPs or ms}: each pruned entry narrowed alone on a copy.
-- Latency savings are the measured drop of the touched nodes' fastest times, made
-- non-decreasing as the group narrows (timing noise must not reward widening).
function widths.costs(net, plan, how)
  how = how or {}
  local latency = how.measure == "latency"
  local batch, reps = how.batch or 64, how.reps or 5
  local total, base = net:flops(), nil
  if latency then total, base = net:time{batch = batch, reps = reps} end
  local t = {grid = {}, saved = {}, total = total}
  for _, i in ipairs(pruned_entries(plan)) do
    local e = plan[i]
    local counts, saved = grid(e, how.steps or (latency and 8 or 32)), {0}
    local nodes = touched(e)
    for j = 2, #counts do
      local copy = lop.pruner.shape_copy(net, plan, {[i] = counts[j]})
      local s
      if latency then
        local _, per = copy:time{batch = batch, reps = reps}
        s = 0
        for name in pairs(nodes) do s = s + (base[name] or 0) - (per[name] or 0) end
      else
        s = total - copy:flops()
      end
      copy:close()
      saved[j] = math.max(s, saved[j - 1])
    end
    t.grid[i], t.saved[i] = counts, saved
  end
  return t
end

-- widths.allocate(plan, errors, costs, need) -> counts ({[i] = kept channels}): start
-- from every group whole; repeatedly take the move - one group to any narrower
-- candidate - with the least added error per added saving, until the savings reach
-- `need`.  Raises when narrowing everything to the last candidate does not.  The
-- savings are summed move by move, which rounds differently from summing each group's
-- last candidate (how a caller may have capped need): within a relative 1e-9 of need
-- counts as reaching it.
function widths.allocate(plan, errors, costs, need)
  local at, saved = {}, 0
  local entries = pruned_entries(plan)
  for _, i in ipairs(entries) do at[i] = 1 end
  while saved < need - 1e-9 * math.abs(need) do
    local best, bi, bj
    for _, i in ipairs(entries) do
      local g, s, err = costs.grid[i], costs.saved[i], errors[i]
      local j0 = at[i]
      for j = j0 + 1, #g do
        local gain = s[j] - s[j0]
        if gain > 0 then
          local ratio = (err[g[j]] - err[g[j0]]) / gain
          if not best or ratio < best then best, bi, bj = ratio, i, j end
        end
      end
    end
    if not best then
      error(("the budget needs %.4g saved, but narrowing every pruned group to its last "
             .. "candidate saves %.4g"):format(need, saved), 0)
    end
    saved = saved + costs.saved[bi][bj] - costs.saved[bi][at[bi]]
    at[bi] = bj
  end
  local counts = {}
  for _, i in ipairs(entries) do counts[i] = costs.grid[i][at[i]] end
  return counts
end

-- widths.alternate_ms(nets, batch, reps, rounds = 3) -> {ms, ...}: each net's ms per
-- forward pass at batch, the fastest of `rounds` rounds of reps passes that time the
-- nets in turn.  This
-- 2-core machine slows down by a quarter in episodes of seconds to minutes (after a
-- fine-tune, say): nets timed in one alternation see the same episodes, so their
-- ratios hold where figures taken minutes apart do not.
function widths.alternate_ms(nets, batch, reps, rounds)
  local best = {}
  for i = 1, #nets do best[i] = math.huge end
  for _ = 1, rounds or 3 do
    for i, net in ipairs(nets) do best[i] = math.min(best[i], (net:time{batch = batch, reps = reps})) end
  end
  return best
end

-- What the whole net costs with plan entries at counts (first channels): FLOPs, or its
-- latency anchored to the unpruned net's: the copy timed in alternation with net, their
-- ratio times how.reference_ms (the unpruned net's ms taken once, at the start).
local function measure(net, plan, counts, how)
  local copy = lop.pruner.shape_copy(net, plan, counts)
  local c
  if how.measure == "latency" then
    local t = widths.alternate_ms({net, copy}, how.batch or 64, how.reps or 5)
    c = t[2] / t[1] * how.reference_ms
  else
    c = copy:flops()
  end
  copy:close()
  return c
end

-- From counts measuring `got` above the target: narrow one group by one candidate at a
-- time, measuring every such move.  A move that lands at 95-100% of the target ends it
-- (the one adding the least error); otherwise the move with the least added error per
-- saving among those still above the target is taken.  For the allocations that the
-- greedy's jumps step over.  Returns counts and their cost (got again when no move
-- lands).
local function refine(net, plan, errors, costs, m, counts, got, target)
  while true do
    local landed, onward
    for i, n in pairs(counts) do
      local g, j = costs.grid[i], 1
      while g[j] ~= n do j = j + 1 end
      if g[j + 1] then
        local trial = {}
        for k, v in pairs(counts) do trial[k] = v end
        trial[i] = g[j + 1]
        local cost = measure(net, plan, trial, m)
        local added = errors[i][g[j + 1]] - errors[i][n]
        if cost <= target and cost >= 0.95 * target then
          if not landed or added < landed.added then
            landed = {added = added, counts = trial, cost = cost}
          end
        elseif cost > target and cost < got then
          local ratio = added / (got - cost)
          if not onward or ratio < onward.ratio then
            onward = {ratio = ratio, counts = trial, cost = cost}
          end
        end
      end
    end
    if landed then return landed.counts, landed.cost end
    if not onward then return counts, got end
    counts, got = onward.counts, onward.cost
  end
end

-- widths.choose(net, data, plan, how) -> {counts, cost (measured), target, total,
-- errors (the sensitivity tables), rounds, reference_ms}: per-group widths for how.flops
-- (a FLOPs target), how.latency_ms (ms at how.batch, default 64, on this machine) or
-- how.latency_fraction (that fraction of net's own latency, so a budget can be set
-- from another net's timing in alternation with net), from widths.sensitivity
-- (how.images, points, seed, refit) and widths.costs (how.steps, reps).  Latencies are
-- anchored (see measure): net's ms is taken once (reference_ms, the fastest of three
-- timings) and every candidate is timed against net in alternation.  The allocation is
-- measured as a whole and redone with the shortfall added to
-- (or the excess taken from) the saving it asks - kept inside the bracket of savings
-- measured too small and too large - up to 8 rounds, until the measured cost is within
-- 5% of the target (a FLOPs target also as a ceiling: 95-100% of it; FLOPs are counted,
-- not timed, so the rounds go on towards 99-100%), then, if the rounds straddle the
-- target short of that, refine's single steps down from the last allocation above it
-- (which the greedy's jumps step over: prune_resnet56_25_3ep's rounds went from 0.4%
-- above 2.5x fewer FLOPs to 4.1% below); the closest allocation that fits is returned
-- (fits says whether one did; rounds, after how many allocations, 9 for refine's).
-- how.log (default print) gets a line per round.
function widths.choose(net, data, plan, how)
  local log = how.log or print
  local given = (how.flops and 1 or 0) + (how.latency_ms and 1 or 0) +
                (how.latency_fraction and 1 or 0)
  if given ~= 1 then
    error("lop.widths.choose: give exactly one of flops, latency_ms and latency_fraction", 2)
  end
  local f = how.latency_fraction
  if f ~= nil and (type(f) ~= "number" or not (f > 0)) then
    error("lop.widths.choose: latency_fraction must be a number above 0", 2)
  end
  local latency = how.flops == nil
  local m = {measure = latency and "latency" or "flops", batch = how.batch, reps = how.reps,
             steps = how.steps}
  if latency then
    m.reference_ms = widths.alternate_ms({net}, how.batch or 64, how.reps or 5)[1]
  end
  local errors = widths.sensitivity(net, data, plan, how)
  local costs = widths.costs(net, plan, m)
  if latency then   -- the savings into the reference timing's frame (a drift between them)
    local scale = m.reference_ms / costs.total
    for _, saved in pairs(costs.saved) do
      for j = 1, #saved do saved[j] = saved[j] * scale end
    end
    costs.total = m.reference_ms
  end
  local target = how.flops or how.latency_ms or how.latency_fraction * m.reference_ms
  local unit = latency and "ms" or "FLOPs"
  -- the saving asked is bracketed: [lo, hi] holds the savings that measured too slow /
  -- too fast; each round tries the additive model's correction, or the middle of the
  -- bracket when that falls outside it (timing noise must not make it oscillate)
  local lo, hi = 0, 0
  for _, saved in pairs(costs.saved) do hi = hi + saved[#saved] end
  local need, best, above = math.min(math.max(costs.total - target, 0), hi), nil, nil
  local function close(b) return b.fits and (latency or b.off <= 0.01) end
  for round = 1, 8 do
    local counts = widths.allocate(plan, errors, costs, need)
    local got = measure(net, plan, counts, m)
    log(("widths round %d: %.4g %s measured for a target of %.4g"):format(round, got, unit,
                                                                          target))
    local off = math.abs(got - target) / target
    local fits = off <= 0.05 and (latency or got <= target)   -- a FLOPs budget is a ceiling
    if not best or (fits and not best.fits) or (fits == best.fits and off < best.off) then
      best = {counts = counts, cost = got, off = off, fits = fits, rounds = round}
    end
    if close(best) then break end
    if got > target then
      lo, above = need, {counts = counts, cost = got}
    else
      hi = need
    end
    local nxt = need + (got - target)
    if nxt <= lo or nxt >= hi then nxt = (lo + hi) / 2 end
    need = nxt
  end
  if not close(best) and above then   -- the greedy's steps straddle the target: step down
    local counts, got = refine(net, plan, errors, costs, m, above.counts, above.cost, target)
    local off = math.abs(got - target) / target
    if off <= 0.05 and (not best.fits or off < best.off) then
      best = {counts = counts, cost = got, off = off, fits = true, rounds = 9}
    end
  end
  return {counts = best.counts, cost = best.cost, target = target, total = costs.total,
          errors = errors, rounds = best.rounds, fits = best.fits,
          reference_ms = m.reference_ms}
end

-- widths.plot(original, pruned, title) -> SVG text: a bar chart of every convolution's
-- output channels before and after pruning.
function widths.plot(original, pruned, title)
  local names, before, after = {}, {}, {}
  for _, node in ipairs(original:nodes()) do
    if node.kind == "conv2d" and pruned:has(node.name) then
      names[#names + 1] = node.name
      before[#before + 1] = node:shape()[1]
      after[#after + 1] = pruned:node(node.name):shape()[1]
    end
  end
  return lop.svg.bars{title = ("%s: output channels per convolution"):format(title),
                      y_label = "channels", categories = names,
                      series = {{name = "before", values = before},
                                {name = "after", values = after}}}
end

return widths
