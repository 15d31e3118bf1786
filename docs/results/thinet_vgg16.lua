-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512.0,
    ["loss"] = 0.19330032818727422,
    ["ms1"] = 0.67313892941456288,
    ["ms64"] = 25.732746973517351,
    ["params"] = 2288154,
    ["top1"] = 0.93279999999999996,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596805448128625,
    ["ms1"] = 2.708687970880419,
    ["ms64"] = 68.156326975440606,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --out build/results/thinet_vgg16.lop",
  ["commit"] = "74c17b9",
  ["date"] = "2026-12-03",
  ["minutes"] = 49.866028621349933,
  ["name"] = "thinet_vgg16",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
