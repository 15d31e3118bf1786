-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 25146688.0,
    ["loss"] = 0.24231121127975849,
    ["ms1"] = 0.89173898595618084,
    ["ms64"] = 29.319938003027346,
    ["params"] = 1867059,
    ["top1"] = 0.91459999999999997,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 2.8698450187221169,
    ["ms64"] = 133.37364703329513,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver first --keep 0.3 --finetune 0.2 --final 1 --out build/results/sweep_first_03.lop",
  ["commit"] = "7e04c90",
  ["date"] = "2026-11-29",
  ["minutes"] = 13.591169707333272,
  ["name"] = "sweep_first_03",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
