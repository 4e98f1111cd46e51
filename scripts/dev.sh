#!/usr/bin/env bash
# Installs Escalade into .venv and runs the whole stack on embedded defaults (`escalade dev`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/escalade dev "$@"
