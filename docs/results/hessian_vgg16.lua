-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512.0,
    ["loss"] = 0.187192122751417,
    ["ms1"] = 1.2969189920113422,
    ["ms64"] = 44.571590995474253,
    ["params"] = 2288154,
    ["top1"] = 0.93600000000000005,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 2.5625789930927567,
    ["ms64"] = 118.2511979714036,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/hessian.lua --model models/vgg16.lop --out build/results/hessian_vgg16.lop",
  ["commit"] = "6f58edd",
  ["date"] = "2026-11-29",
  ["minutes"] = 158.70971296655006,
  ["name"] = "hessian_vgg16",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
