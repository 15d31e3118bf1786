-- options.lua - lop.options(arg, spec [, about]): the one command-line parser every
-- script and recipe uses, so that they all accept the same forms, print the same kind
-- of --help and reject a mistyped option or value with the same clear message instead
-- of silently running with a default.
--
--   local opt = lop.options(arg, {
--     epochs = {default = 12, type = "int", min = 1, help = "training epochs"},
--     lr     = {default = 0.05, type = "number", min = 0, exclusive_min = true},
--     model  = {default = "vgg16", choices = {"vgg16", "resnet20", "resnet56"}},
--     flip   = {default = true, help = "random horizontal flips"},
--   }, {description = "Train a model.", positional = "FILE"})
--
-- Accepted forms: --key value, --key=value, and for booleans --key, --no-key,
-- --key=false (or --key false; true/false, yes/no, on/off, 1/0).  A dash in a key may
-- be written as an underscore and vice versa (--train-size = --train_size).  "--"
-- ends the options.  -h / --help prints a usage text built from the spec and exits 0.
--
-- Spec fields: type ("int", "number", "string", "bool"; inferred from the default
-- or the choices when absent - a whole-number default such as 12 makes an int),
-- default (nil leaves the value nil unless given), required, choices (list of
-- accepted values), min / max with exclusive_min / exclusive_max, help, metavar
-- (the value's name in --help: "FILE"), and default_text: how --help describes the default when the script computes it (the
-- value is nil then unless given: "0.05 for vgg16, 0.1 for the resnets").
-- about.description heads the --help text; about.positional names the positional
-- arguments, which are then allowed and returned as opt[1], opt[2], ...; without it
-- a positional argument is an error.
--
-- Errors in the command line raise a message naming the option and what it accepts
-- (without a source position: it is for the user of the script); errors in the spec
-- raise "options spec: ..." at the caller.
local lop = ...

local BOOL_WORDS = {
  ["true"] = true, yes = true, on = true, ["1"] = true,
  ["false"] = false, no = false, off = false, ["0"] = false,
}

local METAVAR = {int = "N", number = "X", string = "S"}
local FIELDS = {type = true, default = true, default_text = true, required = true,
                choices = true, min = true, max = true, exclusive_min = true,
                exclusive_max = true, help = true, metavar = true}

-- Value of a command-line string for each type, or nil when it is not one.
local parsers = {
  int = function(s) local v = tonumber(s); return v and math.tointeger(v) end,
  number = function(s)
    local v = tonumber(s)
    if v and v == v and v ~= math.huge and v ~= -math.huge then return v end
    return nil
  end,
  string = function(s) return s end,
  bool = function(s) return BOOL_WORDS[s:lower()] end,
}
local WHAT = {int = "an integer", number = "a number", string = "a string",
              bool = "true or false"}

local function fmt_value(v)
  if math.type(v) == "float" then return ("%.10g"):format(v) end
  return tostring(v)
end

-- Human description of the values an entry accepts ("an integer >= 1").
local function accepted(e)
  if e.choices then
    local names = {}
    for i, c in ipairs(e.choices) do names[i] = fmt_value(c) end
    return "one of " .. table.concat(names, ", ")
  end
  local what = WHAT[e.type]
  local bounds = {}
  if e.min ~= nil then bounds[#bounds + 1] = (e.exclusive_min and "> " or ">= ") .. fmt_value(e.min) end
  if e.max ~= nil then bounds[#bounds + 1] = (e.exclusive_max and "< " or "<= ") .. fmt_value(e.max) end
  if #bounds > 0 then return what .. " " .. table.concat(bounds, " and ") end
  return what
end

-- Whether v is among the entry's choices and within its bounds.
local function allowed(e, v)
  if e.choices then
    for _, c in ipairs(e.choices) do
      if c == v then return true end
    end
    return false
  end
  return not ((e.min ~= nil and (v < e.min or (e.exclusive_min and v == e.min))) or
              (e.max ~= nil and (v > e.max or (e.exclusive_max and v == e.max))))
end

local function value_type(v)
  if type(v) == "boolean" then return "bool" end
  if type(v) == "string" then return "string" end
  if math.type(v) == "integer" then return "int" end
  if type(v) == "number" then return "number" end
  return nil
end

-- Validated copy of the spec: every entry gets an explicit type.
local function check_spec(spec)
  if type(spec) ~= "table" then
    error("options spec: expected a table of options, got " .. type(spec), 3)
  end
  local entries = {}
  for name, e in pairs(spec) do
    local function bad(msg) error(("options spec: option '%s': %s"):format(tostring(name), msg), 4) end
    if type(name) ~= "string" or not name:match("^[%a][%w_]*$") then
      error("options spec: option names are identifiers, got " .. tostring(name), 3)
    end
    if name == "help" or name == "h" then bad("the name is reserved for --help") end
    if type(e) ~= "table" then bad("expected a table, got " .. type(e)) end
    for k in pairs(e) do
      if not FIELDS[k] then bad("unknown field '" .. tostring(k) .. "'") end
    end
    local t = e.type
    if t == nil then
      if e.choices ~= nil and type(e.choices) == "table" and e.choices[1] ~= nil then
        t = value_type(e.choices[1])
      else
        t = value_type(e.default)
      end
      if t == nil then bad("give a type (int, number, string or bool) or a default") end
    end
    if not parsers[t] then bad("unknown type '" .. tostring(t) .. "' (int, number, string or bool)") end
    local c = {type = t, help = e.help, required = e.required, choices = e.choices,
               min = e.min, max = e.max, exclusive_min = e.exclusive_min,
               exclusive_max = e.exclusive_max, default = e.default, default_text = e.default_text,
               metavar = e.metavar or METAVAR[t]}
    for _, k in ipairs({"help", "default_text", "metavar"}) do
      if c[k] ~= nil and type(c[k]) ~= "string" then bad(k .. " must be a string") end
    end
    local function fits(v)
      local vt = value_type(v)
      return vt == t or (t == "number" and vt == "int")
    end
    if c.choices ~= nil then
      if type(c.choices) ~= "table" or #c.choices == 0 then bad("choices must be a non-empty list") end
      for _, v in ipairs(c.choices) do
        if not fits(v) then bad(("choice %s is not of type %s"):format(tostring(v), t)) end
      end
    end
    for _, k in ipairs({"min", "max"}) do
      if c[k] ~= nil and (type(c[k]) ~= "number" or (t ~= "int" and t ~= "number")) then
        bad(k .. " needs a numeric option and a number")
      end
    end
    if c.default ~= nil then
      if not fits(c.default) then bad(("default %s is not of type %s"):format(tostring(c.default), t)) end
      if not allowed(c, c.default) then
        bad(("default %s is not %s"):format(fmt_value(c.default), accepted(c)))
      end
    end
    entries[name] = c
  end
  return entries
end

local function usage(entries, script, about)
  local names = {}
  for name in pairs(entries) do names[#names + 1] = name end
  table.sort(names)
  local lines = {}
  local pos = about.positional and (" [--] " .. about.positional) or ""
  lines[#lines + 1] = ("usage: lopper %s [options]%s"):format(script, pos)
  if about.description then lines[#lines + 1] = "\n" .. about.description end
  lines[#lines + 1] = "\noptions:"
  local rows = {}
  for _, name in ipairs(names) do
    local e = entries[name]
    local flag = "--" .. name
    if e.type == "bool" then
      flag = flag .. ", --no-" .. name
    elseif e.choices then
      local cs = {}
      for i, c in ipairs(e.choices) do cs[i] = fmt_value(c) end
      flag = flag .. " " .. table.concat(cs, "|")
    else
      flag = flag .. " " .. e.metavar
    end
    local notes = {}
    if e.type ~= "bool" and e.type ~= "string" and not e.choices then notes[#notes + 1] = accepted(e) end
    if e.required then notes[#notes + 1] = "required" end
    if e.default_text or e.default ~= nil then
      notes[#notes + 1] = "default " .. (e.default_text or fmt_value(e.default))
    end
    local text = e.help or ""
    if #notes > 0 then text = text .. (text ~= "" and " " or "") .. "(" .. table.concat(notes, "; ") .. ")" end
    rows[#rows + 1] = {flag, text}
  end
  rows[#rows + 1] = {"-h, --help", "show this help and exit"}
  local width = 0   -- longer flags get their help on the next line
  for _, r in ipairs(rows) do
    if #r[1] <= 24 then width = math.max(width, #r[1]) end
  end
  local indent = (" "):rep(width + 4)
  for _, r in ipairs(rows) do
    -- the help column is wrapped to keep lines within 80 columns
    local text, line = {}, nil
    for word in r[2]:gmatch("%S+") do
      if line and #indent + #line + 1 + #word > 80 then
        text[#text + 1] = line
        line = word
      else
        line = line and (line .. " " .. word) or word
      end
    end
    text[#text + 1] = line or ""
    local body = table.concat(text, "\n" .. indent)
    if #r[1] > width then
      lines[#lines + 1] = "  " .. r[1] .. "\n" .. indent .. body
    else
      lines[#lines + 1] = "  " .. r[1] .. (" "):rep(width - #r[1] + 2) .. body
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

function lop.options(arg, spec, about)
  if arg ~= nil and type(arg) ~= "table" then
    error("options: expected the script's arg table, got " .. type(arg), 2)
  end
  if about ~= nil and type(about) ~= "table" then
    error("options: 'about' must be a table ({description=, positional=})", 2)
  end
  arg, about = arg or {}, about or {}
  local entries = check_spec(spec)
  local script = arg[0] and tostring(arg[0]) or "script.lua"
  local function fail(msg) error(msg .. " (see " .. script .. " --help)", 0) end

  local function known_list()
    local names = {}
    for name in pairs(entries) do names[#names + 1] = "--" .. name end
    table.sort(names)
    return table.concat(names, ", ")
  end

  local values, given, positional = {}, {}, {}
  local function set(name, e, raw)
    local v = parsers[e.type](raw)
    if v == nil or not allowed(e, v) then
      fail(("bad value '%s' for --%s: expected %s"):format(raw, name, accepted(e)))
    end
    values[name], given[name] = v, true
  end

  local n = #arg
  for i = 1, n do
    if type(arg[i]) ~= "string" then
      error(("options: argument %d is a %s, not a string"):format(i, type(arg[i])), 2)
    end
  end
  local i, options_done = 1, false
  while i <= n do
    local a = arg[i]
    if options_done or a == "-" or not a:match("^%-") or tonumber(a) then
      if not about.positional then fail(("unexpected argument '%s'"):format(a)) end
      positional[#positional + 1] = a
    elseif a == "--" then
      options_done = true
    elseif a == "-h" or a == "--help" then
      io.stdout:write(usage(entries, script, about))
      io.stdout:flush()
      os.exit(0, true)
    elseif a:match("^%-%-") then
      local key, raw = a:match("^%-%-([^=]*)=(.*)$")
      key = (key or a:sub(3)):gsub("%-", "_")
      local e, negated = entries[key], false
      if not e and key:match("^no_") and entries[key:sub(4)] and entries[key:sub(4)].type == "bool" then
        key, e, negated = key:sub(4), entries[key:sub(4)], true
      end
      if not e then fail(("unknown option '%s'; options are %s"):format(a, known_list())) end
      if negated then
        if raw then fail(("--no-%s takes no value"):format(key)) end
        values[key], given[key] = false, true
      elseif e.type == "bool" and not raw then
        local nxt = arg[i + 1]
        if nxt and BOOL_WORDS[nxt:lower()] ~= nil then
          set(key, e, nxt)
          i = i + 1
        else
          values[key], given[key] = true, true
        end
      else
        if not raw then
          raw = arg[i + 1]
          if raw == nil or (raw:match("^%-%-") and not tonumber(raw)) then
            fail(("option --%s needs a value: %s"):format(key, accepted(e)))
          end
          i = i + 1
        end
        set(key, e, raw)
      end
    else
      fail(("unknown option '%s' (options start with --); options are %s"):format(a, known_list()))
    end
    i = i + 1
  end

  for name, e in pairs(entries) do
    if not given[name] then
      if e.required then fail(("missing required option --%s: %s"):format(name, accepted(e))) end
      values[name] = e.default
    end
  end
  for k, v in ipairs(positional) do values[k] = v end
  return values
end
