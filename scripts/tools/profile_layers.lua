-- profile_layers.lua - where a pruned network's measured speed-up comes from, layer by
-- layer (lop.compare_layers): both models timed in turn, each node's latency before and
-- after, its speed-up against its FLOPs cut and the GFLOP/s it runs at, and the nodes
-- whose speed-up falls furthest short of their FLOPs cut.
--
--   build/lopper scripts/tools/profile_layers.lua models/vgg16.lop build/results/thinet_vgg16.lop
local lop = require "lopper"

local opt = lop.options(arg, {
  batch = {default = 64, type = "int", min = 1, help = "images per timed forward pass"},
  reps = {default = 5, type = "int", min = 1, help = "timed passes per round (5 rounds)"},
}, {description = "Compare two models' measured latency layer by layer.",
    positional = "BEFORE.lop AFTER.lop"})
if #opt ~= 2 then
  error(("expected two model files, BEFORE.lop AFTER.lop (got %d)"):format(#opt), 0)
end

local before, after = lop.load(opt[1]), lop.load(opt[2])
print(("%s -> %s, batch %d (threads: %s)"):format(opt[1], opt[2], opt.batch,
      os.getenv("LOP_THREADS") or "one per core"))
print((lop.compare_layers(before, after, {batch = opt.batch, reps = opt.reps})))
