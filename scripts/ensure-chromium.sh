#!/usr/bin/env bash
# The browser test drives Debian's chromium (Playwright cannot download browsers here).
# Install it when missing; fail loudly when that is impossible.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
echo "chromium is missing: installing Debian's chromium for the browser test" >&2
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || {
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q chromium >/dev/null
}
command -v chromium >/dev/null
