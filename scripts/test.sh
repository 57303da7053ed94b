#!/usr/bin/env bash
# The project's test command (README; .ci/run execs it):
#
#   scripts/test.sh
#
# Stages, in order, stopping at the first failure:
#   1. scripts/install-deps.sh (apt packages, dashboard-linter, Kafka jars)
#   2. a Kafka broker: when KAFKA_BOOTSTRAP is unset, this checkout's broker if
#      it already runs, else scripts/kafka.sh start on fresh data in
#      .kafka/test-data (stopped and deleted on exit); KAFKA_BOOTSTRAP is exported
#   3. cargo build --release --locked --all-targets
#      then scripts/check-standalone.sh        (a clone with nothing beside it: links stay
#                                              inside, the test suite compiles there)
#   4. cargo test --release --locked -- --test-threads=2
#   5. tests/reference/compare.py             (an independent Python implementation of the
#                                              contract against `replay` on ~120 streams and cases)
#      scripts/check-profile-coverage.py      (config/large-org.toml exports every series the
#                                              dashboards and rules read)
#   6. promtool check rules / test rules      (deploy/prometheus; skipped if absent)
#   7. dashboard-linter lint --strict         (deploy/grafana/dashboards/*.json; skipped if absent)
#   8. scripts/check-deploy.py                (YAML/JSON parse, compose/k8s/Dockerfile references)
#   9. tests/e2e/*.sh in name order           (skipped if none)
# and a summary line per stage at the end.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$root/.cache/bin:$PATH"

summary=()
current=""
stage_t0=0
t_start=$SECONDS
started_broker=0
tmp=$(mktemp -d)

begin() {
  current=$1
  stage_t0=$SECONDS
  echo
  echo "=== [$(date -u +%H:%M:%S)] $current ==="
}
pass() { summary+=("ok    ${current} ($((SECONDS - stage_t0)) s)${1:+ - $1}"); current=""; }
skip() { echo "skipped: $2"; summary+=("skip  $1 - $2"); }

finish() {
  local rc=$?
  set +e
  if [ "$started_broker" = 1 ]; then
    echo
    echo "=== stopping the test broker ==="
    scripts/kafka.sh stop --clean
  fi
  if [ "$rc" != 0 ] && [ -n "$current" ]; then
    summary+=("FAIL  ${current} (exit $rc after $((SECONDS - stage_t0)) s)")
  fi
  echo
  echo "=== summary ($((SECONDS - t_start)) s) ==="
  [ ${#summary[@]} -gt 0 ] && printf '%s\n' "${summary[@]}"
  if [ "$rc" != 0 ]; then
    echo "scripts/test.sh: FAILED${current:+ in stage: $current} (exit $rc)"
  else
    echo "scripts/test.sh: all stages passed"
  fi
  # cargo test's counts summed over all test binaries, as the closing line
  if [ -s "$tmp/cargo-test.log" ]; then
    awk '/^test result:/ { for (i = 1; i <= NF; i++) {
           if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i } }
         END { printf "cargo-test: %d passed, %d failed, %d skipped\n", p, f, g }' "$tmp/cargo-test.log"
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- 1. dependencies
begin "install-deps"
scripts/install-deps.sh
pass

# ---------------------------------------------------------------- 2. Kafka
if [ -n "${KAFKA_BOOTSTRAP:-}" ]; then
  skip "kafka broker" "KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP given"
else
  begin "kafka broker"
  if out=$(scripts/kafka.sh status 2>/dev/null); then
    echo "$out"
    KAFKA_BOOTSTRAP=$(echo "$out" | sed -n 's/^KAFKA_BOOTSTRAP=//p' | tail -n 1)
    pass "this checkout's running broker, left running"
  else
    # Fresh data every run; the ports are the defaults unless those are taken
    # (say, by another checkout's broker), then the next free pair.
    if [ -z "${KAFKA_PORT:-}" ] && [ -z "${KAFKA_CONTROLLER_PORT:-}" ]; then
      p=19092
      until port_free "$p" && port_free $((p + 1)); do
        p=$((p + 100))
        [ "$p" -lt 20000 ] || { echo "no free port pair between 19092 and 20000" >&2; exit 1; }
      done
      export KAFKA_PORT=$p KAFKA_CONTROLLER_PORT=$((p + 1))
    fi
    export KAFKA_DATA_DIR=$root/.kafka/test-data
    rm -rf "$KAFKA_DATA_DIR"
    started_broker=1
    scripts/kafka.sh start | tee "$tmp/kafka-start.out"
    KAFKA_BOOTSTRAP=$(sed -n 's/^KAFKA_BOOTSTRAP=//p' "$tmp/kafka-start.out" | tail -n 1)
    pass "started, stopped on exit"
  fi
  [ -n "$KAFKA_BOOTSTRAP" ] || { echo "scripts/kafka.sh printed no KAFKA_BOOTSTRAP" >&2; exit 1; }
fi
export KAFKA_BOOTSTRAP
echo "KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP"

# ---------------------------------------------------------------- 3. build
begin "cargo build --release --locked --all-targets"
cargo build --release --locked --all-targets
pass

# ---------------------------------------------------------------- 3b. standalone
begin "standalone clone (scripts/check-standalone.sh)"
scripts/check-standalone.sh
pass

# ---------------------------------------------------------------- 4. Rust tests
begin "cargo test --release --locked"
cargo test --release --locked -- --test-threads=2 2>&1 | tee "$tmp/cargo-test.log"
pass

# ---------------------------------------------------------------- 5. independent reference
begin "reference check (tests/reference/compare.py)"
python3 tests/reference/compare.py
pass

begin "profile coverage (scripts/check-profile-coverage.py config/large-org.toml)"
python3 scripts/check-profile-coverage.py config/large-org.toml
pass

# ---------------------------------------------------------------- 6. Prometheus rules
shopt -s nullglob
rules=(deploy/prometheus/rules/*.yml deploy/prometheus/rules/*.yaml)
rule_tests=(deploy/prometheus/tests/*.yml deploy/prometheus/tests/*.yaml)
if [ ${#rules[@]} -eq 0 ]; then
  skip "promtool check rules" "no deploy/prometheus/rules/*.yml yet"
else
  begin "promtool check rules"
  promtool check rules "${rules[@]}"
  pass "${#rules[@]} file(s)"
fi
if [ ${#rule_tests[@]} -eq 0 ]; then
  skip "promtool test rules" "no deploy/prometheus/tests/*.yml yet"
else
  begin "promtool test rules"
  promtool test rules "${rule_tests[@]}"
  pass "${#rule_tests[@]} file(s)"
fi

# ---------------------------------------------------------------- 7. Grafana dashboards
dashboards=(deploy/grafana/dashboards/*.json)
if [ ${#dashboards[@]} -eq 0 ]; then
  skip "dashboard-linter" "no deploy/grafana/dashboards/*.json yet"
else
  begin "dashboard-linter lint --strict"
  # The linter takes one dashboard per run; a .lint file next to the dashboards
  # (rule exclusions) is picked up by the linter itself.
  for d in "${dashboards[@]}"; do
    echo "--- $d"
    dashboard-linter lint --strict "$d"
  done
  pass "${#dashboards[@]} dashboard(s)"
fi

# ---------------------------------------------------------------- 8. deployment files
begin "deploy files (scripts/check-deploy.py)"
python3 scripts/check-deploy.py
pass

# ---------------------------------------------------------------- 9. end-to-end scripts
e2e=(tests/e2e/*.sh)
if [ ${#e2e[@]} -eq 0 ]; then
  skip "e2e" "no tests/e2e/*.sh yet"
else
  for t in "${e2e[@]}"; do
    begin "e2e $t"
    bash "$t"
    pass
  done
fi
shopt -u nullglob
