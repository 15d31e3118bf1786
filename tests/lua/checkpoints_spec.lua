-- checkpoints_spec.lua - the shipped checkpoints are what the documentation says they
-- are: every models/*.lop row of the model table in docs/models.md is loaded and
-- evaluated on all 10,000 Fashion-MNIST test images, and its top-1, parameter count and
-- FLOPs must equal the numbers printed in that table; VGG-16 and ResNet-20 must also
-- meet the 93.5 % bar they are shipped for.  The expected values come from the page,
-- not this code's output.
local lop = require "lopper"

local PAGE = "docs/models.md"

-- Rows "| name | models/x.lop | 93.94 % | 4,016,682 | 157.44 M |" of the page.
local function table_rows()
  local f = assert(io.open(PAGE))
  local text = f:read("a")
  f:close()
  local rows = {}
  for file, top1, params, mflops in text:gmatch(
      "\n|[^|\n]*| (models/[%w_]+%.lop) | ([%d.]+) %% | ([%d,]+) | ([%d.]+) M |") do
    rows[#rows + 1] = {file = file, top1 = tonumber(top1),
                       params = tonumber((params:gsub(",", ""))), mflops = tonumber(mflops)}
  end
  return rows
end

describe("shipped checkpoints #accuracy", function()
  local rows = table_rows()
  local data = lop.data.fashion_mnist{}

  it(PAGE .. " lists the three shipped models", function()
    local files = {}
    for _, r in ipairs(rows) do files[r.file] = true end
    for _, file in ipairs{"models/vgg16.lop", "models/resnet20.lop", "models/resnet56.lop"} do
      assert.is_true(files[file], file .. " missing from the table in " .. PAGE)
    end
  end)

  local held_to_bar = {["models/vgg16.lop"] = true, ["models/resnet20.lop"] = true}

  for _, row in ipairs(rows) do
    it(row.file .. " evaluates to its stated accuracy", function()
      if held_to_bar[row.file] then
        assert.is_true(row.top1 >= 93.5, "stated accuracy below the 93.5 % bar")
      end
      local net = lop.load(row.file)
      assert.are.equal(row.params, net:params())
      assert.is_true(math.abs(net:flops() / 1e6 - row.mflops) < 0.005)
      local e = lop.evaluate(net, data.test, {progress = false})
      assert.are.equal(10000, e.n)
      -- The page rounds to 2 decimals: one image is 0.01 points.
      assert.is_true(math.abs(100 * e.top1 - row.top1) < 0.0051,
                     ("evaluated %.2f %%, %s says %.2f %%"):format(100 * e.top1, PAGE,
                                                                   row.top1))
      net:close()
    end)
  end
end)
