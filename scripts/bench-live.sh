#!/usr/bin/env bash
# End-to-end benchmark of the live engine through a real Kafka broker:
# a generated stream is produced to a fresh topic, then `salespulse run`
# (event clock) consumes it from the start; measured are the time to zero lag
# (events/s including Kafka fetch, parsing, folding and the periodic
# transactional checkpoints), the scrape (render) time of /metrics and the
# checkpoint durations the engine reports. Results are appended to
# target/bench-results.txt; README quotes them.
#
#   scripts/bench-live.sh [TEAMS REPS_PER_TEAM DAYS PARTITIONS]   (default 20 10 30 4)
#
# Uses KAFKA_BOOTSTRAP if set, else this checkout's broker (scripts/kafka.sh
# start; left running if it was running, stopped afterwards if this script
# started it).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
teams=${1:-20} reps=${2:-10} days=${3:-30} partitions=${4:-4}
out=target/bench-results.txt
mkdir -p target
log() { echo "$*" | tee -a "$out"; }
name=bench-live
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

bench_setup

topic=bench-$$-$RANDOM
"$bin" gen --teams "$teams" --reps-per-team "$reps" --days "$days" --redeliver 0.01 --disorder-s 60 -o "$work/events.ndjson" 2>/dev/null
events=$(wc -l < "$work/events.ndjson")
scripts/kafka.sh topic "$topic" "$partitions" >/dev/null 2>&1 || {
  # a broker that is not this checkout's: create the topic with the engine's admin client path
  echo "bench-live: could not create $topic with scripts/kafka.sh (is KAFKA_BOOTSTRAP this checkout's broker?)" >&2; exit 1; }
t0=$(date +%s.%N)
"$bin" produce --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" "$work/events.ndjson" 2>/dev/null
t1=$(date +%s.%N)

port=$(free_port)
engine_config "$work/salespulse.toml" "$topic" "$port" 10 warn
t2=$(date +%s.%N)
"$bin" run --config "$work/salespulse.toml" > /dev/null 2> "$work/engine.log" &
pid=$!
consumed() {
  curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null | awk '
    /^salespulse_events_total\{/ { n += $2 } END { print n + 0 }'
}
until [ "$(consumed)" -ge "$events" ]; do
  kill -0 "$pid" 2>/dev/null || { tail -n 20 "$work/engine.log" >&2; echo "bench-live: engine died" >&2; exit 1; }
  sleep 0.2
done
t3=$(date +%s.%N)
sleep 12   # let two checkpoints happen
TIMEFORMAT=%R
scrape=$( { time curl -fsS -o "$work/metrics.txt" "http://127.0.0.1:$port/metrics"; } 2>&1 )
series=$(grep -vc '^#' "$work/metrics.txt")
ckpt=$(awk '/^salespulse_checkpoint_duration_seconds_(sum|count)/ { v[$1] = $2 } END {
  if (v["salespulse_checkpoint_duration_seconds_count"] > 0)
    printf "%.1f ms mean over %d", 1000 * v["salespulse_checkpoint_duration_seconds_sum"] / v["salespulse_checkpoint_duration_seconds_count"], v["salespulse_checkpoint_duration_seconds_count"] }' "$work/metrics.txt")
state=$(awk '/^salespulse_state_bytes / { printf "%.1f MiB", $2 / 1048576 }' "$work/metrics.txt")

log "## live engine through Kafka ($(date -u +%Y-%m-%dT%H:%M:%SZ); $(nproc) cores, broker on the same machine)"
log "stream: $events events ($teams teams x $reps reps, $days days), topic of $partitions partitions"
log "produce: $(python3 -c "print(f'{$events / ($t1 - $t0):.0f}')") events/s (salespulse produce, idempotent, lz4)"
log "consume to zero lag (start-up, group join and restore included): $(python3 -c "print(f'{$t3 - $t2:.1f} s = {$events / ($t3 - $t2):.0f} events/s')")"
log "scrape of /metrics: $series series in ${scrape} s; checkpoint: ${ckpt:-none}; state: ${state:-?}"
