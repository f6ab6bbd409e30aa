# ironlb — make targets. `make test` is what CI runs; `make demo` is the README's quick start.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
PURE_PKGS := ./config ./ipam ./election ./layer2 ./bgp ./membership
STATICCHECK_VERSION := v0.8.2

.PHONY: all build test unit lint deps check-purity staticcheck bench bench-l2 \
        kind-image metallb demo demo-down e2e clean

all: build

build: ## the single ironlb binary (controller, speaker, config validate)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ironlb ./cmd/ironlb

deps: ## Debian packages and the cached kube-apiserver the tests need
	hack/install-deps.sh
	hack/build-k8s.sh kube-apiserver >/dev/null

test: deps lint unit e2e ## everything CI runs

unit: ## unit, protocol (network namespaces, FRR) and API-server tests, under the race detector
	$(GO) test -race -count=1 -timeout 45m $$($(GO) list ./... | grep -v '/config$$')
	@# config runs no goroutines, and its tests bound allocations, which race instrumentation inflates.
	$(GO) test -count=1 -timeout 10m ./config

lint: check-purity staticcheck ## gofmt, go vet, staticcheck, go mod tidy, dependency rule
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@cp go.mod /tmp/ironlb-go.mod.bak; cp go.sum /tmp/ironlb-go.sum.bak; \
	  $(GO) mod tidy; \
	  if ! git diff --quiet -- go.mod go.sum; then echo "go mod tidy changes go.mod/go.sum:"; git diff -- go.mod go.sum; \
	    cp /tmp/ironlb-go.mod.bak go.mod; cp /tmp/ironlb-go.sum.bak go.sum; exit 1; fi

check-purity: ## the pure packages import nothing from k8s.io/...
	@for p in $(PURE_PKGS); do \
	  if $(GO) list -deps $$p | grep -E '^k8s\.io/'; then echo "$$p imports k8s.io (see DESIGN.md, dependency rule)"; exit 1; fi; \
	done; echo "dependency rule ok: $(PURE_PKGS)"

staticcheck:
	@command -v staticcheck >/dev/null || GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	staticcheck ./...

bench: ## allocation, election and BGP convergence benchmarks (figures, not pass/fail)
	$(GO) test -run '^$$' -bench . -benchmem ./ipam ./election
	$(GO) test -run '^$$' -bench FRRConvergence -benchtime 10x ./bgp

bench-l2: ## layer-2 failover with real memberlist in network namespaces: cut link, killed and terminated owner (root)
	$(GO) run ./cmd/ironlb-bench-l2 -n 20 -mode cut,kill,term

kind-image: ## the offline kind node image (cached by Kubernetes version)
	e2e/kind/node-image.sh

metallb: ## MetalLB v0.12.1 controller and speaker images from its Go module (the baseline; cached by version)
	hack/build-metallb.sh

demo: ## kind cluster (1 control plane + 3 workers) and the DESIGN §1 walkthrough, curl through the LB IP
	e2e/kind/demo.sh

demo-down: ## delete the demo cluster; stop the Docker engine if the demo started it
	e2e/kind/cluster-down.sh

e2e: ## the end-to-end suite in kind (creates and afterwards removes a cluster when none runs)
	hack/e2e.sh

clean:
	rm -rf bin
