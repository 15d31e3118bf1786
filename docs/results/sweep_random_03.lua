-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 25146688.0,
    ["loss"] = 0.23954930650646114,
    ["ms1"] = 0.95577105093980208,
    ["ms64"] = 18.98797999456292,
    ["params"] = 1867059,
    ["top1"] = 0.91420000000000001,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804948608422,
    ["ms1"] = 3.4750290142255835,
    ["ms64"] = 76.403851991926786,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver random --keep 0.3 --finetune 0.2 --final 1 --out build/results/sweep_random_03.lop",
  ["commit"] = "5803e54",
  ["date"] = "2026-12-05",
  ["minutes"] = 8.5292803997832376,
  ["name"] = "sweep_random_03",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
