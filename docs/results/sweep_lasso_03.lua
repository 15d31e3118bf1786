-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 25146688.0,
    ["loss"] = 0.23382814104954974,
    ["ms1"] = 0.78073597251204774,
    ["ms64"] = 23.691871014307253,
    ["params"] = 1867059,
    ["top1"] = 0.91320000000000001,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 2.4547550056013279,
    ["ms64"] = 107.36138099309755,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver lasso --keep 0.3 --finetune 0.2 --final 1 --out build/results/sweep_lasso_03.lop",
  ["commit"] = "7e04c90",
  ["date"] = "2026-11-29",
  ["minutes"] = 11.805604107183292,
  ["name"] = "sweep_lasso_03",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
