#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv and print its python.
# Re-installs when pyproject.toml is newer than the last install. Needs python3 >= 3.11.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
stamp="$venv/.installed"
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv" >&2
    "$python" -m venv "$venv" >&2
fi
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
    started=$(date +%s)
    echo "first run (or pyproject.toml changed): installing bluesky-ioc with caproto, bluesky," \
         "ophyd, ophyd-async and the test tools from PyPI into $venv; this takes a minute or two..." >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet -e "$root[test]" >&2
    touch "$stamp"
    echo "installed in $(( $(date +%s) - started )) s" >&2
fi
echo "$venv/bin/python"
