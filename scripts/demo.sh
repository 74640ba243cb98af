#!/usr/bin/env bash
# Quickstart 1: set up, then run the whole pipeline offline on the embedded drawn catalogue.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/stylesearch demo "$@"
