-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 47729664.0,
    ["loss"] = 0.18896539742649587,
    ["ms1"] = 1.1740830013877712,
    ["ms64"] = 43.132206003065221,
    ["params"] = 1959962,
    ["top1"] = 0.93220000000000003,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 2.4518710051779635,
    ["ms64"] = 116.64886298240162,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_gap_vgg16.lua --model models/vgg16.lop --out build/results/thinet_gap_vgg16.lop",
  ["commit"] = "6f58edd",
  ["date"] = "2026-11-29",
  ["minutes"] = 88.435846892333331,
  ["name"] = "thinet_gap_vgg16",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
