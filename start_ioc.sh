#!/usr/bin/env bash
# Start the IOC on the simulated beamline of db/devices.yaml (prefix BLUESKY: by default).
# Creates .venv on first run. Options are those of `python -m ioc --help`.
# Channel Access stays on loopback (127.0.0.1) unless you set EPICS_CA_*/EPICS_CAS_* yourself.
set -euo pipefail
cd "$(dirname "$0")"
python=$(scripts/ensure-env.sh)
source scripts/loopback-env.sh
export BLUESKY_IOC_PROG=./start_ioc.sh
exec "$python" -m ioc "$@"
