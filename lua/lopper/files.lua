-- files.lua - result files (plots, tables, records of runs) are written the way model
-- files are: to a temporary file beside the target, then renamed over it, so a reader
-- never sees half of one and a failed write leaves the old file in place.  A record
-- is a Lua table of strings, numbers, booleans and tables, saved as a chunk that
-- returns it (keys sorted, numbers exact), to be read back with loadfile.
--
--   lop.write_text("docs/results.md", text)
--   lop.write_record("run.lua", {name = "x", top1 = 0.93}, "written by results.lua")
local lop = ...

-- A Lua literal of v; floats keep their type and every bit (%.17g, then ".0" if that
-- reads as an integer).
local function literal(v, indent)
  local t = type(v)
  if t == "string" then return ("%q"):format(v) end
  if t == "boolean" then return tostring(v) end
  if math.type(v) == "integer" then return tostring(v) end
  if t == "number" then
    local s = ("%.17g"):format(v)
    return s:find("^%-?%d+$") and s .. ".0" or s
  end
  if t ~= "table" then error(("lop.write_record: cannot write a %s value"):format(t), 0) end
  local keys, out = {}, {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local pad = indent .. "  "
  for _, k in ipairs(keys) do
    out[#out + 1] = ("%s[%s] = %s,"):format(pad, literal(k, pad), literal(v[k], pad))
  end
  return "{\n" .. table.concat(out, "\n") .. "\n" .. indent .. "}"
end

function lop.write_text(path, text)
  if type(path) ~= "string" or type(text) ~= "string" then
    error("lop.write_text: expects a path and a string", 2)
  end
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "w")
  if not f then error("lop.write_text: " .. err, 2) end
  local ok, werr = f:write(text)
  local closed, cerr = f:close()
  if not (ok and closed) then
    os.remove(tmp)
    error("lop.write_text: " .. tostring(werr or cerr), 2)
  end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then os.remove(tmp); error("lop.write_text: " .. rerr, 2) end
  return path
end

function lop.write_record(path, value, comment)
  if type(value) ~= "table" then error("lop.write_record: expects a table", 2) end
  local ok, text = pcall(literal, value, "")
  if not ok then error(text, 2) end
  return lop.write_text(path, ("-- %s\nreturn %s\n"):format(comment or "a record", text))
end
