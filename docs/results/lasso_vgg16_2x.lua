-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 78490848,
    ["loss"] = 0.19444686699723093,
    ["ms1"] = 2.4116875065374188,
    ["ms64"] = 61.06917997385608,
    ["params"] = 2803295,
    ["top1"] = 0.93069999999999997,
  },
  ["before"] = {
    ["flops"] = 157440512,
    ["loss"] = 0.17596804560834936,
    ["ms1"] = 3.0186525000317488,
    ["ms64"] = 117.99015501674148,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/lasso_vgg16.lua --model models/vgg16.lop --speedup 2 --out build/results/lasso_vgg16_2x.lop",
  ["commit"] = "9c5c859",
  ["date"] = "2026-11-29",
  ["minutes"] = 18.342535089800002,
  ["name"] = "lasso_vgg16_2x",
  ["test_images"] = 10000,
  ["threads"] = "one per core",
}
