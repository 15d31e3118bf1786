-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 25146688.0,
    ["loss"] = 0.23882320076926827,
    ["ms1"] = 1.0113419921253808,
    ["ms64"] = 35.958161999587901,
    ["params"] = 1867059,
    ["top1"] = 0.9123,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 3.3796990028349683,
    ["ms64"] = 159.92923700105166,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver random --keep 0.3 --finetune 0.2 --final 1 --out build/results/sweep_random_03.lop",
  ["commit"] = "7e04c90",
  ["date"] = "2026-11-29",
  ["minutes"] = 13.113300600716684,
  ["name"] = "sweep_random_03",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
