# Cordon. `make demo` builds and runs a sandboxed task on the built-in defaults; `make test` runs
# the whole test suite (integration tests need root: CI runs as root).
SWIFT ?= swift
SCRATCH ?= $(CURDIR)/.build/demo
RELEASE_BIN = $(CURDIR)/.build/release/cordon
CORDOND_BIN = $(CURDIR)/.build/release/cordond

.PHONY: all build release test demo bench clean deps pydeps pydeps-llama tools-venv fuzz fuzz-smoke install uninstall

all: build

build:
	$(SWIFT) build

# CORDON_RELEASE_LINK: cordon linked for start-up time (Package.swift); the same on every line,
# so that the four builds share one manifest.
release: deps
	CORDON_RELEASE_LINK=1 $(SWIFT) build -c release --static-swift-stdlib --disable-local-rpath --product cordon
	CORDON_RELEASE_LINK=1 $(SWIFT) build -c release --static-swift-stdlib --disable-local-rpath --product cordon-scan
	CORDON_RELEASE_LINK=1 $(SWIFT) build -c release --static-swift-stdlib --disable-local-rpath --product cordond
	CORDON_RELEASE_LINK=1 $(SWIFT) build -c release --product cordon-init
	$(SWIFT) build -c release --product cordon-model-worker

# Tests that count the whole test process's descriptors run on their own afterwards: every other
# suite runs in parallel in the same process and opens descriptors of its own meanwhile.
ALONE = stopLeavesNoDescriptorsOrThreads
test: deps pydeps pydeps-llama
	SWIFT=$(SWIFT) tools/check-layers
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --skip '$(ALONE)'
	$(SWIFT) test --skip-build --filter '$(ALONE)'
	@# The tests run as root and change modes: the host's shared directories must come out as they went in.
	@test "$$(stat -c %a /tmp)" = 1777 || { echo "make test: /tmp is now mode $$(stat -c %a /tmp), not 1777: a test changed it" >&2; exit 1; }

# Debian packages the build and the tests need (CI installs the same list, plus the bench peers).
DEPS = libseccomp-dev libcap-dev libsqlite3-dev libcurl4-openssl-dev libarchive-dev libyaml-dev pkg-config gcc libc6-dev make python3 python3-jsonschema python3-pip iproute2 curl openssl python3-venv
# What the tests need beyond the build (`make test` installs it too): the shells whose completion
# scripts the install test checks, and the man pages' renderers.
# g++ builds llama.cpp's server (llama-cpp-python) for the local model server's tests.
TEST_DEPS = groff-base man-db zsh fish g++
test: DEPS += $(TEST_DEPS)

deps:
	@missing=$$(for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The PyPI packages the tests use (real MCP servers and the MCP client), pinned in tools/pydeps/,
# each group in its own venv under .build/pydeps/GROUP. A no-op, without Python or the network,
# while the pins are unchanged: tools/pydeps.sh says how to change them.
pydeps: deps
	tools/pydeps.sh

# llama.cpp's server for the local model server's tests (LocalServerTests) and bench/models.sh:
# an opt-in group, built from its sdist once per machine (about 12 minutes on two cores; the wheel
# is kept under .build/pydeps/.cache), a no-op afterwards while its pins are unchanged.
pydeps-llama: deps
	tools/pydeps.sh llama

# The venv the shipped MCP tools run from (tools/time.toml, git.toml, fetch.toml and the mcp-*
# policies name /opt/cordon/mcp): the same pinned, hash-checked group as the tests' (mcp), made
# world-readable for the sandboxes' unprivileged users. Run as root; TOOLS_VENV_DIR=DIR puts it at
# DIR/mcp instead (then change the manifests' command and the policies' path). pip's download
# cache is removed afterwards, so DIR holds the venv, its stamp and pip's logs.
TOOLS_VENV_DIR ?= /opt/cordon
tools-venv: deps
	umask 022 && PYDEPS_DIR=$(TOOLS_VENV_DIR) tools/pydeps.sh mcp
	rm -rf $(TOOLS_VENV_DIR)/.cache

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

# `make install` builds the release binaries (`make release`) and installs them under PREFIX,
# staged under DESTDIR if given (`make install DESTDIR=/tmp/stage` for a package). BIN=DIR
# installs the binaries already built in DIR instead, without building (the install test uses
# the debug build). Nothing is written to /etc: cordond runs on the built-in defaults until
# /etc/cordon/cordond.toml exists (DOCDIR/examples/cordond.toml shows every key), and the
# shipped policies and profiles are built into the binaries, so they are installed as examples
# to copy into /etc/cordon/policies, not as a config directory that would shadow a newer build.
# The shipped tool manifests (tools/*.toml) are examples too: a tool is offered only once an
# admin copies its manifest into /etc/cordon/tools (and sets up what its header asks).
# Man pages and completions are generated from the installed binaries' own argument parser.
PREFIX ?= /usr/local
DESTDIR ?=
BIN ?=
# Fixed relative to PREFIX: cordon finds cordon-init at ../libexec/cordon from its own directory.
BINDIR = $(PREFIX)/bin
LIBEXECDIR = $(PREFIX)/libexec/cordon
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/cordon
UNITDIR ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
INSTALL_FROM = $(or $(BIN),$(CURDIR)/.build/release)
# As root, every file is root's (cordon-init must be: the supervisor refuses it otherwise); a
# package build as another user leaves ownership to its packaging tool.
OWNER = $(if $(filter 0,$(shell id -u)),-o root -g root)
# Everything install puts, by source: uninstall removes exactly these, then the directories
# that are Cordon's own. Shared directories (bin, share/man/man1) are created if missing and
# otherwise left as they are, and stay.
DOCS = README.md SECURITY.md docs/daemon.md docs/policies.md docs/tools.md docs/models.md docs/policy.schema.json docs/models.schema.json
EXAMPLES = packaging/cordond.toml $(wildcard policies/*.toml profiles/seccomp/*.json profiles/seccomp/*.md profiles/runtime/*.toml tools/*.toml)
INSTALLED = $(BINDIR)/cordon $(BINDIR)/cordond $(BINDIR)/cordon-scan $(LIBEXECDIR)/cordon-init $(LIBEXECDIR)/cordon-model-worker \
  $(MANDIR)/man1/cordon.1 $(MANDIR)/man8/cordond.8 \
  $(BASHCOMPDIR)/cordon $(BASHCOMPDIR)/cordond $(ZSHCOMPDIR)/_cordon $(ZSHCOMPDIR)/_cordond \
  $(FISHCOMPDIR)/cordon.fish $(FISHCOMPDIR)/cordond.fish $(UNITDIR)/cordond.service $(UNITDIR)/cordond.socket \
  $(addprefix $(DOCDIR)/,$(notdir $(DOCS))) \
  $(DOCDIR)/examples/cordond.toml $(DOCDIR)/examples/models.toml $(addprefix $(DOCDIR)/examples/,$(filter policies/% profiles/% tools/%,$(EXAMPLES)))
OWN_DIRS = $(DOCDIR)/examples/profiles/seccomp $(DOCDIR)/examples/profiles/runtime $(DOCDIR)/examples/profiles \
  $(DOCDIR)/examples/policies $(DOCDIR)/examples/tools $(DOCDIR)/examples $(DOCDIR) $(LIBEXECDIR)
D = $(DESTDIR)

install: $(if $(BIN),,release)
	umask 022 && mkdir -p $(addprefix $(D),$(BINDIR) $(MANDIR)/man1 $(MANDIR)/man8 $(UNITDIR) $(BASHCOMPDIR) $(ZSHCOMPDIR) $(FISHCOMPDIR))
	install -d -m 755 $(OWNER) $(addprefix $(D),$(OWN_DIRS))
	install -m 755 $(OWNER) $(INSTALL_FROM)/cordon $(INSTALL_FROM)/cordond $(INSTALL_FROM)/cordon-scan $(D)$(BINDIR)/
	install -m 755 $(OWNER) $(INSTALL_FROM)/cordon-init $(INSTALL_FROM)/cordon-model-worker $(D)$(LIBEXECDIR)/
	tools/gen-man cordon $(INSTALL_FROM) $(DOCDIR) $(LIBEXECDIR) > $(D)$(MANDIR)/man1/cordon.1
	tools/gen-man cordond $(INSTALL_FROM) $(DOCDIR) $(LIBEXECDIR) > $(D)$(MANDIR)/man8/cordond.8
	for tool in cordon cordond; do \
	  $(INSTALL_FROM)/$$tool --generate-completion-script bash > $(D)$(BASHCOMPDIR)/$$tool && \
	  $(INSTALL_FROM)/$$tool --generate-completion-script zsh > $(D)$(ZSHCOMPDIR)/_$$tool && \
	  $(INSTALL_FROM)/$$tool --generate-completion-script fish > $(D)$(FISHCOMPDIR)/$$tool.fish || exit 1; \
	done
	for unit in cordond.service cordond.socket; do \
	  sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/usr/local/share/doc/cordon/|$(DOCDIR)/|g' \
	    packaging/systemd/$$unit > $(D)$(UNITDIR)/$$unit || exit 1; \
	done
	chmod 644 $(addprefix $(D),$(MANDIR)/man1/cordon.1 $(MANDIR)/man8/cordond.8 $(BASHCOMPDIR)/cordon $(BASHCOMPDIR)/cordond \
	  $(ZSHCOMPDIR)/_cordon $(ZSHCOMPDIR)/_cordond $(FISHCOMPDIR)/cordon.fish $(FISHCOMPDIR)/cordond.fish \
	  $(UNITDIR)/cordond.service $(UNITDIR)/cordond.socket)
	install -m 644 $(OWNER) $(DOCS) $(D)$(DOCDIR)/
	install -m 644 $(OWNER) packaging/cordond.toml packaging/models.toml $(D)$(DOCDIR)/examples/
	install -m 644 $(OWNER) policies/*.toml $(D)$(DOCDIR)/examples/policies/
	install -m 644 $(OWNER) profiles/seccomp/*.json profiles/seccomp/*.md $(D)$(DOCDIR)/examples/profiles/seccomp/
	install -m 644 $(OWNER) profiles/runtime/*.toml $(D)$(DOCDIR)/examples/profiles/runtime/
	install -m 644 $(OWNER) tools/*.toml $(D)$(DOCDIR)/examples/tools/

uninstall:
	rm -f $(addprefix $(D),$(INSTALLED))
	for dir in $(addprefix $(D),$(OWN_DIRS)); do [ ! -d $$dir ] || rmdir $$dir || exit 1; done

bench: release
	bench/spawn.sh
	bench/daemon.sh

clean:
	rm -rf .build
