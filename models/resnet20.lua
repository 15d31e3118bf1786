-- resnet20.lua - ResNet-20 (the builder in resnet.lua with depth 20), so that every
-- reference model is one file: dofile("models/resnet20.lua"){classes = 10, seed = 1}.
local dir = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or ""
local resnet = dofile(dir .. "resnet.lua")

return function(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("resnet20: expected a table of options", 2) end
  if opts.depth ~= nil and opts.depth ~= 20 then
    error("resnet20: depth is 20 (use models/resnet.lua for others)", 2)
  end
  local o = {depth = 20}
  for k, v in pairs(opts) do o[k] = v end
  return resnet(o)
end
