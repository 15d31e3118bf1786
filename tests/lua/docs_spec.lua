-- docs_spec.lua - README stays a landing page and the documentation stays connected:
-- README's first commands are `make demo` (the main job) and `make test`, README is
-- short, it links every page in docs/, and every relative link in README.md and
-- docs/*.md reaches a file that exists - and, for "page.md#anchor", a heading of that
-- page.  Code (fenced or indented blocks, `inline spans`) is not searched for links.
local lfs = require "lfs"

local README_MAX_LINES = 150

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local function lines_of(text)
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  if lines[#lines] == "" then lines[#lines] = nil end
  return lines
end

-- The page split into prose lines and code blocks.  Indented code needs a blank line
-- (or more code) before it, as in Markdown, so list continuations stay prose.
local function parse(text)
  local prose, blocks = {}, {}
  local fence, block, prev_blank, prev_code = nil, nil, true, false
  for _, line in ipairs(lines_of(text)) do
    if fence then
      if line:match("^%s*" .. fence) then fence = nil else block[#block + 1] = line end
    elseif line:match("^%s*```") or line:match("^%s*~~~") then
      fence = line:match("^%s*(```)") or "~~~"
      block = {}
      blocks[#blocks + 1] = block
      prev_code = false
    elseif line:match("^    ") and (prev_blank or prev_code) and line:match("%S") then
      if not prev_code then
        block = {}
        blocks[#blocks + 1] = block
      end
      block[#block + 1] = line
      prev_code = true
    else
      if line:match("%S") then prev_code = false end
      if not prev_code then prose[#prose + 1] = line end
    end
    if not line:match("%S") then
      prev_blank = true
    else
      prev_blank = false
    end
  end
  return prose, blocks
end

-- GitHub's anchor for a heading: lower case, punctuation other than - and _ dropped,
-- spaces to hyphens; repeats get -1, -2, ...
local function anchors(text)
  local prose = parse(text)
  local set, seen = {}, {}
  for _, line in ipairs(prose) do
    local title = line:match("^#+%s+(.-)%s*#*%s*$")
    if title then
      local slug = title:lower():gsub("[^%w%s_%-]", ""):gsub("%s", "-")
      local n = seen[slug]
      seen[slug] = (n or -1) + 1
      set[n and (slug .. "-" .. (n + 1)) or slug] = true
    end
  end
  return set
end

-- Relative link targets of a page's prose: [text](target), ![alt](target) and
-- reference definitions "[name]: target".
local function links(text)
  local prose = parse(text)
  local out = {}
  for _, line in ipairs(prose) do
    local plain = line:gsub("``.-``", ""):gsub("`[^`]*`", "")
    for target in plain:gmatch("%]%(%s*<?([^%s)>]+)>?[^)]*%)") do out[#out + 1] = target end
    local ref = plain:match("^%s*%[[^%]]+%]:%s*<?([^%s>]+)")
    if ref then out[#out + 1] = ref end
  end
  return out
end

local function dir_of(path) return path:match("^(.*)/[^/]*$") or "." end

-- a/b/../c -> a/c
local function normalize(path)
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." and #parts > 0 and parts[#parts] ~= ".." then
      parts[#parts] = nil
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  return table.concat(parts, "/")
end

local function exists(path) return lfs.attributes(path, "mode") ~= nil end

local function pages()
  local list = {"README.md"}
  local names = {}
  for name in lfs.dir("docs") do
    if name:match("%.md$") then names[#names + 1] = "docs/" .. name end
  end
  table.sort(names)
  for _, name in ipairs(names) do list[#list + 1] = name end
  return list
end

-- The broken links of one page, as messages.
local function broken_links(page)
  local text = read(page)
  local bad = {}
  for _, target in ipairs(links(text)) do
    if not target:match("^%a[%w+.%-]*:") then   -- http:, https:, mailto: are not ours
      local file, anchor = target:match("^([^#]*)#?(.*)$")
      local path = file == "" and page or normalize(dir_of(page) .. "/" .. file)
      if not exists(path) then
        bad[#bad + 1] = ("%s: link to %s: no file %s"):format(page, target, path)
      elseif anchor ~= "" and path:match("%.md$") and not anchors(read(path))[anchor] then
        bad[#bad + 1] = ("%s: link to %s: no heading #%s in %s"):format(page, target,
                                                                          anchor, path)
      end
    end
  end
  return bad
end

describe("documentation", function()
  local readme = read("README.md")

  it("starts README's commands with `make demo` (the main job), then `make test`", function()
    local _, blocks = parse(readme)
    assert.is_true(#blocks >= 1, "README has no code block")
    local commands = {}
    for _, line in ipairs(blocks[1]) do
      local code, comment = line:match("^%s*([^#]-)%s*#%s*(.*)$")
      code = code or line:match("^%s*(.-)%s*$")
      if code ~= "" then commands[#commands + 1] = {code = code, comment = comment} end
    end
    assert.is_true(#commands >= 2, "README's first code block has fewer than two commands")
    assert.are.equal("make demo", commands[1].code)
    assert.are.equal("make test", commands[2].code)
    assert.truthy(commands[1].comment and commands[1].comment:find("the main job", 1, true),
                  "`make demo` lost its comment saying it is the main job")
    assert.truthy(commands[2].comment and commands[2].comment:find("N passed, N failed", 1, true),
                  "`make test` lost its comment saying how it ends")
  end)

  it("keeps README under " .. README_MAX_LINES .. " lines", function()
    local n = #lines_of(readme)
    assert.is_true(n < README_MAX_LINES,
                   ("README.md has %d lines; move detail to docs/"):format(n))
  end)

  it("links every page of docs/ from README", function()
    local linked = {}
    for _, target in ipairs(links(readme)) do
      linked[normalize(target:match("^[^#]*"))] = true
    end
    local missing = {}
    for _, page in ipairs(pages()) do
      if page ~= "README.md" and not linked[page] then missing[#missing + 1] = page end
    end
    assert.are.same({}, missing)
  end)

  it("has no relative link to a missing file or heading", function()
    local bad = {}
    for _, page in ipairs(pages()) do
      for _, msg in ipairs(broken_links(page)) do bad[#bad + 1] = msg end
    end
    assert.are.same({}, bad)
  end)

  -- The checker itself, on text whose answers are known.
  it("finds links in prose only, and GitHub's anchors", function()
    local text = table.concat({
      "# Title: the `lop` API",
      "See [a](a.md) and ![plot](img/p.svg), not `[x](code.md)`.",
      "",
      "    t[1](not_a_link.md)",
      "",
      "```",
      "[y](fenced.md)",
      "```",
      "- item [b](../b.md#part-two)",
      "    continued [c](c.md)",
      "[ref]: d.md",
      "## Part two",
      "## Part two",
    }, "\n")
    assert.are.same({"a.md", "img/p.svg", "../b.md#part-two", "c.md", "d.md"}, links(text))
    local a = anchors(text)
    assert.is_true(a["title-the-lop-api"])
    assert.is_true(a["part-two"])
    assert.is_true(a["part-two-1"])
    assert.are.equal("docs/x.md", normalize("docs/sub/../x.md"))
    assert.are.equal("README.md", normalize("docs/../README.md"))
  end)
end)
