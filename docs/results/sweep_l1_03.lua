-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 25146688.0,
    ["loss"] = 0.24316869316553544,
    ["ms1"] = 0.80808500933926553,
    ["ms64"] = 24.284037004690617,
    ["params"] = 1867059,
    ["top1"] = 0.91239999999999999,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 2.4407269811490551,
    ["ms64"] = 110.88279901014175,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver l1 --keep 0.3 --finetune 0.2 --final 1 --out build/results/sweep_l1_03.lop",
  ["commit"] = "7e04c90",
  ["date"] = "2026-11-29",
  ["minutes"] = 13.101509924733303,
  ["name"] = "sweep_l1_03",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
