-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 39289696.0,
    ["loss"] = 0.19468353850929987,
    ["ms1"] = 0.88571200467413291,
    ["ms64"] = 36.766214994713664,
    ["params"] = 1634207,
    ["top1"] = 0.93100000000000005,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 2.4756459970376454,
    ["ms64"] = 110.82953000004636,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/train.lua --from build/results/lasso_vgg16_4x.lop --epochs 9 --lr 0.005 --out build/results/lasso_vgg16_4x_ft.lop",
  ["commit"] = "973eaed",
  ["date"] = "2026-11-29",
  ["minutes"] = 40.751115570333361,
  ["name"] = "lasso_vgg16_4x_ft",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
