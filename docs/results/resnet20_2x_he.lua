-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 40531904.0,
    ["loss"] = 0.1854059883929354,
    ["ms1"] = 0.73976703424705192,
    ["ms64"] = 56.887439990532584,
    ["params"] = 132658,
    ["top1"] = 0.93300000000000005,
  },
  ["before"] = {
    ["flops"] = 81716480.0,
    ["loss"] = 0.17832461624266285,
    ["ms1"] = 1.2415609598974697,
    ["ms64"] = 83.66101100546075,
    ["params"] = 273754,
    ["top1"] = 0.93520000000000003,
  },
  ["command"] = "build/lopper scripts/resnet.lua --model models/resnet20.lop --speedup 2 --solver lasso --residual --out build/results/resnet20_2x_he.lop",
  ["commit"] = "269bf0f",
  ["date"] = "2026-11-29",
  ["minutes"] = 136.07436185556665,
  ["name"] = "resnet20_2x_he",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
