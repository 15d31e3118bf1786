-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 25146688.0,
    ["loss"] = 0.24140330618301353,
    ["ms1"] = 0.9459710490773432,
    ["ms64"] = 18.429887997626793,
    ["params"] = 1867059,
    ["top1"] = 0.91320000000000001,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804948608422,
    ["ms1"] = 2.8411700113792904,
    ["ms64"] = 75.137596970307641,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver lasso --keep 0.3 --finetune 0.2 --final 1 --out build/results/sweep_lasso_03.lop",
  ["commit"] = "5803e54",
  ["date"] = "2026-12-05",
  ["minutes"] = 10.762029855400034,
  ["name"] = "sweep_lasso_03",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
