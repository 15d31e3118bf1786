-- written by scripts/tools/results.lua
return {
  ["after"] = {
    ["flops"] = 47729664.0,
    ["loss"] = 0.19074264218858547,
    ["ms1"] = 1.2570959952427074,
    ["ms64"] = 35.306607995153172,
    ["params"] = 1959962,
    ["top1"] = 0.93500000000000005,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804614821518,
    ["ms1"] = 3.8453920096799266,
    ["ms64"] = 86.707277980167419,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_gap_vgg16.lua --model models/vgg16.lop --out build/results/thinet_gap_vgg16.lop",
  ["commit"] = "7de4088",
  ["date"] = "2026-12-04",
  ["minutes"] = 59.992039593300007,
  ["name"] = "thinet_gap_vgg16",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
