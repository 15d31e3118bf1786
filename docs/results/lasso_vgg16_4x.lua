-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 39289696.0,
    ["loss"] = 0.21020356121243244,
    ["ms1"] = 0.85921698337187991,
    ["ms64"] = 37.306679005268961,
    ["params"] = 1634207,
    ["top1"] = 0.92400000000000004,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 2.4275350078823976,
    ["ms64"] = 109.20084297686117,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/lasso_vgg16.lua --model models/vgg16.lop --speedup 4 --out build/results/lasso_vgg16_4x.lop",
  ["commit"] = "e4c26f0",
  ["date"] = "2026-11-29",
  ["minutes"] = 11.052132440716681,
  ["name"] = "lasso_vgg16_4x",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
