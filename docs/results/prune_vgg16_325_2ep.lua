-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 48182672.0,
    ["loss"] = 0.20617089697785013,
    ["ms1"] = 0.63932003104127944,
    ["ms64"] = 22.067790996516123,
    ["params"] = 576217,
    ["top1"] = 0.93100000000000005,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596805448128625,
    ["ms1"] = 2.1937359997536987,
    ["ms64"] = 66.251819967874326,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/prune.lua --model models/vgg16.lop --data fashion-mnist --speedup 3.25 --widths auto --images 1000 --epochs 2 --batch 128 --random_crop 2 --flip --out build/results/prune_vgg16_325_2ep.lop",
  ["commit"] = "21bdd2f",
  ["date"] = "2026-12-03",
  ["minutes"] = 7.3982681914499455,
  ["name"] = "prune_vgg16_325_2ep",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
