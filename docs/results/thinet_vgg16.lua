-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512.0,
    ["loss"] = 0.20013638615357759,
    ["ms1"] = 1.3368110012379475,
    ["ms64"] = 47.714130982058123,
    ["params"] = 2288154,
    ["top1"] = 0.93059999999999998,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 2.7542399766389281,
    ["ms64"] = 126.47735097561963,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --out build/results/thinet_vgg16.lop",
  ["commit"] = "6dee51d",
  ["date"] = "2026-11-29",
  ["minutes"] = 85.053841892749972,
  ["name"] = "thinet_vgg16",
  ["test_images"] = 10000,
  ["threads"] = "1",
}
