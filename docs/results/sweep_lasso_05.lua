-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512.0,
    ["loss"] = 0.20807748845897378,
    ["ms1"] = 1.2075320337316953,
    ["ms64"] = 41.530443035298958,
    ["params"] = 2288154,
    ["top1"] = 0.92830000000000001,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 2.4387699959333986,
    ["ms64"] = 108.35510399920167,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver lasso --keep 0.5 --finetune 0.2 --final 1 --out build/results/sweep_lasso_05.lop",
  ["commit"] = "7e04c90",
  ["date"] = "2026-11-29",
  ["minutes"] = 19.1698836639167,
  ["name"] = "sweep_lasso_05",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
