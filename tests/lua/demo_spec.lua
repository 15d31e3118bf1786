-- demo_spec.lua - scripts/demo_vgg16.lua (what `make demo` runs) on tiny sizes, as a
-- child process.  Its one table must have the four rows in order; a, b and c the same
-- pruned shapes, with params and FLOPs ratios equal to those of the saved model counted
-- here; and each row's top-1 that of a network rebuilt here without the script: a from
-- the filters' L1 norms summed in Lua and net:prune, b from lop.sample / select /
-- reconstruct against the original, c the saved model itself.
local lop = require "lopper"
local vgg16 = require "models.vgg16"

local LOPPER = os.getenv("LOPPER") or "build/lopper"
local VGG = "models/vgg16.lop"
local KEEP, IMAGES, POINTS = 0.75, 16, 4   -- a keep at which a is far from chance
local ARGS = ("--train_size 256 --test_size 100 --images %d --points %d --keep %g "
              .. "--batch 32 --reps 1"):format(IMAGES, POINTS, KEEP)
local CONSUMERS = table.move(vgg16.conv_names, 2, 11, 1, {})   -- conv1_2 .. conv5_1

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

-- The rows of the table (after its header line): name -> its cells (columns are set
-- apart by two or more spaces).
local function rows_of(output)
  local rows, order, table_seen = {}, {}, false
  for line in output:gmatch("[^\n]+") do
    table_seen = table_seen or line:match("^%s+top%-1%s") ~= nil
    local name = line:match("^original%s%s") and "original" or line:match("^([abc])%. ")
    if table_seen and name then
      local cells = {}
      for cell in (line .. "  "):gmatch("(.-)%s%s+") do cells[#cells + 1] = cell end
      rows[name] = cells
      order[#order + 1] = name
    end
  end
  return rows, order
end

local function percent(net, data)
  return ("%.2f%%"):format(100 * lop.evaluate(net, data.test, {progress = false}).top1)
end

-- The input channels of `consumer` whose producing filters (of conv `producer`) have
-- the largest L1 norms, ties to the lower channel.
local function largest_l1(net, producer, keep)
  local w = net:node(producer):weight():totable()
  local score, order = {}, {}
  for o, filter in ipairs(w) do
    local sum = 0
    for _, plane in ipairs(filter) do
      for _, row in ipairs(plane) do
        for _, v in ipairs(row) do sum = sum + math.abs(v) end
      end
    end
    score[o], order[o] = sum, o
  end
  table.sort(order, function(x, y)
    if score[x] ~= score[y] then return score[x] > score[y] end
    return x < y
  end)
  local kept = table.move(order, 1, math.ceil(keep * #w), 1, {})
  table.sort(kept)
  return kept
end

describe("scripts/demo_vgg16.lua (make demo)", function()
  local out = os.tmpname() .. ".lop"
  local ok, output = run(("%s scripts/demo_vgg16.lua %s --out %s"):format(LOPPER, ARGS, out))
  local rows, order = rows_of(output)
  local data = lop.data.fashion_mnist{train_size = 256, test_size = 100}
  local original = lop.load(VGG)

  it("prints one table of the original, a, b and c, and saves c", function()
    assert.is_true(ok, output)
    assert.are.same({"original", "a", "b", "c"}, order, output)
    assert.are.equal(6, #rows.original, output)   -- name and five values, no ratios
    for _, r in ipairs{"a", "b", "c"} do assert.are.equal(11, #rows[r], output) end
    local plot = out:gsub("%.lop$", "") .. ".widths.svg"
    assert.truthy(io.open(plot), "no widths plot " .. plot)
    os.remove(plot)
  end)

  it("gives a, b and c the pruned shapes of the saved model", function()
    local saved = lop.load(out)
    assert.is_true(saved:flops() < original:flops())
    local params = ("%.2fx"):format(original:params() / saved:params())
    local flops = ("%.2fx"):format(original:flops() / saved:flops())
    for _, r in ipairs{"a", "b", "c"} do
      -- name, top-1, change, params, ratio, FLOPs, ratio, ...
      assert.are.equal(params, rows[r][5], output)
      assert.are.equal(flops, rows[r][7], output)
      assert.are.equal(rows.c[4], rows[r][4], output)
      assert.are.equal(rows.c[6], rows[r][6], output)
    end
    for _, consumer in ipairs(CONSUMERS) do   -- each cut to ceil(KEEP c) channels
      local c = original:node(consumer):weight():shape()[2]
      assert.are.equal(math.ceil(KEEP * c), saved:node(consumer):weight():shape()[2])
    end
  end)

  it("reports a's top-1: the largest-L1 filters kept, nothing refitted", function()
    local a = original:clone()
    for i, consumer in ipairs(CONSUMERS) do
      local keep = largest_l1(original, vgg16.conv_names[i], KEEP)
      a:prune(a:group_of(a:node(consumer):inputs()[1]), keep)
    end
    assert.are.equal(percent(a, data), rows.a[2], output)
  end)

  it("reports b's top-1 before fine-tuning, and c's as the saved model's", function()
    local b = original:clone()
    for _, consumer in ipairs(CONSUMERS) do
      local s = lop.sample(b, data.train, consumer, {images = IMAGES, points = POINTS,
                                                     seed = 1, reference = original})
      lop.reconstruct(b, consumer, s, lop.select.thinet(s, {keep = KEEP}), {mode = "weights"})
      s:close()
    end
    assert.are.equal(percent(b, data), rows.b[2], output)
    assert.are.equal(percent(lop.load(out), data), rows.c[2], output)
    os.remove(out)
  end)

  it("refuses fine-tuning between the layers", function()
    local refused, message = run(LOPPER .. " scripts/demo_vgg16.lua --finetune 1")
    assert.is_falsy(refused)
    assert.truthy(message:find("--finetune", 1, true), message)
  end)
end)
