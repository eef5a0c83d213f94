#!/usr/bin/env bash
# Run the whole test suite (unit + integration over real Channel Access on loopback).
# Creates .venv on first run. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
python=$(scripts/ensure-env.sh)
exec "$python" -m pytest "$@"
