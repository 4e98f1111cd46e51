#!/usr/bin/env bash
# Installs Escalade into .venv from the lock file and runs the whole stack on embedded defaults
# (`escalade dev`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# The same pinned versions as the tests (requirements.lock), then the project itself without resolving again.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
exec .venv/bin/escalade dev "$@"
