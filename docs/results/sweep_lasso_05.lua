-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512.0,
    ["loss"] = 0.21054275993013449,
    ["ms1"] = 1.2876230175606906,
    ["ms64"] = 29.105726032867096,
    ["params"] = 2288154,
    ["top1"] = 0.92659999999999998,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804948608422,
    ["ms1"] = 3.0515599646605551,
    ["ms64"] = 76.870173994393554,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver lasso --keep 0.5 --finetune 0.2 --final 1 --out build/results/sweep_lasso_05.lop",
  ["commit"] = "5803e54",
  ["date"] = "2026-12-05",
  ["minutes"] = 13.253060663583286,
  ["name"] = "sweep_lasso_05",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
