#!/usr/bin/env bash
# Everything `make test` needs before its tests, with the network-bound work
# beside the CPU-bound work instead of after it (docs/docker.md, "Build time"):
#
#   CPU lane      scripts/tools.sh all: Consul, Jaeger and h2spec built from
#                 the Go module proxy (the long part of a cold run)
#   network lane  (its lines start with "[net]") Debian's chromium
#                 (scripts/ensure-chromium.sh), the modules of Jaeger and
#                 h2spec (scripts/tools.sh prefetch), and, when a Docker daemon
#                 answers, the Debian root (debootstrap) with the golang and
#                 distroless stand-ins
#
# then the Consul and Jaeger stand-ins, which need the tools. What is already
# there is found in seconds, so a warm run costs nothing here.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
docker=0
if docker info >/dev/null 2>&1; then docker=1; fi

network() {
  scripts/ensure-chromium.sh
  scripts/tools.sh prefetch
  if [ "$docker" = 1 ]; then scripts/docker-standins.sh golang distroless; fi
}
network > >(sed -u 's/^/[net] /' >&2) 2>&1 &
net=$!

status=0
scripts/tools.sh all >/dev/null || status=$?
wait "$net" || status=$?
[ "$status" = 0 ] || { echo "prepare: failed (exit $status)" >&2; exit "$status"; }

if [ "$docker" = 1 ]; then
  scripts/docker-standins.sh consul jaeger
else
  echo "standins: no Docker daemon answers; the compose tests will skip"
fi
echo "prepare: tools, browser and stand-ins ready ($((SECONDS - start)) s)" >&2
