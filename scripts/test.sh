#!/usr/bin/env bash
# Installs Escalade with its test dependencies into .venv and runs every gate: lint, format, types,
# proto lint, and the whole pytest suite (which includes the generated-stub freshness check).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
echo "== ruff";  .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy";  .venv/bin/mypy
echo "== buf";   .venv/bin/buf lint proto
echo "== pytest"
set +e
# Two workers by default (pytest-xdist): much of the suite waits on subprocesses and servers, and the two
# slowest tests spend ~35 s each building the Vapi SDK's pydantic models. ESCALADE_TEST_WORKERS=0 runs serially.
.venv/bin/python -m pytest -n "${ESCALADE_TEST_WORKERS:-2}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
