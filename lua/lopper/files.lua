-- files.lua - result files (plots, tables, records of runs) are written the way model
-- files are: to a temporary file beside the target, then renamed over it, so a reader
-- never sees half of one and a failed write leaves the old file in place.
--
--   lop.write_text("docs/results.md", text)
local lop = ...

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
