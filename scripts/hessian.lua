-- hessian.lua - second-order pruning with masks: for each of VGG-16's first ten
-- convolutions, rank its filters by the L1 norm of the dominant eigenvector of the
-- loss Hessian restricted to the layer (power iteration on Hessian-vector products),
-- mask the least important ones (they stay exactly zero from then on), retrain with
-- the masks, and finally remove the masked channels physically and fine-tune.
--
--   build/lopper scripts/hessian.lua --keep 0.5
local lop = require "lopper"
local vgg16 = require "models.vgg16"

local r = lop.recipe.start(arg, {
  hessian_images = {default = 128, type = "int", min = 2,
                    help = "images the loss is averaged over for the Hessian"},
  max_iter = {default = 100, type = "int", min = 1, help = "power-iteration cap"},
  weighted = {default = false, help = "multiply importance by the filter's squared norm"},
}, "Hessian power-iteration importance on VGG-16: masks, retraining, removal.")

for i = 1, 10 do
  local name = vgg16.conv_names[i]
  local t0 = os.time()
  local keep, lambda, products = lop.select.hessian(r.net, r.data.train, name, {
    keep = r.opt.keep, images = r.opt.hessian_images, max_iter = r.opt.max_iter,
    seed = r.opt.seed, weighted = r.opt.weighted})
  r.net:mask(r.net:group_of(name), keep)
  print(("layer %2d/10 %-8s top eigenvalue %.4g after %d products: masked %d of %d "
         .. "filters (%ds)"):format(i, name, lambda, products,
         r.net:node(name):shape()[1] - #keep, r.net:node(name):shape()[1], os.time() - t0))
  r:finetune(r.opt.finetune, "with masks")
end
print(("removed %d masked channels"):format(r.net:remove_masked()))
print("final fine-tune")
r:finetune(r.opt.final, "final")
r:finish()
