-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512.0,
    ["loss"] = 0.20921849397171824,
    ["ms1"] = 1.6657785054121632,
    ["ms64"] = 38.923719494050601,
    ["params"] = 2288154,
    ["top1"] = 0.92720000000000002,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 4.8720605045673437,
    ["ms64"] = 104.12968648961396,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver thinet --keep 0.5 --finetune 0.2 --final 1 --out build/results/sweep_thinet_05.lop",
  ["commit"] = "9755507",
  ["date"] = "2026-11-29",
  ["minutes"] = 18.916512348550047,
  ["name"] = "sweep_thinet_05",
  ["test_images"] = 10000,
  ["threads"] = "one per core",
}
