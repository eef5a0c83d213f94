#!/usr/bin/env bash
# Renew the screenshots of the PyDM screen in docs/ (screen-idle.png, screen-running.png,
# screen-paused.png): runs tests/integration/test_pydm_screen.py, which opens
# db/screens/bluesky.ui under Xvfb against a test IOC during a scan and saves them where
# BLUESKY_IOC_SCREENSHOTS says (a plain test run keeps them in its temporary directory).
# Needs Xvfb and Qt's xcb libraries (see .ci/run). Creates .venv on first run.
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(scripts/ensure-env.sh)
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
BLUESKY_IOC_SCREENSHOTS="$PWD/docs" "$python" -m pytest -q -rs -p no:cacheprovider \
    tests/integration/test_pydm_screen.py "$@"
for name in idle running paused; do
    if [ ! "docs/screen-$name.png" -nt "$stamp" ]; then
        echo "docs/screen-$name.png was not renewed (was the test skipped?)" >&2
        exit 1
    fi
done
echo "renewed docs/screen-idle.png, docs/screen-running.png, docs/screen-paused.png"
