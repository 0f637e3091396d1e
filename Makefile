# tunmux: build, test, demo and benchmark. Every target that needs system
# packages runs scripts/deps.sh first (idempotent; installs only what is missing).

GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
# The commit's time orders builds: load refuses to replace a newer build's programs.
COMMIT_TIME ?= $(shell git log -1 --format=%ct 2>/dev/null)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.commitTime=$(COMMIT_TIME)
# Where build, man and install put what they build (the tests point it
# elsewhere).
BUILDDIR ?= bin
BIN      := $(BUILDDIR)/tunmux
MANDIR   := $(BUILDDIR)/man/man1
# make install: $(DESTDIR)$(PREFIX)/bin, share/man/man1 and each shell's
# completion directory.
PREFIX   ?= /usr/local
DESTDIR  ?=
# Man pages dated by the last commit, not by the day they were built.
export SOURCE_DATE_EPOCH ?= $(COMMIT_TIME)
export PATH := $(PATH):/usr/local/go/bin

.PHONY: all deps generate build man install image test check-generated bench demo clean

all: build

deps:
	@bash scripts/deps.sh

# Rebuild the BPF objects and their Go bindings (needs clang).
generate: deps
	$(GO) generate ./progs/...

# A static binary (CGO_ENABLED=0): no dynamic loader at each start, which
# costs a short-lived command about 1 ms (docs/benchmarks.md).
build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/tunmux

# A man page per command (tunmux.1, tunmux-tunnel-add.1, ...) into
# $(MANDIR), written by a build of tunmux with the generator linked in
# (-tags mangen): the binary operators run stays without it, as cobra's
# doc package costs each start about 1 ms.
man:
	CGO_ENABLED=0 $(GO) build -tags mangen -ldflags "$(LDFLAGS)" -o $(BUILDDIR)/tunmux-mangen ./cmd/tunmux
	rm -rf $(MANDIR)
	$(BUILDDIR)/tunmux-mangen __man $(MANDIR)

# The binary, bash, zsh and fish completions and the man pages, under
# $(DESTDIR)$(PREFIX) (make install DESTDIR=/tmp/pkg PREFIX=/usr for a package).
install: build man
	$(BIN) completion bash > $(BUILDDIR)/tunmux.bash
	$(BIN) completion zsh > $(BUILDDIR)/tunmux.zsh
	$(BIN) completion fish > $(BUILDDIR)/tunmux.fish
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/tunmux
	install -D -m 0644 $(BUILDDIR)/tunmux.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/tunmux
	install -D -m 0644 $(BUILDDIR)/tunmux.zsh $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_tunmux
	install -D -m 0644 $(BUILDDIR)/tunmux.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/tunmux.fish
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 $(MANDIR)/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/

# The container image (Dockerfile): built by docker or podman, whichever
# answers; without either, it says so and fails. IMAGE names it.
IMAGE ?= tunmux:$(VERSION)
image:
	@bash scripts/image.sh "$(IMAGE)" "$(VERSION)" "$(COMMIT)" "$(COMMIT_TIME)"

# Everything: generated objects up to date, vet, unit, packet, state and
# end-to-end tests (root: namespaces, bpffs, real packets).
test: deps check-generated build
	$(GO) vet ./...
	$(GO) test -count=1 -p 1 -timeout 60m ./...

# Regenerate the BPF objects into a temporary copy and fail if they differ
# from what is committed.
check-generated: deps
	@bash scripts/check-generated.sh

# Benchmarks: XDP live-frame packet rates and iperf3 over tunmux VXLAN beside
# the kernel's vxlan, in one run; writes the table to bench-results.txt.
bench: deps build
	@bash scripts/bench.sh

# The demo: a two-node testbed, tunnels, pings, status, stats, one decoded frame.
demo: deps build
	@bash scripts/demo.sh

clean:
	rm -rf bin bench-results.txt
