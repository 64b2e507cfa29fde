#!/usr/bin/env bash
# Starts three demo backends and the gateway on the static example config.
# Ctrl-C stops everything this script started (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${SWITCHYARD_CONFIG:-deployments/switchyard.example.yaml}
pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

for i in 1 2 3; do
  bin/demo-backend --listen "127.0.0.1:900$i" --name "web-$i" &
  pids+=($!)
done
bin/switchyard --config "$CONFIG" &
pids+=($!)

cat <<MSG

  Switchyard is starting (config: $CONFIG)
    proxy:      http://127.0.0.1:8080/          try: curl -s localhost:8080/
    services:   http://127.0.0.1:9901/api/v1/services
    readiness:  http://127.0.0.1:9901/readyz
    backends:   http://127.0.0.1:9001 9002 9003
                flip one: curl -X POST 'localhost:9002/admin/health?status=500'
  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
