-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 101015888.0,
    ["loss"] = 0.19595611355044051,
    ["ms1"] = 1.4109760040810215,
    ["ms64"] = 56.339291997574037,
    ["params"] = 273276,
    ["top1"] = 0.93140000000000001,
  },
  ["before"] = {
    ["flops"] = 252790016.0,
    ["loss"] = 0.18716556385165622,
    ["ms1"] = 2.9973950004205108,
    ["ms64"] = 103.66701999919314,
    ["params"] = 859738,
    ["top1"] = 0.9335,
  },
  ["command"] = "build/lopper scripts/prune.lua --model models/resnet56.lop --data fashion-mnist --speedup 2.5 --widths auto --epochs 3 --lr 0.01 --batch 128 --random_crop 2 --flip --distill 0.5 --out build/results/prune_resnet56_25_3ep.lop",
  ["commit"] = "8e2dcd9",
  ["date"] = "2026-12-05",
  ["minutes"] = 10.703242379133325,
  ["name"] = "prune_resnet56_25_3ep",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
