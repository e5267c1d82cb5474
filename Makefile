# Thin wrapper around CMake, so that the common tasks are one word each.
#   make            release build in build/
#   make asan       AddressSanitizer + UBSan build in build-asan/
#   make clang      the same sources built by clang in build-clang/ (warnings are errors)
#   make test       everything the tests need, the release and clang builds (warnings are
#                   errors), the release binaries, then every test under the sanitizers
#   make release    dist/: static (musl) davit, davit-launcher and davit-worker for amd64
#                   and arm64, SHA256SUMS and its signature (scripts/release; libraries built
#                   once from Debian sources into ~/.cache/davit-release)
#   make demo       server, pool, launcher and a sample run, end to end
#   make demo-stop  stop the demo's server and launcher
#   make demo-replicas  two servers on one private PostgreSQL, a launcher on one, a run submitted
#                   through the other; Ctrl-C stops it all (scripts/demo-replicas)
#   make format     clang-format the C sources
#   make format-check  fail if a C file is not as clang-format writes it (make test runs it)
#   make lint       format check, module cycles, cppcheck and shellcheck (make test runs it)
#   make mutate     mutation testing: does a test fail when a critical line breaks?
#   make bench      the release build with the load harness bench/load (davit-load)
#   make bench-load N=10000  issue 11's server-scale table with N stand-in launchers, written
#                   into docs/benchmarks.md (bench/load/README.md; takes minutes)
#   make bench-replicas  issue 18's replicas on PostgreSQL against SQLite (bench/replicas),
#                   written into docs/benchmarks.md (takes a few minutes)
#   make fuzz       every libFuzzer target of fuzz/ for 60 s (make test runs fuzz-ci: 10 s each,
#                   with a fixed seed)

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all build asan clang bench bench-load bench-replicas demo-replicas k8s-tools release release-qemu format-check lint deps docker runner-image runner-image-debian dind-image test unit-test mutate fuzz fuzz-build fuzz-ci demo \
	demo-stop format clean

all: build

build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	cmake --build build -j $(JOBS)

asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDAVIT_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build build-asan -j $(JOBS)

# Every warning clang finds and gcc does not fails the build too.
clang:
	CC=clang cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS) >/dev/null
	cmake --build build-clang -j $(JOBS)

# The load harness is built in every tree (DAVIT_BENCH, on unless turned off); measure with the
# release build.
# davit-load is part of every build (CMake option DAVIT_BENCH, on by default).
bench: build

N ?= 10000
bench-load: bench
	bench/load/run --build-dir build -n $(N) --write-docs

# Issue 18: cross-server dispatch latency, runs/s on PostgreSQL with one and two servers against
# SQLite, log ingest (bench/replicas/README.md).
bench-replicas: bench
	bench/replicas/run --build-dir build --write-docs

deps:
	scripts/install-deps

docker: deps
	scripts/ensure-docker

runner-image: docker
	scripts/build-runner-image

# helm, kubectl and the Kubernetes schema validators for tests/helm, pinned, in ~/.cache/davit-helm.
k8s-tools: deps
	scripts/install-k8s-tools

# davit/runner-debian for this machine's architecture and for arm64 (under qemu
# on amd64): docs/runner-images.md. The rootfs is cached by recipe in
# ~/.cache/davit-runner-images, so a warm run builds nothing.
runner-image-debian: docker release-qemu
	scripts/build-runner-image debian
	scripts/build-runner-image debian --arch arm64

# davit/dind, the chart's Engine image (tests/helm/test_dind_image.py runs it),
# for this machine's architecture only; its rootfs is cached like runner-debian's.
dind-image: docker
	scripts/build-dind-image

release: deps
	scripts/release

# qemu-user-static and its binfmt_misc entry: the arm64 release binaries run here (tests/release).
release-qemu: deps
	scripts/release-qemu

# The one test command (README, .ci/run). It sets up what it needs first.
# Three tests at a time: most integration tests wait on Docker or on timeouts,
# not on the CPU; each picks its own ports, directories and container names.
TEST_JOBS ?= 3
test: deps docker runner-image runner-image-debian dind-image k8s-tools build asan clang lint fuzz-ci release release-qemu
	cd build-asan && ctest --output-on-failure -j $(TEST_JOBS)

unit-test: asan
	cd build-asan && ctest --output-on-failure -L unit

# Not part of `make test` (it rebuilds and reruns tests once per mutation):
# applies each mutation of tests/mutations.txt to a scratch copy of the tree.
# libFuzzer targets (fuzz/), clang with ASan and UBSan, in build-fuzz/.
fuzz-build:
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DDAVIT_SANITIZE=ON -DDAVIT_FUZZ=ON \
	    $(CMAKE_FLAGS) >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target fuzz_targets

fuzz: fuzz-build
	scripts/fuzz 60

fuzz-ci: fuzz-build
	FUZZ_SEED=1 scripts/fuzz 10

mutate: deps docker runner-image
	scripts/mutate

# The README's first command: everything from a fresh Debian 12 machine.
demo: deps docker runner-image build
	scripts/demo

# Issue 18: two replicas on one private PostgreSQL; runs in the foreground until Ctrl-C.
demo-replicas: deps docker runner-image build
	scripts/demo-replicas

demo-stop:
	@for p in var/launcher.pid var/server.pid; do \
	    if [ -f $$p ] && kill -0 $$(cat $$p) 2>/dev/null; then \
	        echo "stopping $$(basename $$p .pid) (pid $$(cat $$p))"; kill $$(cat $$p); \
	    fi; rm -f $$p; \
	done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

# Static checks, each with a small set of findings it is trusted with:
#  - clang-format: the one format;
#  - scripts/check-cycles: no two modules depend on each other (needs build-asan);
#  - cppcheck, warnings and portability only. varFuncNullUB is off: log_event's
#    NULL sentinel is checked by the compiler (__attribute__((sentinel))), and
#    NULL is a pointer with glibc and musl;
#  - shellcheck on every shell script, warnings and errors (the demo's
#    single-quoted $VARS are meant for the run's phases: infos are not failures).
SHELL_SCRIPTS = $$(grep -l '^\#!/bin/.*sh' scripts/* deploy/boot/* images/*/* .ci/run bench/*.sh)

lint: format-check asan
	scripts/check-cycles build-asan
	cppcheck --quiet --enable=warning,portability --inline-suppr --std=c11 -D_GNU_SOURCE \
	    -Isrc --suppress=missingIncludeSystem --suppress=varFuncNullUB --error-exitcode=1 src/
	shellcheck -S warning $(SHELL_SCRIPTS)

clean:
	rm -rf build build-asan build-clang build-release-amd64 build-release-arm64 dist dist.tmp
