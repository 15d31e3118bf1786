-- written by scripts/results.lua
return {
  ["after"] = {
    ["flops"] = 25146688.0,
    ["loss"] = 0.24058345301363787,
    ["ms1"] = 1.6157174977706745,
    ["ms64"] = 28.963363016373478,
    ["params"] = 1867059,
    ["top1"] = 0.91300000000000003,
  },
  ["before"] = {
    ["flops"] = 157440512.0,
    ["loss"] = 0.17596804712919453,
    ["ms1"] = 5.4404625116148964,
    ["ms64"] = 124.88174950703979,
    ["params"] = 4016682,
    ["top1"] = 0.93940000000000001,
  },
  ["command"] = "build/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --solver thinet --keep 0.3 --finetune 0.2 --final 1 --out build/results/sweep_thinet_03.lop",
  ["commit"] = "973eaed",
  ["date"] = "2026-11-29",
  ["minutes"] = 15.806616504399972,
  ["name"] = "sweep_thinet_03",
  ["test_images"] = 10000,
  ["threads"] = "one per core",
}
