-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 39289696,
    ["loss"] = 0.2102035553865676,
    ["ms1"] = 1.3410555129667046,
    ["ms64"] = 44.220047009730479,
    ["params"] = 1634207,
    ["top1"] = 0.92400000000000004,
  },
  ["before"] = {
    ["flops"] = 157440512,
    ["loss"] = 0.17596804560834936,
    ["ms1"] = 3.0231445125536993,
    ["ms64"] = 78.545229021983687,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/lasso_vgg16.lua --model models/vgg16.lop --speedup 4 --out build/results/lasso_vgg16_4x.lop",
  ["commit"] = "e4c26f0",
  ["date"] = "2026-11-29",
  ["minutes"] = 11.052132440716681,
  ["name"] = "lasso_vgg16_4x",
  ["test_images"] = 10000,
  ["threads"] = "one per core",
}
