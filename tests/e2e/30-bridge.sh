#!/usr/bin/env bash
# The webhook bridge end to end with the real broker:
#
#   1. `salespulse bridge` and `salespulse run` on a fresh topic; the first
#      half of a generated stream (with re-deliveries) is POSTed to
#      /v1/events in NDJSON batches: every batch 202 with all its events
#      accepted;
#   2. the broker is stopped (scripts/kafka.sh stop): the next batch, and a
#      single signed event, get 503 with Retry-After, never 2xx;
#   3. the broker is started again on the same data: the same batch sent
#      again (the CRM's retry) is 202, then the rest of the stream;
#   4. the last batch is delivered a second time (a CRM re-delivery);
#   5. the engine's sales_* series equal `salespulse replay` of the whole
#      stream: the retried batches count once, nothing is lost; the bridge
#      counted the unavailable events; SIGTERM stops it with exit 0.
#
# Stops and restarts the broker, so it only runs against this checkout's own
# broker (as tests/e2e/20-broker-outage.sh); with another one it skips
# loudly. The broker is restarted on exit whatever happens.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
name=$(basename "$0")
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_own_broker_or_skip
bin=$root/target/release/salespulse
[ -x "$bin" ] || die "$bin not built (cargo build --release)"

work=$(mktemp -d /tmp/salespulse-bridge.XXXXXX)
engine_pid=""
bridge_pid=""
cleanup() {
  local rc=$?
  set +e
  [ -n "$bridge_pid" ] && kill "$bridge_pid" 2>/dev/null && wait "$bridge_pid" 2>/dev/null
  [ -n "$engine_pid" ] && kill "$engine_pid" 2>/dev/null && wait "$engine_pid" 2>/dev/null
  if ! scripts/kafka.sh status >/dev/null 2>&1; then
    say "restarting the broker"
    scripts/kafka.sh start >/dev/null || echo "[$name] could not restart the broker" >&2
  fi
  if [ "$rc" != 0 ]; then
    for f in bridge.log engine.log; do
      [ -f "$work/$f" ] && { echo "---- last lines of $f"; tail -n 30 "$work/$f"; }
    done
  fi
  if [ -n "${KEEP_E2E:-}" ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT

topic=bridge-e2e-$$-$RANDOM
port=$(free_port)
bport=$(free_port)
engine=http://127.0.0.1:$port
bridge=http://127.0.0.1:$bport
token=e2e-token-$RANDOM$RANDOM

"$bin" gen --seed 44 --teams 3 --reps-per-team 4 --days 10 --redeliver 0.02 --disorder-s 60 -o "$work/events.ndjson" 2>/dev/null
total=$(wc -l < "$work/events.ndjson")
"$bin" replay -q "$work/events.ndjson" > "$work/want.prom" 2>/dev/null
split -l 500 -d -a 4 "$work/events.ndjson" "$work/batch-"
batches=("$work"/batch-*)
nb=${#batches[@]}
cut=$((nb / 2))
say "$total events in $nb batches; the broker goes away before batch $cut"

scripts/kafka.sh topic "$topic" 3 >/dev/null
engine_config "$work/engine.toml" "$topic" "$port"
"$bin" run --config "$work/engine.toml" > /dev/null 2> "$work/engine.log" &
engine_pid=$!
bridge_config "$work/bridge.toml" "$topic" "$bport" "$token" 3s
"$bin" bridge --config "$work/bridge.toml" > /dev/null 2> "$work/bridge.log" &
bridge_pid=$!
wait_for 60 "bridge ready" status_is "$bridge/readyz" 200

# post FILE: POSTs an NDJSON batch; prints the status code, keeps headers and body.
post() {
  curl -s -o "$work/answer.json" -D "$work/answer.headers" -w '%{http_code}' \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/x-ndjson' --data-binary @"$1" "$bridge/v1/events"
}
accepted_all() {
  python3 - "$work/answer.json" "$(wc -l < "$1")" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))
assert a["accepted"] == int(sys.argv[2]) and a["rejected"] == [], a
PY
}

for ((i = 0; i < cut; i++)); do
  code=$(post "${batches[$i]}")
  [ "$code" = 202 ] || die "batch $i: status $code, want 202: $(cat "$work/answer.json")"
  accepted_all "${batches[$i]}" || die "batch $i: not every event accepted"
done
say "first $cut batches acknowledged"

say "stopping the broker"
scripts/kafka.sh stop >/dev/null
code=$(post "${batches[$cut]}")
[ "$code" = 503 ] || die "with the broker down a batch got $code (want 503): $(cat "$work/answer.json")"
grep -qi '^retry-after: 7' "$work/answer.headers" || die "503 without Retry-After: $(cat "$work/answer.headers")"
head -n 1 "${batches[$cut]}" > "$work/one.json"
code=$("$bin" sign --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw "$work/one.json" \
  | curl -s -o /dev/null -w '%{http_code}' -H @- -H 'Content-Type: application/json' --data-binary @"$work/one.json" "$bridge/v1/events")
[ "$code" = 503 ] || die "with the broker down a single signed event got $code (want 503)"
say "broker down: 503 with Retry-After for a batch and for a single event"

say "starting the broker again"
scripts/kafka.sh start >/dev/null
retry=0
until [ "$(post "${batches[$cut]}")" = 202 ]; do
  retry=$((retry + 1))
  [ "$retry" -lt 30 ] || die "the retried batch is still refused after the broker came back: $(cat "$work/answer.json")"
  sleep 2
done
accepted_all "${batches[$cut]}" || die "retried batch: not every event accepted"
say "the retried batch is acknowledged (after $retry refusals)"
for ((i = cut + 1; i < nb; i++)); do
  code=$(post "${batches[$i]}")
  [ "$code" = 202 ] || die "batch $i: status $code, want 202"
done
# A CRM re-delivering an acknowledged batch changes nothing (event_id dedup;
# the last batch: within the 7-day dedup horizon of the engine's clock).
[ "$(post "${batches[$((nb - 1))]}")" = 202 ] || die "re-delivery of the last batch refused"

wait_for 240 "engine shows replay's KPIs of all $total events (the retried batch once)" same_kpis "$work/want.prom" "$engine/metrics"
unavailable=$(curl -fsS "$bridge/metrics" | sed -n 's/^salespulse_bridge_events_total{result="unavailable"} //p')
[ "${unavailable:-0}" -ge 501 ] || die "the bridge counted ${unavailable:-0} unavailable events (want >= 501)"

kill -TERM "$bridge_pid"
rc=0
wait "$bridge_pid" || rc=$?
bridge_pid=""
[ "$rc" = 0 ] || die "bridge exited $rc on SIGTERM (want 0)"
say "passed"
