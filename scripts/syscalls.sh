#!/usr/bin/env bash
# System calls per proxied request, by type, for Switchyard or HAProxy
# (bench/results/syscalls.md).
#
#   scripts/syscalls.sh switchyard|haproxy [conns] [seconds]
#   MODE=perf scripts/syscalls.sh switchyard 64 5   # perf stat tracepoints
#   MODE=profile scripts/syscalls.sh haproxy 256 5  # where the CPU goes
#
# Three bench/backend instances and wrk on CPU 1, the proxy on CPU 0
# (Switchyard with GOMAXPROCS=1, HAProxy with one thread, configured as in
# bench/configs). After a 2 s warm-up, `strace -c -f -p PID` (or, with
# MODE=perf, `perf stat -e raw_syscalls:sys_enter,...`, which slows the
# proxy far less) counts the proxy's system calls while wrk -t1 runs for
# the given seconds; each count is divided by the requests wrk made.
# MODE=profile samples the proxy instead (`perf record -e cpu-clock`, user
# and kernel) and prints the CPU per request, in µs, of its top symbols
# and of a few groups of them (PROFILE_TOP symbols, default 40).
# Needs wrk and haproxy (scripts/bench.sh --install-only), strace or perf,
# and taskset. Every process started is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?switchyard or haproxy} conns=${2:-64} dur=${3:-5}
mode=${MODE:-strace}
out=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$out"
}
trap cleanup EXIT
go build -o "$out/switchyard" ./cmd/switchyard
go build -o "$out/backend" ./bench/backend

base=$((21000 + RANDOM % 100 * 20))
backs=()
for i in 1 2 3; do
  a=127.0.0.1:$((base + i)); backs+=("$a")
  taskset -c 1 "$out/backend" -listen "$a" -id "$i" >"$out/backend$i.log" 2>&1 & pids+=($!)
done
listen=127.0.0.1:$base
case $target in
switchyard)
  {
    echo "listen: $listen"
    echo "admin: {listen: 127.0.0.1:$((base + 10))}"
    echo "log: {level: warn}"
    echo "services:"
    echo "  - name: bench"
    echo "    instances:"
    for b in "${backs[@]}"; do echo "      - address: $b"; done
    echo "routes: [{path_prefix: /, service: bench}]"
  } >"$out/switchyard.yaml"
  GOMAXPROCS=1 taskset -c 0 "$out/switchyard" -config "$out/switchyard.yaml" >"$out/proxy.log" 2>&1 & proxy=$!
  ;;
haproxy)
  {
    sed -n '/^global/,/^backend/p' bench/configs/haproxy.cfg.tmpl | sed "s|{{.Listen}}|$listen|"
    echo "    balance roundrobin"
    echo "    option httpchk GET /health"
    i=0; for b in "${backs[@]}"; do echo "    server b$i $b check inter 5s"; i=$((i + 1)); done
  } >"$out/haproxy.cfg"
  taskset -c 0 haproxy -db -f "$out/haproxy.cfg" >"$out/proxy.log" 2>&1 & proxy=$!
  ;;
*) echo "unknown target $target" >&2; exit 2 ;;
esac
pids+=("$proxy")
for _ in $(seq 100); do curl -sf -o /dev/null "http://$listen/" && break; sleep 0.1; done
taskset -c 1 wrk -t1 -c"$conns" -d2s "http://$listen/" >/dev/null

if [ "$mode" = profile ]; then
  perf record -q -e cpu-clock -F 4999 -p "$proxy" -o "$out/perf.data" -- sleep $((dur + 1)) >/dev/null 2>&1 & counter=$!
  sleep 0.5
elif [ "$mode" = perf ]; then
  events=raw_syscalls:sys_enter
  for s in read write recvfrom sendto epoll_wait epoll_pwait futex nanosleep; do events+=",syscalls:sys_enter_$s"; done
  perf stat -e "$events" -p "$proxy" -o "$out/count.txt" -- sleep $((dur + 1)) & counter=$!
  sleep 0.5
else
  strace -c -f -p "$proxy" -o "$out/count.txt" 2>/dev/null & counter=$!
  sleep 1
fi
taskset -c 1 wrk -t1 -c"$conns" -d"${dur}s" "http://$listen/" >"$out/wrk.txt"
[ "$mode" = strace ] && kill -INT "$counter"
wait "$counter" || true

reqs=$(awk '/requests in/ {print $1}' "$out/wrk.txt")
echo "$target, $conns connections: $reqs requests"
if [ "$mode" = profile ]; then
  # One sample per 1/4999 s of the proxy's CPU. The recording starts
  # 0.5 s before wrk and ends about 0.5 s after it, when the proxy is
  # idle: idle costs (almost) nothing, so the total is the load's.
  perf report -i "$out/perf.data" --stdio --no-children --sort sym -F sample,sym 2>/dev/null |
    awk -v r="$reqs" -v top="${PROFILE_TOP:-40}" '
      function grp(sym, k) {
        if (k == "k") {
          if (sym ~ /ipt_|nf_|conntrack|iptable/) return "kernel: netfilter"
          if (sym ~ /tcp|skb|ip_|__dev_|netif|net_rx|loopback|sock_|inet_|__sys_sendto|__sys_recvfrom|release_sock|lock_sock/) return "kernel: TCP/IP"
          if (sym ~ /epoll|ep_/) return "kernel: epoll"
          if (sym ~ /wake|schedule|switch|enqueue|dequeue|select_task|update_curr|pick_next|futex|hrtimer|finish_task|irqrestore/) return "kernel: scheduler, wakeups, futex"
          if (sym ~ /syscall|entry_|do_syscall|exit_to_user|syscall_exit|__x64_sys/) return "kernel: syscall entry and exit"
          return "kernel: other"
        }
        if (sym ~ /^runtime\.(gc|mark|scan|sweep|bgsweep|bgscavenge|greyobject|findObject|heapBits|wbBuf|spanOf|markBits|typePointers)/ || sym ~ /gcDrain|scanobject|scanblock|scanstack|markroot/) return "Go: garbage collector"
        if (sym ~ /^runtime\.(mallocgc|nextFree|memclr|newobject|makeslice|growslice|mcache|mcentral|mheap|refill|(.*)[aA]lloc)/) return "Go: allocation"
        if (sym ~ /^runtime\.(schedule|findRunnable|findrunnable|execute|gopark|goready|ready|park_m|netpoll|runqget|runqput|mcall|gogo|casgstatus|entersyscall|exitsyscall|reentersyscall|wakep|startm|stopm|notesleep|notewakeup|futex|lock|unlock|checkTimers|nanotime|usleep|sysmon|retake)/) return "Go: scheduler, netpoll, syscall glue"
        if (sym ~ /^(runtime|internal\/runtime)\./ || sym ~ /Syscall/) return "Go: runtime other"
        if (sym ~ /^github.com\/switchyard-gw\//) return "Switchyard code"
        if (k == ".") return "user: the rest (standard library, libc, a proxy other than Switchyard)"
        return "other"
      }
      /^#/ || NF < 3 { next }
      { k = $2; gsub(/[\[\]]/, "", k); sym = $3; for (i = 4; i <= NF; i++) sym = sym " " $i
        us = $1 / 4999 * 1e6 / r
        g[grp(sym, k)] += us; all += us
        line[sym] = sprintf("%8.2f µs/req  %-2s %s", us, k, sym); cost[sym] = us }
      END {
        for (x in line) print cost[x] "\t" line[x] | "sort -rn | head -n " top " | cut -f2"
        close("sort -rn | head -n " top " | cut -f2"); print ""
        for (x in g) printf "%8.2f µs/req  %s\n", g[x], x | "sort -rn"
        close("sort -rn"); printf "%8.2f µs/req  all sampled\n", all }'
elif [ "$mode" = perf ]; then
  awk -v r="$reqs" '/syscalls:/ { gsub(",", "", $1); printf "%-36s %7.3f/req\n", $2, $1 / r }' "$out/count.txt"
else
  awk -v r="$reqs" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $4 / r >= 0.01 {
    errs = (NF == 6) ? $5 : 0; printf "%-14s %7.3f/req  errors %7.3f/req\n", $NF, $4 / r, errs / r }' "$out/count.txt"
fi
