# cptokens: build, test, demo, install. LuaRocks variable names throughout.
# LUA_VERSION is 5.1, 5.2, 5.3, 5.4 (default) or luajit (OpenResty's LuaJIT,
# which installs into the 5.1 paths).
LUA_VERSION ?= 5.4
ifeq ($(LUA_VERSION),luajit)
LUA_ABI     := 5.1
LUA_INCDIR  ?= /usr/include/luajit-2.1
LUA         ?= luajit
else
LUA_ABI     := $(LUA_VERSION)
LUA_INCDIR  ?= /usr/include/lua$(LUA_VERSION)
LUA         ?= lua$(LUA_VERSION)
endif
PREFIX      ?= /usr/local
DESTDIR     ?=
LUADIR      ?= $(PREFIX)/share/lua/$(LUA_ABI)
LIBDIR      ?= $(PREFIX)/lib/lua/$(LUA_ABI)
BINDIR      ?= $(PREFIX)/bin
CC          ?= cc
CFLAGS      ?= -O2 -g
LIBFLAG     ?= -shared
CURL_CFLAGS ?= $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS   ?= $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
# OpenSSL: the trust stores handed to libcurl's OpenSSL backend (csrc/trust.c).
SSL_CFLAGS  ?= $(shell pkg-config --cflags openssl 2>/dev/null)
SSL_LIBS    ?= $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto)
WARN        := -Wall -Wextra -Wshadow -Wmissing-prototypes -Werror=implicit-function-declaration
ALL_CFLAGS  := $(CFLAGS) $(WARN) -std=c99 -D_DEFAULT_SOURCE -fPIC -fvisibility=hidden \
               -pthread -I$(LUA_INCDIR) $(CURL_CFLAGS) $(SSL_CFLAGS)

# core.so and core_impl.so are never unloaded (DF_1_NODELETE): closing a Lua state would otherwise
# dlclose them and, with them, libcurl and OpenSSL, while a resolver thread that CURLOPT_QUICK_EXIT
# detached may still be running in them; it also spares a process ~0.2 ms of unmapping at exit.
SO_LDFLAGS  ?= -Wl,-z,nodelete
# dlopen and dladdr, for the loader (in libc itself since glibc 2.34; -ldl is then empty).
DL_LIBS     ?= -ldl

BUILD ?= build/$(LUA_VERSION)
SRC  := $(wildcard csrc/*.c)
OBJ  := $(SRC:csrc/%.c=$(BUILD)/%.o)
# cptokens/core.so is the loader (csrc/loader/core.c): it loads the module, core_impl.so (csrc/*.c,
# libcurl, OpenSSL), RTLD_LAZY, where Lua would load it RTLD_NOW (why: the loader's comment).
SO   := $(BUILD)/cptokens/core.so
IMPL := $(BUILD)/cptokens/core_impl.so
LUAFILES := $(wildcard lua/cptokens/*.lua)
CLIFILES := $(wildcard lua/cptokens/cli/*.lua)

BUSTED := $(LUA) /usr/bin/busted

.PHONY: all deps test test-all test-suite test-valgrind lint demo sandbox install uninstall clean check-rockspec rock install-rock
.PHONY: test-asan fuzz test-soak test-chaos
.PHONY: bench completions docs

# Shell completion scripts, generated from the CLI's parser (lua-argparse) and committed
# (spec/71 checks that they match what the parser generates now).
COMPLETIONS := completions/cptokens.bash completions/_cptokens completions/cptokens.fish
completions:
	@mkdir -p completions
	LUA_PATH='lua/?.lua;;' $(LUA) -e 'require("cptokens.cli.parser").write_completions("completions")'

all: $(SO) $(IMPL)

$(BUILD)/%.o: csrc/%.c csrc/cptokens.h csrc/compat.h csrc/version.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(IMPL): $(OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAG) $(CFLAGS) -pthread $(SO_LDFLAGS) -o $@ $(OBJ) $(CURL_LIBS) $(SSL_LIBS)

$(SO): csrc/loader/core.c csrc/version.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -std=c99 -fPIC -fvisibility=hidden -I$(LUA_INCDIR) $(LIBFLAG) $(SO_LDFLAGS) \
	  -o $@ $< $(DL_LIBS)

deps:
	@sh scripts/deps.sh

test: deps
	@sh scripts/deps.sh luajit2 libluajit2-5.1-dev
	$(MAKE) all
	$(MAKE) LUA_VERSION=luajit all
	$(MAKE) lint
	$(MAKE) test-suite
	$(MAKE) test-valgrind
	$(MAKE) check-rockspec

# The whole suite on every Lua the users run.
# (ALL_LUAS may also be given with underscores: ALL_LUAS=5.1_luajit)
ALL_LUAS ?= 5.1 5.2 5.3 5.4 luajit
test-all: deps
	@sh scripts/deps.sh lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev \
	  luajit2 libluajit2-5.1-dev
	@set -e; for v in $(subst _, ,$(ALL_LUAS)); do \
	  echo "== Lua $$v"; \
	  $(MAKE) --no-print-directory LUA_VERSION=$$v all; \
	  $(MAKE) --no-print-directory LUA_VERSION=$$v test-suite; \
	done

test-suite: all
	CPTOKENS_BUILD=$(BUILD) $(BUSTED)

test-valgrind: all
	CPTOKENS_BUILD=$(BUILD) CPTOKENS_VALGRIND=1 valgrind --quiet \
	  --leak-check=full --show-leak-kinds=definite,indirect \
	  --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
	  --suppressions=spec/support/valgrind.supp \
	  $(BUSTED) --exclude-tags=slow,novalgrind,manual,soak,chaos

# ---- memory safety, fuzzing, load ---------------------------------------------
# Sanitizer builds use clang (Debian: clang, libclang-rt-14-dev), each in its own folder.
SAN_CC     ?= clang
SAN_FLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
              -fno-omit-frame-pointer -g -O1
ASAN_BUILD := build/asan
FUZZ_BUILD := build/fuzz
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := response request
# Any report fails: ASan aborts, UBSan halts, LeakSanitizer exits non-zero.
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
  LSAN_OPTIONS=suppressions=$(CURDIR)/spec/support/lsan.supp:print_suppressions=0 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

# The C module built with ASan + UBSan, and the whole suite (but the soak) run by a Lua
# interpreter linked with the same runtime (spec/support/asan-lua.c), so nothing is
# preloaded into the programs the specs start.
test-asan:
	@sh scripts/deps.sh clang libclang-rt-14-dev
	$(MAKE) --no-print-directory LUA_VERSION=5.4 BUILD=$(ASAN_BUILD) CC=$(SAN_CC) \
	  CFLAGS="$(SAN_FLAGS)" LIBFLAG="-shared $(SAN_FLAGS)" all $(ASAN_BUILD)/lua
	CPTOKENS_BUILD=$(ASAN_BUILD) CPTOKENS_ASAN=1 CPTOKENS_LUA=$(CURDIR)/$(ASAN_BUILD)/lua $(SAN_ENV) \
	  $(CURDIR)/$(ASAN_BUILD)/lua /usr/bin/busted --exclude-tags=manual,soak,chaos

$(ASAN_BUILD)/lua: spec/support/asan-lua.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -I$(LUA_INCDIR) $< -o $@ -llua$(LUA_VERSION)

# libFuzzer targets for the reply decoder and the request builder (fuzz/), each run for
# FUZZ_SECONDS from the seed corpus in fuzz/corpus/. New inputs go to build/fuzz/corpus-*,
# a crashing input to build/fuzz/crash-*: make it a file in fuzz/corpus/ and a spec.
fuzz:
	@sh scripts/deps.sh clang libclang-rt-14-dev
	$(MAKE) --no-print-directory LUA_VERSION=5.4 BUILD=$(FUZZ_BUILD) CC=$(SAN_CC) \
	  CFLAGS="$(SAN_FLAGS) -fsanitize=fuzzer-no-link" $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus-$$t; \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 $(FUZZ_BUILD)/fuzz_$$t \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/crash-$$t- \
	    $(FUZZ_BUILD)/corpus-$$t fuzz/corpus/$$t; \
	done

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(OBJ)
	$(CC) $(ALL_CFLAGS) -Icsrc -fsanitize=fuzzer $< $(OBJ) -o $@ -llua$(LUA_VERSION) $(CURL_LIBS) $(SSL_LIBS)

# 10,000 sequential operations and 1,000 batched ones with faults in between: open file
# descriptors and memory must not grow (spec/90-soak_spec.lua).
test-soak: all
	CPTOKENS_BUILD=$(BUILD) $(BUSTED) --tags=soak --exclude-tags=manual

# Rotations SIGKILLed at random instants (CLI and library, keep 0 and 1, a slow server, a
# failure at each step) and overlapping rotations of one store; the store must always
# authenticate and a clean re-run converge (spec/97-chaos_spec.lua). About 2 minutes.
# CHAOS_KILLS (default 400), CHAOS_OVERLAPS (40), CHAOS_SECONDS (loop budget, 140) and
# CHAOS_SEED (printed; replays the choices) may be given: make test-chaos CHAOS_KILLS=100
test-chaos: all
	CPTOKENS_BUILD=$(BUILD) $(BUSTED) --tags=chaos --exclude-tags=manual spec/97-chaos_spec.lua

lint:
	luacheck -q lua spec scripts bench $(wildcard bin/*)

check-rockspec:
	sh scripts/check-rockspec.sh

# The API reference generated from the modules' comments (LDoc, Debian lua-ldoc), in build/docs/;
# a warning fails it, so that the comments stay what LDoc reads. The pages are docs/*.md.
docs:
	@sh scripts/deps.sh lua-ldoc
	@rm -rf build/docs
	@ldoc -c config.ld . >build/ldoc.log 2>&1; status=$$?; cat build/ldoc.log; \
	  if [ $$status -ne 0 ] || grep -q "lua:[0-9]*:" build/ldoc.log; then exit 1; fi
	@echo "docs: build/docs/index.html"

demo: deps
	$(MAKE) all
	CPTOKENS_BUILD=$(BUILD) $(LUA) scripts/demo.lua

# The sandbox server in the foreground, with the `export` lines to try the CLI by hand.
sandbox: deps
	@$(MAKE) --no-print-directory -s all
	@CPTOKENS_BUILD=$(BUILD) CPTOKENS_LUA=$(LUA) $(LUA) scripts/sandbox.lua

# Benchmarks against baselines, written to bench/RESULTS.md (a few minutes; timing-dependent,
# so not part of `make test` or CI). bench/bench.lua says what each figure compares.
bench:
	@sh scripts/deps.sh hyperfine python3-requests
	$(MAKE) all
	$(MAKE) build/bench/floor
	CPTOKENS_BUILD=$(BUILD) $(LUA) bench/bench.lua

build/bench/floor: bench/floor.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wall -Wextra -o $@ bench/floor.c $(CURL_CFLAGS) $(CURL_LIBS)

# The launcher of each Lua is bin/cptokens-$(LUA_VERSION): its #! line is that Lua's absolute
# path and it puts the modules installed beside it first on package.path/cpath, so it works in any
# PREFIX without LUA_PATH/LUA_CPATH. bin/cptokens is the default Lua's (CLI_LUA, 5.4): installing
# for another Lua writes bin/cptokens only when there is none yet, so installs for several Luas
# into one PREFIX never replace each other's launcher.
CLI_LUA     ?= 5.4
LUA_BIN     := $(shell command -v $(LUA) 2>/dev/null || echo /usr/bin/$(LUA))
UNITDIR     ?= $(PREFIX)/lib/systemd/system
MANDIR      ?= $(PREFIX)/share/man
UNITS       := $(wildcard systemd/*.service systemd/*.timer)
INSTALLED_LUA := $(patsubst lua/%,$(LUADIR)/%,$(LUAFILES) $(CLIFILES))
# The Lua modules are installed as bytecode for 5.2-5.4 (scripts/precompile.lua: the tool
# starts 1-2 ms sooner, bench/RESULTS.md section 7), as source for 5.1 and LuaJIT (their
# bytecode differs and they share the 5.1 directory) or with PRECOMPILE=no.
ifneq ($(filter 5.2 5.3 5.4,$(LUA_VERSION)),)
PRECOMPILE  ?= yes
else
PRECOMPILE  := no
endif
COMPLETIONS := $(PREFIX)/share/bash-completion/completions/cptokens \
               $(PREFIX)/share/zsh/vendor-completions/_cptokens \
               $(PREFIX)/share/fish/vendor_completions.d/cptokens.fish

install: all
	install -d $(DESTDIR)$(LIBDIR)/cptokens $(DESTDIR)$(LUADIR)/cptokens/cli
	install -m 0755 $(IMPL) $(DESTDIR)$(LIBDIR)/cptokens/core_impl.so
	install -m 0755 $(SO) $(DESTDIR)$(LIBDIR)/cptokens/core.so
ifeq ($(PRECOMPILE),yes)
	$(LUA) scripts/precompile.lua $(DESTDIR)$(LUADIR) $(LUADIR) $(LUAFILES) $(CLIFILES)
	chmod 0644 $(addprefix $(DESTDIR),$(INSTALLED_LUA))
else
	install -m 0644 $(LUAFILES) $(DESTDIR)$(LUADIR)/cptokens/
	install -m 0644 $(CLIFILES) $(DESTDIR)$(LUADIR)/cptokens/cli/
endif
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0644 completions/cptokens.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/cptokens
	install -m 0644 completions/_cptokens $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_cptokens
	install -m 0644 completions/cptokens.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/cptokens.fish
	install -d $(DESTDIR)$(BINDIR)
	{ echo '#!$(LUA_BIN)'; \
	  echo '-- installed by make install for Lua $(LUA_VERSION): the modules beside it come first'; \
	  echo 'package.path = "$(LUADIR)/?.lua;$(LUADIR)/?/init.lua;" .. package.path'; \
	  echo 'package.cpath = "$(LIBDIR)/?.so;" .. package.cpath'; \
	  sed 1d bin/cptokens; } > $(DESTDIR)$(BINDIR)/cptokens-$(LUA_VERSION)
	chmod 0755 $(DESTDIR)$(BINDIR)/cptokens-$(LUA_VERSION)
	if [ "$(LUA_VERSION)" = "$(CLI_LUA)" ] || [ ! -e $(DESTDIR)$(BINDIR)/cptokens ]; then \
	  cp $(DESTDIR)$(BINDIR)/cptokens-$(LUA_VERSION) $(DESTDIR)$(BINDIR)/cptokens.tmp && \
	  mv -f $(DESTDIR)$(BINDIR)/cptokens.tmp $(DESTDIR)$(BINDIR)/cptokens; fi
	install -d $(DESTDIR)$(MANDIR)/man1
	install -m 0644 docs/cptokens.1 $(DESTDIR)$(MANDIR)/man1/cptokens.1
	@# systemd units (a oneshot service and a timer each for audit and rotate), naming BINDIR.
	install -d $(DESTDIR)$(UNITDIR)
	for u in $(UNITS); do \
	  sed 's|@BINDIR@|$(BINDIR)|g' $$u > $(DESTDIR)$(UNITDIR)/$$(basename $$u) && \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$u); done

# Removes what `make install` put in place for this LUA_VERSION (the units and bin/cptokens too
# when it is this Lua's launcher); directories are removed only when left empty.
uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/cptokens/core.so $(DESTDIR)$(LIBDIR)/cptokens/core_impl.so $(addprefix $(DESTDIR),$(INSTALLED_LUA))
	if [ -f $(DESTDIR)$(BINDIR)/cptokens ] && \
	   cmp -s $(DESTDIR)$(BINDIR)/cptokens $(DESTDIR)$(BINDIR)/cptokens-$(LUA_VERSION); then \
	  rm -f $(DESTDIR)$(BINDIR)/cptokens $(DESTDIR)$(MANDIR)/man1/cptokens.1 \
	    $(addprefix $(DESTDIR),$(COMPLETIONS)) \
	    $(addprefix $(DESTDIR)$(UNITDIR)/,$(notdir $(UNITS))); fi
	rm -f $(DESTDIR)$(BINDIR)/cptokens-$(LUA_VERSION)
	-rmdir $(DESTDIR)$(LIBDIR)/cptokens $(DESTDIR)$(LUADIR)/cptokens/cli $(DESTDIR)$(LUADIR)/cptokens 2>/dev/null

# For `luarocks make`: a clean build in its own folder, whatever Lua it targets.
rock:
	rm -rf build/rock
	$(MAKE) BUILD=build/rock all

# (A rock's modules stay source: LuaRocks names the tree, not the Lua that will run it.)
install-rock:
	$(MAKE) BUILD=build/rock PRECOMPILE=no install

clean:
	rm -rf build
