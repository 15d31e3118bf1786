-- recipes_spec.lua - every pruning recipe in scripts/ runs end to end in a smoke mode
-- (a few calibration images, a few training steps) as a child process, and leaves a
-- valid pruned model with fewer FLOPs than the original and accuracy above chance;
-- bad option values, missing or unreadable models and a missing data directory are
-- refused with a one-line message and a non-zero exit.
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

-- The exit code and the output (stderr alone with stderr_only).
local function run(cmd, stderr_only)
  local p = io.popen(cmd .. (stderr_only and " 2>&1 >/dev/null" or " 2>&1"))
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

  -- (ThiNet's scaling here: with the smoke run's 128 samples the default full refit of
  -- every layer would overfit them; select_spec checks the residual refit itself)
  it("resnet.lua --residual picks block inputs and refits block sums (He et al.)", function()
    local model, out = R20, tmp .. ".r20r.lop"
    local code, output = run(("%s scripts/resnet.lua --model %s --out %s --keep 0.5 --solver "
                              .. "thinet --refit scale --residual %s")
                             :format(LOPPER, model, out, SMOKE))
    assert.truthy(output:find("s3b3_conv1 input channels   64 ->   32", 1, true), output)
    assert.are.equal(0, code, output)
    check_result(model, out, output)
  end)

  it("resnet.lua --stages prunes the residual stages too, refitting every reader", function()
    local model, out = R20, tmp .. ".r20s.lop"
    local code, output = run(("%s scripts/resnet.lua --model %s --out %s --keep 0.5 --stages "
                              .. "--refit scale %s"):format(LOPPER, model, out, SMOKE))
    assert.are.equal(0, code, output)
    -- stage 1 (stem + three block outputs) is read by five convs, stage 3 by two and fc
    assert.truthy(output:find("s1b1_conv1 +4 input channels   16 ->    8", 1, true), output)
    assert.truthy(output:find("s3b2_conv1 +2 input channels   64 ->   32", 1, true), output)
    local net = lop.load(out)
    assert.are.equal(8, net:node("conv1"):shape()[1])
    assert.are.same({10, 32}, net:node("fc"):weight():shape())
    assert.are.equal(8, net:node("s1b2_conv1"):shape()[1])   -- inner channels as well
    check_result(model, out, output)
    local code2, both = run(("%s scripts/resnet.lua --model %s --stages --residual")
                            :format(LOPPER, model))
    assert.are_not.equal(0, code2)
    assert.truthy(both:find("--stages and --residual exclude each other", 1, true), both)
  end)

  it("resnet.lua --widths auto chooses a width per layer for the FLOPs target", function()
    local model, out = R20, tmp .. ".r20a.lop"
    local code, output = run(("%s scripts/resnet.lua --model %s --out %s --speedup 1.5 "
                              .. "--widths auto --refit scale %s"):format(LOPPER, model, out,
                                                                          SMOKE))
    assert.are.equal(0, code, output)
    assert.truthy(output:find("automatic widths for 1.50x fewer FLOPs: ", 1, true), output)
    -- a FLOPs budget is a ceiling, met within 5%
    local cut = lop.load(model):flops() / lop.load(out):flops()
    assert.is_true(cut >= 1.5 and cut <= 1.5 / 0.95, cut)
    -- per layer: not one shared fraction
    local low, high = output:match("keeping ([%d.]+)%-([%d.]+) of the input channels")
    assert.truthy(low and tonumber(low) < tonumber(high), output)
    check_result(model, out, output)
    local code2, text = run(("%s scripts/resnet.lua --model %s --widths auto --train_size 10 "
                             .. "--test_size 10"):format(LOPPER, model))
    assert.are_not.equal(0, code2)
    assert.truthy(text:find("--widths auto needs a budget: --speedup or --latency-ms", 1, true),
                  text)
  end)

  it("choose the refit by --refit, by default the full weights refit for every solver",
     function()
    local quick = ("--model %s --out %s --keep 0.9 --train_size 256 --test_size 50 "
                   .. "--images 8 --points 2 --finetune 0 --final 0 --reps 1")
                  :format(R20, tmp .. ".refit.lop")
    for _, case in ipairs{{"", "(thinet, weights refit,"},
                          {"--solver l1", "(l1, weights refit,"},
                          {"--refit scale", "(thinet, scale refit,"},
                          {"--solver l1 --refit scale", "(l1, scale refit,"}} do
      local code, output = run(("%s scripts/resnet.lua %s %s"):format(LOPPER, quick, case[1]))
      assert.are.equal(0, code, output)
      assert.truthy(output:find("s1b1_conv2 input channels   16 ->   15  " .. case[2], 1, true),
                    output)
    end
    os.remove(tmp .. ".refit.lop")
    os.remove(tmp .. ".refit.widths.svg")
  end)

  it("report a missing or unreadable model or data directory in one line", function()
    local garbage = tmp .. ".garbage.lop"
    local f = assert(io.open(garbage, "wb"))
    f:write("not a model")
    f:close()
    for _, case in ipairs{
      {"thinet_vgg16", "--model " .. tmp .. ".missing.lop", tmp .. ".missing.lop"},
      {"resnet", "--model " .. garbage, garbage},
      {"resnet", ("--model %s --data %s.nodata"):format(R20, tmp),
       tmp .. ".nodata/train-images-idx3-ubyte.gz"},
      {"hessian", ("--model %s --data %s.nodata"):format(R20, tmp), tmp .. ".nodata/"},
    } do
      local code, err = run(("%s scripts/%s.lua %s"):format(LOPPER, case[1], case[2]), true)
      assert.are_not.equal(0, code, err)
      assert.truthy(err:find(case[3], 1, true), err)
      assert.is_nil(err:find("stack traceback", 1, true), err)
      assert.are.equal(1, select(2, err:gsub("\n", "")), err)   -- one line
    end
    os.remove(garbage)
  end)

  it("results.lua runs one recipe, saves its outcome and writes the page", function()
    local dir, page = tmp .. ".results", tmp .. ".results.md"
    local code, output = run(("%s scripts/tools/results.lua --run resnet20_2x --dir %s "
                              .. "--work %s --page %s --test_size 300 --reps 3 --extra='%s'")
                             :format(LOPPER, dir, dir, page, SMOKE))
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
    code, output = run(("%s scripts/tools/results.lua --measure all --dir %s --work %s "
                        .. "--page %s --test_size 200 --reps 3"):format(LOPPER, dir, dir, page))
    assert.are.equal(0, code, output)
    local m = dofile(dir .. "/resnet20_2x.lua")
    assert.are.equal(200, m.test_images)
    assert.are.equal(o.command, m.command)
    assert.are.equal(o.minutes, m.minutes)
    assert.are.equal(o.after.flops, m.after.flops)
    assert.are.equal(lop.evaluate(pruned, lop.data.fashion_mnist{train_size = 2, test_size = 200}
                                  .test).top1, m.after.top1)
    code, output = run(("%s scripts/tools/results.lua --measure thinet_vgg16 --dir %s "
                        .. "--work %s --page %s"):format(LOPPER, dir, dir, page))
    assert.are_not.equal(0, code)
    assert.truthy(output:find("thinet_vgg16 has not been run yet", 1, true), output)
    -- a run going on from another's model needs that one first
    code, output = run(("%s scripts/tools/results.lua --run thinet_vgg16_ft --dir %s "
                        .. "--work %s --page %s"):format(LOPPER, dir, dir, page))
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
      code, output = run(("%s scripts/%s.lua --refit magic"):format(LOPPER, script))
      assert.are_not.equal(0, code, script)
      assert.truthy(output:find("bad value 'magic' for --refit: expected one of weights, scale",
                                1, true), output)
      code, output = run(("%s scripts/%s.lua --help"):format(LOPPER, script))
      assert.are.equal(0, code, output)
      assert.truthy(output:find("--refit weights|scale", 1, true), output)
    end
  end)

  it("warn in one line about a LASSO selection that did not converge", function()
    local warning = lop.recipe.lasso_warning("conv3_2", {converged = false, sweeps = 1000,
                                                         lambda = 0.25})
    assert.truthy(warning:find("conv3_2", 1, true), warning)
    assert.truthy(warning:find("did not converge (1000 sweeps, lambda 0.25)", 1, true), warning)
    assert.is_nil(warning:find("\n", 1, true))
    assert.is_nil(lop.recipe.lasso_warning("conv3_2", {converged = true, sweeps = 12,
                                                       lambda = 0.25}))
  end)

  if not exists(VGG) then
    pending("the VGG-16 recipes need the shipped " .. VGG)
    return
  end

  it("results.lua rebuilds the committed page from the saved outcomes and the notes",
     function()
    -- The page is all made from the outcomes, models/vgg16.lop (the head's share) and
    -- docs/results_notes.md: rebuilt from copies of the outcomes, it is the committed
    -- one to the byte, and so is its plot.
    local dir, page = tmp .. ".outcomes", tmp .. ".page.md"
    assert.is_true(os.execute(("mkdir -p '%s' && cp docs/results/*.lua '%s'"):format(dir, dir)))
    local code, output = run(("%s scripts/tools/results.lua --dir %s --work %s --page %s")
                             :format(LOPPER, dir, dir, page))
    assert.are.equal(0, code, output)
    local plot = "/accuracy_vs_flops.svg"
    for _, pair in ipairs{{"docs/results.md", page}, {"docs/results" .. plot, dir .. plot}} do
      code, output = run(("cmp '%s' '%s'"):format(pair[1], pair[2]))
      assert.are.equal(0, code, output)
    end
    os.execute(("rm -rf '%s' '%s'"):format(dir, page))
  end)

  -- The hessian recipe masks half the filters of ten layers with no refit and, in the
  -- smoke run, no fine-tuning between them: SMOKE's one final epoch (8 steps on 256
  -- images) left it at chance - top-1 on the 500 test images 0.202, 0.128, 0.092,
  -- 0.178, 0.088 for --seed 1 to 5 - so any change to the engine's last bits could
  -- flip the 0.2 check.  Three final epochs (a later --final overrides SMOKE's; about
  -- 2 s more) gave 0.70 to 0.77 for the same seeds: the check can still fail, when
  -- the recipe stops learning, but not by rounding.
  -- thinet_gap_vgg16 is the one run under the sanitizers too: its head fit is code no
  -- smaller case reaches; the others' selection, refit and Hessian code are.
  for _, case in ipairs{
    {"thinet_vgg16", "", " #accuracy"},
    {"thinet_gap_vgg16", "", ""},
    {"lasso_vgg16", "--speedup 2", " #accuracy"},
    {"hessian", "--hessian_images 8 --max_iter 2 --final 3", " #accuracy"},
  } do
    it(case[1] .. ".lua runs end to end on the shipped VGG-16" .. case[3], function()
      local out = tmp .. "." .. case[1] .. ".lop"
      local code, output = run(("%s scripts/%s.lua --model %s --out %s %s %s"):format(
        LOPPER, case[1], VGG, out, SMOKE, case[2]))
      assert.are.equal(0, code, output)
      check_result(VGG, out, output)
    end)
  end
end)
