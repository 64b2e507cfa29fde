#!/usr/bin/env bash
# Makes sure a Chromium is on PATH for the dashboard's browser test
# (admin/dashboard_test.go, TestDashboardInBrowser). When none is there and
# apt-get is available, installs Debian's chromium (and a font, so
# screenshots have readable text). Prints one line. Never fails the build:
# without a browser the test skips itself and says why.
set -u

for b in chromium chromium-browser google-chrome google-chrome-stable; do
  if p=$(command -v "$b" 2>/dev/null); then
    echo "chromium: using $p"
    exit 0
  fi
done

skip="the dashboard browser test will be skipped"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: not installed and apt-get is not available; $skip"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "chromium: not installed, and installing it needs root (apt-get install chromium); $skip"
    exit 0
  fi
fi

log=$(mktemp "${TMPDIR:-/tmp}/ensure-chromium.XXXXXX")
install() {
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=120 chromium fonts-liberation >>"$log" 2>&1
}
# Try the package lists already on the machine first; refresh them only if
# that fails (a fresh image has none).
if install || { $sudo apt-get update -qq -o DPkg::Lock::Timeout=120 >>"$log" 2>&1 && install; }; then
  if p=$(command -v chromium 2>/dev/null); then
    rm -f "$log"
    echo "chromium: installed $p with apt-get"
    exit 0
  fi
fi
echo "chromium: apt-get install chromium failed (log: $log); $skip"
exit 0
