# Cordon. `make demo` builds and runs a sandboxed task on the built-in defaults; `make test` runs
# the whole test suite (integration tests need root: CI runs as root).
SWIFT ?= swift
SCRATCH ?= $(CURDIR)/.build/demo
RELEASE_BIN = $(CURDIR)/.build/release/cordon

.PHONY: all build release test demo bench clean deps

all: build

build:
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --static-swift-stdlib --product cordon
	$(SWIFT) build -c release --static-swift-stdlib --product cordon-scan

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# Debian packages the build and the tests need (CI installs the same list, plus the bench peers).
DEPS = libseccomp-dev libcap-dev libsqlite3-dev libcurl4-openssl-dev libarchive-dev libyaml-dev pkg-config gcc libc6-dev make python3 python3-jsonschema python3-pip nftables iproute2 curl openssl

deps:
	@missing=$$(for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Runs two tasks in sandboxes under the built-in default policy, from a scratch state and
# runtime directory, and prints their output and result records: one that works, one that
# tries to create a user namespace and is refused (the refusal is in the record).
demo: deps release
	@mkdir -p $(SCRATCH)/state $(SCRATCH)/run && chmod 755 $(SCRATCH) $(SCRATCH)/..
	@echo '$$ cordon run --json -- python3 -c "import json, os, socket; ..."'
	@$(RELEASE_BIN) run --json --state-dir $(SCRATCH)/state --runtime-dir $(SCRATCH)/run -- \
	  python3 -c 'import json, os, socket; print(json.dumps({"uid": os.getuid(), "hostname": socket.gethostname(), "cwd": os.getcwd(), "root": sorted(os.listdir("/"))}))' \
	  | python3 bench/show-result.py
	@echo
	@echo '$$ cordon run --json -- unshare --user true'
	@$(RELEASE_BIN) run --json --state-dir $(SCRATCH)/state --runtime-dir $(SCRATCH)/run -- unshare --user true \
	  | python3 bench/show-result.py || true

bench: release
	bench/spawn.sh

clean:
	rm -rf .build
