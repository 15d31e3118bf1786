-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 39337304.0,
    ["loss"] = 0.20521254458176344,
    ["ms1"] = 0.43231400195509195,
    ["ms64"] = 11.910492983588483,
    ["params"] = 496136,
    ["top1"] = 0.93149999999999999,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804195348087,
    ["ms1"] = 1.512715985882096,
    ["ms64"] = 38.687578984536231,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/prune.lua --model models/vgg16.lop --data fashion-mnist --speedup 4 --widths auto --images 1000 --epochs 3 --batch 128 --random_crop 2 --flip --hints 100 --out build/results/prune_vgg16_4x_3ep.lop",
  ["commit"] = "601cbe0",
  ["date"] = "2026-12-06",
  ["minutes"] = 9.1450435201666558,
  ["name"] = "prune_vgg16_4x_3ep",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
