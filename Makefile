# pgsess build, install, demo and test entry points. See README.md.
#   make                 build the release libraries
#   make install PREFIX=/dir
#   make demo            run examples/c against a real PostgreSQL (a throwaway one if PGSQL_DEMO is unset)
#   make check           every test
#   make header          regenerate include/pgsess.h from the sources

PREFIX   ?= /usr/local
CARGO    ?= cargo
STAGE    := $(CURDIR)/build/stage
VERSION  := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
MAJOR    := $(firstword $(subst ., ,$(VERSION)))
# What a program linking libpgsess.a statically also needs (rustc --print native-static-libs).
LIBS_PRIVATE := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

.PHONY: all build header install demo check bench docs clean

all: build

build:
	$(CARGO) build --release --locked

# The header cbindgen generated during the last release build.
header: build
	cp "$$(ls -t target/release/build/pgsess-*/out/pgsess.h | head -1)" include/pgsess.h

install: build
	install -d "$(PREFIX)/lib/pkgconfig" "$(PREFIX)/include" "$(PREFIX)/lib/cmake/pgsess"
	install -m 0755 target/release/libpgsess.so "$(PREFIX)/lib/libpgsess.so.$(VERSION)"
	ln -sf "libpgsess.so.$(VERSION)" "$(PREFIX)/lib/libpgsess.so.$(MAJOR)"
	ln -sf "libpgsess.so.$(MAJOR)" "$(PREFIX)/lib/libpgsess.so"
	install -m 0644 target/release/libpgsess.a "$(PREFIX)/lib/libpgsess.a"
	install -m 0644 include/pgsess.h "$(PREFIX)/include/pgsess.h"
	install -m 0644 include/pgsess.hpp "$(PREFIX)/include/pgsess.hpp"
	$(CARGO) build --release --locked --example pgsess-check
	install -d "$(PREFIX)/bin"
	install -m 0755 target/release/examples/pgsess-check "$(PREFIX)/bin/pgsess-check"
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' \
	    pgsess.pc.in > "$(PREFIX)/lib/pkgconfig/pgsess.pc"
	for f in pgsessConfig pgsessConfigVersion; do \
	    sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' \
	        "cmake/$$f.cmake.in" > "$(PREFIX)/lib/cmake/pgsess/$$f.cmake" || exit 1; \
	done

demo:
	scripts/ensure-deps
	$(MAKE) --no-print-directory install PREFIX=$(STAGE)
	scripts/demo $(STAGE)

check:
	scripts/ensure-deps
	scripts/check $(STAGE)

# Reference documentation from the headers' doc comments (build/docs/html); warnings fail it.
docs:
	mkdir -p build/docs
	doxygen docs/Doxyfile

# Side-by-side benchmark against libpq (not part of check): prints the table and rewrites
# BENCHMARKS.md; then the Go binding against pgx and lib/pq (bench/go.sh) and the Ruby binding
# against the pg gem (bench/ruby.sh). Each starts its own
# server unless PGSQL_BENCH is set.
bench:
	scripts/ensure-deps
	$(MAKE) --no-print-directory install PREFIX=$(STAGE)
	bench/run.sh $(STAGE)
	bench/go.sh $(STAGE)
	bench/ruby.sh $(STAGE)

clean:
	$(CARGO) clean
	rm -rf build
