#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine
# (idempotent; CI runs it through scripts/test.sh):
#   - C build deps of librdkafka (built from source by the rdkafka crate):
#     libcurl headers, pkg-config (cmake, g++, libssl-dev, zlib come with the image)
#   - Debian's prometheus (promtool) and prometheus-alertmanager (amtool)
# Services of those packages are not started (policy-rc.d), so ports stay free.
set -euo pipefail

need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
[ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/curl/curl.h ] || need+=(libcurl4-openssl-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v cmake >/dev/null || need+=(cmake)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing ${need[*]}; run as root (or: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "install-deps: apt-get install ${need[*]}"
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ "$created_policy" = 1 ] && rm -f "$policy"
  # Debian's packages may still have started their daemons where init allows it.
  pkill -x prometheus 2>/dev/null || true
  pkill -x prometheus-alertmanager 2>/dev/null || true
fi
echo "install-deps: $(promtool --version 2>&1 | head -1)"
