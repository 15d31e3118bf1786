# Lopper build: the engine as static and shared libraries, its tests and benchmarks.
#   make            build build/liblopper.a and build/liblopper.so
#   make test       build and run every test; ends with "N passed, N failed"
#   make test SANITIZE=1   the same under AddressSanitizer + UBSan (in build/asan)
#   make demo       the main job: a short ThiNet run pruning the shipped VGG-16
#   make bench      print the benchmark table
# Missing Debian packages are installed first by scripts/tools/install_deps.sh.

CC      ?= cc
SANITIZE ?= 0

ifeq ($(SANITIZE),1)
BUILD   := build/asan
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN   := -fsanitize=address,undefined
else
BUILD   := build
OPT     := -O2 -g -march=native -fvect-cost-model=cheap
LDSAN   :=
endif

CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wshadow -Wno-unused-parameter \
           -fPIC $(OPT) $(shell pkg-config --cflags openblas 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas) -lz -lm -lpthread
LUA_CFLAGS := $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
LUA_LIBS   := $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)

# Run tests, demo and bench on the BLAS kernels this CPU supports (see the script),
# unless the caller chose already.
ifeq ($(origin OPENBLAS_CORETYPE),undefined)
CORETYPE := $(shell sh scripts/tools/blas_coretype.sh)
ifneq ($(CORETYPE),)
export OPENBLAS_CORETYPE := $(CORETYPE)
endif
endif

ENGINE_SRC := $(wildcard engine/*/*.c)
ENGINE_HDR := $(wildcard engine/*.h engine/*/*.h)
ENGINE_OBJ := $(ENGINE_SRC:engine/%.c=$(BUILD)/obj/engine/%.o)
BIND_SRC   := $(wildcard lua/l_*.c)
BIND_OBJ   := $(BIND_SRC:lua/%.c=$(BUILD)/obj/lua_%.o) $(BUILD)/obj/lua_embedded.o
LUA_HALF   := $(sort $(wildcard lua/lopper/*.lua))
LUA_TESTS  := $(sort $(wildcard tests/lua/*_spec.lua))
TEST_SRC   := $(wildcard tests/test_*.c)
TEST_BIN   := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELPERS := tests/gradcheck.c tests/graph_build.c
DEPS_STAMP := build/.deps-ok

.PHONY: all lib lua test bench demo clean deps
all: lib lua
lib: $(BUILD)/liblopper.a $(BUILD)/liblopper.so
lua: $(BUILD)/lopper.so $(BUILD)/lopper $(BUILD)/liblopperlua.a

$(DEPS_STAMP): scripts/tools/install_deps.sh
	sh scripts/tools/install_deps.sh
	@mkdir -p build && touch $@

deps: $(DEPS_STAMP)

$(BUILD)/obj/engine/%.o: engine/%.c $(ENGINE_HDR) Makefile | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iengine -c $< -o $@

# The stencil kernels' vector sums are written as multiply + add; let them fuse.  -O2
# -march=native also under SANITIZE: at -O1 their accumulators live in memory, and the
# sanitized tests would spend minutes in them.
$(BUILD)/obj/engine/layers/conv_stencil.o: CFLAGS += -ffp-contract=fast -O2 -march=native

$(BUILD)/liblopper.a: $(ENGINE_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/liblopper.so: $(ENGINE_OBJ)
	$(CC) -shared $(LDSAN) -o $@ $^ $(LDLIBS)

# The Lua binding: objects, the embedded Lua half, the module and the executable.
$(BUILD)/obj/lua_%.o: lua/%.c $(wildcard lua/*.h) engine/lopper.h Makefile | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LUA_CFLAGS) -Iengine -c $< -o $@

$(BUILD)/lua_embedded.c: lua/embed.lua $(LUA_HALF) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	lua5.4 lua/embed.lua $@ $(LUA_HALF)

$(BUILD)/obj/lua_embedded.o: $(BUILD)/lua_embedded.c
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/liblopperlua.a: $(BIND_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/lopper.so: $(BIND_OBJ) $(ENGINE_OBJ)
	$(CC) -shared $(LDSAN) -o $@ $^ $(LDLIBS)

$(BUILD)/lopper: lua/main.c $(BUILD)/liblopperlua.a $(BUILD)/liblopper.a
	$(CC) $(CFLAGS) $(LUA_CFLAGS) -Iengine -Ilua -o $@ $< $(BUILD)/liblopperlua.a \
	    $(BUILD)/liblopper.a $(LDSAN) $(LUA_LIBS) -lreadline $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(TEST_HELPERS) tests/*.h $(BUILD)/liblopper.a $(BUILD)/liblopperlua.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LUA_CFLAGS) -Iengine -Ilua -o $@ $< $(TEST_HELPERS) \
	    $(BUILD)/liblopperlua.a $(BUILD)/liblopper.a $(LDSAN) -lcmocka $(LUA_LIBS) $(LDLIBS)

test: $(TEST_BIN) lua
	@LOPPER=$(BUILD)/lopper sh tests/run_tests.sh $(TEST_BIN) $(LUA_TESTS)

$(BUILD)/bench_core: tests/bench/bench_core.c $(BUILD)/liblopper.a
	$(CC) $(CFLAGS) -Iengine -o $@ $< $(BUILD)/liblopper.a $(LDSAN) $(LDLIBS)

bench: $(BUILD)/bench_core lua
	$(BUILD)/bench_core
	$(BUILD)/lopper tests/bench/bench_prune.lua
	$(BUILD)/lopper tests/bench/bench_select.lua
	@if /usr/bin/python3 -c "import torch" 2>/dev/null; then \
	    echo "--- PyTorch (python3-torch) on the same networks, for comparison"; \
	    /usr/bin/python3 tests/bench/bench_torch.py; \
	else echo "(python3-torch not installed: no PyTorch comparison)"; fi

# A short ThiNet run: fine-tuning on a 10,000-image subset keeps it to minutes.
demo: lua
	$(BUILD)/lopper scripts/thinet_vgg16.lua --model models/vgg16.lop --train_size 10000 \
	    --finetune 0.2 --final 1 --out $(BUILD)/vgg16.thinet.lop

clean:
	rm -rf build
