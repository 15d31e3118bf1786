-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 25146688.0,
    ["loss"] = 0.24005207024040648,
    ["ms1"] = 0.95449201762676239,
    ["ms64"] = 18.652461018064059,
    ["params"] = 1867059,
    ["top1"] = 0.91400000000000003,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804948608422,
    ["ms1"] = 3.2994789798976853,
    ["ms64"] = 76.33237300615292,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver l1 --keep 0.3 --finetune 0.2 --final 1 --out build/results/sweep_l1_03.lop",
  ["commit"] = "5803e54",
  ["date"] = "2026-12-05",
  ["minutes"] = 10.804583807316643,
  ["name"] = "sweep_l1_03",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
