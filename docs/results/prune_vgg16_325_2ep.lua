-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 48182672.0,
    ["loss"] = 0.20060123275629616,
    ["ms1"] = 0.48773398157209158,
    ["ms64"] = 14.287060985225253,
    ["params"] = 576217,
    ["top1"] = 0.93279999999999996,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804195348087,
    ["ms1"] = 1.5694890098529868,
    ["ms64"] = 38.235308995353989,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/prune.lua --model models/vgg16.lop --data fashion-mnist --speedup 3.25 --widths auto --images 1000 --epochs 2 --batch 128 --random_crop 2 --flip --hints 100 --out build/results/prune_vgg16_325_2ep.lop",
  ["commit"] = "601cbe0",
  ["date"] = "2026-12-06",
  ["minutes"] = 7.8711085942332524,
  ["name"] = "prune_vgg16_325_2ep",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
