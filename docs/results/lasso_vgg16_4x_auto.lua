-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 39259584.0,
    ["loss"] = 0.20140250855808658,
    ["ms1"] = 1.0238639879389666,
    ["ms64"] = 28.61202199710533,
    ["params"] = 875724,
    ["top1"] = 0.9284,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804614821518,
    ["ms1"] = 3.8545510069525335,
    ["ms64"] = 86.588017009489704,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/lasso_vgg16.lua --model models/vgg16.lop --speedup 4 --widths auto --out build/results/lasso_vgg16_4x_auto.lop",
  ["commit"] = "21eb450",
  ["date"] = "2026-12-04",
  ["minutes"] = 11.427657562216639,
  ["name"] = "lasso_vgg16_4x_auto",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
