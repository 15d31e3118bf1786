-- repl_spec.lua - the lopper executable from the outside: scripted REPL sessions piped
-- into stdin (values printed, multi-line chunks, errors that leave the session alive),
-- script mode (the arg table compared with stock lua5.4's, exit codes, messages on
-- stderr), the command-line options, the OpenBLAS kernel choice made before start-up,
-- and, when tmux is installed, an interactive session on a terminal (readline
-- prompts, Ctrl-C, history file).
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local root = here .. "/../.."
local LOPPER = os.getenv("LOPPER") or root .. "/build/lopper"

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

local dir

setup(function()
  dir = sh("mktemp -d /tmp/lop_repl_XXXXXX"):gsub("\n$", "")
  assert(dir ~= "")
end)

teardown(function()
  os.execute("rm -rf " .. quote(dir))
end)

-- Run lopper with the given (already quoted) arguments and stdin text; returns
-- stdout, stderr and the exit status.  env is an optional command prefix.
local function run(args, input, env)
  write(dir .. "/stdin", input or "")
  local cmd = ("%s %s %s < %s 2> %s"):format(env or "", quote(LOPPER), args or "",
    quote(dir .. "/stdin"), quote(dir .. "/stderr"))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, read(dir .. "/stderr"), code
end

local function session(lines)
  return run("", table.concat(lines, "\n") .. "\n")
end

local function script(name, text)
  local path = dir .. "/" .. name
  write(path, text)
  return path
end

describe("REPL on piped stdin", function()
  it("prints the values of an expression typed alone, and nothing else", function()
    local out, err, code = session{"1+1", "lop.version", "'text'", "1, 'two', nil"}
    assert.are.equal("2\n" .. lop.version .. "\ntext\n1\ttwo\tnil\n", out)
    assert.are.equal("", err)
    assert.are.equal(0, code)
  end)

  it("runs statements silently and keeps globals between lines", function()
    local out, err = session{"x = 5", "x * 2", "local y = 1", "y", "do end"}
    assert.are.equal("10\nnil\n", out)   -- a local lives for its own line only
    assert.are.equal("", err)
  end)

  it("reads multi-line chunks until they are complete", function()
    local out, err = session{
      "function triple(a)", "  return a * 3", "end", "triple(4)",
      "{", "  1,", "  2}",
      "for i = 1, 2 do", "  print('loop', i)", "end",
    }
    assert.are.equal("12\n{1, 2}\nloop\t1\nloop\t2\n", out)
    assert.are.equal("", err)
  end)

  it("prints an error and goes on with the next line", function()
    local out, err, code = session{'error("boom")', "1 + 2", "undefined_fn()",
                                   "x = 5", "x * 2"}
    assert.are.equal("3\n10\n", out)
    assert.truthy(err:find("stdin:1: boom", 1, true))
    assert.truthy(err:find("attempt to call a nil value (global 'undefined_fn')", 1, true))
    assert.are.equal(0, code)
  end)

  it("reports syntax errors, including a chunk still open at the end", function()
    local out, err, code = session{"1 +* 2", "3", "function g("}
    assert.are.equal("3\n", out)
    assert.truthy(err:find("unexpected symbol", 1, true))
    assert.truthy(err:find("<eof>", 1, true))
    assert.are.equal(0, code)
  end)

  it("shows userdata through __tostring and plain tables as a one-line preview", function()
    local out = session{
      "lop.tensor{{1, 2}, {3, 4}}",
      "{1, 'a', {}, {5}}",
      "{b = 2, a = 'x', [10] = true, ['two words'] = 1}",
      "{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}",
      "setmetatable({}, {__tostring = function() return 'custom' end})",
    }
    assert.are.equal(tostring(lop.tensor{{1, 2}, {3, 4}}) .. "\n" ..
      '{1, "a", {}, {...}}\n' ..
      '{[10] = true, a = "x", b = 2, ["two words"] = 1}\n' ..
      "{1, 2, 3, 4, 5, 6, 7, 8, ... (2 more)}\n" ..
      "custom\n", out)
  end)

  it("survives a value whose __tostring fails", function()
    local out, err = session{
      "setmetatable({}, {__tostring = function() error('cannot show') end})", "7"}
    assert.are.equal("7\n", out)
    assert.truthy(err:find("cannot show", 1, true))
  end)
end)

describe("scripts", function()
  -- Prints the arg table (all but the interpreter's own name) and the varargs.
  local dump = [[
local lo = 0
while arg[lo - 1] do lo = lo - 1 end
print("lowest", lo)
for i = lo + 1, #arg do print(i, arg[i]) end
print("varargs", select("#", ...), ...)
]]

  it("get the arg table and ... exactly as lua5.4 gives them", function()
    local path = script("dump.lua", dump)
    local out, err, code = run(quote(path) .. " a 'b c'")
    assert.are.equal("lowest\t-1\n0\t" .. path .. "\n1\ta\n2\tb c\nvarargs\t2\ta\tb c\n", out)
    assert.are.equal("", err)
    assert.are.equal(0, code)
    for _, args in ipairs{quote(path) .. " a 'b c'", "-e 'x = 1' " .. quote(path) .. " q",
                          "-- " .. quote(path), "-e 'x = 1'  -e 'y = 2' -- " .. quote(path)} do
      local reference = sh("lua5.4 " .. args .. " </dev/null")
      assert.are.equal(reference, (run(args)))
    end
  end)

  it("see lop preloaded, the same table require returns", function()
    local path = script("lop.lua", [[
assert(require("lopper") == lop and package.loaded.lopper == lop)
print(type(lop.tensor), lop.version)]])
    local out, _, code = run(quote(path))
    assert.are.equal("function\t" .. lop.version .. "\n", out)
    assert.are.equal(0, code)
  end)

  it("exit 1 with 'lopper: message' (and a traceback if it has a position) on an uncaught error", function()
    local path = script("fail.lua", "local x = 1\nerror('bad thing')\n")
    local out, err, code = run(quote(path))
    assert.are.equal("", out)
    assert.are.equal(1, code)
    assert.are.equal(1, err:find("lopper: " .. path .. ":2: bad thing\n", 1, true))
    assert.truthy(err:find("stack traceback:", 1, true))

    -- A message raised without a position is for the user: no traceback.
    out, err, code = run(quote(script("usage.lua", "error('bad --keep: 2 > 1', 0)\n")))
    assert.are.equal(1, code)
    assert.are.equal("lopper: bad --keep: 2 > 1\n", err)
    _, err, code = run(quote(script("option.lua", "lop.options({'--keep', '2'}, {keep = {type = 'number', max = 1}})\n")))
    assert.are.equal(1, code)
    assert.truthy(err:find("^lopper: bad value '2' for %-%-keep"), err)
    assert.falsy(err:find("stack traceback:", 1, true), err)

    _, err, code = run(quote(dir .. "/missing.lua"))
    assert.are.equal(1, code)
    assert.truthy(err:find("^lopper: cannot open "))

    _, err, code = run(quote(script("syntax.lua", "x = = 1\n")))
    assert.are.equal(1, code)
    assert.truthy(err:find("^lopper: .*syntax%.lua:1:"))

    _, err, code = run("-e 'error(setmetatable({}, {__tostring = function() return \"obj\" end}))'")
    assert.are.equal(1, code)
    assert.are.equal("lopper: obj\n", err)

    _, err, code = run("-e 'error({})'")
    assert.are.equal(1, code)
    assert.truthy(err:find("^lopper: %(error object is a table value%)"))
  end)

  it("exit with the status given to os.exit", function()
    local _, _, code = run("-e 'os.exit(3)'")
    assert.are.equal(3, code)
    _, _, code = run("-e 'os.exit(false)'")
    assert.are.equal(1, code)
  end)

  it("can come from stdin with '-'", function()
    local out, _, code = run("- u v", "print(1 + 1, ...)\n")
    assert.are.equal("2\tu\tv\n", out)
    assert.are.equal(0, code)
  end)
end)

describe("command-line options", function()
  it("-e runs code and then exits without a REPL", function()
    local out, _, code = run("-e 'print(6 * 7)' -e 'print(lop ~= nil)'", "print('repl')\n")
    assert.are.equal("42\ntrue\n", out)
    assert.are.equal(0, code)
  end)

  it("-i starts the REPL after the script", function()
    local path = script("set.lua", "x = 21\n")
    local out, _, code = run("-i " .. quote(path), "x * 2\n")
    assert.are.equal("42\n", out)
    assert.are.equal(0, code)
  end)

  it("-v, -h and a bad option", function()
    local out, _, code = run("-v")
    assert.truthy(out:find("^lopper " .. lop.version:gsub("%p", "%%%0") .. " on Lua 5%.4"))
    assert.are.equal(0, code)
    out, _, code = run("-h")
    assert.truthy(out:find("^usage: lopper"))
    assert.are.equal(0, code)
    local err
    out, err, code = run("-x")
    assert.are.equal(1, code)
    assert.truthy(err:find("unrecognized option '-x'", 1, true))
    _, err, code = run("-e")
    assert.are.equal(1, code)
    assert.truthy(err:find("'-e' needs an argument", 1, true))
  end)
end)

describe("OpenBLAS kernels", function()
  local show = "-e 'print(os.getenv(\"OPENBLAS_CORETYPE\"))'"

  it("are chosen from the CPU flags when OPENBLAS_CORETYPE is unset", function()
    local expected = sh("sh " .. quote(root .. "/scripts/tools/blas_coretype.sh")):gsub("\n", "")
    local out, _, code = run(show, "", "env -u OPENBLAS_CORETYPE")
    assert.are.equal((expected == "" and "nil" or expected) .. "\n", out)
    assert.are.equal(0, code)
  end)

  it("are left alone when the caller chose", function()
    assert.are.equal("Prescott\n", (run(show, "", "env OPENBLAS_CORETYPE=Prescott")))
  end)

  it("are chosen without disturbing the script's arguments or stdin", function()
    local path = script("args.lua", "print(#arg, arg[1], arg[2], io.read('l'))\n")
    local out = run(quote(path) .. " one 'two 2'", "line\n", "env -u OPENBLAS_CORETYPE")
    assert.are.equal("2\tone\ttwo 2\tline\n", out)
  end)
end)

describe("REPL on a terminal", function()
  it("prompts, continues chunks, survives errors and Ctrl-C, keeps history", function()
    if not os.execute("command -v tmux >/dev/null 2>&1") then
      pending("tmux is not installed")
      return
    end
    local tmux = "tmux -L " .. quote(("lopper_spec_%d"):format(os.time() % 100000 +
                                                             math.random(1, 1e6)))
    local home = dir .. "/home"
    os.execute("mkdir -p " .. quote(home))
    finally(function() os.execute(tmux .. " kill-server >/dev/null 2>&1") end)

    local function pane()
      return sh(tmux .. " capture-pane -p -S - -t repl 2>/dev/null")
    end
    local function keys(...)
      local args = {}
      for i, k in ipairs{...} do args[i] = quote(k) end
      os.execute(tmux .. " send-keys -t repl " .. table.concat(args, " "))
    end
    local function type_line(text)
      os.execute(tmux .. " send-keys -t repl -l " .. quote(text))
      keys("Enter")
    end
    local function count(text, s)
      local n, at = 0, 1
      while true do
        local i = text:find(s, at, true)
        if not i then return n end
        n, at = n + 1, i + 1
      end
    end
    -- Wait up to 10 s until the pane shows `s` more than `before` times (the pane
    -- loses trailing spaces, so prompts are matched without theirs).
    local function wait_for(s, before)
      for _ = 1, 200 do
        if count(pane(), s) > (before or 0) then return true end
        os.execute("sleep 0.05")
      end
      error(("timed out waiting for %q; the pane shows:\n%s"):format(s, pane()))
    end

    local cmd = ("env HOME=%s %s"):format(quote(home), quote(LOPPER))
    assert(os.execute(tmux .. " new-session -d -s repl -x 100 -y 50 " .. quote(cmd)))
    wait_for("lop>")

    type_line("1+1")
    wait_for("\n2\n")

    type_line("function f(x)")
    wait_for("...>")
    type_line("return x + 1")
    type_line("end")
    type_line("f(41)")
    wait_for("\n42\n")

    type_line('error("boom")')
    wait_for("stdin:1: boom")

    -- Ctrl-C while continuing a chunk drops it: 100 + 11 alone gives 111, not 112.
    local conts = count(pane(), "...>")
    type_line("1 +")
    wait_for("...>", conts)
    keys("C-c")
    type_line("100 + 11")
    wait_for("\n111\n")
    assert.is_nil(pane():find("\n112\n", 1, true))

    -- Ctrl-C while Lua runs stops it with an error; the session goes on.
    type_line("print('spinning') while true do end")
    wait_for("\nspinning\n")
    keys("C-c")
    wait_for("interrupted!")
    type_line("6 * 7 + 1")
    wait_for("\n43\n")

    keys("C-d")
    for _ = 1, 200 do
      if not os.execute(tmux .. " has-session -t repl 2>/dev/null") then break end
      os.execute("sleep 0.05")
    end
    local history = read(home .. "/.lopper_history") or ""
    assert.truthy(history:find("1+1\n", 1, true))
    assert.truthy(history:find("f(41)\n", 1, true))
    assert.truthy(history:find("6 * 7 + 1", 1, true))
  end)
end)
