-- svg.lua - the plots recipes and experiments write beside their results (per-layer
-- channel widths before/after, accuracy against FLOPs), as self-contained SVG text:
-- no plotting package is needed to make them and any browser shows them.
--
--   local text = lop.svg.lines{title = "...", x_label = "...", y_label = "...",
--                              series = {{name = "thinet", points = {{x, y}, ...}}, ...}}
--   local text = lop.svg.bars{title = "...", y_label = "...", categories = {"conv1_1", ...},
--                             series = {{name = "before", values = {32, ...}}, ...}}
--   lop.write_text("widths.svg", text)
--
-- Geometry (the spec checks it): a WIDTH x HEIGHT canvas whose plot area spans
-- x in [LEFT, WIDTH - RIGHT] and y in [TOP, HEIGHT - BOTTOM]; the legend sits right of
-- it.  A bar chart with many categories (ResNet-56 has 57 convolutions) is wider, so
-- that each category gets at least MIN_GROUP pixels: labels slanted at 40 degrees lie
-- MIN_GROUP * sin(40) = 13 pixels apart, clear of each other's 10-pixel font.  Axis
-- ranges are the data's range widened to whole tick steps of 1, 2 or 5 x 10^k; bar
-- charts start their value axis at 0.
local lop = ...

local svg = {WIDTH = 720, HEIGHT = 420, LEFT = 70, RIGHT = 150, TOP = 40, BOTTOM = 60,
             MIN_GROUP = 20}
lop.svg = svg

local COLORS = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}

local function escape(s)
  return (tostring(s):gsub("[&<>\"]", {["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                                       ['"'] = "&quot;"}))
end

local function fmt(v)   -- coordinates with two decimals, no trailing noise
  return (("%.2f"):format(v):gsub("%.?0+$", ""))
end

-- Tick positions covering [lo, hi] in steps of 1, 2 or 5 x 10^k (about `want` ticks).
local function ticks(lo, hi, want)
  if hi <= lo then lo, hi = lo - 1, hi + 1 end
  local raw = (hi - lo) / want
  local base = 10 ^ math.floor(math.log(raw, 10))
  local step = base
  for _, m in ipairs{1, 2, 5, 10} do
    if m * base >= raw then step = m * base; break end
  end
  local first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
  local list = {}
  for k = first, last do list[#list + 1] = k * step end
  return list, first * step, last * step
end

local function tick_label(v)
  if v == math.floor(v) and math.abs(v) < 1e15 then return ("%d"):format(v) end
  return (("%.4g"):format(v))
end

local function check_string_field(fn, t, key)
  if t[key] ~= nil and type(t[key]) ~= "string" and type(t[key]) ~= "number" then
    error(("%s: '%s' must be a string"):format(fn, key), 3)
  end
end

local function check_spec(fn, spec)
  if type(spec) ~= "table" then error(fn .. ": expects a table of options", 3) end
  for _, k in ipairs{"title", "x_label", "y_label"} do check_string_field(fn, spec, k) end
  if type(spec.series) ~= "table" or #spec.series == 0 then
    error(fn .. ": 'series' must be a non-empty list", 3)
  end
  for i, s in ipairs(spec.series) do
    if type(s) ~= "table" then error(("%s: series[%d] must be a table"):format(fn, i), 3) end
    check_string_field(fn, s, "name")
  end
end

-- The frame every chart shares: canvas, title, axis labels, y grid with tick labels,
-- legend, on a canvas W pixels wide.  Returns the list of SVG lines, a function
-- mapping a y value to pixels, and the plot area's left, right and bottom edges.
local function frame(spec, y_lo, y_hi, W)
  local H = svg.HEIGHT
  local x0, x1, y0, y1 = svg.LEFT, W - svg.RIGHT, H - svg.BOTTOM, svg.TOP
  local out = {
    ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
     .. 'font-family="sans-serif" font-size="12">'):format(W, H, W, H),
    ('<rect width="%d" height="%d" fill="white"/>'):format(W, H),
  }
  if spec.title then
    out[#out + 1] = ('<text x="%s" y="22" text-anchor="middle" font-size="15">%s</text>')
                    :format(fmt((x0 + x1) / 2), escape(spec.title))
  end
  local yt, lo, hi = ticks(y_lo, y_hi, 6)
  local function py(v) return y0 - (v - lo) / (hi - lo) * (y0 - y1) end
  for _, v in ipairs(yt) do
    out[#out + 1] = ('<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#ddd"/>')
                    :format(x0, fmt(py(v)), x1, fmt(py(v)))
    out[#out + 1] = ('<text x="%d" y="%s" text-anchor="end">%s</text>')
                    :format(x0 - 6, fmt(py(v) + 4), tick_label(v))
  end
  out[#out + 1] = ('<path d="M%d %d V%d H%d" fill="none" stroke="black"/>'):format(x0, y1, y0, x1)
  if spec.x_label then
    out[#out + 1] = ('<text x="%s" y="%d" text-anchor="middle">%s</text>')
                    :format(fmt((x0 + x1) / 2), H - 12, escape(spec.x_label))
  end
  if spec.y_label then
    out[#out + 1] = ('<text transform="translate(16 %s) rotate(-90)" text-anchor="middle">%s</text>')
                    :format(fmt((y0 + y1) / 2), escape(spec.y_label))
  end
  for i, s in ipairs(spec.series) do
    local y = y1 + 8 + (i - 1) * 18
    out[#out + 1] = ('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>')
                    :format(x1 + 14, y, COLORS[(i - 1) % #COLORS + 1])
    out[#out + 1] = ('<text x="%d" y="%d">%s</text>'):format(x1 + 32, y + 10,
                                                          escape(s.name or ("series " .. i)))
  end
  return out, py, x0, x1, y0
end

-- A line chart: one polyline with markers per series, numeric x axis.
function svg.lines(spec)
  local fn = "lop.svg.lines"
  check_spec(fn, spec)
  local xmin, xmax, ymin, ymax = math.huge, -math.huge, math.huge, -math.huge
  for i, s in ipairs(spec.series) do
    if type(s.points) ~= "table" or #s.points == 0 then
      error(("%s: series[%d].points must be a non-empty list of {x, y}"):format(fn, i), 2)
    end
    for j, p in ipairs(s.points) do
      local x, y = type(p) == "table" and p[1], type(p) == "table" and p[2]
      if math.type(x) == nil or math.type(y) == nil or x ~= x or y ~= y
         or math.abs(x) == math.huge or math.abs(y) == math.huge then
        error(("%s: series[%d].points[%d] must be {x, y} with finite numbers"):format(fn, i, j), 2)
      end
      xmin, xmax = math.min(xmin, x), math.max(xmax, x)
      ymin, ymax = math.min(ymin, y), math.max(ymax, y)
    end
  end
  local out, py, x0, x1, y0 = frame(spec, ymin, ymax, svg.WIDTH)
  local xt, lo, hi = ticks(xmin, xmax, 6)
  local function px(v) return x0 + (v - lo) / (hi - lo) * (x1 - x0) end
  for _, v in ipairs(xt) do
    out[#out + 1] = ('<text x="%s" y="%d" text-anchor="middle">%s</text>')
                    :format(fmt(px(v)), y0 + 18, tick_label(v))
  end
  for i, s in ipairs(spec.series) do
    local color, pts = COLORS[(i - 1) % #COLORS + 1], {}
    for _, p in ipairs(s.points) do pts[#pts + 1] = fmt(px(p[1])) .. "," .. fmt(py(p[2])) end
    out[#out + 1] = ('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>')
                    :format(color, table.concat(pts, " "))
    for _, p in ipairs(s.points) do
      out[#out + 1] = ('<circle cx="%s" cy="%s" r="3" fill="%s"/>')
                      :format(fmt(px(p[1])), fmt(py(p[2])), color)
    end
  end
  out[#out + 1] = "</svg>\n"
  return table.concat(out, "\n")
end

-- A grouped bar chart: one group per category, one bar per series, values >= 0.
function svg.bars(spec)
  local fn = "lop.svg.bars"
  check_spec(fn, spec)
  local cats = spec.categories
  if type(cats) ~= "table" or #cats == 0 then
    error(fn .. ": 'categories' must be a non-empty list of names", 2)
  end
  local ymax = 0
  for i, s in ipairs(spec.series) do
    if type(s.values) ~= "table" or #s.values ~= #cats then
      error(("%s: series[%d].values must hold one number per category (%d)"):format(
        fn, i, #cats), 2)
    end
    for j, v in ipairs(s.values) do
      if math.type(v) == nil or v ~= v or v < 0 or v == math.huge then
        error(("%s: series[%d].values[%d] must be a finite number >= 0"):format(fn, i, j), 2)
      end
      ymax = math.max(ymax, v)
    end
  end
  local W = math.max(svg.WIDTH, svg.LEFT + svg.RIGHT + svg.MIN_GROUP * #cats)
  local out, py, x0, x1, y0 = frame(spec, 0, ymax > 0 and ymax or 1, W)
  local group = (x1 - x0) / #cats
  local bar = group * 0.8 / #spec.series
  for j, name in ipairs(cats) do
    local gx = x0 + (j - 1) * group + group * 0.1
    for i, s in ipairs(spec.series) do
      local top = py(s.values[j])
      out[#out + 1] = ('<rect x="%s" y="%s" width="%s" height="%s" fill="%s"/>')
                      :format(fmt(gx + (i - 1) * bar), fmt(top), fmt(bar), fmt(y0 - top),
                              COLORS[(i - 1) % #COLORS + 1])
    end
    local cx = gx + group * 0.4
    out[#out + 1] = ('<text transform="translate(%s %d) rotate(40)" font-size="10">%s</text>')
                    :format(fmt(cx), y0 + 12, escape(name))
  end
  out[#out + 1] = "</svg>\n"
  return table.concat(out, "\n")
end
