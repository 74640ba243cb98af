#!/usr/bin/env bash
# Quickstart 2: set up (including headless Chromium for the browser test), then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f .ci/install-browser.sh ]; then bash .ci/install-browser.sh; fi
exec .venv/bin/pytest "$@"
