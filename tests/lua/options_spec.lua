-- options_spec.lua - lop.options, the command-line parser of every script and recipe:
-- each accepted form, defaults, types, bounds, choices, the errors a user sees for a
-- mistyped command line, errors in the spec itself, and --help (in a child process,
-- since it exits).
local lop = require "lopper"

local LOPPER = os.getenv("LOPPER") or "build/lopper"

local SPEC = {
  epochs = {default = 12, type = "int", min = 1, help = "training epochs"},
  lr = {default = 0.05, type = "number", min = 0, exclusive_min = true, help = "learning rate"},
  momentum = {default = 0.9, type = "number", min = 0, max = 1, exclusive_max = true},
  model = {default = "vgg16", choices = {"vgg16", "resnet20", "resnet56"}, help = "architecture"},
  out = {default = "models/x.lop", type = "string", help = "output file"},
  flip = {default = true, type = "bool", help = "random flips"},
  train_size = {type = "int", min = 2, help = "first N training images"},
}

local function parse(args, spec, about)
  args[0] = "train.lua"
  return lop.options(args, spec or SPEC, about)
end

-- The error message of parse(...), which must fail.
local function failure(args, spec, about)
  local ok, err = pcall(parse, args, spec, about)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

describe("lop.options", function()
  it("fills every default when nothing is given", function()
    assert.are.same({epochs = 12, lr = 0.05, momentum = 0.9, model = "vgg16",
                     out = "models/x.lop", flip = true}, parse({}))
    assert.is_nil(parse({}).train_size)
    assert.are.same({}, lop.options(nil, {}))
  end)

  it("accepts --key value, --key=value and dashes for underscores", function()
    local o = parse({"--epochs", "3", "--lr=0.1", "--model", "resnet20", "--train-size", "100",
                     "--out=a=b.lop", "--momentum", "0"})
    assert.are.same({epochs = 3, lr = 0.1, momentum = 0, model = "resnet20",
                     out = "a=b.lop", flip = true, train_size = 100}, o)
    assert.are.equal("integer", math.type(o.epochs))
    assert.are.equal(5, parse({"--train_size", "5"}).train_size)
    assert.are.equal("-1.5", parse({"--out", "-1.5"}).out)
  end)

  it("lets the last occurrence win", function()
    assert.are.equal(7, parse({"--epochs", "3", "--epochs=7"}).epochs)
  end)

  it("reads booleans as flags, --no-flags and words", function()
    assert.is_true(parse({"--flip"}).flip)
    assert.is_false(parse({"--no-flip"}).flip)
    assert.is_false(parse({"--no_flip"}).flip)
    assert.is_false(parse({"--flip=false"}).flip)
    assert.is_false(parse({"--flip", "off"}).flip)
    assert.is_true(parse({"--flip", "YES", "--epochs", "2"}).flip)
    assert.is_false(parse({"--flip=0"}).flip)
    -- a flag followed by another option does not swallow it
    local o = parse({"--flip", "--epochs", "2"})
    assert.is_true(o.flip)
    assert.are.equal(2, o.epochs)
  end)

  it("converts and checks numbers", function()
    assert.are.equal(100, parse({"--epochs", "1e2"}).epochs)
    assert.are.equal(16, parse({"--epochs", "0x10"}).epochs)
    assert.are.equal(2.5e-4, parse({"--lr", "2.5e-4"}).lr)
    assert.matches("bad value '1.5' for %-%-epochs: expected an integer >= 1",
                   failure({"--epochs", "1.5"}))
    assert.matches("bad value 'ten' for %-%-epochs", failure({"--epochs", "ten"}))
    assert.matches("bad value 'nan' for %-%-lr: expected a number > 0",
                   failure({"--lr", "nan"}))
    assert.matches("bad value '1e999'", failure({"--lr", "1e999"}))
    assert.matches("bad value 'x' for %-%-flip: expected true or false", failure({"--flip=x"}))
  end)

  it("enforces bounds, inclusive and exclusive", function()
    assert.are.equal(1, parse({"--epochs", "1"}).epochs)
    assert.matches("bad value '0' for %-%-epochs: expected an integer >= 1", failure({"--epochs", "0"}))
    assert.matches("bad value '0' for %-%-lr: expected a number > 0", failure({"--lr", "0"}))
    assert.matches("expected a number >= 0 and < 1", failure({"--momentum", "1"}))
    assert.matches("bad value '%-0.1' for %-%-momentum", failure({"--momentum", "-0.1"}))
    assert.are.equal(0.999, parse({"--momentum", "0.999"}).momentum)
  end)

  it("enforces choices and names them", function()
    assert.are.equal("resnet56", parse({"--model=resnet56"}).model)
    assert.matches("bad value 'vgg19' for %-%-model: expected one of vgg16, resnet20, resnet56",
                   failure({"--model", "vgg19"}))
    local spec = {depth = {default = 20, choices = {20, 56}}}
    assert.are.equal(56, parse({"--depth", "56"}, spec).depth)
    assert.matches("expected one of 20, 56", failure({"--depth", "32"}, spec))
  end)

  it("rejects unknown options and lists the known ones", function()
    local err = failure({"--epoch", "3"})
    assert.matches("unknown option '%-%-epoch'", err)
    assert.truthy(err:find("--epochs, --flip, --lr, --model, --momentum, --out, --train_size", 1, true))
    assert.truthy(err:find("see train.lua --help", 1, true))
    assert.matches("unknown option '%-e'", failure({"-e", "3"}))
    assert.matches("unknown option '%-%-no%-epochs'", failure({"--no-epochs"}))
  end)

  it("reports a missing value", function()
    assert.matches("option %-%-epochs needs a value: an integer >= 1", failure({"--epochs"}))
    assert.matches("option %-%-lr needs a value", failure({"--lr", "--epochs", "3"}))
    assert.matches("%-%-no%-flip takes no value", failure({"--no-flip=true"}))
    -- a negative number is a value, not an option
    assert.matches("bad value '%-3' for %-%-epochs", failure({"--epochs", "-3"}))
  end)

  it("rejects positional arguments unless the script takes them", function()
    assert.matches("unexpected argument 'extra'", failure({"extra"}))
    local o = parse({"a.lop", "--epochs", "2", "b.lop", "--", "--lr"}, SPEC, {positional = "FILE..."})
    assert.are.same({"a.lop", "b.lop", "--lr"}, {o[1], o[2], o[3]})
    assert.are.equal(2, o.epochs)
  end)

  it("enforces required options", function()
    local spec = {out = {type = "string", required = true}}
    assert.are.equal("m.lop", parse({"--out", "m.lop"}, spec).out)
    assert.matches("missing required option %-%-out", failure({}, spec))
  end)

  it("infers types from defaults and choices", function()
    local spec = {n = {default = 3}, x = {default = 0.5}, s = {default = "a"}, b = {default = false},
                  c = {choices = {"p", "q"}}}
    local o = parse({"--n", "4", "--x", "2", "--s", "z", "--b", "--c", "q"}, spec)
    assert.are.same({n = 4, x = 2, s = "z", b = true, c = "q"}, o)
    assert.matches("expected an integer", failure({"--n", "4.5"}, spec))
  end)

  it("rejects a broken spec at the caller", function()
    local function spec_error(spec)
      local ok, err = pcall(lop.options, {}, spec)
      assert.is_false(ok)
      return err
    end
    assert.matches("options spec: expected a table", spec_error(nil))
    assert.matches("option 'x': give a type", spec_error({x = {}}))
    assert.matches("option 'x': unknown type 'float'", spec_error({x = {type = "float"}}))
    assert.matches("option 'x': default 1.5 is not of type int", spec_error({x = {type = "int", default = 1.5}}))
    assert.matches("option 'x': default 0 is not an integer >= 1", spec_error({x = {default = 0, min = 1}}))
    assert.matches("option 'x': default c is not one of a, b",
                   spec_error({x = {default = "c", choices = {"a", "b"}}}))
    assert.matches("option 'x': min needs a numeric option", spec_error({x = {default = "s", min = 1}}))
    assert.matches("option 'x': default_text must be a string", spec_error({x = {default = 1, default_text = 2}}))
    assert.matches("option 'x': unknown field 'defualt'", spec_error({x = {type = "int", defualt = 1}}))
    assert.matches("option 'x': choices must be a non%-empty list", spec_error({x = {type = "int", choices = {}}}))
    assert.matches("reserved for %-%-help", spec_error({help = {default = 1}}))
    assert.matches("option names are identifiers", spec_error({["bad name"] = {default = 1}}))
    assert.matches("options: expected the script's arg table", select(2, pcall(lop.options, "x", {})))
    assert.matches("argument 1 is a number", select(2, pcall(lop.options, {1}, {})))
  end)
end)

describe("lop.options in a script", function()
  local script = os.tmpname()
  setup(function()
    local f = assert(io.open(script, "w"))
    f:write([[
local opt = lop.options(arg, {
  epochs = {default = 12, type = "int", min = 1, help = "training epochs"},
  model = {default = "vgg16", choices = {"vgg16", "resnet20", "resnet56"}, help = "architecture"},
  flip = {default = true, help = "random horizontal flips"},
  train_size = {type = "int", min = 2, help = "use the first N training images"},
  out = {type = "string", metavar = "FILE", help = "output"},
  lr = {type = "number", min = 0, exclusive_min = true, help = "learning rate",
        default_text = "0.05 for vgg16, 0.1 for the resnets"},
}, {description = "Train a reference model."})
print("epochs=" .. opt.epochs .. " lr=" .. tostring(opt.lr))
]])
    f:close()
  end)
  teardown(function() os.remove(script) end)

  local function run(args)
    local p = assert(io.popen(("%s %s %s 2>&1"):format(LOPPER, script, args)))
    local out = p:read("a")
    local ok, _, code = p:close()
    return out, ok and 0 or code
  end

  it("prints usage from the spec on --help and exits 0", function()
    for _, flag in ipairs({"--help", "-h", "--epochs 3 --help"}) do
      local out, code = run(flag)
      assert.are.equal(0, code)
      assert.truthy(out:find("usage: lopper " .. script .. " [options]", 1, true))
      assert.truthy(out:find("Train a reference model.", 1, true))
      assert.matches("\n  %-%-epochs N +training epochs %(an integer >= 1; default 12%)\n", out)
      assert.matches("\n  %-%-flip, %-%-no%-flip +random horizontal flips %(default true%)\n", out)
      assert.matches("\n  %-%-model vgg16|resnet20|resnet56\n +architecture %(default vgg16%)\n", out)
      assert.matches("\n  %-%-lr X +learning rate %(a number > 0; default 0.05 for vgg16, 0.1\n"
                     .. " +for the resnets%)\n", out)
      assert.matches("\n  %-%-out FILE +output\n", out)
      for line in out:gmatch("[^\n]+") do assert.is_true(#line <= 80, line) end
      assert.matches("\n  %-%-train_size N +use the first N training images %(an integer >= 2%)\n", out)
      assert.matches("\n  %-h, %-%-help +show this help and exit\n$", out)
      assert.falsy(out:find("epochs=", 1, true))
    end
  end)

  it("runs with the parsed values, and exits non-zero with the message on a bad one", function()
    local out, code = run("--epochs=4")
    assert.are.equal(0, code)
    assert.are.equal("epochs=4 lr=nil\n", out)
    out, code = run("--lr 0.5")
    assert.are.equal(0, code)
    assert.are.equal("epochs=12 lr=0.5\n", out)
    out, code = run("--epochs 0")
    assert.are_not.equal(0, code)
    assert.truthy(out:find("bad value '0' for --epochs: expected an integer >= 1", 1, true))
  end)
end)
