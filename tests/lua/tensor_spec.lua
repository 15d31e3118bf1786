-- tensor_spec.lua - tensors from Lua: construction from sizes and nested tables,
-- 1-based element access, conversion back, and misuse that must raise, not crash.
local lop = require "lopper"
local util = dofile("tests/lua/util.lua")

describe("lop.tensor", function()
  it("makes zeros of a shape", function()
    local t = lop.tensor(2, 3, 4)
    assert.are.same({2, 3, 4}, t:shape())
    assert.are.equal(24, t:numel())
    assert.are.equal(24, #t)
    assert.are.equal(0, t:sum())
  end)

  it("takes nested tables row-major", function()
    local t = lop.tensor{{1, 2, 3}, {4, 5, 6}}
    assert.are.same({2, 3}, t:shape())
    assert.are.equal(4, t:get(2, 1))
    assert.are.equal(3, t:get(1, 3))
    assert.are.same({{1, 2, 3}, {4, 5, 6}}, t:totable())
    assert.are.equal(21, t:sum())
    local v, i = t:max()
    assert.are.equal(6, v)
    assert.are.equal(6, i)
  end)

  it("sets, fills, copies and clones independently", function()
    local t = lop.tensor(2, 2)
    t:set(7.5, 2, 2)
    assert.are.equal(7.5, t:get(2, 2))
    local c = t:clone()
    t:fill(1)
    assert.are.equal(7.5, c:get(2, 2))
    assert.are.equal(4, t:sum())
    t:copy(c)
    assert.are.same({{0, 0}, {0, 7.5}}, t:totable())
  end)

  it("prints its shape and first values", function()
    local s = tostring(lop.tensor{{1, 2}, {3, 4}})
    assert.truthy(s:find("2x2", 1, true))
    assert.truthy(s:find("1, 2, 3, 4", 1, true))
  end)

  it("closes once, and a closed tensor refuses use", function()
    local t = lop.tensor(3)
    t:close()
    t:close()
    assert.truthy(tostring(t):find("closed"))
    local ok, err = pcall(t.sum, t)
    assert.is_false(ok)
    assert.truthy(err:find("closed"))
    do
      local scoped <close> = lop.tensor(2)
      assert.are.equal(2, #scoped)
    end
  end)

  it("raises clear errors on misuse", function()
    local t = lop.tensor(2, 2)
    local cases = {
      {lop.tensor},
      {lop.tensor, 0},
      {lop.tensor, -3},
      {lop.tensor, 1, 2, 3, 4, 5},
      {lop.tensor, "x"},
      {lop.tensor, {}},
      {lop.tensor, {{1, 2}, {3}}},
      {lop.tensor, {{1, "a"}}},
      {lop.tensor, {{{{{1}}}}}},
      {t.get, t, 3, 1},
      {t.get, t, 1},
      {t.get, t, 0, 1},
      {t.set, t, "v", 1, 1},
      {t.copy, t, lop.tensor(3)},
      {t.fill, t, nil},
      {t.shape, 42},
      {t.sum, {}},
    }
    for k, c in ipairs(cases) do
      local ok, err = pcall(table.unpack(c))
      assert.is_false(ok, "case " .. k .. " should fail")
      assert.is_string(err)
      assert.is_true(#err > 0, "case " .. k .. " has a message")
    end
  end)

  it("gives memory back when tensors are dropped", function()
    collectgarbage()
    local before = util.rss_kb()
    for _ = 1, 400 do
      local t = lop.tensor(256, 1024)   -- 1 MiB each, 400 MiB in all
      t:fill(1)
    end
    collectgarbage()
    local after = util.rss_kb()
    if before and after then
      -- 400 MiB went through; ASan's quarantine holds up to 256 MiB of freed memory
      local limit = util.under_asan() and 380 * 1024 or 128 * 1024
      assert.is_true(after - before < limit, ("RSS grew by %d kB"):format(after - before))
    end
  end)
end)
