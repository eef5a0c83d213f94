#!/usr/bin/env bash
# Serve the simulated beamline (motors SIM:M1, SIM:M2, detector SIM:DET, counter
# SIM:COUNTER:, SIM:RING:CURRENT, SIM:SHUTTER) as a CA server of its own, on its own port.
# Usage: scripts/sim-beamline.sh [--port PORT] [--prefix SIM:] [caproto server options]
# PORT (default 5066) must differ from the IOC's (5064): two CA servers on one host each
# need their own. Clients then list both: EPICS_CA_ADDR_LIST="127.0.0.1:5064 127.0.0.1:5066".
# Creates .venv on first run. Stays on loopback unless you set EPICS_CA_*/EPICS_CAS_* yourself.
set -euo pipefail
cd "$(dirname "$0")/.."
port=5066
if [ "${1:-}" = "--port" ]; then
    port=$2
    shift 2
fi
python=$(scripts/ensure-env.sh)
source scripts/loopback-env.sh
export EPICS_CA_SERVER_PORT=$port EPICS_CAS_SERVER_PORT=$port
exec "$python" scripts/sim_beamline.py "$@"
