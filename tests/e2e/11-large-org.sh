#!/usr/bin/env bash
# tests/e2e/10-alerts-and-panels.sh with the large-org exposition profile
# (config/large-org.toml): the laggard's reach alert still reaches the
# webhook receiver through the shipped rules and Alertmanager routing, every
# panel query of every dashboard still returns data, and rep-level series
# exist only in the profile's families and windows.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
E2E_PROFILE=$root/config/large-org.toml exec bash "$root/tests/e2e/10-alerts-and-panels.sh" "$@"
