-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512.0,
    ["loss"] = 0.19208267850137098,
    ["ms1"] = 1.2789430402335711,
    ["ms64"] = 42.36608696373878,
    ["params"] = 2288154,
    ["top1"] = 0.93459999999999999,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 2.494623011443764,
    ["ms64"] = 127.75251600396587,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/train.lua --from build/results/thinet_vgg16.lop --epochs 9 --lr 0.005 --out build/results/thinet_vgg16_ft.lop",
  ["commit"] = "3ec8fcc",
  ["date"] = "2026-11-29",
  ["minutes"] = 119.87371059354997,
  ["name"] = "thinet_vgg16_ft",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
