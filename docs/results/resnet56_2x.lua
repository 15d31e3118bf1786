-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 126068288.0,
    ["loss"] = 0.18824582225308428,
    ["ms1"] = 3.2272239623125643,
    ["ms64"] = 125.23892198078102,
    ["params"] = 423670,
    ["top1"] = 0.93159999999999998,
  },
  ["before"] = {
    ["flops"] = 252790016.0,
    ["loss"] = 0.18716555557302553,
    ["ms1"] = 4.1066230114665814,
    ["ms64"] = 181.26154198398581,
    ["params"] = 859738,
    ["top1"] = 0.9335,
  },
  ["command"] = "build/lopper scripts/resnet.lua --model models/resnet56.lop --speedup 2 --finetune 0.25 --out build/results/resnet56_2x.lop",
  ["commit"] = "5803e54",
  ["date"] = "2026-12-05",
  ["minutes"] = 117.03033462751664,
  ["name"] = "resnet56_2x",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
