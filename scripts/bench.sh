#!/usr/bin/env bash
# Benchmarks Switchyard side by side with nginx, HAProxy, Caddy, a plain
# httputil.ReverseProxy and a direct-to-backend floor (issue 6; docs/benchmark.md).
#
#   scripts/bench.sh [harness flags]      e.g. -rounds 1 -duration 3s -conns 64
#   scripts/bench.sh --install-only       install wrk, nginx, haproxy, caddy and stop
#
# Installs what is missing (idempotent): wrk, nginx-light (or nginx) and
# haproxy from Debian packages, Caddy $CADDY_VERSION with `go install` into
# .tools/bin. No system service is enabled or started. Then builds the Go
# binaries into a temporary directory and runs bench/harness, which prints a
# markdown table and writes bench/results/latest.md. The backends are the
# minimal hand-written HTTP/1.1 responders by default; `-backend nethttp`
# runs net/http servers instead and writes bench/results/latest-nethttp.md.
# Every process the harness starts is stopped by PID, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# Pinned to the version known to build and run here, not @latest.
CADDY_VERSION=${CADDY_VERSION:-v2.11.9}
TOOLS_BIN=$ROOT/.tools/bin

log() { echo "bench: $*" >&2; }
die() { log "$*"; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 && SUDO=(sudo) || SUDO=(false)
fi

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

# policy-rc.d returning 101 tells Debian maintainer scripts not to start the
# service they install (nginx would otherwise try to take port 80). An
# existing policy that already says 101 is left alone; any other one is put
# back afterwards.
POLICY=/usr/sbin/policy-rc.d
policy_backup=""
policy_created=false
deny_service_starts() {
  need_root
  if [ -e "$POLICY" ]; then
    local rc=0
    sh "$POLICY" nginx start >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 101 ] && return
    policy_backup="$POLICY.switchyard-bench.bak"
    "${SUDO[@]}" mv "$POLICY" "$policy_backup"
  fi
  printf '#!/bin/sh\n# temporary, written by scripts/bench.sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 755 "$POLICY"
  policy_created=true
}
restore_service_policy() {
  if $policy_created; then
    "${SUDO[@]}" rm -f "$POLICY"
    policy_created=false
  fi
  if [ -n "$policy_backup" ]; then
    "${SUDO[@]}" mv "$policy_backup" "$POLICY"
    policy_backup=""
  fi
}

# stop_packaged_nginx stops an nginx that the package install started anyway
# (only ever called right after this script installed nginx), by the PID in
# its own PID file, and checks that port 80 is free.
stop_packaged_nginx() {
  local pidfile pid
  for pidfile in /run/nginx.pid /var/run/nginx.pid; do
    [ -r "$pidfile" ] || continue
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = nginx ]; then
      log "stopping the nginx the package started (pid $pid)"
      "${SUDO[@]}" kill -QUIT "$pid" 2>/dev/null || true
      for _ in $(seq 50); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
    fi
  done
  if command -v ss >/dev/null 2>&1 && ss -Hltn 'sport = :80' | grep -q .; then
    log "warning: something listens on port 80 after installing nginx:"
    ss -Hltnp 'sport = :80' >&2 || true
  fi
}

need_root() {
  if [ "${SUDO[0]:-}" = false ]; then die "need root (or sudo) to install packages"; fi
}

apt_updated=false
apt_install() {
  need_root
  # Refresh the lists once, and only when the package is not known yet.
  if ! $apt_updated && ! apt-cache show "$1" >/dev/null 2>&1; then
    log "apt-get update"
    "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt_updated=true
  fi
  log "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 \
    install -y -qq --no-install-recommends "$@" >&2
}

caddy_version() {
  [ -x "$1" ] || return 0
  "$1" build-info 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/caddyserver/caddy/v2" { print $3 }'
}

# caddy_static says whether the caddy at $1 was built with CGO_ENABLED=0
# and -trimpath; an older install from before these flags is rebuilt.
caddy_static() {
  local settings
  settings=$(go version -m "$1" 2>/dev/null) || return 1
  grep -q 'CGO_ENABLED=0' <<<"$settings" && grep -q -- '-trimpath=true' <<<"$settings"
}

# disable_unit undoes the "enable" of a unit that a package we just installed
# turned on, so that nothing starts it at the next boot either. systemctl
# enable/disable also work while systemd is not running (containers).
disable_unit() {
  if command -v systemctl >/dev/null 2>&1; then
    "${SUDO[@]}" systemctl disable --quiet "$1" >/dev/null 2>&1 || true
  fi
}

# wrk and taskset are needed; a proxy that cannot be installed is only
# warned about, and the harness leaves its rows out (saying so in the report).
install_tools() {
  have taskset || apt_install util-linux
  have wrk || apt_install wrk
  if ! have haproxy; then
    deny_service_starts
    apt_install haproxy || log "warning: haproxy could not be installed; its rows will be missing"
    restore_service_policy
    disable_unit haproxy.service
  fi
  if ! have nginx; then
    deny_service_starts
    # Newer Debian releases dropped nginx-light; nginx is the same server
    # with more modules.
    apt_install nginx-light || apt_install nginx ||
      log "warning: nginx could not be installed; its rows will be missing"
    restore_service_policy
    disable_unit nginx.service
    stop_packaged_nginx
  fi
  # `caddy version` says "unknown" for a `go install`ed caddy; its build
  # info has the module version. Caddy is built as its releases are (and
  # as Switchyard is below): CGO_ENABLED=0, -trimpath, -ldflags="-s -w".
  if [ "$(caddy_version "$TOOLS_BIN/caddy")" = "$CADDY_VERSION" ] && caddy_static "$TOOLS_BIN/caddy"; then
    :
  else
    log "building caddy $CADDY_VERSION into $TOOLS_BIN (once; a few minutes on 2 cores)"
    mkdir -p "$TOOLS_BIN"
    CGO_ENABLED=0 GOBIN=$TOOLS_BIN go install -trimpath -ldflags="-s -w" "github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION" ||
      log "warning: caddy $CADDY_VERSION could not be built; its rows will be missing"
  fi
}

tmp=""
cleanup() {
  restore_service_policy
  if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${1:-}" = "--install-only" ]; then
  install_tools
  log "tools ready"
  exit 0
fi
install_tools

tmp=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench-bin.XXXXXX")
log "building switchyard and the bench programs into $tmp"
# Switchyard is built the way deployments/Dockerfile ships it: static
# (CGO_ENABLED=0, so no libc or ld.so is mapped into it), -trimpath and
# -ldflags="-s -w". The Go proxies it is compared with are built the same
# way (plainproxy here, Caddy in install_tools), so that no proxy's RSS or
# start-up carries a build mode the others do not. The backends, the OTLP
# sink and the harness are not measured.
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$tmp/switchyard" ./cmd/switchyard
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$tmp/plainproxy" ./bench/plainproxy
go build -o "$tmp/backend" ./bench/backend
go build -o "$tmp/otlpsink" ./bench/otlpsink
go build -o "$tmp/harness" ./bench/harness

# Not exec: the trap above removes the binaries when the harness ends. The
# harness catches Ctrl-C itself and stops what it started before exiting.
PATH=$TOOLS_BIN:$PATH:/usr/sbin "$tmp/harness" -bin "$tmp" "$@"
