-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 25146688.0,
    ["loss"] = 0.24158567762292865,
    ["ms1"] = 0.95702796534169465,
    ["ms64"] = 18.890476996602956,
    ["params"] = 1867059,
    ["top1"] = 0.9143,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804948608422,
    ["ms1"] = 3.5394219885347411,
    ["ms64"] = 77.325127029325813,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver first --keep 0.3 --finetune 0.2 --final 1 --out build/results/sweep_first_03.lop",
  ["commit"] = "5803e54",
  ["date"] = "2026-12-05",
  ["minutes"] = 11.993779764849993,
  ["name"] = "sweep_first_03",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
