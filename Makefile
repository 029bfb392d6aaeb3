# Run from the repository root.

GO ?= go
GOFMT ?= $(shell $(GO) env GOROOT)/bin/gofmt
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: all build run test deps fmt-check vet staticcheck agent-check bench bench-scale clean

all: build

# build puts Caddy with tildegate and the agent into bin/.
build:
	$(GO) build -o bin/caddy ./cmd/caddy
	$(GO) build -o bin/tildegate-agent ./cmd/tildegate-agent

# run starts the demo in examples/demo: a gateway on 127.0.0.1:8080 and two
# backends on 127.0.0.1:8081 and :8082, routed by examples/demo/balance.bin,
# and a home server on 127.0.0.1:8083 that /~~home reaches through the
# tunnel of a tildegate-agent, which scripts/demo.sh runs beside Caddy.
run: build
	@echo
	@echo "    Open http://127.0.0.1:8080/ in a browser"
	@echo "    (edit examples/demo/balance.bin to change the routes live; Ctrl-C stops)"
	@echo
	scripts/demo.sh

test: deps fmt-check vet staticcheck agent-check
	scripts/test.sh

# deps installs the system packages the tests use (squid, wrk, ...).
deps:
	scripts/install-deps.sh

fmt-check:
	@files=$$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -print | xargs $(GOFMT) -l); \
	if [ -n "$$files" ]; then \
		echo "gofmt -w needed on:"; echo "$$files"; exit 1; \
	fi

vet:
	$(GO) vet ./...

staticcheck:
	$(STATICCHECK) ./...

# agent-check makes sure the agent stays small and portable: it must not
# link Caddy, and it must build and vet for Windows.
agent-check:
	@deps=$$($(GO) list -deps ./cmd/tildegate-agent) || exit 1; \
	if echo "$$deps" | grep -q caddyserver; then \
		echo "cmd/tildegate-agent must not depend on Caddy, but it imports:"; \
		echo "$$deps" | grep caddyserver; exit 1; \
	fi
	GOOS=windows $(GO) build -o /dev/null ./cmd/tildegate-agent
	GOOS=windows $(GO) vet $$(GOOS=windows $(GO) list -deps ./cmd/tildegate-agent | grep '^github.com/tildegate/')

# bench runs the Go benchmarks, then scripts/bench.sh: wrk against the built
# gateway, plain reverse_proxy versus tildegate's direct and agent paths
# (ROUNDS=5 DURATION=5s by default; about 10 minutes; needs wrk, see deps).
# The Go benchmarks start Caddy in their test binaries: like scripts/test.sh,
# they get fresh XDG_DATA_HOME and XDG_CONFIG_HOME, so that they never touch
# the user's Caddy storage.
bench:
	goenv=$$($(GO) env GOENV) && xdg=$$(mktemp -d "$${TMPDIR:-/tmp}/tildegate-bench-xdg.XXXXXX") && \
		trap 'rm -rf "$$xdg"' EXIT && \
		GOENV=$$goenv XDG_DATA_HOME=$$xdg/data XDG_CONFIG_HOME=$$xdg/config $(GO) test -run='^$$' -bench=. -skip='^(BenchmarkScale|BenchmarkAgent10000)$$' -benchmem ./...
	scripts/bench.sh

# bench-scale runs scripts/bench-scale.sh: a gateway with 10,000 back entries
# and as many agents (SCALE_NAMES), its start-up, memory per name and per
# agent, idle CPU, reloads and a restart storm, the same idle connections in
# a bare Go TLS server for the floor, then one agent process with 10,000
# entries (about 10 minutes).
bench-scale:
	scripts/bench-scale.sh

clean:
	rm -rf bin
