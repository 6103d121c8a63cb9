#!/usr/bin/env bash
# Install a real Home Assistant 2024.3.3 into its own venv, for the integration tests.
#
#   bash .ci/install-ha.sh            # venv at ${HOMEIQ_HA_VENV:-$HOME/.cache/homeiq/ha-2024.3.3-venv}
#
# Idempotent: a venv that carries the completion marker and whose `hass --version` answers
# is reused as it is (CI keeps it between runs). Anything else at that path is a leftover
# of an interrupted run and is rebuilt from scratch.
#
# Why it looks like this (see DESIGN.md §6):
# - 2024.3.3 is the last HA release that installs on Python 3.11.
# - HA's own pins (homeassistant/package_constraints.txt inside the wheel) are passed as
#   pip constraints; without them pip backtracks for ever.
# - josepy is pinned to 1.14.0: with josepy 2.x every HTTP request answers 500.
# - The packages HA would pip-install on first start with the test configuration are
#   installed here, so a test run never reaches a registry and starts in seconds.
set -euo pipefail

HA_VERSION="2024.3.3"
VENV="${HOMEIQ_HA_VENV:-$HOME/.cache/homeiq/ha-${HA_VERSION}-venv}"
PYTHON="${HOMEIQ_HA_PYTHON:-python3.11}"
MARKER="$VENV/.homeiq-ha-complete"

# What HA installs on first start with tests/support/homeassistant.py's configuration
# (api, websocket_api, config, onboarding, history, recorder, sun, demo, ffmpeg, ...).
FIRST_START_REQUIREMENTS=(
  "PyQRCode==1.2.1"
  "PyTurboJPEG==1.7.1"
  "SQLAlchemy==2.0.27"
  "fnv-hash-fast==0.5.0"
  "fnvhash==0.1.0"
  "ha-ffmpeg==3.1.0"
  "hassil==1.6.1"
  "home-assistant-frontend==20240307.0"
  "home-assistant-intents==2024.3.12"
  "janus==1.0.0"
  "mutagen==1.47.0"
  "numpy==1.26.0"
  "pillow==10.2.0"
  "psutil-home-assistant==0.0.1"
  "pyotp==2.8.0"
  "securetar==2024.2.1"
  "unicode-rbnf==1.0.0"
  "greenlet"
  "psutil"
)

log() { printf '[install-ha %4ss] %s\n' "$SECONDS" "$*"; }

is_complete() {
  [[ -f "$MARKER" ]] && "$VENV/bin/hass" --version >/dev/null 2>&1
}

mkdir -p "$(dirname "$VENV")"

# One installer at a time for this venv path (two CI jobs or a developer and a test run).
exec 9>"$VENV.lock"
if ! flock -w 1800 9; then
  log "timed out waiting for the lock on $VENV.lock"
  exit 1
fi

if is_complete; then
  log "Home Assistant $("$VENV/bin/hass" --version) already installed in $VENV"
  exit 0
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  log "$PYTHON not found (set HOMEIQ_HA_PYTHON to a Python 3.11 interpreter)"
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  log "$PYTHON is not Python 3.11: HA $HA_VERSION needs it"
  exit 1
fi

# A venv is not relocatable (scripts carry its absolute path), so it is built in place and
# only the marker, written last, says it is complete.
if [[ -e "$VENV" ]]; then
  log "removing incomplete venv at $VENV"
  rm -rf "$VENV"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

log "creating venv at $VENV with $("$PYTHON" --version)"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input)


log "downloading homeassistant==$HA_VERSION"
"${PIP[@]}" download --quiet --no-deps --only-binary=:all: --dest "$WORK" "homeassistant==$HA_VERSION"
WHEEL="$(find "$WORK" -maxdepth 1 -name "homeassistant-${HA_VERSION}-*.whl" -print -quit)"
if [[ -z "$WHEEL" ]]; then
  log "no homeassistant wheel was downloaded"
  exit 1
fi

"$VENV/bin/python" - "$WHEEL" "$WORK/constraints.txt" <<'EOF'
import sys
import zipfile

wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    pins = zf.read("homeassistant/package_constraints.txt").decode()
with open(out, "w", encoding="utf-8") as fh:
    fh.write(pins)
    fh.write("\n# Added by .ci/install-ha.sh: josepy 2.x makes every HTTP request answer 500.\n")
    fh.write("josepy==1.14.0\n")
EOF
log "constraints: $(grep -cvE '^\s*(#|$)' "$WORK/constraints.txt") pins"

log "installing homeassistant==$HA_VERSION"
"${PIP[@]}" install --quiet -c "$WORK/constraints.txt" "$WHEEL" "josepy==1.14.0"

log "installing first-start requirements"
"${PIP[@]}" install --quiet -c "$WORK/constraints.txt" "${FIRST_START_REQUIREMENTS[@]}"

"${PIP[@]}" check >/dev/null || log "warning: pip check reports conflicts (see '$VENV/bin/pip check')"

version="$("$VENV/bin/hass" --version)"
date -u +%Y-%m-%dT%H:%M:%SZ >"$MARKER"
log "Home Assistant $version installed in $VENV in ${SECONDS}s"
