-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512.0,
    ["loss"] = 0.21354377791710163,
    ["ms1"] = 1.323948017670773,
    ["ms64"] = 29.924229966127314,
    ["params"] = 2288154,
    ["top1"] = 0.92359999999999998,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804948608422,
    ["ms1"] = 3.3743549865903333,
    ["ms64"] = 78.384882057434879,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver first --keep 0.5 --finetune 0.2 --final 1 --out build/results/sweep_first_05.lop",
  ["commit"] = "5803e54",
  ["date"] = "2026-12-05",
  ["minutes"] = 13.837312047516631,
  ["name"] = "sweep_first_05",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
