-- recipes_spec.lua - every pruning recipe in scripts/ runs end to end in a smoke mode
-- (a few calibration images, a few training steps) as a child process, and leaves a
-- valid pruned model with fewer FLOPs than the original and accuracy above chance;
-- bad option values are refused with a clear message and a non-zero exit.
local lop = require "lopper"

local LOPPER = os.getenv("LOPPER") or "build/lopper"
local VGG = "models/vgg16.lop"
local SMOKE = "--train_size 256 --test_size 100 --images 32 --points 4 --finetune 0 "
              .. "--final 1 --batch 32 --reps 2"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok and 0 or code, out
end

local tmp = os.tmpname()
os.remove(tmp)

local R20 = "models/resnet20.lop"

local function check_result(model, out_path, output)
  assert.truthy(output:find("FLOPs count a multiply-add as 2", 1, true), output)
  local before, after = lop.load(model), lop.load(out_path)
  assert.is_true(after:flops() < before:flops())
  local data = lop.data.fashion_mnist{train_size = 2, test_size = 500}
  local acc = lop.evaluate(after, data.test, {progress = false}).top1
  assert.is_true(acc > 0.2, ("accuracy %.3f"):format(acc))
  os.remove(out_path)
  -- the per-layer widths plot beside the model: one "before" and one "after" bar per
  -- convolution, plus the legend's two colour squares
  local plot = out_path:gsub("%.lop$", "") .. ".widths.svg"
  local f = assert(io.open(plot), "no widths plot " .. plot)
  local svg = f:read("a")
  f:close()
  os.remove(plot)
  local convs = 0
  for _, n in ipairs(before:nodes()) do if n.kind == "conv2d" then convs = convs + 1 end end
  local _, bars = svg:gsub('<rect x="[%d.]+" y="[%d.]+" width="[%d.]+" height="[%d.]+"', "")
  assert.are.equal(2 * convs + 2, bars)
end

describe("recipes", function()
  it("resnet.lua prunes block inner channels to a FLOPs target", function()
    local model, out = R20, tmp .. ".r20p.lop"
    local code, output = run(("%s scripts/resnet.lua --model %s --out %s --speedup 1.5 %s")
                             :format(LOPPER, model, out, SMOKE))
    assert.are.equal(0, code, output)
    check_result(model, out, output)
  end)

  -- (thinet here: with the smoke run's 128 samples a full least-squares refit of every
  -- layer would overfit them; select_spec checks the residual refit itself)
  it("resnet.lua --residual picks block inputs and refits block sums (He et al.)", function()
    local model, out = R20, tmp .. ".r20r.lop"
    local code, output = run(("%s scripts/resnet.lua --model %s --out %s --keep 0.5 "
                              .. "--solver thinet --residual %s"):format(LOPPER, model, out, SMOKE))
    assert.truthy(output:find("s3b3_conv1 input channels   64 ->   32", 1, true), output)
    assert.are.equal(0, code, output)
    check_result(model, out, output)
  end)

  it("results.lua runs one recipe, saves its outcome and writes the page", function()
    local dir, page = tmp .. ".results", tmp .. ".results.md"
    local code, output = run(("%s scripts/results.lua --run resnet20_2x --dir %s --work %s "
                              .. "--page %s --test_size 300 --reps 3 --extra='%s'"):format(
                              LOPPER, dir, dir, page, SMOKE))
    assert.are.equal(0, code, output)
    local o = dofile(dir .. "/resnet20_2x.lua")
    assert.truthy(o.commit:match("^%x+$") or o.commit == "unknown", o.commit)
    local pruned = lop.load(dir .. "/resnet20_2x.lop")
    assert.are.equal(pruned:flops(), o.after.flops)
    assert.are.equal(pruned:params(), o.after.params)
    assert.are.equal(lop.load(R20):flops(), o.before.flops)
    assert.is_true(o.before.flops / o.after.flops > 1.9)   -- --speedup 2
    local f = assert(io.open(page))
    local text = f:read("a")
    f:close()
    assert.truthy(text:find("| resnet20_2x (300 test images)", 1, true), text)
    -- the thread setting the latencies were taken with is named once, above the table
    local threads = os.getenv("LOP_THREADS")
    assert.truthy(text:find("machine with " .. (threads and "LOP_THREADS=" .. threads
                                               or "one engine thread per core"), 1, true), text)
    assert.truthy(text:find("Not yet run: thinet_vgg16,", 1, true), text)
    assert.truthy(io.open(dir .. "/resnet20_2x.widths.svg"))
    -- --measure redoes the figures from the saved model and keeps the rest
    code, output = run(("%s scripts/results.lua --measure all --dir %s --work %s --page %s "
                        .. "--test_size 200 --reps 3"):format(LOPPER, dir, dir, page))
    assert.are.equal(0, code, output)
    local m = dofile(dir .. "/resnet20_2x.lua")
    assert.are.equal(200, m.test_images)
    assert.are.equal(o.command, m.command)
    assert.are.equal(o.minutes, m.minutes)
    assert.are.equal(o.after.flops, m.after.flops)
    assert.are.equal(lop.evaluate(pruned, lop.data.fashion_mnist{train_size = 2, test_size = 200}
                                  .test).top1, m.after.top1)
    code, output = run(("%s scripts/results.lua --measure thinet_vgg16 --dir %s --work %s "
                        .. "--page %s"):format(LOPPER, dir, dir, page))
    assert.are_not.equal(0, code)
    assert.truthy(output:find("thinet_vgg16 has not been run yet", 1, true), output)
    -- a run going on from another's model needs that one first
    code, output = run(("%s scripts/results.lua --run thinet_vgg16_ft --dir %s --work %s "
                        .. "--page %s"):format(LOPPER, dir, dir, page))
    assert.are_not.equal(0, code)
    assert.truthy(output:find("run thinet_vgg16 first", 1, true), output)
    os.execute(("rm -rf '%s' '%s'"):format(dir, page))
  end)

  it("refuse bad option values with a message", function()
    for _, script in ipairs{"thinet_vgg16", "thinet_gap_vgg16", "lasso_vgg16", "resnet",
                            "hessian"} do
      local code, output = run(("%s scripts/%s.lua --keep 0"):format(LOPPER, script))
      assert.are_not.equal(0, code, script)
      assert.truthy(output:find("--keep", 1, true), output)
      code, output = run(("%s scripts/%s.lua --solver magic"):format(LOPPER, script))
      assert.are_not.equal(0, code, script)
      assert.truthy(output:find("--solver", 1, true), output)
    end
  end)

  if not exists(VGG) then
    pending("the VGG-16 recipes need the shipped " .. VGG)
    return
  end

  for _, case in ipairs{
    {"thinet_vgg16", ""},
    {"thinet_gap_vgg16", ""},
    {"lasso_vgg16", "--speedup 2"},
    {"hessian", "--hessian_images 8 --max_iter 2"},
  } do
    it(case[1] .. ".lua runs end to end on the shipped VGG-16", function()
      local out = tmp .. "." .. case[1] .. ".lop"
      local code, output = run(("%s scripts/%s.lua --model %s --out %s %s %s"):format(
        LOPPER, case[1], VGG, out, SMOKE, case[2]))
      assert.are.equal(0, code, output)
      check_result(VGG, out, output)
    end)
  end
end)
