-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512.0,
    ["loss"] = 0.20862852467251874,
    ["ms1"] = 1.3063049846095964,
    ["ms64"] = 29.617790001793765,
    ["params"] = 2288154,
    ["top1"] = 0.9274,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804948608422,
    ["ms1"] = 3.2435849861940369,
    ["ms64"] = 78.104131986037828,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver thinet --keep 0.5 --finetune 0.2 --final 1 --out build/results/sweep_thinet_05.lop",
  ["commit"] = "5803e54",
  ["date"] = "2026-12-05",
  ["minutes"] = 12.415180660950016,
  ["name"] = "sweep_thinet_05",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
