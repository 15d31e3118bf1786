-- svg_spec.lua - lop.svg draws what it is given where its documented geometry says:
-- pixel positions of line points and bar heights are recomputed here from the
-- canvas constants, and malformed input is refused with a message.
local lop = require "lopper"
local svg = lop.svg

local function attrs(text, tag)
  local list = {}
  for a in text:gmatch("<" .. tag .. " ([^>]*)/>") do list[#list + 1] = a end
  return list
end

local function num(a, key) return tonumber(a:match(key .. '="([-%d.]+)"')) end

describe("lop.svg", function()
  it("puts line points at the corners of the plot area for a range of whole ticks", function()
    -- x and y both span exactly [0, 10], a whole number of ticks, so the axes do too.
    local text = svg.lines{title = "t < u", x_label = "x", y_label = "y",
                           series = {{name = "a", points = {{0, 0}, {5, 2}, {10, 10}}},
                                     {name = "b", points = {{0, 10}, {10, 0}}}}}
    assert.truthy(text:find("^<svg xmlns"))
    assert.truthy(text:find("t &lt; u", 1, true))
    local lines = attrs(text, "polyline")
    assert.are.equal(2, #lines)
    local left, right = svg.LEFT, svg.WIDTH - svg.RIGHT
    local top, bottom = svg.TOP, svg.HEIGHT - svg.BOTTOM
    local pts = {}
    for x, y in lines[1]:match('points="([^"]*)"'):gmatch("([-%d.]+),([-%d.]+)") do
      pts[#pts + 1] = {tonumber(x), tonumber(y)}
    end
    assert.are.same({left, bottom}, pts[1])
    assert.are.same({left + (right - left) / 2, bottom - (bottom - top) * 0.2}, pts[2])
    assert.are.same({right, top}, pts[3])
    assert.are.equal(5, #attrs(text, "circle"))
  end)

  it("draws bars with heights proportional to their values", function()
    local text = svg.bars{title = "widths", categories = {"c1", "c2"},
                          series = {{name = "before", values = {128, 64}},
                                    {name = "after", values = {32, 0}}}}
    local bars = {}
    for _, a in ipairs(attrs(text, "rect")) do
      if a:find("fill=\"#") and num(a, "width") and num(a, "width") > 12 then
        bars[#bars + 1] = a
      end
    end
    assert.are.equal(4, #bars)   -- c1 before, c1 after, c2 before, c2 after
    local h = {}
    for i, a in ipairs(bars) do h[i] = num(a, "height") end
    assert.is_true(math.abs(h[1] / h[3] - 2) < 1e-3)
    assert.is_true(math.abs(h[1] / h[2] - 4) < 1e-3)
    assert.are.equal(0, h[4])
    for _, a in ipairs(bars) do   -- every bar stands on the axis
      assert.is_true(math.abs(num(a, "y") + num(a, "height") - (svg.HEIGHT - svg.BOTTOM)) < 0.02)
    end
  end)

  it("widens a bar chart with many categories so that their labels do not overlap", function()
    local function canvas_width(text) return tonumber(text:match('^<svg [^>]*width="(%d+)"')) end
    local function label_xs(text)
      local xs = {}
      for x in text:gmatch('<text transform="translate%(([-%d.]+) %d+%) rotate') do
        xs[#xs + 1] = tonumber(x)
      end
      return xs
    end
    local few = svg.bars{categories = {"a", "b"}, series = {{values = {1, 2}}}}
    assert.are.equal(svg.WIDTH, canvas_width(few))
    local cats, values = {}, {}
    for i = 1, 57 do cats[i], values[i] = "c" .. i, i end
    local many = svg.bars{categories = cats, series = {{values = values}, {values = values}}}
    local width = canvas_width(many)
    assert.are.equal(svg.LEFT + svg.RIGHT + 57 * svg.MIN_GROUP, width)
    assert.truthy(width > svg.WIDTH)
    local xs = label_xs(many)
    assert.are.equal(57, #xs)
    for i = 2, #xs do assert.is_true(xs[i] - xs[i - 1] >= svg.MIN_GROUP - 0.01) end
    assert.is_true(xs[#xs] < width - svg.RIGHT)
  end)

  it("refuses malformed input with a message", function()
    local bad = {
      function() svg.lines() end,
      function() svg.lines{series = {}} end,
      function() svg.lines{series = {{name = "a", points = {{1}}}}} end,
      function() svg.lines{series = {{name = "a", points = {{0 / 0, 1}}}}} end,
      function() svg.lines{title = {}, series = {{points = {{1, 2}}}}} end,
      function() svg.bars{categories = {"a"}, series = {{values = {1, 2}}}} end,
      function() svg.bars{categories = {"a"}, series = {{values = {-1}}}} end,
      function() svg.bars{series = {{values = {1}}}} end,
    }
    for i, f in ipairs(bad) do
      local ok, err = pcall(f)
      assert.is_false(ok, "call " .. i .. " should fail")
      assert.truthy(tostring(err):find("lop.svg.", 1, true), "call " .. i .. ": " .. tostring(err))
    end
  end)

  it("records round-trip through lop.write_record and loadfile, types and bits kept", function()
    local path = os.tmpname()
    local value = {name = "a \"quoted\"\nline", n = 7, third = 1 / 3, whole = 3.0,
                   tiny = 5e-324, neg = -2.5e300, yes = true, no = false,
                   nested = {1, 2.0, {deep = "x"}}}
    lop.write_record(path, value, "a test record")
    local f = assert(io.open(path))
    local text = f:read("a")
    f:close()
    assert.truthy(text:find("^%-%- a test record\nreturn {"), text)
    local back = assert(loadfile(path, "t", {}))()
    os.remove(path)
    assert.are.same(value, back)
    for _, k in ipairs{"n", "third", "whole", "tiny", "neg"} do
      assert.are.equal(math.type(value[k]), math.type(back[k]), k)
    end
    assert.are.equal("float", math.type(back.nested[2]))
    assert.is_true(back.third == 1 / 3)
    local ok, err = pcall(lop.write_record, path, {f = print})
    assert.is_false(ok)
    assert.truthy(err:find("cannot write a function value", 1, true), err)
    assert.is_nil(io.open(path), "nothing written for a bad record")
    assert.is_false(pcall(lop.write_record, path, "text"))
  end)

  it("are written atomically by lop.write_text, which refuses what it cannot write", function()
    local ok, err = pcall(lop.write_text, "/nonexistent-dir/x.svg", "<svg/>")
    assert.is_false(ok)
    assert.truthy(err:find("lop.write_text: ", 1, true), err)
    assert.is_false(pcall(lop.write_text, "x.svg", {}))
    local path = os.tmpname()
    lop.write_text(path, "<svg/>\n")
    local f = assert(io.open(path))
    assert.are.equal("<svg/>\n", f:read("a"))
    f:close()
    assert.is_nil(io.open(path .. ".tmp"))
    os.remove(path)
  end)
end)
