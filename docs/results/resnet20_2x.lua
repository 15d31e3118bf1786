-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 39853952.0,
    ["loss"] = 0.18559503850661049,
    ["ms1"] = 1.0502840086701326,
    ["ms64"] = 50.452931005565915,
    ["params"] = 131494,
    ["top1"] = 0.93240000000000001,
  },
  ["before"] = {
    ["flops"] = 81716480.0,
    ["loss"] = 0.17832464675478951,
    ["ms1"] = 1.4371849792951252,
    ["ms64"] = 70.464067004650133,
    ["params"] = 273754,
    ["top1"] = 0.93520000000000003,
  },
  ["command"] = "build/lopper scripts/resnet.lua --model models/resnet20.lop --speedup 2 --out build/results/resnet20_2x.lop",
  ["commit"] = "7de4088",
  ["date"] = "2026-12-04",
  ["minutes"] = 54.55137403246669,
  ["name"] = "resnet20_2x",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
