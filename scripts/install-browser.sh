#!/usr/bin/env bash
# Debian's Chromium for the serving page's browser test (a Playwright browser download is impossible
# offline). Installs only where it is missing and we can: as root with apt-get. Elsewhere the browser
# test skips and says why.
set -uo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian's chromium for the browser test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "[setup] chromium could not be installed; the browser test will skip"
else
    echo "[setup] /usr/bin/chromium missing and not root: the browser test will skip"
fi
exit 0
