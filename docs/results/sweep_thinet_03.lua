-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 25146688.0,
    ["loss"] = 0.24058345301363787,
    ["ms1"] = 0.79671097046229988,
    ["ms64"] = 24.968376987089869,
    ["params"] = 1867059,
    ["top1"] = 0.91300000000000003,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 2.4608659441582859,
    ["ms64"] = 111.29511702165473,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver thinet --keep 0.3 --finetune 0.2 --final 1 --out build/results/sweep_thinet_03.lop",
  ["commit"] = "973eaed",
  ["date"] = "2026-11-29",
  ["minutes"] = 15.806616504399972,
  ["name"] = "sweep_thinet_03",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
