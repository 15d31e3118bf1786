-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512.0,
    ["loss"] = 0.206319465973789,
    ["ms1"] = 1.3459769979817793,
    ["ms64"] = 41.579844997613691,
    ["params"] = 2288154,
    ["top1"] = 0.92630000000000001,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 2.4528470094082877,
    ["ms64"] = 109.25596601009602,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver random --keep 0.5 --finetune 0.2 --final 1 --out build/results/sweep_random_05.lop",
  ["commit"] = "7e04c90",
  ["date"] = "2026-11-29",
  ["minutes"] = 17.20250423381658,
  ["name"] = "sweep_random_05",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
