-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 39289696,
    ["loss"] = 0.19468353960077467,
    ["ms1"] = 1.2903530077892356,
    ["ms64"] = 41.120135989331175,
    ["params"] = 1634207,
    ["top1"] = 0.93100000000000005,
  },
  ["before"] = {
    ["flops"] = 157440512,
    ["loss"] = 0.17596804560834936,
    ["ms1"] = 4.0823700037435628,
    ["ms64"] = 105.37048899277579,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/train.lua --from build/results/lasso_vgg16_4x.lop --epochs 9 --lr 0.005 --out build/results/lasso_vgg16_4x_ft.lop",
  ["commit"] = "973eaed",
  ["date"] = "2026-11-29",
  ["minutes"] = 40.751115570333361,
  ["name"] = "lasso_vgg16_4x_ft",
  ["test_images"] = 10000,
  ["threads"] = "one per core",
}
