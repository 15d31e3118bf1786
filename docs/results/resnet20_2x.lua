-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 39853952.0,
    ["loss"] = 0.1913776979378031,
    ["ms1"] = 0.6566809825017117,
    ["ms64"] = 50.310224993154407,
    ["params"] = 131494,
    ["top1"] = 0.93030000000000002,
  },
  ["before"] = {
    ["flops"] = 81716480.0,
    ["loss"] = 0.17832461624266285,
    ["ms1"] = 1.2351430341368541,
    ["ms64"] = 80.108487032703124,
    ["params"] = 273754,
    ["top1"] = 0.93520000000000003,
  },
  ["command"] = "build/lopper scripts/resnet.lua --model models/resnet20.lop --speedup 2 --out build/results/resnet20_2x.lop",
  ["commit"] = "6dee51d",
  ["date"] = "2026-11-29",
  ["minutes"] = 95.238328479883364,
  ["name"] = "resnet20_2x",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
