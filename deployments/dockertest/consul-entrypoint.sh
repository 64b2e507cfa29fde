#!/bin/sh
# Entrypoint of the switchyard-test/consul stand-in image. It does what
# docker-entrypoint.sh of the official hashicorp/consul image does for the
# commands docker-compose.yml and deployments/docker-compose.ha.yml run:
#
#   - arguments that start with "-" are passed to consul;
#   - "agent ..." becomes "consul agent -data-dir=/consul/data
#     -config-dir=/consul/config ...";
#   - a consul subcommand (version, operator, members, ...) runs as consul;
#   - consul runs as the unprivileged user consul (uid 100), after
#     /consul/data and /consul/config are made its own, unless
#     CONSUL_DISABLE_PERM_MGMT is set.
#
# The official script also takes CONSUL_BIND_INTERFACE,
# CONSUL_CLIENT_INTERFACE and CONSUL_LOCAL_CONFIG; the compose files here use
# none of them, and this script refuses them rather than ignore them.
set -e

for v in CONSUL_BIND_INTERFACE CONSUL_CLIENT_INTERFACE CONSUL_LOCAL_CONFIG; do
  if eval "[ -n \"\${$v}\" ]"; then
    echo "consul stand-in: $v is not supported" >&2
    exit 1
  fi
done

CONSUL_DATA_DIR=/consul/data
CONSUL_CONFIG_DIR=/consul/config

case "$1" in
  -*) set -- consul "$@" ;;
esac

if [ "$1" = agent ]; then
  shift
  set -- consul agent -data-dir="$CONSUL_DATA_DIR" -config-dir="$CONSUL_CONFIG_DIR" "$@"
elif [ "$1" = version ]; then
  set -- consul "$@"
elif [ "$1" != consul ] && consul --help "$1" 2>&1 | grep -q "consul $1"; then
  set -- consul "$@"
fi

if [ "$1" = consul ] && [ -z "${CONSUL_DISABLE_PERM_MGMT+x}" ] && [ "$(id -u)" = 0 ]; then
  for d in "$CONSUL_DATA_DIR" "$CONSUL_CONFIG_DIR"; do
    if [ "$(stat -c %u "$d")" != 100 ]; then chown -R 100:1000 "$d"; fi
  done
  # The official image uses su-exec; busybox's start-stop-daemon without
  # --background execs the same way, as the user given.
  shift
  set -- start-stop-daemon --start --chuid consul:consul --exec /bin/consul -- "$@"
fi

exec "$@"
