#!/usr/bin/env bash
# The project's test command (README): installs what the tests need, then
# builds and runs every test. Stops at the first failing stage.
#
#   scripts/test.sh
#
# Tests that need a Kafka broker read KAFKA_BOOTSTRAP; when it is unset this
# script starts the project's own broker (scripts/kafka.sh) if that exists.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export PATH="$root/.cache/bin:$PATH"

stage() { echo; echo "=== $* ==="; }
summary=()
t0=$(date +%s)

stage "dependencies"
scripts/install-deps.sh

if [ -z "${KAFKA_BOOTSTRAP:-}" ] && [ -x scripts/kafka.sh ]; then
  stage "kafka broker"
  scripts/kafka.sh start
  export KAFKA_BOOTSTRAP=127.0.0.1:${KAFKA_PORT:-19092}
  trap 'scripts/kafka.sh stop || true' EXIT
fi

stage "build (release, all targets)"
s=$(date +%s)
cargo build --release --locked --all-targets
summary+=("build: ok ($(( $(date +%s) - s ))s)")

stage "cargo test"
s=$(date +%s)
cargo test --release --locked -- --test-threads=2
summary+=("cargo test: ok ($(( $(date +%s) - s ))s)")

if compgen -G "deploy/prometheus/rules/*.yml" >/dev/null; then
  stage "prometheus rules"
  promtool check rules deploy/prometheus/rules/*.yml
  if compgen -G "deploy/prometheus/tests/*.yml" >/dev/null; then
    promtool test rules deploy/prometheus/tests/*.yml
  fi
  summary+=("promtool rules: ok")
fi

if compgen -G "tests/e2e/*.sh" >/dev/null; then
  for t in tests/e2e/*.sh; do
    stage "e2e: $t"
    bash "$t"
    summary+=("$t: ok")
  done
fi

echo
echo "=== summary ($(( $(date +%s) - t0 ))s) ==="
printf '%s\n' "${summary[@]}"
