#!/usr/bin/env bash
# The browser the web workspace's end-to-end tests drive: Debian's chromium and chromium-driver, installed
# with apt where missing (root, or sudo without a password). Selenium itself comes with the `test` extra.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "[browser] $(chromium --version 2>/dev/null | head -1), chromedriver present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "[browser] chromium is missing and apt needs root: run as root, or install chromium chromium-driver" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
echo "[browser] installed $(chromium --version 2>/dev/null | head -1) and chromedriver"
