#!/usr/bin/env bash
# InfluxDB 1.6.7 for the real-component tests (DESIGN §7): the Debian package `influxdb`.
# Only installed here; the tests start their own `influxd run -config` on loopback with
# data in a temp dir (the package's systemd unit is never used).
set -euo pipefail
if command -v influxd >/dev/null 2>&1; then
  echo "influxd already installed: $(influxd version 2>/dev/null || true)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || echo "apt-get update failed; trying the cached package lists"
$SUDO apt-get install -y -qq --no-install-recommends influxdb >/dev/null
echo "installed: $(influxd version 2>/dev/null || true)"
