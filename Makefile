# Fleetwatch. `make demo` and `make test` are the two commands a newcomer needs.
GO       ?= go
BIN      := bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS  := -X github.com/fleetwatch/fleetwatch/lib/buildinfo.Version=$(VERSION) \
            -X github.com/fleetwatch/fleetwatch/lib/buildinfo.Commit=$(COMMIT)
# Benchmarks: `make bench BENCH=Insert` runs a subset.
BENCH    ?= .
BENCHTIME ?= 3s

.PHONY: all setup build test test-chart bench lint demo clean help

all: build

help: ## list targets
	@awk -F':.*## ' '/^[a-z-]+:.*## / { printf "  %-10s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

setup: ## install ClickHouse, Prometheus, Alertmanager, NumPy and chDB when missing
	@scripts/setup.sh

build: ## build every binary into ./bin
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

test: setup ## install what is missing, then run every test, integration tests included
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -tags simulator ./cmd/fleetwatch-agent/
	$(MAKE) test-chart

test-chart: ## helm lint and helm template of deploy/helm/fleetwatch, every object decoded strictly (helm built from its Go module)
	cd deploy/helm/chartest && $(GO) vet ./... && $(GO) test -count=1 -timeout 20m ./...

bench: setup ## run the benchmarks (see docs/BENCHMARKS.md)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -timeout 60m ./...

lint: ## gofmt check and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd deploy/helm/chartest && $(GO) vet ./...

demo: setup build ## run the local demo (Ctrl-C stops it)
	$(BIN)/fleetctl demo

clean: ## remove build output and the demo's data
	rm -rf $(BIN) data
