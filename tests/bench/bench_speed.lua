-- bench_speed.lua - issue 18's table: Lopper against Debian's PyTorch 1.13 on the same
-- networks, in one run (`make bench`).  Each network is written once as an ONNX file
-- under build/bench/ and both sides read that file: Lopper with lop.load, PyTorch with
-- tests/bench/onnx_to_torch.py (in tests/bench/torch_speed.py, a subprocess per network
-- per round, timed after torch's import).  Figures: forward images/s at batch 64 (eval),
-- training images/s at batch 64 (train-mode forward, cross-entropy, backward, SGD with
-- momentum 0.9, Nesterov, weight decay 5e-4 - net:time{train = true}), batch-1 latency
-- in ms (eval), and batch-1 latency in each side's deployment form (the engine's
-- net:freeze(), PyTorch's traced, frozen and optimized module).  Each is the fastest
-- pass of its reps, and the best of the rounds, which alternate the two sides (Lopper
-- first in odd rounds, PyTorch first in even ones): on this shared machine the speed
-- drifts within minutes, so a figure is only compared with one taken beside it.
-- Targets (issue 18): forward and training >= 1.2x PyTorch, eager latency <= 0.5x
-- (the deployed latency has none).
local lop = require "lopper"
local resnet = require "models.resnet"

local opt = lop.options(arg, {
  rounds = {default = 2, type = "int", min = 1, help = "alternating rounds per network"},
  dir = {default = "build/bench", help = "where the ONNX files are written (and kept)"},
  only = {type = "string", metavar = "NAMES",
          help = "comma-separated networks to run (default all: vgg-small, resnet-small, "
                 .. "vgg16, resnet20, resnet18)"},
  torch = {default = true, help = "compare with PyTorch (needs /usr/bin/python3 with torch)"},
  seconds = {default = 3, type = "number", min = 0, exclusive_min = true,
             help = "time per figure per side per round, roughly (caps the reps)"},
}, {description = "Lopper against PyTorch on the same ONNX networks: forward, training, latency."})

io.stdout:setvbuf("line")   -- progress goes to stderr between the lines

local PY = "/usr/bin/python3"
local HERE = "tests/bench/"
local TARGET = {fwd = 1.2, train = 1.2, lat = 0.5}

-- The thin 1x28x28 VGG of the README's first table: 32, 32, pool, 64, 64, pool, 128,
-- 128, pool (3x3 conv + batchnorm + ReLU each), global average pooling, linear.
local function vgg_small()
  local net = lop.net{input = {1, 28, 28}, seed = 1}
  local x, conv, pool = net:nodes()[1].name, 0, 0
  for _, w in ipairs{32, 32, "M", 64, 64, "M", 128, 128, "M"} do
    if w == "M" then
      pool = pool + 1
      x = net:maxpool("pool" .. pool, x, {kernel = 2})
    else
      conv = conv + 1
      x = net:conv2d("conv" .. conv, x, {out = w, kernel = 3, pad = 1, bias = false})
      x = net:relu("relu" .. conv, net:batchnorm("bn" .. conv, x))
    end
  end
  net:linear("fc", net:global_avgpool("gap", x), {out = 10})
  return net
end

local function run(cmd)
  local p = io.popen(cmd)
  local out = p:read("a")
  local ok = p:close()
  if not ok then error("bench_speed: failed: " .. cmd, 0) end
  return out
end

-- Each network: how its ONNX file is made (once; later runs reuse it) and its most
-- reps (forward, training, latency); fewer when they would take more than --seconds
-- (ResNet-18 at 224x224 trains at several seconds a step on two cores: one or two).
local NETS = {
  {name = "vgg-small", input = "1x28x28", reps = {50, 20, 200},
   make = function(path) vgg_small():save(path) end},
  {name = "resnet-small", input = "1x28x28", reps = {50, 20, 200},
   make = function(path) resnet{depth = 20, input = {1, 28, 28}}:save(path) end},
  {name = "vgg16", input = "1x32x32", reps = {30, 12, 100},
   make = function(path) lop.load("models/vgg16.lop"):save(path) end},
  {name = "resnet20", input = "1x32x32", reps = {30, 12, 100},
   make = function(path) lop.load("models/resnet20.lop"):save(path) end},
  {name = "resnet18", input = "3x224x224", reps = {3, 2, 20}, note = "torchvision's, seeded "
   .. "random weights", needs_torch = true,
   make = function(path) run(("%s %sexport_resnet18.py '%s'"):format(PY, HERE, path)) end},
}

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function have_torch()
  return opt.torch and os.execute(PY .. " -c 'import torch, onnx' 2>/dev/null") == true
end

-- The reps each figure gets: as many as fit in --seconds by one timed pass of each
-- kind (a training step taken as 3 forward passes), at most the network's.
local function fit_reps(net, most)
  local fwd = net:time{batch = 64, reps = 1}
  local lat = net:time{batch = 1, reps = 1}
  local function fit(ms, cap) return math.max(1, math.min(cap, opt.seconds * 1e3 // ms)) end
  return {fit(fwd, most[1]), fit(3 * fwd, most[2]), fit(lat, most[3])}
end

local function lopper_side(net, reps)
  local deployed <close> = net:clone():freeze()   -- its untimed first pass keeps the weights
  return {fwd = 64e3 / net:time{batch = 64, reps = reps[1]},
          train = 64e3 / net:time{batch = 64, reps = reps[2], train = true},
          lat = net:time{batch = 1, reps = reps[3]},
          deploy = deployed:time{batch = 1, reps = reps[3]}}
end

local info_printed = false
local function torch_side(path, reps)
  local out = run(("%s %storch_speed.py %s'%s' %d %d %d %g"):format(
    PY, HERE, info_printed and "" or "--info ", path, reps[1], reps[2], reps[3], opt.seconds))
  local info = out:match("^(torch [^\n]*)\n")
  if info then print("PyTorch: " .. info); info_printed = true end
  local fwd, train, lat, deploy, conv = out:match("speed (%S+) (%S+) (%S+) (%S+) (%S+)")
  if not fwd then error("bench_speed: torch_speed.py printed no figures:\n" .. out, 0) end
  return {fwd = tonumber(fwd), train = tonumber(train), lat = tonumber(lat),
          deploy = tonumber(deploy), conv = conv}
end

-- best[k]: the higher images/s, the lower ms.
local function keep_best(best, new)
  if not best then return new end
  for _, k in ipairs{"fwd", "train"} do best[k] = math.max(best[k], new[k]) end
  for _, k in ipairs{"lat", "deploy"} do best[k] = math.min(best[k], new[k]) end
  return best
end

local function verdict(k, ratio)
  if not TARGET[k] then return "-" end
  if k == "lat" then return ratio <= TARGET.lat and "met" or "missed" end
  return ratio >= TARGET[k] and "met" or "missed"
end

local only = {}
for n in (opt.only or ""):gmatch("[^,]+") do only[n] = true end
local use_torch = have_torch()
local threads = os.getenv("LOP_THREADS")
print(("Lopper %s, engine threads: %s; %d alternating rounds per network, each figure "
       .. "the best of them"):format(lop.version,
       threads and ("LOP_THREADS=" .. threads) or ("one per core (" .. run("nproc"):gsub("%s", "")
       .. ")"), opt.rounds))
if not use_torch then
  print("(PyTorch not used: " .. (opt.torch and "/usr/bin/python3 lacks torch or onnx; "
        .. "scripts/tools/install_deps.sh installs them" or "--no-torch") .. ")")
end
os.execute(("mkdir -p '%s'"):format(opt.dir))

local t0 = lop.clock()
local rows = {}
for _, n in ipairs(NETS) do
  local path = ("%s/%s.onnx"):format(opt.dir, n.name)
  local wanted = next(only) == nil or only[n.name]
  if wanted and n.needs_torch and not use_torch and not exists(path) then
    print(("(%s left out: its ONNX file is written by PyTorch)"):format(n.name))
  elseif wanted then
    if not exists(path) then n.make(path) end
    local net = lop.load(path)
    local mine, theirs
    local reps = fit_reps(net, n.reps)
    for round = 1, opt.rounds do
      local torch_first = round % 2 == 0
      if use_torch and torch_first then theirs = keep_best(theirs, torch_side(path, reps)) end
      mine = keep_best(mine, lopper_side(net, reps))
      if use_torch and not torch_first then theirs = keep_best(theirs, torch_side(path, reps)) end
    end
    rows[#rows + 1] = {net = n, flops = net:flops(), mine = mine, theirs = theirs, reps = reps}
    net:close()
    io.stderr:write(("bench_speed: %s done at %.0f s\n"):format(n.name, lop.clock() - t0))
  end
end

local FIGURES = {
  {k = "fwd", what = "forward b64 img/s", fmt = "%.0f", gflop = 1},
  {k = "train", what = "training b64 img/s", fmt = "%.0f", gflop = 3},
  {k = "lat", what = "latency b1 ms", fmt = "%.2f"},
  {k = "deploy", what = "latency b1 ms, deployed", fmt = "%.2f"},
}
print()
print("| network | figure | Lopper | PyTorch | Lopper / PyTorch | target | | Lopper GFLOP/s |")
print("|---|---|---|---|---|---|---|---|")
for _, r in ipairs(rows) do
  for i, f in ipairs(FIGURES) do
    local mine = r.mine[f.k]
    local cells = {i == 1 and ("%s (%s)"):format(r.net.name, r.net.input) or "", f.what,
                   f.fmt:format(mine), "-", "-",
                   not TARGET[f.k] and "-" or
                   (f.k == "lat" and "<= %.1fx" or ">= %.1fx"):format(TARGET[f.k]), "-"}
    if r.theirs then
      local ratio = mine / r.theirs[f.k]
      cells[4], cells[5], cells[7] = f.fmt:format(r.theirs[f.k]), ("%.2fx"):format(ratio),
                                     verdict(f.k, ratio)
    end
    -- a training step is counted as three forward passes (forward, dX, dW)
    cells[8] = f.gflop and ("%.1f"):format(f.gflop * r.flops * mine / 1e9) or ""
    print("| " .. table.concat(cells, " | ") .. " |")
  end
end
print()
for _, r in ipairs(rows) do
  print(("%s: %d forward, %d training, %d latency passes per round%s%s%s"):format(r.net.name,
        r.reps[1], r.reps[2], r.reps[3], use_torch and " (PyTorch: as many, or fewer within "
        .. opt.seconds .. " s)" or "", r.theirs and "; PyTorch's convolutions ran on "
        .. r.theirs.conv or "", r.net.note and "; " .. r.net.note or ""))
end
print(("Each figure: the fastest pass of its reps, best of %d alternating rounds%s; training "
       .. "GFLOP/s count 3x the forward FLOPs; %.0f s"):format(opt.rounds, use_torch and
       "; PyTorch on 2 threads (torch.set_num_threads(2))" or "", lop.clock() - t0))
