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
WARN        := -Wall -Wextra -Wshadow -Wmissing-prototypes -Werror=implicit-function-declaration
ALL_CFLAGS  := $(CFLAGS) $(WARN) -std=c99 -D_DEFAULT_SOURCE -fPIC -fvisibility=hidden \
               -I$(LUA_INCDIR) $(CURL_CFLAGS)

BUILD ?= build/$(LUA_VERSION)
SRC  := $(wildcard csrc/*.c)
OBJ  := $(SRC:csrc/%.c=$(BUILD)/%.o)
SO   := $(BUILD)/cptokens/core.so
LUAFILES := $(wildcard lua/cptokens/*.lua)

BUSTED := $(LUA) /usr/bin/busted

.PHONY: all deps test test-all test-suite test-valgrind lint demo install clean check-rockspec rock install-rock

all: $(SO)

$(BUILD)/%.o: csrc/%.c csrc/cptokens.h csrc/compat.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(SO): $(OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAG) $(CFLAGS) -o $@ $(OBJ) $(CURL_LIBS)

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
ALL_LUAS := 5.1 5.2 5.3 5.4 luajit
test-all: deps
	@sh scripts/deps.sh lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev \
	  luajit2 libluajit2-5.1-dev
	@set -e; for v in $(ALL_LUAS); do \
	  echo "== Lua $$v"; \
	  $(MAKE) --no-print-directory LUA_VERSION=$$v all; \
	  $(MAKE) --no-print-directory LUA_VERSION=$$v test-suite; \
	done

test-suite: all
	CPTOKENS_BUILD=$(BUILD) $(BUSTED)

test-valgrind: all
	CPTOKENS_BUILD=$(BUILD) CPTOKENS_VALGRIND=1 valgrind --quiet \
	  --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
	  --suppressions=spec/support/valgrind.supp \
	  $(BUSTED) --exclude-tags=slow,novalgrind

lint:
	luacheck -q lua spec scripts $(wildcard bin/*)

check-rockspec:
	sh scripts/check-rockspec.sh

demo: deps
	$(MAKE) all
	CPTOKENS_BUILD=$(BUILD) $(LUA) scripts/demo.lua

install: all
	install -d $(DESTDIR)$(LIBDIR)/cptokens $(DESTDIR)$(LUADIR)/cptokens
	install -m 0755 $(SO) $(DESTDIR)$(LIBDIR)/cptokens/core.so
	install -m 0644 $(LUAFILES) $(DESTDIR)$(LUADIR)/cptokens/
	@# The launcher runs the Lua it was installed for.
	if [ -f bin/cptokens ]; then install -d $(DESTDIR)$(BINDIR) && \
	  sed '1s|^#!.*|#!/usr/bin/env $(LUA)|' bin/cptokens > $(DESTDIR)$(BINDIR)/cptokens && \
	  chmod 0755 $(DESTDIR)$(BINDIR)/cptokens; fi

# For `luarocks make`: a clean build in its own folder, whatever Lua it targets.
rock:
	rm -rf build/rock
	$(MAKE) BUILD=build/rock all

install-rock:
	$(MAKE) BUILD=build/rock install

clean:
	rm -rf build
