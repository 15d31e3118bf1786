-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512,
    ["loss"] = 0.20013638101300671,
    ["ms1"] = 1.4672565084765665,
    ["ms64"] = 49.673985988192726,
    ["params"] = 2288154,
    ["top1"] = 0.93059999999999998,
  },
  ["before"] = {
    ["flops"] = 157440512,
    ["loss"] = 0.17596804560834936,
    ["ms1"] = 4.0463134992023697,
    ["ms64"] = 105.53013698881841,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --out build/results/thinet_vgg16.lop",
  ["commit"] = "6dee51d",
  ["date"] = "2026-11-29",
  ["minutes"] = 85.053841892749972,
  ["name"] = "thinet_vgg16",
  ["test_images"] = 10000,
  ["threads"] = "one per core",
}
