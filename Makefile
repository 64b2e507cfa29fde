# Switchyard. `make run` starts a demo; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
BIN := bin

.PHONY: all build run prepare test test-short test-faults test-compose soak tools standins browser vet fmt bench bench-nethttp bench-tracing bench-tracing-paired bench-tracing-side-by-side bench-scale demo clean h2spec bench-grpc bench-grpc-go

all: build

build:
	$(GO) build -o $(BIN)/switchyard ./cmd/switchyard
	$(GO) build -o $(BIN)/demo-backend ./cmd/demo-backend

## run: three demo backends and the gateway on deployments/switchyard.example.yaml
run: build
	@scripts/run-demo.sh

## demo: the docker-compose.yml topology as processes (Consul, Jaeger, backends, gateway), no Docker needed
demo: tools
	$(GO) run ./cmd/demo

## tools: Consul, Jaeger and h2spec for the integration tests (built once into ~/.cache/switchyard/tools)
tools:
	@scripts/tools.sh all >/dev/null

## standins: local stand-ins for the images the compose files name, when a
## Docker daemon answers (no registry needed; see docs/docker.md)
standins:
	@if docker info >/dev/null 2>&1; then scripts/docker-standins.sh; \
	else echo "standins: no Docker daemon answers; the compose tests will skip"; fi

## browser: Debian's chromium for the dashboard test, when apt is available
browser:
	@scripts/ensure-chromium.sh

## prepare: tools, browser and standins in one go, the network-bound work
## (apt-get, debootstrap, module downloads) beside the tool builds
## (scripts/prepare.sh; docs/docker.md, "Build time")
prepare:
	@scripts/prepare.sh

## test: every test, with the race detector, against real Consul and Jaeger
## (the fault suite in its short form, with a 20 s soak); then the compose
## files under Docker, on their own so image builds do not load the timed
## suites (skipped with a reason where no Docker daemon answers)
test: prepare
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m $$($(GO) list ./... | grep -v /deployments/dockertest)
	$(GO) test -race -count=1 -timeout 30m ./deployments/dockertest/

## test-short: unit tests only (no external tools)
test-short:
	$(GO) test -race -short ./...

## test-faults: the fault and abuse suite in full (2 minute soak)
test-faults: tools
	SWITCHYARD_FAULTS=full $(GO) test -race -count=1 -timeout 30m -v ./faults/

## test-compose: docker-compose.yml and the HA topology under a real Docker
## Engine, through the published ports (docs/docker.md)
test-compose: standins
	$(GO) test -count=1 -timeout 30m -v ./deployments/dockertest/

## soak: the documented 30 minute soak (SOAK=30m to change)
SOAK ?= 30m
soak: tools
	$(GO) test -count=1 -timeout 0 -v -run TestSoakUnderConsulChurn ./faults/ -soak=$(SOAK)

## h2spec: h2spec (from the tools cache) against the h2c and TLS listeners (docs/grpc.md)
h2spec:
	@scripts/tools.sh h2spec >/dev/null
	$(GO) test -count=1 -v -run TestH2Spec ./faults/

## bench-grpc: gRPC unary calls per proxy CPU-second: direct, Switchyard and Caddy as pinned processes (docs/grpc.md; about 2 minutes, wants a quiet machine)
GRPC_BENCH_FLAGS ?= -rounds 3 -duration 10s -warmup 2s -caddy .tools/bin/caddy -out bench/results/grpc.md
bench-grpc:
	@scripts/bench.sh --install-only
	$(GO) run ./bench/grpc $(GRPC_BENCH_FLAGS)

## bench-grpc-go: the in-process Go benchmark, direct and through the gateway (BenchmarkGRPCUnary)
bench-grpc-go:
	$(GO) test -run '^$$' -bench GRPCUnary -benchtime 20000x -count 3 ./app/

## bench: Switchyard next to nginx, HAProxy and Caddy, minimal backends (writes bench/results/latest.md; see docs/benchmark.md)
bench:
	@scripts/bench.sh $(BENCH_FLAGS)

## bench-nethttp: the same with net/http servers as the backends (writes bench/results/latest-nethttp.md)
bench-nethttp:
	@scripts/bench.sh -backend nethttp $(BENCH_FLAGS)

## bench-tracing: what tracing costs, Switchyard off/0%/1%/failures+1%/100% beside Caddy off/1%/100% (writes bench/results/tracing.md; about 5 minutes, wants a quiet machine)
TRACING_BENCH_FLAGS ?= -rounds 3 -duration 10s
bench-tracing:
	@scripts/bench.sh -tracing $(TRACING_BENCH_FLAGS)

## bench-tracing-paired: Switchyard off/0%/1%/failures+1% only, 24 rounds x 3 s in varied order; median of same-round CPU ratios with a 95% interval (bench/results/tracing-paired.md; about 8 minutes, wants a quiet machine)
TRACING_PAIRED_FLAGS ?=
bench-tracing-paired:
	@scripts/bench.sh -tracing -paired $(TRACING_PAIRED_FLAGS)

## bench-tracing-side-by-side: as bench-tracing-paired, but each row runs at the same time as off on the same CPU, so host noise falls on both (bench/results/tracing-side-by-side.md; about 6 minutes)
bench-tracing-side-by-side:
	@scripts/bench.sh -tracing -paired -side-by-side $(TRACING_PAIRED_FLAGS)

## bench-scale: Consul discovery at 1,000 and 5,000 services x 4 instances (docs/consul-scale.md)
SCALE_FLAGS ?= -services 1000,5000 -instances 4 -out bench/results/scale.md
bench-scale:
	@scripts/tools.sh consul >/dev/null
	$(GO) run ./bench/scale $(SCALE_FLAGS)

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)

## bench-probes: what active probing costs at 20,000 instances (writes bench/results/probe-scale.md; wants a quiet machine)
.PHONY: bench-probes
bench-probes:
	$(GO) run ./bench/probescale -instances 20000 -duration 30s -o bench/results/probe-scale.md
