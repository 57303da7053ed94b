#!/usr/bin/env bash
# Freshness: how long an event takes from being appended to the broker to
# being applied, i.e. visible to the next scrape of /metrics, at a steady
# rate. The events topic uses LogAppendTime, so a message's timestamp is the
# broker's append time; the engine measures append → applied for every
# message (salespulse_event_visible_latency_seconds, an HdrHistogram).
# `salespulse produce --rate` sends a generated stream at a steady rate to a
# running engine (wall clock, default settings); after the run the script
# reads the p50/p90/p99 from /metrics. What a dashboard sees adds the scrape
# interval and at most http.scrape_cache (1 s) to these figures.
#
#   scripts/bench-freshness.sh [RATE [SECONDS]]     (default 10000 events/s, 60 s)
#
# Uses KAFKA_BOOTSTRAP if set, else this checkout's broker (scripts/kafka.sh
# start; stopped afterwards if this script started it). Appends to
# target/bench-results.txt.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
name=bench-freshness
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
rate=${1:-10000} secs=${2:-60}
out=target/bench-results.txt
mkdir -p target
log() { echo "$*" | tee -a "$out"; }

cargo build --release --locked --bin salespulse 2>&1 | tail -1
bin=$root/target/release/salespulse
kafka_for_bench
work=$(mktemp -d)
pid=""
cleanup() {
  set +e
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ "$started" = 1 ] && scripts/kafka.sh stop >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

events=$((rate * secs))
# The realistic profile's mix, cut to the number of events the run needs
# (the stream ends today: with the wall clock nothing is late or future).
"$bin" gen --profile realistic -o "$work/all.ndjson" 2>/dev/null
head -n "$events" "$work/all.ndjson" > "$work/events.ndjson"
topic=fresh-$$-$RANDOM
scripts/kafka.sh topic "$topic" 4 --config message.timestamp.type=LogAppendTime >/dev/null 2>&1 \
  || die "could not create $topic with scripts/kafka.sh (is KAFKA_BOOTSTRAP this checkout's broker?)"
port=$(free_port)
cat > "$work/salespulse.toml" <<EOF
[kafka]
brokers = "$KAFKA_BOOTSTRAP"
topics = ["$topic"]
group_id = "$topic-group"
dlq_topic = "$topic-dlq"
checkpoint_topic = "$topic-ckpt"
[http]
listen = "127.0.0.1:$port"
[log]
level = "warn"
EOF
"$bin" run --config "$work/salespulse.toml" > /dev/null 2> "$work/engine.log" &
pid=$!
wait_for 60 "engine ready" status_is "http://127.0.0.1:$port/readyz" 200
say "producing $events events at $rate events/s"
"$bin" produce --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" --rate "$rate" "$work/events.ndjson" 2>&1 | tail -n 1
consumed() { local j; j=$(curl -fsS "http://127.0.0.1:$port/api/v1/status" 2>/dev/null) || { echo 0; return; }; j=${j#*\"consumed\":}; echo "${j%%[!0-9]*}"; }
consumed_all() { [ "$(consumed)" -ge "$events" ]; }
wait_for 120 "every event applied" consumed_all
curl -fsS "http://127.0.0.1:$port/metrics" > "$work/metrics.txt"
q() { awk -v q="$1" '$1 == "salespulse_event_visible_latency_seconds{quantile=\"" q "\"}" { printf "%.1f ms", $2 * 1000 }' "$work/metrics.txt"; }
n=$(awk '$1 == "salespulse_event_visible_latency_seconds_count" { print $2 }' "$work/metrics.txt")
log "## freshness ($(date -u +%Y-%m-%dT%H:%M:%SZ); $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg); broker on the same machine)"
log "append to the broker (LogAppendTime) → applied, at a steady $rate events/s for $secs s ($n events): p50 $(q 0.5), p90 $(q 0.9), p99 $(q 0.99)"
