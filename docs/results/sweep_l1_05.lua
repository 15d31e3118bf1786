-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512.0,
    ["loss"] = 0.20587494248914259,
    ["ms1"] = 1.2832170323235914,
    ["ms64"] = 29.352433979511261,
    ["params"] = 2288154,
    ["top1"] = 0.92769999999999997,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804948608422,
    ["ms1"] = 2.7578930312301964,
    ["ms64"] = 75.346642952354159,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver l1 --keep 0.5 --finetune 0.2 --final 1 --out build/results/sweep_l1_05.lop",
  ["commit"] = "5803e54",
  ["date"] = "2026-12-05",
  ["minutes"] = 12.862147154216776,
  ["name"] = "sweep_l1_05",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
