#!/usr/bin/env bash
# Test setup for the web page's browser test (tests/test_web_page.py): Debian's headless Chromium plus
# playwright-core (the Node driver only; it never downloads a browser) in the project-local .browser/.
# Idempotent and quiet when everything is already there. Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "install_browser: installing Debian's chromium" >&2
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null
  else
    echo "install_browser: /usr/bin/chromium missing and apt-get unavailable (need root); the browser test will skip" >&2
    exit 0
  fi
fi

if ! command -v npm >/dev/null; then
  echo "install_browser: npm not found; install nodejs + npm (apt-get install -y nodejs npm); the browser test will skip" >&2
  exit 0
fi

if [ ! -f .browser/node_modules/playwright-core/package.json ]; then
  echo "install_browser: installing playwright-core into .browser/" >&2
  mkdir -p .browser
  [ -f .browser/package.json ] || echo '{"name": "medmo-browser-tests", "private": true}' > .browser/package.json
  # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: the test drives Debian's /usr/bin/chromium, never a downloaded one.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix .browser --no-audit --no-fund --silent playwright-core@1 >/dev/null
fi
