#!/usr/bin/env bash
# Run Gridwatch on its embedded default: SQLite, the bundled configuration, real clips as
# cameras. Extra arguments go to `gridwatch serve` (e.g. --config my.yaml --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/gridwatch serve "$@"
