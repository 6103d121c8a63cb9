#!/usr/bin/env bash
# Install a real Home Assistant 2024.3.3 into its own venv, for the integration tests.
#
#   bash .ci/install-ha.sh            # venv at ${HOMEIQ_HA_VENV:-$HOME/.cache/homeiq/ha-2024.3.3-venv}
#
# Idempotent: a venv that carries the completion marker (written last, naming the package
# set it was built from) and whose `hass --version` answers is reused as it is (CI keeps it
# between runs). Anything else at that path is a leftover of an interrupted run, or was
# built from another package list, and is rebuilt from scratch.
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
PYTHON_CANDIDATES=("${HOMEIQ_HA_PYTHON:-python3.11}" /usr/bin/python3.11)
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

# The marker records what was installed: a venv built from another package list is rebuilt.
SPEC="homeassistant==$HA_VERSION josepy==1.14.0 ${FIRST_START_REQUIREMENTS[*]}"
SPEC_ID="spec-sha256: $(printf '%s' "$SPEC" | sha256sum | cut -d' ' -f1)"

log() { printf '[install-ha %4ss] %s\n' "$SECONDS" "$*"; }

pip_run() {
  # This machine's pip.conf lists local extra indexes that lack most projects; pip
  # warns about each one. Drop that noise; pipefail keeps pip's own exit status.
  "$VENV/bin/python" -m pip --disable-pip-version-check --no-input "$@" 2>&1 |
    sed '/is ignored: it is neither a file nor a directory/d'
}

is_complete() {
  [[ -f "$MARKER" ]] && grep -qxF "$SPEC_ID" "$MARKER" &&
    "$VENV/bin/hass" --version >/dev/null 2>&1
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

PYTHON=""
for candidate in "${PYTHON_CANDIDATES[@]}"; do
  if "$candidate" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    PYTHON="$candidate"
    break
  fi
done
if [[ -z "$PYTHON" ]]; then
  log "no Python 3.11 found (tried: ${PYTHON_CANDIDATES[*]}); HA $HA_VERSION needs it."
  log "Set HOMEIQ_HA_PYTHON to a Python 3.11 interpreter."
  exit 1
fi

# A venv is not relocatable (scripts carry its absolute path), so it is built in place and
# only the marker, written last, says it is complete.
if [[ -e "$VENV" ]]; then
  log "removing incomplete or outdated venv at $VENV"
  rm -rf "$VENV"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

log "creating venv at $VENV with $("$PYTHON" --version)"
"$PYTHON" -m venv "$VENV"

log "downloading homeassistant==$HA_VERSION"
pip_run download --quiet --no-deps --only-binary=:all: --dest "$WORK" "homeassistant==$HA_VERSION"
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
pip_run install --quiet -c "$WORK/constraints.txt" "$WHEEL" "josepy==1.14.0"

log "installing first-start requirements"
pip_run install --quiet -c "$WORK/constraints.txt" "${FIRST_START_REQUIREMENTS[@]}"

if ! pip_run check >"$WORK/pip-check.txt"; then
  log "warning: pip check reports conflicts:"
  cat "$WORK/pip-check.txt"
fi

version="$("$VENV/bin/hass" --version)"
printf 'installed: %s\n%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$SPEC_ID" >"$MARKER"
log "Home Assistant $version installed in $VENV in ${SECONDS}s"
