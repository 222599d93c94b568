#!/usr/bin/env bash
# System packages the test suite drives for real: Debian's chromium and its
# WebDriver (the console's browser tests) and Prometheus (scrapes a demo app's
# prompt_usage_total). Installed from Debian's archive when missing; never a
# browser download of its own. Needs root (CI and the dev machines run as root).
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "missing ${need[*]}: run as root, or: sudo apt-get install ${need[*]}" >&2
    exit 1
fi
echo "installing ${need[*]} from Debian's archive" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: prometheus recommends node-exporter and friends.
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian package starts a prometheus service where systemd runs; tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
fi
