# tunmux: build, test, demo and benchmark. Every target that needs system
# packages runs scripts/deps.sh first (idempotent; installs only what is missing).

GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
# The commit's time orders builds: load refuses to replace a newer build's programs.
COMMIT_TIME ?= $(shell git log -1 --format=%ct 2>/dev/null)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.commitTime=$(COMMIT_TIME)
BIN      := bin/tunmux
export PATH := $(PATH):/usr/local/go/bin

.PHONY: all deps generate build test check-generated bench demo clean

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
