# Cordon. `make demo` builds and runs a sandboxed task on the built-in defaults; `make test` runs
# the whole test suite (integration tests need root: CI runs as root).
SWIFT ?= swift
SCRATCH ?= $(CURDIR)/.build/demo
RELEASE_BIN = $(CURDIR)/.build/release/cordon

.PHONY: all build release test demo bench clean

all: build

build:
	$(SWIFT) build

release:
	$(SWIFT) build -c release --static-swift-stdlib --product cordon

test:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# Runs a Python task in a sandbox under the default policy, from a scratch state/runtime dir,
# and prints its output and its result record.
demo: release
	@mkdir -p $(SCRATCH)/state $(SCRATCH)/run
	@echo '$$ cordon run --json -- python3 -c "import json, platform, os; print(json.dumps({...}))"'
	@$(RELEASE_BIN) run --json --state-dir $(SCRATCH)/state --runtime-dir $(SCRATCH)/run -- \
	  python3 -c 'import json, os, socket; print(json.dumps({"uid": os.getuid(), "hostname": socket.gethostname(), "cwd": os.getcwd(), "root": sorted(os.listdir("/"))}))' \
	  | python3 -c 'import json, sys; lines = sys.stdin.read().splitlines(); print("workload output:", lines[0]); print("result record:"); print(json.dumps(json.loads(lines[-1]), indent=2))'

bench: release
	bench/spawn.sh

clean:
	rm -rf .build
