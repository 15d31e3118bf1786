-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 39853952,
    ["loss"] = 0.19137769750103645,
    ["ms1"] = 0.87922449165489525,
    ["ms64"] = 44.46483300307591,
    ["params"] = 131494,
    ["top1"] = 0.93030000000000002,
  },
  ["before"] = {
    ["flops"] = 81716480,
    ["loss"] = 0.17832461645399872,
    ["ms1"] = 1.9091064987151185,
    ["ms64"] = 82.964104505663272,
    ["params"] = 273754,
    ["top1"] = 0.93520000000000003,
  },
  ["command"] = "build/lopper scripts/resnet.lua --model models/resnet20.lop --speedup 2 --out build/results/resnet20_2x.lop",
  ["commit"] = "6dee51d",
  ["date"] = "2026-11-29",
  ["minutes"] = 95.238328479883364,
  ["name"] = "resnet20_2x",
  ["test_images"] = 10000,
  ["threads"] = "one per core",
}
