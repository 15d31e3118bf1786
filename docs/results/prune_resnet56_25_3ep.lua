-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 96942416.0,
    ["loss"] = 0.19800847493088433,
    ["ms1"] = 1.5679369098506868,
    ["ms64"] = 69.242752026184462,
    ["params"] = 263743,
    ["top1"] = 0.92969999999999997,
  },
  ["before"] = {
    ["flops"] = 252790016.0,
    ["loss"] = 0.18716554883511982,
    ["ms1"] = 3.1734540243633091,
    ["ms64"] = 131.02817801700439,
    ["params"] = 859738,
    ["top1"] = 0.9335,
  },
  ["command"] = "build/lopper scripts/prune.lua --model models/resnet56.lop --data fashion-mnist --speedup 2.5 --widths auto --epochs 3 --lr 0.01 --batch 128 --random_crop 2 --flip --out build/results/prune_resnet56_25_3ep.lop",
  ["commit"] = "21bdd2f",
  ["date"] = "2026-12-03",
  ["minutes"] = 13.461110332250003,
  ["name"] = "prune_resnet56_25_3ep",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
