-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512.0,
    ["loss"] = 0.21436763938481121,
    ["ms1"] = 1.2181270431028679,
    ["ms64"] = 42.222227013553493,
    ["params"] = 2288154,
    ["top1"] = 0.92430000000000001,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 2.5326619652332738,
    ["ms64"] = 110.73972203303128,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver first --keep 0.5 --finetune 0.2 --final 1 --out build/results/sweep_first_05.lop",
  ["commit"] = "7e04c90",
  ["date"] = "2026-11-29",
  ["minutes"] = 18.752520523850034,
  ["name"] = "sweep_first_05",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
