#!/usr/bin/env bash
# Measures the memory of Switchyard against the floor its dependencies
# impose (see main.go), built the way the container image ships them.
#
#   bench/rssfloor/measure.sh idle [BIN...]   gateway(s), rssfloor, rssfloor -otlp, hello, idle
#   bench/rssfloor/measure.sh load [BIN...]   gateway peak RSS under wrk -c 256
#
# BIN are gateway binaries to measure; without any, the tree's
# ./cmd/switchyard is built. Everything built here is built as
# deployments/Dockerfile ships it (CGO_ENABLED=0, -trimpath, -s -w).
#
# idle also builds rssfloor and hello, starts each program on CPU 0 with
# GOMAXPROCS=1, waits until it answers "/" (the gateway through the static
# config of bench/configs/switchyard.yaml.tmpl over 3 backends on CPU 1),
# lets it settle for $SETTLE seconds and prints VmHWM, VmRSS, RssAnon and
# RssFile from /proc/PID/status and Pss and Anonymous from
# /proc/PID/smaps_rollup, in MiB.
#
# load measures each gateway as bench/harness does: a fresh process per
# round on CPU 0, wrk on CPU 1 for $WARMUP seconds unmeasured, then
# $DURATION seconds at $CONNS connections, then the same figures; VmHWM is
# the peak RSS.
#
# Rounds: $ROUNDS (3). Needs curl, ss, taskset and wrk (scripts/bench.sh
# --install-only). Every process started here is stopped by its PID, also
# on Ctrl-C. The environment is passed on (GODEBUG for experiments).
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
SETTLE=${SETTLE:-2}
WARMUP=${WARMUP:-2}
DURATION=${DURATION:-10}
CONNS=${CONNS:-256}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

mode=${1:-}
case $mode in
idle | load) shift ;;
*)
  echo "usage: $0 idle|load [GATEWAY-BINARY...]" >&2
  exit 2
  ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rssfloor.XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# build NAME PKG: the flags of deployments/Dockerfile.
build() {
  CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$tmp/$1" "$2"
}

# start CPU LOG BIN ARGS...: runs BIN pinned to CPU with GOMAXPROCS=1 and
# sets $pid. taskset execs BIN, so $! is BIN's PID.
start() {
  local cpu=$1 log=$2
  shift 2
  GOMAXPROCS=1 taskset -c "$cpu" "$@" >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
}

# stop PID: SIGTERM, then SIGKILL after 5 s.
stop() {
  local p=$1 i
  kill "$p" 2>/dev/null || return 0
  for i in $(seq 50); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  local kept=()
  for i in "${pids[@]}"; do [ "$i" = "$p" ] || kept+=("$i"); done
  pids=("${kept[@]}")
}

# wait_ok URL PID LOG: polls URL until it answers 200, for up to 20 s.
wait_ok() {
  local i
  for i in $(seq 200); do
    if ! kill -0 "$2" 2>/dev/null; then
      echo "measure: process $2 exited:" >&2
      cat "$3" >&2
      return 1
    fi
    if curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "measure: $1 did not answer within 20 s" >&2
  return 1
}

# free_port prints a port no TCP socket uses, below the kernel's range
# of ephemeral ports, so that no outgoing connection takes it before the
# program listens on it.
free_port() {
  local low p
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  [ "$low" -gt 11000 ] || low=32768
  while :; do
    p=$((10000 + RANDOM % (low - 10000)))
    [ -n "$(ss -Htan "sport = :$p")" ] || break
  done
  echo "$p"
}

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "$2"; }

# report LABEL PID: one line of figures in MiB.
report() {
  local st=$tmp/status sm=$tmp/smaps
  cat "/proc/$2/status" >"$st"
  cat "/proc/$2/smaps_rollup" >"$sm"
  awk -v label="$1" \
    -v hwm="$(kib VmHWM "$st")" -v rss="$(kib VmRSS "$st")" \
    -v anon="$(kib RssAnon "$st")" -v file="$(kib RssFile "$st")" \
    -v pss="$(kib Pss "$sm")" -v anonsm="$(kib Anonymous "$sm")" \
    'BEGIN { printf "%-28s VmHWM %5.1f  VmRSS %5.1f  RssAnon %5.1f  RssFile %5.1f  Pss %5.1f  Anonymous %5.1f MiB\n",
      label, hwm/1024, rss/1024, anon/1024, file/1024, pss/1024, anonsm/1024 }'
}

backends=()
start_backends() {
  local i port
  for i in 1 2 3; do
    port=$(free_port)
    start "$LOAD_CPU" "$tmp/backend$i.log" "$tmp/backend" -listen "127.0.0.1:$port" -id "$i"
    wait_ok "http://127.0.0.1:$port/" "$pid" "$tmp/backend$i.log"
    backends+=("127.0.0.1:$port")
  done
}

# gateway_config LISTEN ADMIN: the harness's template, filled in.
gateway_config() {
  {
    sed -n '/^listen:/,/^    instances:/p' bench/configs/switchyard.yaml.tmpl |
      sed -e "s/{{.Listen}}/$1/" -e "s/{{.Admin}}/$2/"
    local b
    for b in "${backends[@]}"; do echo "      - address: $b"; done
    sed -n '/^routes:/,$p' bench/configs/switchyard.yaml.tmpl
  } >"$tmp/switchyard.yaml"
}

# run_gateway BIN: starts BIN with a fresh config, sets $pid and $url.
run_gateway() {
  local port admin
  port=$(free_port)
  admin=$(free_port)
  gateway_config "127.0.0.1:$port" "127.0.0.1:$admin"
  start "$PROXY_CPU" "$tmp/gateway.log" "$1" -config "$tmp/switchyard.yaml"
  url="http://127.0.0.1:$port/"
  wait_ok "$url" "$pid" "$tmp/gateway.log"
}

# run_plain LABEL BIN ARGS...: starts a program that takes -listen.
run_plain() {
  local port
  port=$(free_port)
  start "$PROXY_CPU" "$tmp/$1.log" "$2" -listen "127.0.0.1:$port" "${@:3}"
  url="http://127.0.0.1:$port/"
  wait_ok "$url" "$pid" "$tmp/$1.log"
}

build backend ./bench/backend
start_backends

bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  build switchyard ./cmd/switchyard
  bins=("$tmp/switchyard")
fi

case $mode in
idle)
  build rssfloor ./bench/rssfloor
  build hello ./bench/rssfloor/hello
  for r in $(seq "$ROUNDS"); do
    for bin in "${bins[@]}"; do
      run_gateway "$bin"
      sleep "$SETTLE"
      report "$(basename "$bin") (round $r)" "$pid"
      stop "$pid"
    done
    run_plain rssfloor "$tmp/rssfloor"
    sleep "$SETTLE"
    report "rssfloor (round $r)" "$pid"
    stop "$pid"
    # Nothing listens at the OTLP endpoint; nothing is exported either.
    run_plain rssfloor "$tmp/rssfloor" -otlp "127.0.0.1:$(free_port)"
    sleep "$SETTLE"
    report "rssfloor -otlp (round $r)" "$pid"
    stop "$pid"
    run_plain hello "$tmp/hello"
    sleep "$SETTLE"
    report "hello (round $r)" "$pid"
    stop "$pid"
  done
  ;;
load)
  for r in $(seq "$ROUNDS"); do
    for bin in "${bins[@]}"; do
      run_gateway "$bin"
      taskset -c "$LOAD_CPU" wrk -t1 -c "$CONNS" -d "${WARMUP}s" --timeout 5s "$url" >/dev/null
      out=$(taskset -c "$LOAD_CPU" wrk -t1 -c "$CONNS" -d "${DURATION}s" --timeout 5s "$url")
      rps=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
      if grep -qE 'Socket errors|Non-2xx' <<<"$out"; then
        echo "measure: wrk saw errors:" >&2
        grep -E 'Socket errors|Non-2xx' <<<"$out" >&2
      fi
      report "$(basename "$bin") r$r ${rps}/s" "$pid"
      stop "$pid"
    done
  done
  ;;
esac
