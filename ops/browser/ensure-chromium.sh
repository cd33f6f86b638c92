#!/bin/sh
# The browser tests drive Debian's Chromium (Playwright's own browser download cannot work here).
# Installs it when missing: as root with apt-get, otherwise says the command to run and fails.
# NSW_CHROMIUM names another Chromium build to use instead (then nothing is installed).
set -eu
browser="${NSW_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$browser" ]; then
    exit 0
fi
if [ -n "${NSW_CHROMIUM:-}" ]; then
    echo "NSW_CHROMIUM=$NSW_CHROMIUM is not an executable file" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "Chromium is missing (needed by the browser tests). Install it with:" >&2
    echo "    sudo sh -c 'apt-get update && apt-get install -y chromium'" >&2
    exit 1
fi
echo "installing Debian's chromium for the browser tests"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
"$browser" --version
