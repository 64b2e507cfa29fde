#!/usr/bin/env bash
# Ensures the external programs the integration tests use are available,
# building them from the Go module proxy into a per-user cache the first time.
#
#   scripts/tools.sh consul|jaeger|h2spec|all   prints the binary path(s)
#   scripts/tools.sh jaeger-all-in-one    Jaeger v1's all-in-one (cmd/all-in-one),
#                                         the program in jaegertracing/all-in-one,
#                                         for the Docker stand-in image
#   scripts/tools.sh prefetch             downloads the modules of Jaeger and
#                                         h2spec not built yet, and builds nothing
#
# A binary already on PATH wins. The cache lives outside the clone
# (SWITCHYARD_TOOLS_DIR, default ~/.cache/switchyard/tools) because CI
# clones afresh on every run.
set -euo pipefail

CONSUL_VERSION=${CONSUL_VERSION:-v1.14.11}
JAEGER_VERSION=${JAEGER_VERSION:-v1.76.0}
H2SPEC_VERSION=${H2SPEC_VERSION:-v2.2.1+incompatible}
TOOLS_DIR=${SWITCHYARD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/tools}
mkdir -p "$TOOLS_DIR"

log() { echo "tools: $*" >&2; }
# shellcheck source=scripts/progress.sh
. "$(dirname "$0")/progress.sh"

ensure_consul() {
  if command -v consul >/dev/null 2>&1; then command -v consul; return; fi
  local out="$TOOLS_DIR/consul-$CONSUL_VERSION/consul"
  if [ -x "$out" ]; then echo "$out"; return; fi
  log "building consul $CONSUL_VERSION from the Go module proxy into $out (once per machine, about 10 minutes on 2 cores; progress every 30 s)"
  local dir work
  dir=$(go mod download -json "github.com/hashicorp/consul@$CONSUL_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { log "could not download github.com/hashicorp/consul@$CONSUL_VERSION"; exit 1; }
  work=$(mktemp -d)
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' RETURN
  cp -r "$dir/." "$work/"
  chmod -R u+w "$work"
  (
    cd "$work"
    go mod edit -dropreplace github.com/hashicorp/consul/api \
      -dropreplace github.com/hashicorp/consul/proto-public \
      -dropreplace github.com/hashicorp/consul/sdk
    mkdir -p "$(dirname "$out")"
    with_progress "tools: consul" "$TOOLS_DIR/consul-build.log" \
      env CGO_ENABLED=0 GOFLAGS=-mod=mod go build -v -trimpath -ldflags "-s -w" -o "$out.tmp.$$" .
    mv "$out.tmp.$$" "$out"
  )
  log "consul ready: $out"
  echo "$out"
}

ensure_jaeger() {
  if command -v jaeger >/dev/null 2>&1; then command -v jaeger; return; fi
  local out="$TOOLS_DIR/jaeger-$JAEGER_VERSION/jaeger"
  if [ -x "$out" ]; then echo "$out"; return; fi
  log "building jaeger $JAEGER_VERSION from the Go module proxy into $out (once per machine, several minutes)"
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  (
    cd "$work"
    go mod init jaegertool >/dev/null 2>&1
    go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" >&2
    mkdir -p "$(dirname "$out")"
    with_progress "tools: jaeger" "$TOOLS_DIR/jaeger-build.log" \
      env CGO_ENABLED=0 go build -v -trimpath -ldflags "-s -w" -o "$out.tmp.$$" github.com/jaegertracing/jaeger/cmd/jaeger
    mv "$out.tmp.$$" "$out"
  )
  log "jaeger ready: $out"
  echo "$out"
}

ensure_h2spec() {
  if command -v h2spec >/dev/null 2>&1; then command -v h2spec; return; fi
  local dir="$TOOLS_DIR/h2spec-$H2SPEC_VERSION"
  if [ -x "$dir/h2spec" ]; then echo "$dir/h2spec"; return; fi
  log "installing h2spec $H2SPEC_VERSION from the Go module proxy into $dir"
  mkdir -p "$dir"
  GOBIN="$dir" CGO_ENABLED=0 go install "github.com/summerwind/h2spec/cmd/h2spec@$H2SPEC_VERSION" >&2
  echo "$dir/h2spec"
}

ensure_jaeger_all_in_one() {
  local out="$TOOLS_DIR/jaeger-all-in-one-$JAEGER_VERSION/all-in-one"
  if [ -x "$out" ]; then echo "$out"; return; fi
  log "building jaeger all-in-one $JAEGER_VERSION from the Go module proxy into $out (once per machine, several minutes)"
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  (
    cd "$work"
    go mod init jaegertool >/dev/null 2>&1
    go get -tool "github.com/jaegertracing/jaeger/cmd/all-in-one@$JAEGER_VERSION" >&2
    mkdir -p "$(dirname "$out")"
    with_progress "tools: jaeger all-in-one" "$TOOLS_DIR/jaeger-all-in-one-build.log" \
      env CGO_ENABLED=0 go build -v -trimpath -ldflags "-s -w" -o "$out.tmp.$$" github.com/jaegertracing/jaeger/cmd/all-in-one
    mv "$out.tmp.$$" "$out"
  )
  log "jaeger all-in-one ready: $out"
  echo "$out"
}

# prefetch: only the downloads of what is not built yet, into the Go module
# cache (safe for concurrent use, so no lock): run beside a build, it takes
# the network-bound part off the builds that follow (scripts/prepare.sh).
prefetch() {
  local v
  if ! command -v jaeger >/dev/null 2>&1 && [ ! -x "$TOOLS_DIR/jaeger-$JAEGER_VERSION/jaeger" ] ||
    [ ! -x "$TOOLS_DIR/jaeger-all-in-one-$JAEGER_VERSION/all-in-one" ]; then
    log "prefetch: jaeger $JAEGER_VERSION modules"
    local work
    work=$(mktemp -d)
    (
      cd "$work"
      go mod init jaegertool >/dev/null 2>&1
      go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" \
        "github.com/jaegertracing/jaeger/cmd/all-in-one@$JAEGER_VERSION" >/dev/null 2>&1 || true
    )
    rm -rf "$work"
  fi
  if ! command -v h2spec >/dev/null 2>&1 && [ ! -x "$TOOLS_DIR/h2spec-$H2SPEC_VERSION/h2spec" ]; then
    log "prefetch: h2spec $H2SPEC_VERSION modules"
    go mod download "github.com/summerwind/h2spec@$H2SPEC_VERSION" >/dev/null 2>&1 || true
  fi
  log "prefetch: done"
}
[ "${1:-}" != prefetch ] || { prefetch; exit 0; }

# One build at a time per cache: a second run (another clone's make test, a
# parallel make) waits here and then finds the binaries built.
exec 9>"$TOOLS_DIR/.lock"
if ! flock -n 9; then
  log "waiting for another tools.sh to finish with $TOOLS_DIR"
  flock 9
fi

case "${1:-all}" in
  consul) ensure_consul ;;
  jaeger) ensure_jaeger ;;
  h2spec) ensure_h2spec ;;
  jaeger-all-in-one) ensure_jaeger_all_in_one ;;
  all) ensure_consul; ensure_jaeger; ensure_h2spec ;;
  *) echo "usage: $0 consul|jaeger|h2spec|jaeger-all-in-one|all" >&2; exit 2 ;;
esac
