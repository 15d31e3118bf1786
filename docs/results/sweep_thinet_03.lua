-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 25146688.0,
    ["loss"] = 0.23519065007678927,
    ["ms1"] = 0.94272298883879557,
    ["ms64"] = 19.273636004072614,
    ["params"] = 1867059,
    ["top1"] = 0.91620000000000001,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804948608422,
    ["ms1"] = 3.3039379923138767,
    ["ms64"] = 78.503232987714,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver thinet --keep 0.3 --finetune 0.2 --final 1 --out build/results/sweep_thinet_03.lop",
  ["commit"] = "5803e54",
  ["date"] = "2026-12-05",
  ["minutes"] = 11.543855058433353,
  ["name"] = "sweep_thinet_03",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
