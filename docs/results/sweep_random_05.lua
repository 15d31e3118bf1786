-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512.0,
    ["loss"] = 0.20435849756307076,
    ["ms1"] = 1.2839290211559273,
    ["ms64"] = 30.037535005249083,
    ["params"] = 2288154,
    ["top1"] = 0.9284,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804948608422,
    ["ms1"] = 3.4945979859912768,
    ["ms64"] = 76.99671400769148,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver random --keep 0.5 --finetune 0.2 --final 1 --out build/results/sweep_random_05.lop",
  ["commit"] = "5803e54",
  ["date"] = "2026-12-05",
  ["minutes"] = 12.162986066949937,
  ["name"] = "sweep_random_05",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
