-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 101015888.0,
    ["loss"] = 0.19824540914491906,
    ["ms1"] = 2.18197402136866,
    ["ms64"] = 75.464472029125318,
    ["params"] = 273276,
    ["top1"] = 0.92830000000000001,
  },
  ["before"] = {
    ["flops"] = 252790016.0,
    ["loss"] = 0.1871655655717275,
    ["ms1"] = 3.8468379498226568,
    ["ms64"] = 133.22041400533635,
    ["params"] = 859738,
    ["top1"] = 0.9335,
  },
  ["command"] = "build/lopper scripts/prune.lua --model models/resnet56.lop --data fashion-mnist --speedup 2.5 --widths auto --epochs 3 --lr 0.01 --batch 128 --random_crop 2 --flip --out build/results/prune_resnet56_25_3ep.lop",
  ["commit"] = "24dbfa7",
  ["date"] = "2026-12-05",
  ["minutes"] = 11.53828710404996,
  ["name"] = "prune_resnet56_25_3ep",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
