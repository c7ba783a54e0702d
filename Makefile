# cptokens: build, test, demo, install. LuaRocks variable names throughout.
LUA_VERSION ?= 5.4
PREFIX      ?= /usr/local
DESTDIR     ?=
LUADIR      ?= $(PREFIX)/share/lua/$(LUA_VERSION)
LIBDIR      ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
BINDIR      ?= $(PREFIX)/bin
LUA_INCDIR  ?= /usr/include/lua$(LUA_VERSION)
LUA         ?= lua$(LUA_VERSION)
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

.PHONY: all deps test test-valgrind lint demo install clean check-rockspec rock install-rock

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
	$(MAKE) all
	$(MAKE) lint
	CPTOKENS_BUILD=$(BUILD) $(BUSTED)
	$(MAKE) test-valgrind
	$(MAKE) check-rockspec

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
	if [ -f bin/cptokens ]; then install -d $(DESTDIR)$(BINDIR) && \
	  install -m 0755 bin/cptokens $(DESTDIR)$(BINDIR)/cptokens; fi

# For `luarocks make`: a clean build in its own folder, whatever Lua it targets.
rock:
	rm -rf build/rock
	$(MAKE) BUILD=build/rock all

install-rock:
	$(MAKE) BUILD=build/rock install

clean:
	rm -rf build
