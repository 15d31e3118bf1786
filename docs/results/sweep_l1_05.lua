-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512.0,
    ["loss"] = 0.20508192259511399,
    ["ms1"] = 1.5221980138448998,
    ["ms64"] = 42.754201007483061,
    ["params"] = 2288154,
    ["top1"] = 0.92779999999999996,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 2.6933540138998069,
    ["ms64"] = 139.43574402219383,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver l1 --keep 0.5 --finetune 0.2 --final 1 --out build/results/sweep_l1_05.lop",
  ["commit"] = "7e04c90",
  ["date"] = "2026-11-29",
  ["minutes"] = 14.868792154549981,
  ["name"] = "sweep_l1_05",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
