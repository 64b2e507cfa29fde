#!/usr/bin/env bash
# Paired A/B of the gateway at two revisions, HAProxy as the reference in
# every run (docs/benchmark.md):
#
#   scripts/bench-ab.sh OLD_REV [NEW_REV] [harness flags]
#
# Builds switchyard at OLD_REV and at NEW_REV (default: the work tree) as
# `make bench` builds it, then alternates one harness round of each
# (-targets switchyard,haproxy) ROUNDS times (default 3). Prints, per round
# and connection count, each build's CPU per request divided by HAProxy's in
# the same run, and the new/old ratio of those. The backends are built from
# the work tree for both builds and run in the harness's default mode, the
# one `make bench` uses (minimal; `-backend nethttp` among the harness flags
# for net/http servers). Needs what `make bench` installs
# (scripts/bench.sh --install-only).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
old=${1:?usage: $0 OLD_REV [NEW_REV] [harness flags]}
shift
new=""
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then new=$1; shift; fi
ROUNDS=${ROUNDS:-3}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-ab.XXXXXX")
cleanup() { git worktree remove --force "$tmp/src-old" >/dev/null 2>&1 || true; [ -z "$new" ] || git worktree remove --force "$tmp/src-new" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT

build() { # build SRC OUT
  mkdir -p "$2"
  (cd "$1" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$2/switchyard" ./cmd/switchyard)
  go build -o "$2/backend" ./bench/backend
  CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$2/plainproxy" ./bench/plainproxy
  go build -o "$2/otlpsink" ./bench/otlpsink
}
git worktree add --detach -q "$tmp/src-old" "$old"
build "$tmp/src-old" "$tmp/old"
if [ -n "$new" ]; then
  git worktree add --detach -q "$tmp/src-new" "$new"
  build "$tmp/src-new" "$tmp/new"
else
  build "$ROOT" "$tmp/new"
fi
go build -o "$tmp/harness" ./bench/harness

TOOLS_BIN=$ROOT/.tools/bin
# cpu ROW_FILE TARGET CONNS: the CPU µs/req cell of the report's table.
cpu() { awk -F'|' -v t="$1" -v c="$2" '$2 ~ "^ *"t" *$" && $3+0 == c { gsub(/ /, "", $7); print $7; exit }' "$3"; }
echo "| round | conns | old ÷ HAProxy | new ÷ HAProxy | new ÷ old |"
echo "|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  for side in old new; do
    PATH=$TOOLS_BIN:$PATH:/usr/sbin "$tmp/harness" -bin "$tmp/$side" -targets switchyard,haproxy -rounds 1 \
      -out "$tmp/$side-$r.md" -raw "" "$@" >/dev/null
  done
  for c in $(awk -F'|' '$2 ~ /^ *switchyard *$/ { print $3+0 }' "$tmp/new-$r.md" | sort -un); do
    o=$(awk -v a="$(cpu switchyard "$c" "$tmp/old-$r.md")" -v b="$(cpu haproxy "$c" "$tmp/old-$r.md")" 'BEGIN { printf "%.3f", a / b }')
    n=$(awk -v a="$(cpu switchyard "$c" "$tmp/new-$r.md")" -v b="$(cpu haproxy "$c" "$tmp/new-$r.md")" 'BEGIN { printf "%.3f", a / b }')
    echo "| $r | $c | $o | $n | $(awk -v a="$n" -v b="$o" 'BEGIN { printf "%.3f", a / b }') |"
  done
done
