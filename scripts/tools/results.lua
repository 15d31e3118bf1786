-- results.lua - full runs of every pruning recipe on the shipped models, and the
-- results page users read (docs/results.md, with its plots).  A full run takes an
-- hour or more on 2 cores, so each run's outcome is measured and saved as
-- docs/results/<run>.lua the moment it finishes; the page and the plots are rebuilt
-- from whatever outcomes exist, so runs can be spread over several sittings.  The
-- page's prose - the analysis of missed targets among it - is docs/results_notes.md,
-- which the page includes; this file holds the runs, their targets and the layout.
--
--   build/lopper scripts/tools/results.lua --run thinet_vgg16   # one run, then the page
--   build/lopper scripts/tools/results.lua --run missing        # every run not yet done
--   build/lopper scripts/tools/results.lua --list               # the runs and their state
--   build/lopper scripts/tools/results.lua --measure all        # re-measure, quiet machine
--   build/lopper scripts/tools/results.lua                      # rebuild the page only
--
-- Latency is only meaningful on an otherwise idle machine; runs done side by side
-- (or while the machine did other work) are re-measured from their saved models
-- with --measure, which changes nothing but the outcome's before/after figures.
local lop = require "lopper"

local opt = lop.options(arg, {
  run = {type = "string", metavar = "NAME",
         help = "run NAME (see --list), 'missing' (all not yet done) or 'all'"},
  list = {default = false, help = "list the runs and whether they are done"},
  measure = {type = "string", metavar = "NAME",
             help = "re-measure run NAME (or 'all' done runs) from its saved model"},
  dir = {default = "docs/results", type = "string", metavar = "DIR",
         help = "where outcomes and plots go"},
  work = {default = "build/results", type = "string", metavar = "DIR",
          help = "where the pruned models and the runs' logs go"},
  page = {default = "docs/results.md", type = "string", metavar = "FILE",
          help = "the results page"},
  notes = {default = "docs/results_notes.md", type = "string", metavar = "FILE",
           help = "the page's prose, by section (see the file)"},
  reps = {default = 100, type = "int", min = 3,
          help = "timed batch-1 passes per latency measurement (half as many at batch 64)"},
  extra = {default = "", type = "string", metavar = "ARGS",
           help = "appended to every recipe command (quick trials), e.g. "
                  .. "--extra='--train_size 2000'"},
  extra_train = {default = "", type = "string", metavar = "ARGS",
                 help = "appended to every further-training (train.lua) command"},
  test_size = {type = "int", min = 1, max = 10000, default_text = "all 10000",
               help = "test images for the before/after accuracy"},
}, {description = "Run the full pruning recipes and write the results page."})

local LOPPER = os.getenv("LOPPER") or "build/lopper"
local VGG, R20, R56 = "models/vgg16.lop", "models/resnet20.lop", "models/resnet56.lop"

-- The runs: recipe, arguments beyond the defaults, and the issue's targets (FLOPs
-- and params reduction at least, top-1 drop at most).  "sweep" runs feed the
-- accuracy-vs-FLOPs plot of the selection rules (ThiNet's schedule, shorter
-- fine-tuning so that ten of them fit in a sitting).
local RUNS = {
  {name = "thinet_vgg16", script = "thinet_vgg16", model = VGG, args = "",
   target = {flops = 3, drop = 0.5}},
  {name = "thinet_gap_vgg16", script = "thinet_gap_vgg16", model = VGG, args = "",
   target = {flops = 3, params = 2, drop = 1}},
  {name = "lasso_vgg16_2x", script = "lasso_vgg16", model = VGG, args = "--speedup 2",
   target = {flops = 2}},
  {name = "lasso_vgg16_4x", script = "lasso_vgg16", model = VGG, args = "--speedup 4",
   target = {flops = 4, drop = 1}},
  {name = "lasso_vgg16_4x_auto", script = "lasso_vgg16", model = VGG,
   args = "--speedup 4 --widths auto", target = {flops = 4, drop = 1}},
  {name = "resnet20_2x", script = "resnet", model = R20, args = "--speedup 2",
   target = {flops = 2, drop = 1}},
  -- 27 blocks: a quarter epoch after each (about as many epochs as resnet20's nine).
  {name = "resnet56_2x", script = "resnet", model = R56, args = "--speedup 2 --finetune 0.25",
   target = {flops = 2, drop = 1}},
  {name = "resnet20_2x_he", script = "resnet", model = R20,
   args = "--speedup 2 --solver lasso --residual", target = {flops = 2, drop = 1}},
  {name = "hessian_vgg16", script = "hessian", model = VGG, args = "", target = {}},
  -- A recipe's pruned model trained further (scripts/train.lua --from): 3 + 9 = 12
  -- final epochs, the budget the model was trained with.
  {name = "thinet_vgg16_ft", after = "thinet_vgg16", model = VGG,
   args = "--epochs 9 --lr 0.005", target = {flops = 3, drop = 0.5}},
  {name = "lasso_vgg16_4x_ft", after = "lasso_vgg16_4x", model = VGG,
   args = "--epochs 9 --lr 0.005", target = {flops = 4, drop = 1}},
  -- The generic recipe with per-group widths chosen for the budget and a short
  -- fine-tune (issue 19's budgets: 2 epochs at 3.25x, 3 at 4x and on ResNet-56).
  -- VGG-16's fine-tunes keep the refitted layers' outputs at the original's (feature
  -- hints): 0.2-0.3 points more (results_notes.md).
  {name = "prune_vgg16_325_2ep", script = "prune", model = VGG,
   args = "--data fashion-mnist --speedup 3.25 --widths auto --images 1000 --epochs 2 "
          .. "--batch 128 --random_crop 2 --flip --hints 100", target = {flops = 3.25, drop = 0.3}},
  {name = "prune_vgg16_4x_3ep", script = "prune", model = VGG,
   args = "--data fashion-mnist --speedup 4 --widths auto --images 1000 --epochs 3 "
          .. "--batch 128 --random_crop 2 --flip --hints 100", target = {flops = 4, drop = 0.5}},
  -- ResNet-56's fine-tune distils the original's logits: 0.19 and 0.31 points more in
  -- two seeds, where on VGG-16 it lost (results_notes.md).
  {name = "prune_resnet56_25_3ep", script = "prune", model = R56,
   args = "--data fashion-mnist --speedup 2.5 --widths auto --epochs 3 --lr 0.01 "
          .. "--batch 128 --random_crop 2 --flip --distill 0.5",
   target = {flops = 2.5, drop = 0}},
}
for _, solver in ipairs{"thinet", "lasso", "l1", "first", "random"} do
  for _, keep in ipairs{0.5, 0.3} do
    RUNS[#RUNS + 1] = {name = ("sweep_%s_%g"):format(solver, keep):gsub("%.", ""),
                       script = "thinet_vgg16", model = VGG, sweep = solver,
                       args = ("--solver %s --keep %g --finetune 0.2 --final 1"):format(solver, keep),
                       target = {}}
  end
end

local function outcome_path(run) return ("%s/%s.lua"):format(opt.dir, run.name) end

local function load_outcome(run)
  local f = io.open(outcome_path(run))
  if not f then return nil end
  f:close()
  return dofile(outcome_path(run))
end

local function model_path(run) return ("%s/%s.lop"):format(opt.work, run.name) end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function save_outcome(run, o)
  lop.write_record(outcome_path(run), o, "written by scripts/tools/results.lua")
end

-- The latency figures depend on the engine's threads: one per core unless LOP_THREADS.
local function threads_used() return os.getenv("LOP_THREADS") or "one per core" end

local function measure(run, data)
  local _, before, after = lop.compare(lop.load(run.model), lop.load(model_path(run)),
                                       {data = data.test, reps = opt.reps})
  return before, after
end

-- The commit the recipes ran from (the results page names it), "unknown" outside git.
local function commit()
  local p = io.popen("git rev-parse --short HEAD 2>/dev/null")
  local id = p and p:read("l")
  if p then p:close() end
  return id or "unknown"
end

local function find_run(name)
  for _, run in ipairs(RUNS) do
    if run.name == name then return run end
  end
end

-- The command of a run: its recipe on the shipped model, or scripts/train.lua going on
-- from the model another run saved.
local function command_of(run)
  if run.after then
    return ("%s scripts/train.lua --from %s %s %s --out %s"):format(LOPPER,
           model_path(find_run(run.after)), run.args, opt.extra_train, model_path(run))
  end
  return ("%s scripts/%s.lua --model %s %s %s --out %s"):format(LOPPER, run.script, run.model,
                                                                 run.args, opt.extra,
                                                                 model_path(run))
end

local function run_one(run, data)
  local out = model_path(run)
  local log = ("%s/%s.log"):format(opt.work, run.name)
  local base_run = run.after and find_run(run.after)
  local base = base_run and load_outcome(base_run)
  if base_run and not (base and exists(model_path(base_run))) then
    error(("%s goes on from %s's model: run %s first"):format(run.name, run.after,
          run.after), 0)
  end
  local cmd, started_at = command_of(run), commit()   -- the code the run starts from
  print(("[%s] %s  (log: %s)"):format(os.date("%H:%M"), cmd, log))
  local t0 = lop.clock()
  local ok = os.execute(("%s > %s 2>&1"):format(cmd, log))
  if not ok then error(("%s failed; see %s"):format(run.name, log), 0) end
  local seconds = lop.clock() - t0 + (base and 60 * base.minutes or 0)
  local before, after = measure(run, data)
  local widths = ("%s/%s.widths.svg"):format(opt.dir, run.name)
  local f = assert(io.open(run.after and ("%s/%s.widths.svg"):format(opt.dir, run.after)
                           or out:gsub("%.lop$", "") .. ".widths.svg"))
  lop.write_text(widths, f:read("a"))
  f:close()
  save_outcome(run, {
    name = run.name, command = (cmd:gsub("^%S+", "build/lopper"):gsub("%s+", " ")),
    date = os.date("!%Y-%m-%d"), commit = started_at, minutes = seconds / 60,
    threads = threads_used(),
    test_images = #data.test,
    before = before, after = after})
  print(("[%s] %s done in %.0f min: top-1 %.2f%% -> %.2f%%, FLOPs %.2fx"):format(
    os.date("%H:%M"), run.name, seconds / 60, 100 * before.top1, 100 * after.top1,
    before.flops / after.flops))
end

-- The targets an outcome misses: a list of texts, and whether the accuracy/size
-- targets (`model`) or the latency target (`latency`) are among them.
local function misses(run, o)
  local b, a, t = o.before, o.after, run.target
  local drop = 100 * (b.top1 - a.top1)
  local texts, model, latency = {}, false, false
  local function miss(text) texts[#texts + 1] = text; model = true end
  if t.flops and b.flops / a.flops < t.flops * 0.995 then
    miss(("FLOPs %.2fx < %gx"):format(b.flops / a.flops, t.flops))
  end
  if t.params and b.params / a.params < t.params then
    miss(("params %.2fx < %gx"):format(b.params / a.params, t.params))
  end
  if t.drop and drop > t.drop then miss(("drop %.2f > %g pt"):format(drop, t.drop)) end
  local lat = (b.ms64 / a.ms64) / (b.flops / a.flops)
  if t.flops and lat < 0.8 then
    texts[#texts + 1] = ("batch-64 speed-up %.2f of the FLOPs cut < 0.8"):format(lat)
    latency = true
  end
  return texts, model, latency
end

local function verdict(run, o)
  local texts = misses(run, o)
  return #texts == 0 and "met" or ("missed: " .. table.concat(texts, "; "))
end

local function target_text(t)
  local parts = {}
  if t.flops then parts[#parts + 1] = (">= %gx FLOPs"):format(t.flops) end
  if t.params then parts[#parts + 1] = (">= %gx params"):format(t.params) end
  if t.drop then parts[#parts + 1] = ("<= %g pt drop"):format(t.drop) end
  if t.flops then parts[#parts + 1] = "b64 speed-up >= 0.8 x FLOPs cut" end
  return #parts > 0 and table.concat(parts, ", ") or "-"
end

-- The notes file's paragraphs {section name -> text}: each "## name" heading starts one,
-- its lines joined by spaces (the text before the first heading is about the file).
local function read_notes()
  local f, err = io.open(opt.notes)
  if not f then error("cannot read the page's notes: " .. err, 0) end
  local notes, name = {}, nil
  for line in f:lines() do
    local heading = line:match("^##%s+(.-)%s*$")
    if heading then
      name = heading
      notes[name] = {}
    elseif name and line:match("%S") then
      table.insert(notes[name], (line:match("^%s*(.-)%s*$")))
    end
  end
  f:close()
  for k, lines in pairs(notes) do notes[k] = table.concat(lines, " ") end
  return notes
end

-- Section `name` of the notes with its {figures} filled in from `values`; `absent`
-- stands for a section the notes do not have (without it, that is an error).
local function note(notes, name, values, absent)
  local text = notes[name]
  if not text and absent then return absent end
  if not text then error(("%s has no '## %s' section"):format(opt.notes, name), 0) end
  return (text:gsub("{([%w_]+)}", function(key)
    if values[key] == nil then
      error(("%s, section '%s': no figure named {%s}"):format(opt.notes, name, key), 0)
    end
    return values[key]
  end))
end

-- The figures of the notes' head section: the fully connected head's share of VGG-16.
local function head_figures()
  local net = lop.load(VGG)
  local params, flops = 0, 0
  for _, h in ipairs(net:nodes()) do
    if h.kind == "linear" then params, flops = params + h:params(), flops + h:flops() end
  end
  local share = params / net:params()
  return {head_params = ("%d"):format(params), params = ("%d"):format(net:params()),
          head_params_share = ("%.1f%%"):format(100 * share),
          head_flops_share = ("%.2f%%"):format(100 * flops / net:flops()),
          gap_cut = ("%.2fx"):format(1 / (1 - share))}
end

-- The thread setting an outcome's latencies were taken with (outcomes written before
-- it was recorded used the default), and how it reads in the page.
local function threads_of(o) return o.threads or "one per core" end
local function threads_text(threads)
  return threads == "one per core" and "one engine thread per core"
         or ("LOP_THREADS=%s"):format(threads)
end

-- The thread setting most of the outcomes {run -> outcome} were timed with (the page
-- names it once; rows timed otherwise say so).
local function usual_threads(outcomes)
  local count, best = {}, "one per core"
  for _, o in pairs(outcomes) do
    local t = threads_of(o)
    count[t] = (count[t] or 0) + 1
    if count[t] > (count[best] or 0) then best = t end
  end
  return best
end

-- Automatic against uniform widths (scripts/tools/widths_sweep.lua): for each record
-- docs/results/widths_<model>.lua, a table of its targets and the plot beside it.
local function widths_section(lines, notes)
  local p = io.popen(("ls %s/widths_*.lua 2>/dev/null"):format(opt.dir))
  local files = {}
  for path in p:lines() do files[#files + 1] = path end
  p:close()
  for _, path in ipairs(files) do
    local outcomes = dofile(path)
    local stem = path:match("widths_([%w_]+)%.lua$")
    table.sort(outcomes, function(a, b) return a.speedup < b.speedup end)
    lines[#lines + 1] = ""
    lines[#lines + 1] = ("Automatic against uniform widths, %s, at equal measured latency "
                         .. "(batch %d): %s"):format(stem, outcomes[1].batch or 64,
                         note(notes, "widths " .. stem, {}, ""))
    lines[#lines + 1] = ""
    lines[#lines + 1] = "| uniform widths for | latency budget (of the original's) | "
                        .. "uniform: top-1 pruned -> fine-tuned | ms (of the original's) | "
                        .. "FLOPs | automatic: top-1 pruned -> fine-tuned | ms (of the "
                        .. "original's) | FLOPs |"
    lines[#lines + 1] = "|---|---|---|---|---|---|---|---|"
    for _, o in ipairs(outcomes) do
      local u, a = o.uniform, o.auto
      lines[#lines + 1] = ("| %.2fx FLOPs | %.2f ms (%.3f) | %.2f%% -> %.2f%% | %.2f (%.3f) | "
                           .. "%.2fx | %.2f%% -> %.2f%% | %.2f (%.3f) | %.2fx |"):format(
        o.speedup, o.budget, o.budget_fraction, 100 * u.before, 100 * u.after, u.ms,
        u.fraction, o.flops / u.flops, 100 * a.before, 100 * a.after, a.ms, a.fraction,
        o.flops / a.flops)
    end
    local runs, seen = {}, {}
    for _, o in ipairs(outcomes) do
      local run = ("`%s` (commit %s, %s)"):format(o.command, o.commit or "unknown", o.date)
      if not seen[run] then seen[run], runs[#runs + 1] = true, run end
    end
    lines[#lines + 1] = ""
    lines[#lines + 1] = ("Commands: %s; plot: ![top-1 against latency](results/widths_%s.svg)")
                        :format(table.concat(runs, "; "), stem)
  end
end

local function write_page()
  local rows, sweep, outcomes = {}, {}, {}
  for _, run in ipairs(RUNS) do outcomes[run] = load_outcome(run) end
  local usual = usual_threads(outcomes)
  local notes = read_notes()
  local lines = {
    "# Results: full pruning runs on Fashion-MNIST",
    "",
    note(notes, "intro", {threads = threads_text(usual)}),
    "",
    "| run | date | minutes | top-1 before -> after | drop (pt) | params | FLOPs | "
    .. "latency b1 | latency b64 | b64 / FLOPs | target | verdict |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  }
  local missing = {}
  for _, run in ipairs(RUNS) do
    local o = outcomes[run]
    if not o then
      missing[#missing + 1] = run.name
    else
      local b, a = o.before, o.after
      local fr = b.flops / a.flops
      lines[#lines + 1] = ("| %s%s | %s | %.0f | %.2f%% -> %.2f%% | %.2f | %.2fx | %.2fx | "
        .. "%.2fx | %.2fx | %.2f | %s | %s |"):format(run.name,
        (o.test_images ~= 10000 and (" (%d test images)"):format(o.test_images) or "")
        .. (threads_of(o) ~= usual
            and (" (latency with %s)"):format(threads_text(threads_of(o))) or ""),
        o.date, o.minutes,
        100 * b.top1, 100 * a.top1, 100 * (b.top1 - a.top1), b.params / a.params, fr,
        b.ms1 / a.ms1, b.ms64 / a.ms64, (b.ms64 / a.ms64) / fr, target_text(run.target),
        run.sweep and "-" or verdict(run, o))
      rows[#rows + 1] = {run = run, o = o}
      if run.sweep then
        sweep[run.sweep] = sweep[run.sweep] or {}
        table.insert(sweep[run.sweep], {fr, 100 * a.top1})
      end
    end
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Commands (all other options at their defaults):"
  lines[#lines + 1] = ""
  for _, r in ipairs(rows) do
    lines[#lines + 1] = ("- %s: `%s` (commit %s), per-layer widths: "
                         .. "[%s.widths.svg](results/%s.widths.svg)")
                        :format(r.run.name, r.o.command, r.o.commit or "unknown", r.run.name,
                                r.run.name)
  end
  local series = {}
  for solver, points in pairs(sweep) do
    table.sort(points, function(p, q) return p[1] < q[1] end)
    series[#series + 1] = {name = solver, points = points}
  end
  table.sort(series, function(p, q) return p.name < q.name end)
  if #series > 0 then
    lop.write_text(opt.dir .. "/accuracy_vs_flops.svg", lop.svg.lines{
      title = "VGG-16, ThiNet schedule (fine-tune 0.2 + 1 epoch), by selection rule",
      x_label = "FLOPs reduction (x)", y_label = "test top-1 (%)", series = series})
    lines[#lines + 1] = ""
    lines[#lines + 1] = "Accuracy against FLOPs for the selection rules (the sweep_* runs): "
                        .. "![accuracy vs FLOPs](results/accuracy_vs_flops.svg)"
  end
  widths_section(lines, notes)
  local why, latency_missed = {}, false
  for _, r in ipairs(rows) do
    local _, model, latency = misses(r.run, r.o)
    if model then
      why[#why + 1] = ("- %s: %s"):format(r.run.name, note(notes, "why " .. r.run.name, {},
                                                           "(not yet analysed)"))
    end
    latency_missed = latency_missed or latency
  end
  if latency_missed then
    why[#why + 1] = "- batch-64 latency: " .. note(notes, "why latency", {}, "(not yet analysed)")
  end
  if #why > 0 then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "Why targets were missed:"
    lines[#lines + 1] = ""
    table.move(why, 1, #why, #lines + 1, lines)
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = note(notes, "head", head_figures())
  if #missing > 0 then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "Not yet run: " .. table.concat(missing, ", ") .. "."
  end
  lop.write_text(opt.page, table.concat(lines, "\n") .. "\n")
  print(("wrote %s (%d of %d runs)"):format(opt.page, #rows, #RUNS))
end

if opt.list then
  for _, run in ipairs(RUNS) do
    print(("%-22s %-8s %s"):format(run.name, load_outcome(run) and "done" or "-",
          command_of(run):gsub("^%S+ ", "")))
  end
  return
end
os.execute(("mkdir -p '%s' '%s'"):format(opt.work, opt.dir))
if opt.run and opt.measure then error("give --run or --measure, not both", 0) end
local data = (opt.run or opt.measure)
             and lop.data.fashion_mnist{train_size = 2, test_size = opt.test_size}
if opt.measure then
  local todo = {}
  for _, run in ipairs(RUNS) do
    if opt.measure == run.name or (opt.measure == "all" and load_outcome(run)) then
      todo[#todo + 1] = run
    end
  end
  if #todo == 0 then
    error(("no done run named '%s' to measure (see --list)"):format(opt.measure), 0)
  end
  for _, run in ipairs(todo) do
    local o = load_outcome(run)
    if not o then error(("%s has not been run yet"):format(run.name), 0) end
    if not exists(model_path(run)) then
      error(("%s: the pruned model %s is gone; rerun with --run %s"):format(run.name,
            model_path(run), run.name), 0)
    end
    o.before, o.after = measure(run, data)
    o.test_images, o.threads = #data.test, threads_used()
    save_outcome(run, o)
    print(("%s re-measured: latency b64 %.2fx, FLOPs %.2fx"):format(run.name,
          o.before.ms64 / o.after.ms64, o.before.flops / o.after.flops))
  end
end
if opt.run then
  local todo = {}
  for _, run in ipairs(RUNS) do
    if opt.run == run.name or opt.run == "all"
       or (opt.run == "missing" and not load_outcome(run)) then
      todo[#todo + 1] = run
    end
  end
  if #todo == 0 and opt.run ~= "missing" then
    error(("no run named '%s' (see --list)"):format(opt.run), 0)
  end
  for _, run in ipairs(todo) do
    run_one(run, data)
    write_page()
  end
end
write_page()
