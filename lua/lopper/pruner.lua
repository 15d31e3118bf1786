-- pruner.lua - the core of scripts/prune.lua, the recipe that prunes ANY convolutional
-- network (an ONNX import or a .lop) without knowing its architecture: what can be
-- pruned and what cannot is read off the channel groups, so the same code handles a
-- VGG, a ResNet, a MobileNet's depthwise pairs and a DenseNet's concatenations.  Kept
-- here, apart from the command line, so a script or a test can run each step itself.
--
--   local p = lop.pruner
--   local plan = p.plan(net, {solver = "lasso"})     -- a line per group: prune or why not
--   local w = p.widths(net, plan, 2)                 -- keep counts for 2x fewer FLOPs
--   print(p.describe(plan, w.counts))
--   p.prune(net, data.train, plan, w.counts, {original = original})   -- He et al.
--
-- A group is pruned when it has exactly one consumer and that consumer is an ungrouped
-- conv2d reading exactly the group (what lop.reconstruct needs): its input channels
-- are selected on samples of that conv (targets from the original network, He et
-- al.'s correction of accumulated error; a block's last conv matches the original
-- block sum) and refitted by least squares.  Everything else is skipped with a reason.
local lop = ...

local pruner = {}
lop.pruner = pruner

-- ---- the plan ----------------------------------------------------------------------

-- Who reads each node's output: name -> list of distinct reader names.
local function readers_of(net)
  local readers = {}
  for _, h in ipairs(net:nodes()) do
    for _, src in ipairs(h:inputs()) do
      local r = readers[src] or {}
      if r[#r] ~= h.name then r[#r + 1] = h.name end
      readers[src] = r
    end
  end
  return readers
end

-- Whether conv ends a residual block the way lop.sample's residual targets need: it
-- feeds one batchnorm only, which feeds one two-input add only.
local function ends_block(net, readers, conv)
  local bn = readers[conv] or {}
  if #bn ~= 1 or net:node(bn[1]).kind ~= "batchnorm" then return false end
  local add = readers[bn[1]] or {}
  return #add == 1 and net:node(add[1]).kind == "add" and #net:node(add[1]):inputs() == 2
end

local function listed(names)
  local shown = table.move(names, 1, math.min(3, #names), 1, {})
  if #names > 3 then shown[#shown + 1] = ("... (%d more)"):format(#names - 3) end
  return table.concat(shown, ", ")
end

-- Why consumer m (a group member) cannot be refitted to a subset of the group, or nil
-- when it can: an ungrouped conv2d reading exactly the group, or a linear layer reading
-- exactly the group (through a flatten or a global pooling).
local function consumer_reason(net, g, m, solver)
  local layer = net:node(m.node)
  if layer.kind ~= "conv2d" and layer.kind ~= "linear" then
    return ("its consumer %s is a %s layer"):format(m.node, layer.kind)
  end
  local inputs = layer:weight():shape()[2]
  if layer.kind == "conv2d" then
    local groups = layer:attrs().groups
    if groups > 1 then
      return ("its consumer %s is a grouped convolution (%d groups)"):format(m.node, groups)
    end
  else
    inputs = g.channels * (m.block or 1) == inputs and g.channels or inputs
  end
  if m.offset ~= 0 or inputs ~= g.channels then
    return ("its consumer %s reads a concatenation (the group is %d of its %d input "
            .. "channels)"):format(m.node, g.channels, inputs)
  end
  if g.slices > 1 and solver == "thinet" then
    return ("a grouped convolution splits it into %d slices and --solver thinet cannot "
            .. "keep as many in each (lasso, l1, first and random can)"):format(g.slices)
  end
  return nil
end

-- Why group g cannot be pruned by refitting its consumers, or nil when it can.  A group
-- several layers read (a residual stage, a conv feeding two branches) is selected by
-- the sum of their relative errors and every one is refitted, unless `shared` is false.
local function skip_reason(net, g, producers, consumers, solver, shared)
  if not g.prunable then return "not prunable: " .. g.why end
  if not shared and #producers > 1 then
    return ("residual stage of %d producers (block outputs + shortcuts): pruned inside "
            .. "its blocks only, as He et al."):format(#producers)
  end
  if #consumers == 0 then return "no layer reads it" end
  if not shared and #consumers > 1 then
    local names = {}
    for i, m in ipairs(consumers) do names[i] = m.node end
    return ("%d consumers (%s): only a group read by one layer can be refitted")
           :format(#consumers, listed(names))
  end
  for _, m in ipairs(consumers) do
    local why = consumer_reason(net, g, m, solver)
    if why then return why end
  end
  return nil
end

-- pruner.plan(net, {solver = "lasso", shared = true}) -> one entry per channel group in
-- graph order: {producer, producers, channels, slices, members (node names), and when
-- pruned consumers (the layers refitted), consumer (the first of them) and residual
-- (whether a lone consumer ends a block); reason when skipped}.  The solver matters
-- only for groups a grouped convolution slices (thinet cannot select per slice);
-- shared = false skips groups several layers read or several produce, as before
-- residual stages could be pruned.
function pruner.plan(net, opts)
  opts = opts or {}
  local solver = opts.solver or "lasso"
  local shared = opts.shared ~= false
  local readers = readers_of(net)
  local plan = {}
  for _, g in ipairs(net:groups()) do
    local producers, consumers, members = {}, {}, {}
    for i, m in ipairs(g.members) do
      members[i] = m.node
      if m.role == "producer" then producers[#producers + 1] = m.node end
      if m.role == "consumer" then consumers[#consumers + 1] = m end
    end
    local e = {producer = g.producer or g.members[1].node, producers = producers,
               channels = g.channels, slices = g.slices, members = members,
               reason = skip_reason(net, g, producers, consumers, solver, shared)}
    if not e.reason then
      e.consumers = {}
      for i, m in ipairs(consumers) do e.consumers[i] = m.node end
      e.consumer = e.consumers[1]
      e.residual = #consumers == 1 and ends_block(net, readers, e.consumer)
    end
    plan[#plan + 1] = e
  end
  return plan
end

-- pruner.entry(net, layer, opts) -> the plan entry (pruner.plan(net, opts)) of the
-- channel group `layer` reads; raises, with the reason, when that group cannot be
-- pruned.
function pruner.entry(net, layer, opts)
  local group, why = net:group_of(net:node(layer):inputs()[1])
  if not group then
    error(("the input channels of %s cannot be pruned: %s"):format(layer, why), 2)
  end
  local key = group.producer or group.members[1].node   -- as pruner.plan names entries
  for _, e in ipairs(pruner.plan(net, opts)) do
    if e.producer == key then
      if e.reason then
        error(("the input channels of %s cannot be pruned: %s"):format(layer, e.reason), 2)
      end
      return e
    end
  end
  error(("no channel group feeds %s"):format(layer), 2)
end

-- ---- widths: one keep fraction for every pruned group, bisected to a FLOPs target ---

-- pruner.kept(f, c, slices): channels kept of c in `slices` equal slices at keep
-- fraction f: the same count in each slice, at least one (as lop.select's rules count:
-- ceil(f * c / slices)).
function pruner.kept(f, c, slices)
  local per = c // slices
  return slices * math.max(1, math.min(per, math.ceil(f * per - 1e-9)))
end

-- The first n / slices channels of each of the slices of c (1-based, increasing).
local function first_per_slice(c, slices, n)
  local per, k, keep = c // slices, n // slices, {}
  for j = 0, slices - 1 do
    for i = 1, k do keep[#keep + 1] = j * per + i end
  end
  return keep
end

-- pruner.shape_copy(net, plan, counts) -> a clone of net with each plan entry i given a
-- count cut to counts[i] channels (the first of each slice): the pruned shape, for
-- counting or timing it (the weights are not refitted).
function pruner.shape_copy(net, plan, counts)
  local copy = net:clone()
  for i, n in pairs(counts) do
    local e = plan[i]
    if n < e.channels then copy:prune(e.producer, first_per_slice(e.channels, e.slices, n)) end
  end
  return copy
end

-- FLOPs of net with plan entry i cut to counts[i] channels (first ones), on a clone.
local function flops_with(net, plan, counts)
  local copy = pruner.shape_copy(net, plan, counts)
  local f = copy:flops()
  copy:close()
  return f
end

-- The error for a target below what the smallest widths reach: the best speed-up and
-- the share of FLOPs in layers no pruned group touches.
local function unreachable(net, plan, speedup, least)
  local touched, pruned = {}, 0
  for _, e in ipairs(plan) do
    if e.consumer then
      pruned = pruned + 1
      for _, name in ipairs(e.members) do touched[name] = true end
    end
  end
  local fixed, total = 0, net:flops()
  for _, h in ipairs(net:nodes()) do
    if not touched[h.name] then fixed = fixed + h:flops() end
  end
  return ("a %gx speed-up cannot be reached: with one channel per slice left in each of "
          .. "the %d pruned groups the network still has %.4g MFLOPs, a speed-up of %.2fx at "
          .. "most; %.1f%% of the FLOPs are in layers no pruned group touches (see the "
          .. "skipped groups and their reasons in the plan)")
         :format(speedup, pruned, least / 1e6, total / least, 100 * fixed / total)
end

-- pruner.widths(net, plan, speedup) -> {fraction, counts (counts[i] for each pruned
-- plan entry i), flops (after), before, target}: the largest keep fraction f shared by
-- every pruned group whose counts (kept(f, ...)) bring the network's FLOPs, counted on
-- a pruned clone, to at most before / speedup.  Raises when even one channel per slice
-- everywhere is not enough.  The one place widths are chosen: a per-layer allocation
-- replaces this function.
function pruner.widths(net, plan, speedup)
  local any = false
  for _, e in ipairs(plan) do any = any or e.consumer ~= nil end
  if not any then error("no channel group can be pruned (every group is skipped; see the plan)", 0) end
  local before = net:flops()
  local target = before / speedup
  local seen = {}
  local function at(f)
    local counts, key = {}, {}
    for i, e in ipairs(plan) do
      if e.consumer then counts[i] = pruner.kept(f, e.channels, e.slices); key[#key + 1] = counts[i] end
    end
    key = table.concat(key, ",")
    seen[key] = seen[key] or flops_with(net, plan, counts)
    return seen[key], counts
  end
  local least = at(0)
  if least > target then error(unreachable(net, plan, speedup, least), 0) end
  local lo, hi = 0, 1
  if at(1) <= target then lo = 1 end
  while hi - lo > 1e-9 do
    local mid = (lo + hi) / 2
    if at(mid) <= target then lo = mid else hi = mid end
  end
  local flops, counts = at(lo)
  return {fraction = lo, counts = counts, flops = flops, before = before, target = target}
end

-- The plan as text: a line per group - producer, channels, and the keep count (with the
-- conv refitted) or the reason it is skipped.
function pruner.describe(plan, counts)
  local lines, wide = {}, 0
  for _, e in ipairs(plan) do wide = math.max(wide, #e.producer) end
  for i, e in ipairs(plan) do
    local what
    if e.consumer then
      what = ("prune -> %s, refit %s%s"):format(counts and counts[i] or "?",
                                                 listed(e.consumers),
                                                 e.residual and " (block sum)" or "")
    else
      what = "skip: " .. e.reason
    end
    local ch = e.slices > 1 and ("%d ch in %d slices"):format(e.channels, e.slices)
                            or ("%d ch"):format(e.channels)
    lines[i] = ("%3d  %-" .. wide .. "s  %-18s %s"):format(i, e.producer, ch, what)
  end
  return table.concat(lines, "\n")
end

-- ---- selection ---------------------------------------------------------------------

-- The k highest scores of each slice (ties to the lower channel), as 1-based increasing
-- channels.
local function top_per_slice(score, slices, k)
  local per, keep = #score // slices, {}
  for j = 0, slices - 1 do
    local idx = {}
    for i = 1, per do idx[i] = j * per + i end
    table.sort(idx, function(a, b)
      if score[a] ~= score[b] then return score[a] > score[b] end
      return a < b
    end)
    local top = table.move(idx, 1, k, 1, {})
    table.sort(top)
    table.move(top, 1, k, #keep + 1, keep)
  end
  return keep
end

local function to_stderr(line) io.stderr:write(line, "\n") end

-- pruner.select(s, {solver =, keep = fraction, slices = 1, seed = 1, conv = name, warn =})
-- -> the 1-based input channels of the sampled conv to keep, by lop.select[solver].  In
-- a group a grouped convolution slices, the same count is kept in each slice: l1 does
-- so itself, first takes the first of each slice, lasso ranks each slice by |beta|,
-- random draws each slice's channels (Lua's generator, seeded); thinet cannot.  A LASSO
-- that stopped before converging is reported (naming conv) through warn, by default on
-- stderr.
function pruner.select(s, how)
  local solver, frac, slices = how.solver, how.keep, how.slices or 1
  local c = s:channels()
  local k = math.max(1, math.min(c // slices, math.ceil(frac * (c // slices) - 1e-9)))
  if solver == "l1" then return (lop.select.l1(s, {keep = frac})) end
  if solver == "first" and slices > 1 then return first_per_slice(c, slices, k * slices) end
  if solver == "random" then
    if slices == 1 then return lop.select.random(s, {keep = frac, seed = how.seed}) end
    math.randomseed(how.seed or 1)
    local score = {}
    for i = 1, c do score[i] = math.random() end
    return top_per_slice(score, slices, k)
  end
  if solver == "lasso" then
    local keep, beta, info = lop.select.lasso(s, {keep = frac})
    local warning = lop.recipe.lasso_warning(how.conv or "the sampled conv", info)
    if warning then (how.warn or to_stderr)(warning) end
    if slices == 1 then return keep end
    for i = 1, c do beta[i] = math.abs(beta[i]) end
    return top_per_slice(beta, slices, k)
  end
  if slices > 1 then
    error(("lop.pruner.select: %s ranks the whole axis and cannot keep as many channels in "
           .. "each of %d slices"):format(solver, slices), 2)
  end
  return lop.select[solver](s, {keep = frac})
end

-- ---- pruning -----------------------------------------------------------------------

-- pruner.finetune(net, data, epochs, how): lop.train with the recipe's settings (how.lr,
-- batch, crop, flip, seed, progress; how.distill > 0 with how.teacher: learn that
-- weight of the teacher's soft targets too; how.hints (pruner.hints) with how.teacher
-- and how.hint_weight > 0: feature hints of that weight); prints the epochs and, with
-- how.val, the validation top-1 after (label says after what).
function pruner.finetune(net, data, epochs, how, label)
  local log = how.log or print
  local distill = (how.distill or 0) > 0 and how.teacher and how.distill or nil
  local hints = how.hints and #how.hints > 0 and (how.hint_weight or 0) > 0 and how.teacher
                and how.hints or nil
  lop.train(net, data, {epochs = epochs, lr = how.lr, batch = how.batch, crop = how.crop,
                        flip = how.flip, seed = how.seed, progress = how.progress,
                        teacher = (distill or hints) and how.teacher, distill = distill or 0,
                        hints = hints, hint_weight = hints and how.hint_weight,
                        on_epoch = function(e)
                          log(("    epoch %d/%d  train loss %.4f top-1 %.2f%%  %.0f s")
                              :format(e.epoch, epochs, e.loss, 100 * e.top1, e.seconds))
                        end})
  if how.val then
    local e = lop.evaluate(net, how.val, {progress = how.progress})
    log(("  fine-tuned %s: validation top-1 %.2f%%"):format(label, 100 * e.top1))
  end
end

-- pruner.few_samples(net, layer, s, kept): a warning when a weights refit of `layer`
-- (sampled as s) on `kept` input channels has fewer than 3 samples per unknown (kept x
-- kernel area, or inputs per channel of a linear layer, + a bias per filter): least
-- squares then nearly interpolates the samples, reports a tiny error and generalises
-- badly (VGG-16's conv4_2 at 177 of 256 channels: 2000 samples, error 0, top-1 down 25
-- points; 5000 samples, error 0.014, no loss).  nil otherwise.
function pruner.few_samples(net, layer, s, kept)
  local node = net:node(layer)
  local area = node.kind == "linear" and node:weight():shape()[2] // s:channels()
               or node:attrs().kernel[1] * node:attrs().kernel[2]
  local unknowns, samples = kept * area + 1, s:samples()
  if samples >= 3 * unknowns then return nil end
  return ("warning: %d samples for the %d weights of each filter of %s: the refit may fit "
          .. "the samples rather than the data; use at least %d (--images x --points), "
          .. "or --refit scale"):format(samples, unknowns, layer, 3 * unknowns)
end

-- Where the channels of a group pruned before came from: origins[name] lists, for
-- each output channel of producer `name` now, its channel in the original network.
-- pruner.prune keeps it, so that a layer whose own outputs were pruned is still
-- sampled against the original's outputs (lop.sample's reference_channels).
local function record_origins(origins, e, keep)
  for _, name in ipairs(e.producers) do
    local before, now = origins[name], {}
    for i, k in ipairs(keep) do now[i] = before and before[k] or k end
    origins[name] = now
  end
end

-- pruner.sample_readers(net, data, e, how, origins) -> the statistics of each of plan
-- entry e's readers (lop.sample: how.images, default 500, at most the data set's size, a
-- linear reader on images x points images, one row each; how.points 10; how.seed;
-- targets from how.reference when given, mapped through origins - see record_origins
-- - with the block sum when a lone reader ends a residual block), and those combined
-- (the one part itself when there is one reader).  Readers that take the same number
-- of images are sampled in one calibration pass.
function pruner.sample_readers(net, data, e, how, origins)
  local points, images = how.points or 10, math.min(how.images or 500, #data)
  local by_count, parts = {}, {}   -- image count -> the readers (indices) sampled on it
  for j, name in ipairs(e.consumers) do
    local linear = net:node(name).kind == "linear"
    local n = linear and math.min(images * points, #data) or images
    by_count[n] = by_count[n] or {}
    table.insert(by_count[n], j)
  end
  local counts = {}
  for n in pairs(by_count) do counts[#counts + 1] = n end
  table.sort(counts)
  for _, n in ipairs(counts) do
    local js, names, maps = by_count[n], {}, {}
    for i, j in ipairs(js) do
      names[i] = e.consumers[j]
      maps[i] = how.reference and origins and origins[names[i]] or false
    end
    local got = lop.sample(net, data, names, {
      images = n, points = points, seed = how.seed, reference = how.reference,
      reference_channels = how.reference and maps or nil,
      residual = e.residual and how.reference ~= nil})
    for i, j in ipairs(js) do parts[j] = got[i] end
  end
  return parts, #parts == 1 and parts[1] or lop.combine(parts)
end

-- pruner.prune_group(net, data, e, count, how, origins) prunes plan entry e to count
-- channels: pruner.sample_readers, selection on their combined statistics
-- (pruner.select, how.solver, default lasso), lop.reconstruct_group (how.refit, default
-- weights; how.ridge, its default when nil; how.dropout: fit for the dropout of
-- training, when fine-tuning follows).  Warnings go through how.warn (default:
-- on stderr).  Returns {keep, errors (one per consumer), error (their mean), sampled
-- (seconds)}.
function pruner.prune_group(net, data, e, count, how, origins)
  local t0 = lop.clock()
  local parts, s = pruner.sample_readers(net, data, e, how, origins)
  local sampled = lop.clock() - t0
  local keep = pruner.select(s, {solver = how.solver or "lasso", keep = count / e.channels,
                                 slices = e.slices, seed = how.seed, conv = e.consumer,
                                 warn = how.warn})
  local refit = how.refit or "weights"
  for j, part in ipairs(parts) do
    local warning = refit == "weights"
                    and pruner.few_samples(net, e.consumers[j], part, #keep)
    if warning then (how.warn or to_stderr)(warning) end
  end
  local _, errors = lop.reconstruct_group(net, parts, keep, {mode = refit, ridge = how.ridge,
                                                             dropout = how.dropout})
  if s ~= parts[1] then s:close() end
  for _, part in ipairs(parts) do part:close() end
  record_origins(origins, e, keep)
  local mean = 0
  for _, x in ipairs(errors) do mean = mean + x / #errors end
  return {keep = keep, errors = errors, error = mean, sampled = sampled}
end

-- pruner.prune(net, data, plan, counts, how) prunes, in plan order, each planned group
-- to counts[i] channels with pruner.prune_group (targets from how.original when given),
-- then how.step_epochs of fine-tuning on how.train (default data; pruner.finetune's
-- settings).  With step_epochs the targets come from the net itself, as ThiNet's do:
-- the layers after a fine-tuned one have learnt its new outputs, and a refit back to
-- the original's would undo that.  Prints a line per group through how.log (default
-- print) and returns the lines as records {producer, consumer (the refitted layers, as
-- text), before, after, seconds, error (the mean over the consumers)}, and the origins
-- of the pruned layers' channels (see record_origins).
function pruner.prune(net, data, plan, counts, how)
  how = how or {}
  local log = how.log or print
  local images, points = math.min(how.images or 500, #data), how.points or 10
  local step = setmetatable({reference = (how.step_epochs or 0) == 0 and how.original or nil},
                            {__index = how})
  local todo = {}
  for i, e in ipairs(plan) do
    if e.consumer and counts[i] and counts[i] < e.channels then todo[#todo + 1] = i end
  end
  local done, origins = {}, {}
  for n, i in ipairs(todo) do
    local e, t0 = plan[i], lop.clock()
    local got = pruner.prune_group(net, data, e, counts[i], step, origins)
    local r = {producer = e.producer, consumer = listed(e.consumers), before = e.channels,
               after = #got.keep, seconds = lop.clock() - t0, error = got.error}
    done[#done + 1] = r
    log(("[%d/%d] %s: %d -> %d channels, sampled %d images x %d points%s in %.1f s, %s, "
         .. "refit error %.3g"):format(n, #todo, e.producer, r.before, r.after, images,
                                       points, #e.consumers > 1
                                         and (" at %d layers"):format(#e.consumers) or "",
                                       got.sampled, how.solver or "lasso", got.error))
    if (how.step_epochs or 0) > 0 then
      local each = setmetatable({seed = (how.seed or 1) + n}, {__index = how})
      pruner.finetune(net, how.train or data, how.step_epochs, each, "after " .. e.producer)
    end
  end
  return done, origins
end

-- pruner.hints(plan, counts, origins) -> lop.train's hints for a fine-tune after
-- pruner.prune: the output of every layer a pruned group's refit fitted learns the
-- original's at the same layer, as the refit had it learn on the calibration images
-- (its channels mapped through origins when its own outputs were pruned too).
function pruner.hints(plan, counts, origins)
  local hints, seen = {}, {}
  for i, e in ipairs(plan) do
    if e.consumer and counts[i] and counts[i] < e.channels then
      for _, name in ipairs(e.consumers) do
        if not seen[name] then
          seen[name] = true
          hints[#hints + 1] = {student = name, teacher = name, channels = origins[name]}
        end
      end
    end
  end
  return hints
end

-- ---- data --------------------------------------------------------------------------

local function dims(t) return table.concat(t, "x") end

-- pruner.open_data(spec, shape, o) -> a data set of images shaped `shape` (the
-- network's input {C, H, W}), and the crop lop.train should add when fine-tuning on it.
-- spec is one of:
--   "fashion-mnist": the Debian package's split o.split ("train" or "test"), zero-padded
--     to H (the model must take 1 x H x H, H >= 28), normalised as the shipped models
--     were trained unless o.normalize == "none";
--   a .npy file of images (lop.data.npy; o.labels the .npy of labels, o.channels_last);
--   an image folder root/<class>/<image> (lop.data.folder: shorter side resized to
--     o.resize, default max(H, W), centre-cropped to H x W, in C channels; o.workers,
--     o.skip_bad).
-- o.mean / o.std (a number, or a list per channel) or o.normalize ("imagenet" or "none")
-- normalise folder and .npy images.  o.random_crop = N asks for training crops up to N
-- pixels off centre: a folder is then resized N pixels larger on every side and
-- cropped at random (its own augmentation, crop 0 returned), other sets are padded by N
-- zeros and cropped by lop.train (N returned).  Errors are one line naming o.what (the
-- option, "--data") and, for images of another shape, both shapes.
-- pruner.channel_values(option, text, channels, positive) -> the value of --mean or
-- --std: nil for nil, one number, or a list of one number per channel, from "X" or
-- "X,Y,Z"; anything else raises naming the option.
function pruner.channel_values(option, text, channels, positive)
  if not text then return nil end
  local v = {}
  for item in (text .. ","):gmatch("([^,]*),") do
    local x = tonumber(item)
    if not x or (positive and x <= 0) then
      error(("--%s %s: expected %snumbers separated by commas"):format(option, text,
            positive and "positive " or ""), 0)
    end
    v[#v + 1] = x
  end
  if #v ~= 1 and #v ~= channels then
    error(("--%s %s: give one number or %d (one per channel)"):format(option, text, channels), 0)
  end
  return #v == 1 and v[1] or v
end

function pruner.open_data(spec, shape, o)
  local what = ("%s %s"):format(o.what or "data", spec)
  local function fail(fmt, ...) error(what .. ": " .. fmt:format(...), 0) end
  if #shape ~= 3 then fail("the model takes %s features, not images", dims(shape)) end
  local c, h, w = shape[1], shape[2], shape[3]
  local crop = o.random_crop or 0
  local ds
  if spec == "fashion-mnist" then
    if o.mean or o.std or (o.normalize or "none") ~= "none" then
      fail("its images are normalised as the shipped models were trained (mean 0.2860, "
           .. "std 0.3530); only --normalize none changes that")
    end
    if c ~= 1 or h ~= w or h < 28 then
      fail("the images are 1x28x28 (zero-padded to a square of at least 28), the model "
           .. "takes %s", dims(shape))
    end
    local sets = lop.recipe.fashion_mnist{pad = h, normalize = o.normalize ~= "none",
                                          train_size = o.split == "test" and 1 or nil,
                                          test_size = o.split ~= "test" and 1 or nil}
    ds = sets[o.split == "test" and "test" or "train"]
    sets[o.split == "test" and "train" or "test"]:close()
  else
    local norm = {mean = o.mean, std = o.std, normalize = o.normalize}
    if spec:match("%.npy$") then
      if not lop.data.npy then fail("lop.data.npy is not in this build") end
      if not o.labels then fail("images in a .npy file need their labels (a .npy of N integers)") end
      ds = lop.recipe.users_mistake(lop.data.npy, spec, o.labels,
             {channels_last = o.channels_last, mean = norm.mean, std = norm.std,
              normalize = norm.normalize})
    else
      if not lop.data.folder then fail("lop.data.folder is not in this build") end
      local resize = (o.resize or math.max(h, w)) + 2 * crop
      ds = lop.recipe.users_mistake(lop.data.folder, spec,
             {size = {h, w}, resize = resize, channels = c, random_crop = crop > 0 or nil,
              mean = norm.mean, std = norm.std, normalize = norm.normalize,
              workers = o.workers, skip_bad = o.skip_bad})
      crop = 0
    end
  end
  local got = ds:shape()
  if got[1] ~= c or got[2] ~= h or got[3] ~= w then
    fail("the images are %s, the model takes %s", dims(got), dims(shape))
  end
  return ds, crop
end

return pruner
