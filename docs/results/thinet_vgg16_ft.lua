-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 48384512,
    ["loss"] = 0.19208267790330169,
    ["ms1"] = 1.3410929914243752,
    ["ms64"] = 40.89344700332731,
    ["params"] = 2288154,
    ["top1"] = 0.93459999999999999,
  },
  ["before"] = {
    ["flops"] = 157440512,
    ["loss"] = 0.17596804560834936,
    ["ms1"] = 2.9177380001783604,
    ["ms64"] = 95.871318007993978,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/train.lua --from build/results/thinet_vgg16.lop --epochs 9 --lr 0.005 --out build/results/thinet_vgg16_ft.lop",
  ["commit"] = "3ec8fcc",
  ["date"] = "2026-11-29",
  ["minutes"] = 119.87371059354997,
  ["name"] = "thinet_vgg16_ft",
  ["test_images"] = 10000,
  ["threads"] = "one per core",
}
