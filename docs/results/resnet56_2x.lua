-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 126068288.0,
    ["loss"] = 0.18539229654949843,
    ["ms1"] = 2.1546559146372601,
    ["ms64"] = 154.32040787709411,
    ["params"] = 423670,
    ["top1"] = 0.93420000000000003,
  },
  ["before"] = {
    ["flops"] = 252790016.0,
    ["loss"] = 0.18716554646365607,
    ["ms1"] = 4.5660789619432762,
    ["ms64"] = 245.55794103071094,
    ["params"] = 859738,
    ["top1"] = 0.9335,
  },
  ["command"] = "build/lopper scripts/resnet.lua --model models/resnet56.lop --speedup 2 --finetune 0.25 --out build/results/resnet56_2x.lop",
  ["commit"] = "00664ff",
  ["date"] = "2026-11-29",
  ["minutes"] = 86.901430152400039,
  ["name"] = "resnet56_2x",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
