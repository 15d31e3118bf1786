-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 39337304.0,
    ["loss"] = 0.21901033393864136,
    ["ms1"] = 0.55145102669484913,
    ["ms64"] = 18.098363114404492,
    ["params"] = 496136,
    ["top1"] = 0.92900000000000005,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596805448128625,
    ["ms1"] = 2.1559140150202438,
    ["ms64"] = 66.522980967420153,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/prune.lua --model models/vgg16.lop --data fashion-mnist --speedup 4 --widths auto --images 1000 --epochs 3 --batch 128 --random_crop 2 --flip --out build/results/prune_vgg16_4x_3ep.lop",
  ["commit"] = "21bdd2f",
  ["date"] = "2026-12-03",
  ["minutes"] = 8.6502088879164756,
  ["name"] = "prune_vgg16_4x_3ep",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
