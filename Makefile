# Thin wrapper over CMake. Two build trees:
#   build/       optimized build with debug info: the programs users and benchmarks run
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer build that ctest runs
# `make test` builds both (tools such as build/bin/raft-sim stay current) and runs ctest
# in build-asan/.

JOBS      ?= 2
GENERATOR := $(shell command -v ninja >/dev/null 2>&1 && echo Ninja || echo "Unix Makefiles")
CMAKE_GEN := -G "$(GENERATOR)"
SOURCES    = $(shell git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null | grep -v '^tests/fuzz/corpus/')

.PHONY: all deps build build-asan test playground bench format check-format clean fuzz lint install

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@test -f build/CMakeCache.txt || cmake -S . -B build $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build -j $(JOBS)

build-asan: deps
	@test -f build-asan/CMakeCache.txt || cmake -S . -B build-asan $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DTKV_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)

test: deps check-format build build-asan
	cd build-asan && ctest --output-on-failure -j $(JOBS) --timeout 900

playground: build
	@scripts/playground.sh

bench: build
	@scripts/bench.sh $(BENCH_ARGS)

format:
	clang-format -i $(SOURCES)

check-format: deps
	@clang-format --dry-run --Werror $(SOURCES) && echo "format: ok"

# Installs libtikvc (library, tikvc.h, libtikvc.pc) and the programs under PREFIX.
PREFIX ?= /usr/local
install: build
	cmake --install build --prefix $(PREFIX)

# clang-tidy and cppcheck over our sources (scripts/lint.sh); zero findings expected.
lint: deps build
	@scripts/lint.sh

# Runs one libFuzzer target in build-fuzz/ (clang): make fuzz TARGET=toml SECONDS=300
fuzz:
	@scripts/fuzz.sh $(TARGET) $(SECONDS)

clean:
	rm -rf build build-asan build-fuzz
