#!/usr/bin/env bash
# Puts local stand-ins for the images docker-compose.yml and
# deployments/Dockerfile name into the Docker engine, for machines that
# reach no container registry (docs/docker.md, "Testing without a registry").
#
#   scripts/docker-standins.sh [IMAGE...]   builds what is missing, prints progress;
#                                           IMAGE: golang distroless consul jaeger
#                                           (default all four)
#
# Under the names the Dockerfile uses, so that the Dockerfile a user builds
# is the one tested:
#   golang:$GO_VERSION                      Debian bookworm (debootstrap) with this
#                                           machine's /usr/local/go, GOPATH /go, and
#                                           this machine's CA bundle (HOST_CA_BUNDLE),
#                                           so that `go mod download` in the build
#                                           works behind a TLS-intercepting proxy
#   gcr.io/distroless/static-debian12:nonroot
#                                           from scratch: /etc/passwd with nonroot
#                                           (65532), CA certificates, tzdata, /tmp
# Under test-only names, swapped in by deployments/dockertest/standins.yml:
#   switchyard-test/consul:$CONSUL_VERSION  consul from scripts/tools.sh behind an
#                                           entrypoint that does what the official
#                                           image's docker-entrypoint.sh does
#   switchyard-test/jaeger-all-in-one:$JAEGER_VERSION
#                                           Jaeger v1's cmd/all-in-one, laid out as
#                                           jaegertracing/all-in-one (uid 10001)
# Consul and Jaeger images get Debian's busybox-static for /bin/sh and wget, as
# their Alpine originals have busybox.
#
# An image is built only when missing or built by an older version of this
# script (label dev.switchyard.standin). A real image of the same name (no
# label) is never replaced. The Debian root and packages are cached in
# SWITCHYARD_DOCKER_CACHE (default ~/.cache/switchyard/docker).
set -euo pipefail
cd "$(dirname "$0")/.."

# Bump one when what its image contains changes, so that the old stand-in is
# rebuilt. A new golang or distroless image invalidates the layer cache of
# every build from deployments/Dockerfile.
GOLANG_REV=3
DISTROLESS_REV=3
CONSUL_REV=3
JAEGER_REV=3
GO_VERSION=$(sed -n 's/^ARG GO_VERSION=//p' deployments/Dockerfile)
CONSUL_VERSION=${CONSUL_VERSION:-v1.14.11}
JAEGER_VERSION=${JAEGER_VERSION:-v1.76.0}
SUITE=bookworm
HOST_CA_BUNDLE=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${SWITCHYARD_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/docker}
mkdir -p "$CACHE"

log() { echo "docker-standins: $*" >&2; }
# shellcheck source=scripts/progress.sh
. scripts/progress.sh
die() { log "$*"; exit 1; }

# needs NAME REV: true when NAME must be built; false when it exists, built
# by this revision, or is not a stand-in at all.
needs() {
  local label
  if ! label=$(docker image inspect --format '{{index .Config.Labels "dev.switchyard.standin"}}' "$1" 2>/dev/null); then
    return 0
  fi
  if [ -z "$label" ] || [ "$label" = "<no value>" ]; then
    log "$1: a real image, kept"
    return 1
  fi
  [ "$label" != "$2" ] || return 1
  # Built by an older revision: its tag moves to the new image; drop it
  # then if nothing uses it.
  old_images+=("$(docker image inspect --format '{{.Id}}' "$1")")
}
old_images=()

# debian_root: a minimal Debian root with CA certificates and tzdata, made
# once with debootstrap; prints its path.
debian_root() {
  local root="$CACHE/debian-$SUITE"
  if [ -f "$root/.complete" ]; then echo "$root"; return; fi
  if ! command -v debootstrap >/dev/null; then
    # As scripts/ensure-chromium.sh: Debian's package, when apt-get and root
    # are at hand; the package lists are refreshed only if needed.
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
    log "installing debootstrap"
    local install='DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=120 debootstrap'
    { sh -c "$install" || { apt-get update -qq -o DPkg::Lock::Timeout=120 && sh -c "$install"; }; } >"$CACHE/apt.log" 2>&1 ||
      die "apt-get install debootstrap failed; see $CACHE/apt.log"
  fi
  log "debootstrap $SUITE into $root (once per machine, a few minutes)"
  rm -rf "$root.tmp"
  with_progress "docker-standins: debootstrap" "$CACHE/debootstrap.log" \
    debootstrap --variant=minbase --include=ca-certificates,tzdata "$SUITE" "$root.tmp" "$MIRROR" ||
    die "debootstrap failed; see $CACHE/debootstrap.log"
  rm -rf "$root.tmp"/var/cache/apt/archives/*.deb "$root.tmp"/var/lib/apt/lists/*
  touch "$root.tmp/.complete"
  rm -rf "$root"
  mv "$root.tmp" "$root"
  echo "$root"
}

# busybox: Debian's busybox-static binary, downloaded once; prints its path.
busybox() {
  local out="$CACHE/busybox-static/busybox"
  if [ -x "$out" ]; then echo "$out"; return; fi
  log "downloading Debian's busybox-static"
  local work
  work=$(mktemp -d)
  (cd "$work" && apt-get download busybox-static >/dev/null 2>&1) ||
    (apt-get update -qq >/dev/null 2>&1 && cd "$work" && apt-get download busybox-static >/dev/null) ||
    die "apt-get download busybox-static failed"
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/x"
  mkdir -p "$(dirname "$out")"
  cp "$work/x/bin/busybox" "$out"
  rm -rf "$work"
  echo "$out"
}

# small_root DIR: the files every small image here shares: CA certificates,
# tzdata, /tmp, and busybox with /bin/sh and wget when WITH_BUSYBOX=1.
small_root() {
  local dir=$1 deb
  deb=$(debian_root)
  mkdir -p "$dir"/{etc/ssl/certs,usr/share,tmp,bin}
  chmod 1777 "$dir/tmp"
  cp "$deb/etc/ssl/certs/ca-certificates.crt" "$dir/etc/ssl/certs/"
  cp -r "$deb/usr/share/zoneinfo" "$dir/usr/share/"
  cp "$deb/etc/os-release" "$dir/etc/os-release" 2>/dev/null || cp "$deb/usr/lib/os-release" "$dir/etc/os-release"
  if [ "${WITH_BUSYBOX:-0}" = 1 ]; then
    cp "$(busybox)" "$dir/bin/busybox"
    for applet in sh wget id stat chown start-stop-daemon grep cut ls cat; do ln -s busybox "$dir/bin/$applet"; done
  fi
}

build_golang() {
  local name="golang:$GO_VERSION" rev="golang-$GO_VERSION-$GOLANG_REV" have
  needs "$name" "$rev" || return 0
  have=$(go env GOVERSION)
  [ "$have" = "go$GO_VERSION" ] || die "the Dockerfile wants Go $GO_VERSION; this machine has $have"
  local root goroot ca
  root=$(debian_root)
  goroot=$(go env GOROOT)
  log "$name: Debian $SUITE + $goroot + $HOST_CA_BUNDLE"
  ca=$(mktemp -d)
  cp "$HOST_CA_BUNDLE" "$ca/ca-certificates.crt"
  # As the official image: Go in /usr/local/go, GOPATH /go, toolchain local.
  # The engine takes no duplicate paths: Debian's CA bundle is left out and
  # the machine's put in its place.
  tar -c --exclude=./.complete --exclude=./etc/ssl/certs/ca-certificates.crt -C "$root" . \
    -C "$(dirname "$goroot")" --transform "s|^$(basename "$goroot")|usr/local/go|" "$(basename "$goroot")" \
    -C "$ca" --transform "s|^ca-certificates.crt|etc/ssl/certs/ca-certificates.crt|" ca-certificates.crt |
    docker import \
      --change "LABEL dev.switchyard.standin=$rev" \
      --change "ENV GOLANG_VERSION=$GO_VERSION GOTOOLCHAIN=local GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
      --change "WORKDIR /go" \
      --change 'CMD ["bash"]' \
      - "$name" >/dev/null
  rm -rf "$ca"
}

build_distroless() {
  local name="gcr.io/distroless/static-debian12:nonroot" rev="distroless-$DISTROLESS_REV"
  needs "$name" "$rev" || return 0
  log "$name: scratch + passwd, CA certificates, tzdata"
  local dir
  dir=$(mktemp -d)
  small_root "$dir"
  rmdir "$dir/bin"
  mkdir -p "$dir/home/nonroot"
  chown 65532:65532 "$dir/home/nonroot"
  chmod 700 "$dir/home/nonroot"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$dir/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' 'nonroot:x:65532:' >"$dir/etc/group"
  printf 'hosts: files dns\n' >"$dir/etc/nsswitch.conf"
  tar -c -C "$dir" . | docker import \
    --change "LABEL dev.switchyard.standin=$rev" \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
    --change "USER 65532" \
    --change "WORKDIR /home/nonroot" \
    - "$name" >/dev/null
  rm -rf "$dir"
}

build_consul() {
  local v=${CONSUL_VERSION#v}
  local name="switchyard-test/consul:$v" rev="consul-$v-$CONSUL_REV"
  needs "$name" "$rev" || return 0
  local bin dir
  bin=$(scripts/tools.sh consul)
  log "$name: $bin behind deployments/dockertest/consul-entrypoint.sh"
  dir=$(mktemp -d)
  WITH_BUSYBOX=1 small_root "$dir"
  cp "$bin" "$dir/bin/consul"
  mkdir -p "$dir/usr/local/bin" "$dir/consul/data" "$dir/consul/config"
  cp deployments/dockertest/consul-entrypoint.sh "$dir/usr/local/bin/docker-entrypoint.sh"
  chmod 755 "$dir/usr/local/bin/docker-entrypoint.sh"
  # As in the official image: user consul (100), group consul (1000).
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'consul:x:100:1000:consul:/home/consul:/sbin/nologin' >"$dir/etc/passwd"
  printf '%s\n' 'root:x:0:' 'consul:x:1000:consul' >"$dir/etc/group"
  chown -R 100:1000 "$dir/consul"
  tar -c -C "$dir" . | docker import \
    --change "LABEL dev.switchyard.standin=$rev" \
    --change "ENV CONSUL_VERSION=$v PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "EXPOSE 8300 8301 8301/udp 8302 8302/udp 8500 8600 8600/udp" \
    --change "VOLUME /consul/data" \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
    --change 'CMD ["agent", "-dev", "-client", "0.0.0.0"]' \
    - "$name" >/dev/null
  rm -rf "$dir"
}

build_jaeger() {
  local v=${JAEGER_VERSION#v}
  local name="switchyard-test/jaeger-all-in-one:$v" rev="jaeger-$v-$JAEGER_REV"
  needs "$name" "$rev" || return 0
  local bin src dir
  bin=$(scripts/tools.sh jaeger-all-in-one)
  src=$(go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  log "$name: $bin"
  dir=$(mktemp -d)
  WITH_BUSYBOX=1 small_root "$dir"
  mkdir -p "$dir/go/bin" "$dir/etc/jaeger"
  cp "$bin" "$dir/go/bin/all-in-one-linux"
  cp "$src/cmd/all-in-one/sampling_strategies.json" "$dir/etc/jaeger/"
  chmod 644 "$dir/etc/jaeger/sampling_strategies.json"
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' >"$dir/etc/passwd"
  # As cmd/all-in-one/Dockerfile (release stage).
  tar -c -C "$dir" . | docker import \
    --change "LABEL dev.switchyard.standin=$rev" \
    --change "ENV SAMPLING_STRATEGIES_FILE=/etc/jaeger/sampling_strategies.json PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "EXPOSE 4317 4318 14268 14250 9411 16686" \
    --change "VOLUME /tmp" \
    --change 'ENTRYPOINT ["/go/bin/all-in-one-linux"]' \
    --change "USER 10001" \
    - "$name" >/dev/null
  rm -rf "$dir"
}

start=$(date +%s)
[ $# -gt 0 ] || set -- golang distroless consul jaeger
for image in "$@"; do
  case "$image" in
    golang | distroless | consul | jaeger) "build_$image" ;;
    *) die "unknown image $image (golang, distroless, consul, jaeger)" ;;
  esac
done
for id in "${old_images[@]}"; do docker rmi "$id" >/dev/null 2>&1 || true; done
log "stand-ins ready ($(($(date +%s) - start)) s)"
