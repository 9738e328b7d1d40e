#!/usr/bin/env bash
# Installs what Fleetwatch's tests, benchmarks and demo need on a Debian or
# Ubuntu machine, when it is missing: ClickHouse server and client,
# Prometheus, Alertmanager, ZooKeeper (for the replicated-cluster tests),
# systemd-analyze (to verify the units in
# deploy/systemd), NumPy/SciPy (for side-by-side benchmarks), and
# chDB's libchdb.so (a current ClickHouse engine, for the modern-schema tests).
# Idempotent, and quiet when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

CHDB_VERSION="${CHDB_VERSION:-26.5.3}"
CHDB_DIR=".cache/chdb"

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
have clickhouse-server || missing+=(clickhouse-server)
have clickhouse-client || missing+=(clickhouse-client)
have prometheus || missing+=(prometheus)
have prometheus-alertmanager || missing+=(prometheus-alertmanager)
have systemd-analyze || missing+=(systemd)
{ have java && [ -f /usr/share/java/zookeeper.jar ]; } || missing+=(zookeeper)
/usr/bin/python3 -c 'import numpy, scipy' >/dev/null 2>&1 || missing+=(python3-numpy python3-scipy)
[ -f "$CHDB_DIR/libchdb.so" ] || have npm || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if have sudo; then SUDO=sudo; else
      echo "setup: need root (or sudo) to run: apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
  fi
  if ! have apt-get; then
    echo "setup: no apt-get here; install these yourself: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packages' services are not needed: tests start private servers.
fi

if [ ! -f "$CHDB_DIR/libchdb.so" ]; then
  echo "setup: downloading chDB $CHDB_VERSION (@chdb/lib-linux-x64-gnu, ~170 MB) into $CHDB_DIR"
  mkdir -p "$CHDB_DIR/tmp"
  (cd "$CHDB_DIR/tmp" && npm pack --silent "@chdb/lib-linux-x64-gnu@$CHDB_VERSION" >/dev/null)
  tar -xzf "$CHDB_DIR"/tmp/chdb-lib-linux-x64-gnu-*.tgz -C "$CHDB_DIR/tmp" package/libchdb.so
  mv "$CHDB_DIR/tmp/package/libchdb.so" "$CHDB_DIR/libchdb.so"
  rm -rf "$CHDB_DIR/tmp"
fi
