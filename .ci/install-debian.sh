#!/usr/bin/env bash
# Debian packages the real-component tests use (DESIGN §7): `age`, the standard age
# command-line tool, which must decrypt HomeIQ's backup archives. Installed only when
# missing; needs root (or sudo), as CI has.
set -euo pipefail
missing=()
command -v age >/dev/null 2>&1 || missing+=(age)
if [ ${#missing[@]} -eq 0 ]; then
  echo "Debian packages already installed: age $(age --version 2>/dev/null || true)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || echo "apt-get update failed; trying the cached package lists"
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
