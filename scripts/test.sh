#!/usr/bin/env bash
# Installs Escalade with its test dependencies into .venv from the lock file and runs every gate: lint,
# format, types, import rules, proto lint, and the whole pytest suite (which includes the generated-stub
# freshness check). Any failing gate fails the script.
#   scripts/test.sh [PYTEST ARGS...]   install, gates, then pytest
#   scripts/test.sh --gates-only       the static gates alone, on the .venv as it is (no install, no pytest)
set -euo pipefail
cd "$(dirname "$0")/.."

# Runs every static gate, even after one fails (so one run shows every problem), and returns non-zero if
# any failed. Each gate is its own command: `a && b` would hide a failing `a` from `set -e`.
gates() {
  local failed=()
  gate() {
    local name=$1
    shift
    echo "== $name"
    if ! "$@"; then
      failed+=("$name")
    fi
  }
  gate "ruff check" .venv/bin/ruff check .
  gate "ruff format" .venv/bin/ruff format --check .
  gate "mypy" .venv/bin/mypy
  gate "import rules" .venv/bin/lint-imports --no-cache --no-logo
  gate "buf lint" .venv/bin/buf lint proto
  if [ "${#failed[@]}" -gt 0 ]; then
    printf 'gate failed: %s\n' "${failed[@]}" >&2
    return 1
  fi
}

if [ "${1:-}" = "--gates-only" ]; then
  gates
  exit 0
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# Pinned versions first (requirements.lock, see its header), then the project itself without resolving again.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
gates

echo "== pytest"
# Two workers by default (pytest-xdist): much of the suite waits on subprocesses and servers; the slow tests
# go first (tests/conftest.py).
# ESCALADE_TEST_WORKERS=0 runs serially.
rc=0
.venv/bin/python -m pytest -n "${ESCALADE_TEST_WORKERS:-2}" "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
