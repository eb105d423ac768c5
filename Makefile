# Cordon. `make demo` builds and runs a sandboxed task on the built-in defaults; `make test` runs
# the whole test suite (integration tests need root: CI runs as root).
SWIFT ?= swift
SCRATCH ?= $(CURDIR)/.build/demo
RELEASE_BIN = $(CURDIR)/.build/release/cordon
CORDOND_BIN = $(CURDIR)/.build/release/cordond

.PHONY: all build release test demo bench clean deps fuzz fuzz-smoke

all: build

build:
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --static-swift-stdlib --product cordon
	$(SWIFT) build -c release --static-swift-stdlib --product cordon-scan
	$(SWIFT) build -c release --static-swift-stdlib --product cordond
	$(SWIFT) build -c release --product cordon-init

# Tests that count the whole test process's descriptors run on their own afterwards: every other
# suite runs in parallel in the same process and opens descriptors of its own meanwhile.
ALONE = stopLeavesNoDescriptorsOrThreads
test: deps
	SWIFT=$(SWIFT) tools/check-layers
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --skip '$(ALONE)'
	$(SWIFT) test --skip-build --filter '$(ALONE)'

# Debian packages the build and the tests need (CI installs the same list, plus the bench peers).
DEPS = libseccomp-dev libcap-dev libsqlite3-dev libcurl4-openssl-dev libarchive-dev libyaml-dev pkg-config gcc libc6-dev make python3 python3-jsonschema python3-pip iproute2 curl openssl

deps:
	@missing=$$(for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Starts cordond on a scratch socket, state and runtime directory (embedded default policy),
# submits two tasks through its socket and prints each one's output and audit record: one that
# works, and one that tries to create a user namespace and is refused (the refusal is in its
# record). Then stops the daemon with SIGTERM, which drains and exits 0.
SOCK = $(SCRATCH)/run/cordon.sock
demo: deps release
	@mkdir -p $(SCRATCH) && chmod 755 $(SCRATCH) $(SCRATCH)/.. && rm -rf $(SCRATCH)/state $(SCRATCH)/run $(SCRATCH)/config
	@mkdir -p $(SCRATCH)/run $(SCRATCH)/config && chmod 755 $(SCRATCH)/run
	@echo '$$ cordond --config-dir $(SCRATCH)/config --state-dir $(SCRATCH)/state --runtime-dir $(SCRATCH)/run &'
	@$(CORDOND_BIN) --config-dir $(SCRATCH)/config --state-dir $(SCRATCH)/state --runtime-dir $(SCRATCH)/run 2>$(SCRATCH)/cordond.log & \
	echo $$! > $(SCRATCH)/cordond.pid
	@for i in $$(seq 100); do $(RELEASE_BIN) status --socket $(SOCK) >/dev/null 2>&1 && break; sleep 0.1; done
	@$(RELEASE_BIN) status --socket $(SOCK)
	@echo
	@echo '$$ cordon submit --wait -- python3 -c "import json, os, socket; ..."'
	@$(RELEASE_BIN) submit --wait --socket $(SOCK) --label demo -- \
	  python3 -c 'import json, os, socket; print(json.dumps({"uid": os.getuid(), "hostname": socket.gethostname(), "cwd": os.getcwd(), "root": sorted(os.listdir("/"))}))'
	@echo '$$ cordon audit --task 1'
	@$(RELEASE_BIN) audit --socket $(SOCK) --task 1
	@echo
	@echo '$$ cordon submit --wait -- unshare --user true'
	@$(RELEASE_BIN) submit --wait --socket $(SOCK) -- unshare --user true || true
	@echo '$$ cordon audit --task 2 --json   (the full record: layers applied, usage, the refused syscall)'
	@$(RELEASE_BIN) audit --socket $(SOCK) --task 2 --json | python3 -m json.tool
	@kill -TERM $$(cat $(SCRATCH)/cordond.pid) && while kill -0 $$(cat $(SCRATCH)/cordond.pid) 2>/dev/null; do sleep 0.1; done
	@echo; echo "cordond stopped (SIGTERM drains). Its log:"; cat $(SCRATCH)/cordond.log

# libFuzzer targets for the parsers of untrusted input (Fuzz/, docs/fuzzing.md), built in
# .build-fuzz: `make fuzz` runs each for FUZZ_SECONDS (FUZZ_TARGETS to pick some) and prints
# execs and exec/s per target; `make fuzz-smoke` (CI) runs each briefly and replays
# Fuzz/regressions/. Both fail if anything crashed.
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_TARGETS ?=
fuzz: deps
	SWIFT=$(SWIFT) Fuzz/fuzz.sh run $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: deps
	SWIFT=$(SWIFT) Fuzz/fuzz.sh smoke $(FUZZ_SMOKE_SECONDS)

bench: release
	bench/spawn.sh
	bench/daemon.sh

clean:
	rm -rf .build
