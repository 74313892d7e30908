# Lowrank's build. The OpenBLAS backend is used when pkg-config finds both
# OpenBLAS and LAPACKE; otherwise everything builds and runs on pure Go.
GO    ?= go
TAGS  ?= $(shell pkg-config --exists openblas lapacke 2>/dev/null && echo openblas)
ARGS  ?=
BENCH ?= .
BENCHTIME ?= 3x
FUZZTIME ?= 100000x

.PHONY: build run test test-go test-openblas test-deploy bench fuzz fmt vet generate clean

build:
	$(GO) build -tags '$(TAGS)' -o bin/server ./cmd/server

run: build
	./bin/server $(ARGS)

# The whole suite: every package on the pure-Go backend with the race
# detector, then again on OpenBLAS when it is installed, then the checks of
# the Dockerfile and Kubernetes manifests (a module of their own, deploy/,
# so their heavy dependencies stay out of the server's build).
test: test-go test-openblas test-deploy

# The race detector needs cgo and a C compiler; without them the suite still
# runs, without -race, and says so.
test-go:
	@if [ "$$($(GO) env CGO_ENABLED)" = 1 ] && command -v "$$($(GO) env CC)" >/dev/null 2>&1; then \
		echo "== pure-Go backend, -race"; \
		$(GO) test -race -count=1 ./...; \
	else \
		echo "== pure-Go backend (no C compiler: running without -race)"; \
		$(GO) test -count=1 ./...; \
	fi

test-openblas:
	@if pkg-config --exists openblas lapacke 2>/dev/null; then \
		echo "== OpenBLAS backend"; \
		$(GO) test -tags openblas -count=1 ./...; \
	else \
		echo "SKIP OpenBLAS suite: pkg-config finds no openblas and lapacke (apt-get install pkg-config libopenblas-dev liblapacke-dev)"; \
	fi

# Benchmarks against the peers (see bench/README.md); the whole set takes
# tens of minutes, BENCH=SVD or BENCH=GEMM picks one family.
test-deploy:
	@echo "== deploy/ (Dockerfile, manifests, alerts, dashboard)"
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 ./...

bench:
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -timeout 90m -v ./bench/...

# Every fuzz target of the file readers for FUZZTIME each (a count of
# inputs, or a duration such as 10m; see .ci/run for why CI uses a count).
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

fmt:
	gofmt -l -w .

vet:
	$(GO) vet ./...
	@if pkg-config --exists openblas lapacke 2>/dev/null; then $(GO) vet -tags openblas ./...; fi

generate:
	$(GO) generate ./...

clean:
	rm -rf bin
