-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512.0,
    ["loss"] = 0.20921849397171824,
    ["ms1"] = 1.2781599725713022,
    ["ms64"] = 42.662321982788853,
    ["params"] = 2288154,
    ["top1"] = 0.92720000000000002,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 2.5511069979984313,
    ["ms64"] = 112.49461202532984,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver thinet --keep 0.5 --finetune 0.2 --final 1 --out build/results/sweep_thinet_05.lop",
  ["commit"] = "9755507",
  ["date"] = "2026-11-29",
  ["minutes"] = 18.916512348550047,
  ["name"] = "sweep_thinet_05",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
