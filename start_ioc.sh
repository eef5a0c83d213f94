#!/usr/bin/env bash
# Start the IOC on the simulated beamline of db/devices.yaml (prefix BLUESKY: by default).
# Creates .venv on first run. Options are those of `python -m ioc --help`; relative paths in
# them are taken from your working directory (this script does not change it).
# Channel Access and pvAccess stay on loopback (127.0.0.1) unless you set EPICS_CA_*/EPICS_CAS_*
# (EPICS_PVA_*/EPICS_PVAS_*) addresses yourself.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=$("$here/scripts/ensure-env.sh")
source "$here/scripts/loopback-env.sh"
export BLUESKY_IOC_PROG="$0"
exec "$python" -m ioc "$@"
