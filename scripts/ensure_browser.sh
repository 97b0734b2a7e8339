#!/usr/bin/env bash
# Install the headless browser of the dashboard test (tests/api/test_ui_browser.py) when it is missing:
# Debian's `chromium` package at /usr/bin/chromium, driven by the `playwright` Python package of the [dev] extra.
# Never runs `playwright install` (that downloads a browser build). Off Debian, or without root (or password-less
# sudo), it changes nothing and the browser test skips, saying why. Always exits 0.
set -uo pipefail
CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0
if [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null; then
  echo "ensure_browser: not a Debian machine; install chromium yourself or the browser test is skipped" >&2
  exit 0
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "ensure_browser: not root; run 'apt-get install -y chromium' as root or the browser test is skipped" >&2
    exit 0
  fi
fi
echo "ensure_browser: installing Debian's chromium (apt-get)" >&2
if ! { "${as_root[@]}" apt-get update -qq \
  && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
  echo "ensure_browser: apt-get install chromium failed; the browser test is skipped" >&2
fi
exit 0
