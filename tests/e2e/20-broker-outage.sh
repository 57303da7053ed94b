#!/usr/bin/env bash
# Broker outage with the real broker: the engine keeps serving its last KPIs,
# /readyz turns 503 while the broker is down, it reconnects by itself when
# the broker is back, and nothing is lost or counted twice.
#
#   1. produce the first half of a stream, run the engine to zero lag;
#   2. stop the broker (scripts/kafka.sh stop): /readyz 503, /metrics still
#      200 with every event of the first half;
#   3. start the broker again on the same data, produce the second half:
#      the engine's sales_* series equal `salespulse replay` of the whole
#      stream, /readyz is 200 again; SIGTERM exits 0.
#
# Stops and restarts the broker, so it only runs against this checkout's own
# broker (the one scripts/test.sh starts); with another one (KAFKA_BOOTSTRAP
# pointing elsewhere) it skips loudly. The broker is restarted on exit
# whatever happens.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
name=$(basename "$0")
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_own_broker_or_skip
bin=$root/target/release/salespulse
[ -x "$bin" ] || die "$bin not built (cargo build --release)"

work=$(mktemp -d /tmp/salespulse-outage.XXXXXX)
engine_pid=""
cleanup() {
  local rc=$?
  set +e
  [ -n "$engine_pid" ] && kill "$engine_pid" 2>/dev/null && wait "$engine_pid" 2>/dev/null
  if ! scripts/kafka.sh status >/dev/null 2>&1; then
    say "restarting the broker"
    scripts/kafka.sh start >/dev/null || echo "[$name] could not restart the broker" >&2
  fi
  if [ "$rc" != 0 ] && [ -f "$work/engine.log" ]; then
    echo "---- last lines of engine.log"; tail -n 40 "$work/engine.log"
  fi
  if [ -n "${KEEP_E2E:-}" ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT

port=$(free_port)
engine=http://127.0.0.1:$port
topic=outage-$$-$RANDOM
"$bin" gen --seed 33 --teams 4 --reps-per-team 4 --days 12 --redeliver 0.02 --disorder-s 120 -o "$work/events.ndjson" 2>/dev/null
total=$(wc -l < "$work/events.ndjson")
half=$((total / 2))
head -n "$half" "$work/events.ndjson" > "$work/first.ndjson"
tail -n +"$((half + 1))" "$work/events.ndjson" > "$work/second.ndjson"
"$bin" replay -q "$work/events.ndjson" > "$work/want.prom" 2>/dev/null
"$bin" replay -q "$work/first.ndjson" > "$work/want-first.prom" 2>/dev/null

scripts/kafka.sh topic "$topic" 2 >/dev/null
"$bin" produce --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" "$work/first.ndjson" 2>/dev/null
engine_config "$work/salespulse.toml" "$topic" "$port"
"$bin" run --config "$work/salespulse.toml" > /dev/null 2> "$work/engine.log" &
engine_pid=$!

# Every sales_* series of the engine equals the reference (1e-9 relative).
same_as() { same_kpis "$1" "$engine/metrics"; }

wait_for 120 "engine ready" status_is "$engine/readyz" 200
wait_for 180 "engine shows replay's KPIs of the first half ($half events)" same_as "$work/want-first.prom"

say "stopping the broker"
scripts/kafka.sh stop >/dev/null
wait_for 120 "/readyz is 503 while the broker is down" status_is "$engine/readyz" 503
status_is "$engine/healthz" 200 || die "/healthz is not 200 during the outage"
same_as "$work/want-first.prom" || die "/metrics does not serve the last KPIs during the outage"
say "/metrics still serves the first half's KPIs during the outage"
sleep 5

say "starting the broker again"
scripts/kafka.sh start >/dev/null
"$bin" produce --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" "$work/second.ndjson" 2>/dev/null
wait_for 240 "engine shows replay's KPIs of all $total events after the outage" same_as "$work/want.prom"
wait_for 60 "/readyz is 200 again" status_is "$engine/readyz" 200

kill -TERM "$engine_pid"
rc=0
wait "$engine_pid" || rc=$?
engine_pid=""
[ "$rc" = 0 ] || die "engine exited $rc on SIGTERM (want 0)"
say "passed"
