#!/usr/bin/env bash
# Load test of `salespulse bridge` with a real HTTP load tool (Debian's
# `wrk`, with a Lua script) on loopback, against the real broker:
#
#   1. batches: POST /v1/events with JSON arrays of 100 generated events;
#   2. single events: one event per request, as CRMs send webhooks;
#
# each for DURATION seconds, with BATCH_CONNS and SINGLE_CONNS connections. Reported:
# events/s, requests/s, p50/p90/p99 latency (wrk's), non-202 answers; then
# the topic is checked to hold exactly the events the bridge accepted (its
# salespulse_bridge_events_total{result="accepted"}), which are at least
# those of the 202s wrk saw: wrk stops in the middle of its last requests,
# whose produce the bridge still completes. Results are appended to
# target/bench-results.txt; README quotes them.
#
#   scripts/bench-bridge.sh [DURATION_S BATCH_CONNS SINGLE_CONNS]     (default 20 8 64)
#
# Uses KAFKA_BOOTSTRAP if set, else this checkout's broker (scripts/kafka.sh
# start; stopped afterwards if this script started it). Installs wrk with
# apt-get when missing (as root; otherwise it says what to install).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
duration=${1:-20} batch_conns=${2:-8} single_conns=${3:-64}
out=target/bench-results.txt
mkdir -p target
name=bench-bridge
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
log() { echo "$*" | tee -a "$out"; }

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    say "installing wrk (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; } >/dev/null || die "apt-get install wrk failed"
  else
    die "needs wrk: sudo apt-get install wrk"
  fi
fi

bench_setup

# Bodies: distinct generated events (their own ids), cycled by wrk.
"$bin" gen --seed 5 --teams 20 --reps-per-team 10 --days 30 --limit 200000 -o "$work/events.ndjson" 2>/dev/null
python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
lines = open(f"{work}/events.ndjson").read().splitlines()
with open(f"{work}/batches.txt", "w") as f:
    for i in range(0, len(lines) - 99, 100):
        f.write("[" + ",".join(lines[i:i + 100]) + "]\n")
with open(f"{work}/singles.txt", "w") as f:
    f.write("\n".join(lines[:50000]) + "\n")
PY

cat > "$work/post.lua" <<'LUA'
-- Cycles through the bodies of BODIES (one per line), counts 202 answers.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  bodies = {}
  for line in io.lines(os.getenv("BODIES")) do bodies[#bodies + 1] = line end
  i = math.random(#bodies)
  accepted, other = 0, 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
end
function request()
  i = i % #bodies + 1
  return wrk.format(nil, "/v1/events", nil, bodies[i])
end
function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("accepted"); o = o + t:get("other") end
  io.write(string.format("RESULT accepted_requests=%d other_requests=%d seconds=%.2f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f\n",
    a, o, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000))
end
LUA

topic=bench-bridge-$$-$RANDOM
scripts/kafka.sh topic "$topic" 4 >/dev/null
port=$(free_port)
token=bench-$RANDOM$RANDOM
bridge_config "$work/bridge.toml" "$topic" "$port" "$token" 10s warn
"$bin" bridge --config "$work/bridge.toml" > /dev/null 2> "$work/bridge.log" &
pid=$!
wait_for 60 "bridge ready" status_is "http://127.0.0.1:$port/readyz" 200

expected=0
run_one() { # label bodies events_per_request connections
  local r conns=$4
  r=$(BODIES=$2 TOKEN=$token wrk -t 2 -c "$conns" -d "${duration}s" --timeout 30s --latency -s "$work/post.lua" "http://127.0.0.1:$port" | tee "$work/$1.wrk" | sed -n 's/^RESULT //p')
  eval "$r"  # accepted_requests other_requests seconds p50_ms p90_ms p99_ms
  expected=$((expected + accepted_requests * $3))
  log "bridge $1: $(awk -v a="$accepted_requests" -v s="$seconds" -v n="$3" 'BEGIN { printf "%.0f events/s, %.0f requests/s", a * n / s, a / s }'), p50 ${p50_ms} ms, p90 ${p90_ms} ms, p99 ${p99_ms} ms, non-202 answers ${other_requests} ($conns connections, ${duration} s)"
}

log "=== $(date -u +%FT%TZ) scripts/bench-bridge.sh $duration $batch_conns $single_conns ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), broker on the same machine)"
run_one "batches of 100" "$work/batches.txt" 100 "$batch_conns"
run_one "single events" "$work/singles.txt" 1 "$single_conns"

# The topic holds exactly the accepted events.
sleep 2
accepted=$(curl -fsS "http://127.0.0.1:$port/metrics" | sed -n 's/^salespulse_bridge_events_total{result="accepted"} //p')
got=$(scripts/kafka.sh messages "$topic")
if [ "$got" = "$accepted" ] && [ "$got" -ge "$expected" ]; then
  log "bridge topic check: $got messages = the $accepted events the bridge accepted (wrk saw the 202s of $expected)"
else
  log "bridge topic check FAILED: $got messages, the bridge accepted $accepted, wrk saw the 202s of $expected"
  exit 1
fi
