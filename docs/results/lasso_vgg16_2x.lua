-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 78490848.0,
    ["loss"] = 0.19444686699723093,
    ["ms1"] = 1.4879389709676616,
    ["ms64"] = 63.352509008836932,
    ["params"] = 2803295,
    ["top1"] = 0.93069999999999997,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 2.4402029885095544,
    ["ms64"] = 107.1060049944208,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/lasso_vgg16.lua --model models/vgg16.lop --speedup 2 --out build/results/lasso_vgg16_2x.lop",
  ["commit"] = "9c5c859",
  ["date"] = "2026-11-29",
  ["minutes"] = 18.342535089800002,
  ["name"] = "lasso_vgg16_2x",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
