#!/usr/bin/env bash
# Serve the simulated beamline (motors SIM:M1, SIM:M2, detector SIM:DET, counter
# SIM:COUNTER:, SIM:RING:CURRENT, SIM:SHUTTER) as a CA server of its own, on its own port.
# Usage: scripts/sim-beamline.sh [--port PORT] [--prefix SIM:] [caproto server options]
# The port is --port if given, else EPICS_CAS_SERVER_PORT from the environment (as for any
# CA server), else 5066. It must differ from the IOC's (5064): two CA servers on one host
# each need their own. Clients then list both:
# EPICS_CA_ADDR_LIST="127.0.0.1:5064 127.0.0.1:5066".
# Creates .venv on first run. Stays on loopback unless you set EPICS_CA_*/EPICS_CAS_* yourself.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${EPICS_CAS_SERVER_PORT:-5066}
options=()
while [ $# -gt 0 ]; do
    case $1 in
        --port) port=${2:?--port needs a port number}; shift 2 ;;
        --port=*) port=${1#--port=}; shift ;;
        *) options+=("$1"); shift ;;
    esac
done
python=$(scripts/ensure-env.sh)
source scripts/loopback-env.sh
export EPICS_CA_SERVER_PORT=$port EPICS_CAS_SERVER_PORT=$port
exec "$python" scripts/sim_beamline.py "${options[@]}"
