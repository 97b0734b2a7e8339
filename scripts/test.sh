#!/usr/bin/env bash
# Install zcscore with its dev tools and run the checks and the default test suite (what CI runs).
# Tests use the Redis and PostgreSQL on 127.0.0.1 (started here if they are down and installed) and Debian's
# chromium for the dashboard test (installed here when missing, see scripts/ensure_browser.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
bash scripts/ensure_services.sh
bash scripts/ensure_browser.sh
python3 -m ruff check service api storage workers tests benchmarks
python3 -m ruff format --check service api storage workers tests benchmarks
bash scripts/typecheck.sh
exec python3 -m pytest -q "$@"
