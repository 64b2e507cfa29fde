# Switchyard. `make run` starts a demo; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
BIN := bin

.PHONY: all build run test test-short tools vet fmt bench clean

all: build

build:
	$(GO) build -o $(BIN)/switchyard ./cmd/switchyard
	$(GO) build -o $(BIN)/demo-backend ./cmd/demo-backend

## run: three demo backends and the gateway on deployments/switchyard.example.yaml
run: build
	@scripts/run-demo.sh

## tools: Consul and Jaeger for the integration tests (built once into ~/.cache/switchyard/tools)
tools:
	@scripts/tools.sh all >/dev/null

## test: every test, with the race detector, against real Consul and Jaeger
test: tools
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

## test-short: unit tests only (no external tools)
test-short:
	$(GO) test -race -short ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
