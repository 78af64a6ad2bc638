#!/usr/bin/env bash
# Run the whole test suite, installing and starting what it needs first. Extra arguments go
# to pytest (e.g. scripts/test.sh tests/test_api.py -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export GRIDWATCH_TEST_PG_URL=${GRIDWATCH_TEST_PG_URL:-postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres}
exec .venv/bin/python -m pytest "$@"
