#!/usr/bin/env bash
# Install what tests/serve/test_browser.py needs: Debian's chromium (never a downloaded browser build)
# and Playwright for Python in the project venv. Safe to run repeatedly; does nothing when present.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_PY="${VENV_PY:-.venv/bin/python}"

if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
/usr/bin/chromium --version

if ! "$VENV_PY" -c "import playwright" 2>/dev/null; then
  # Only the Python driver: `playwright install` is never run, the tests use /usr/bin/chromium.
  "$VENV_PY" -m pip install -q "playwright>=1.40"
fi
"$VENV_PY" -c "import importlib.metadata as m; print('playwright', m.version('playwright'))"

# axe-core for the accessibility check in the browser test: from npm at setup time, into an ignored
# folder (never committed, never from a CDN). The test injects it into the page under test.
AXE_VERSION="4.14.1"
AXE_DIR=".ci/axe"
if [ ! -f "$AXE_DIR/node_modules/axe-core/axe.min.js" ] || \
   ! grep -q "\"version\": \"$AXE_VERSION\"" "$AXE_DIR/node_modules/axe-core/package.json" 2>/dev/null; then
  if ! command -v npm >/dev/null; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
  mkdir -p "$AXE_DIR"
  npm install --prefix "$AXE_DIR" --no-save --no-package-lock --no-audit --no-fund --silent "axe-core@$AXE_VERSION"
fi
echo "axe-core $AXE_VERSION"
