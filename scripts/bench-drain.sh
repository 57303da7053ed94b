#!/usr/bin/env bash
# Live drain benchmark: how fast `salespulse run` empties a backlog from a
# real Kafka broker (on the same machine). A generated stream is produced to a
# fresh topic first; then the engine starts (event clock) and is timed from
# its start to zero lag on every partition. Reported: events/s, CPU time per
# thread (by thread name), time each thread waited for a core or blocked,
# the engine's peak RSS, and the machine's idle share during the drain.
# Results are appended to target/bench-results.txt (README quotes them).
#
#   scripts/bench-drain.sh [options]
#     --events FILE      NDJSON to produce (default: generated, see --gen)
#     --gen "ARGS"       salespulse gen arguments (default: the realistic
#                        profile, "--profile realistic")
#     --partitions N     topic partitions (default 4)
#     --workers "1 2"    fold worker counts to measure, one run each (default "1 2")
#     --scrapers N       concurrent /metrics clients hammering the engine
#                        during the drain (wrk, 2 threads, with the
#                        complete-response counter of tests/fixtures/wrk/; default 0)
#   environment: BENCH_WRAP="perf record -F 999 -g -o drain.perf --" runs
#                        the engine under a profiler
#
# Uses KAFKA_BOOTSTRAP if set, else this checkout's broker (scripts/kafka.sh
# start; stopped afterwards if this script started it).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
name=bench-drain
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

events_file="" gen_args="--profile realistic" partitions=4 workers="1 2" scrapers=0
while [ $# -gt 0 ]; do
  case $1 in
    --events) events_file=$2; shift 2 ;;
    --gen) gen_args=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --scrapers) scrapers=$2; shift 2 ;;
    *) die "unknown option $1 (see the header of $0)" ;;
  esac
done
out=target/bench-results.txt
mkdir -p target
log() { echo "$*" | tee -a "$out"; }

cargo build --release --locked --bin salespulse 2>&1 | tail -1
bin=$root/target/release/salespulse
kafka_for_bench
if [ "$scrapers" -gt 0 ] && ! command -v wrk >/dev/null; then
  die "--scrapers needs wrk (apt-get install wrk; scripts/install-deps.sh installs it)"
fi
work=$(mktemp -d)
pid="" scraper_pid="" scrapes="" scrape_rate=""
cleanup() {
  set +e
  [ -n "$scraper_pid" ] && kill "$scraper_pid" 2>/dev/null
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ "$started" = 1 ] && scripts/kafka.sh stop >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "$events_file" ]; then
  events_file=$work/events.ndjson
  # shellcheck disable=SC2086
  "$bin" gen $gen_args -o "$events_file" 2>/dev/null
fi
events=$(wc -l < "$events_file")
bytes=$(wc -c < "$events_file")
topic=drain-$$-$RANDOM
scripts/kafka.sh topic "$topic" "$partitions" >/dev/null 2>&1 || die "could not create $topic with scripts/kafka.sh (is KAFKA_BOOTSTRAP this checkout's broker?)"
say "producing $events events ($((bytes / 1048576)) MiB) to $topic ($partitions partitions)"
"$bin" produce --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" "$events_file" 2>/dev/null

# Idle share of the machine between two /proc/stat readings.
cpu_idle() { awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }

log "## live drain ($(date -u +%Y-%m-%dT%H:%M:%SZ); $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg); broker on the same machine)"
log "stream: $events events, $((bytes / events)) bytes each on average ($gen_args${events_file:+}), topic of $partitions partitions"
for w in $workers; do
  port=$(free_port)
  group=$topic-w$w
  cat > "$work/salespulse.toml" <<EOF
[kafka]
brokers = "$KAFKA_BOOTSTRAP"
topics = ["$topic"]
group_id = "$group"
dlq_topic = "$topic-dlq"
checkpoint_topic = "$topic-ckpt"
checkpoint_interval_s = 10
fold_workers = $w
[http]
listen = "127.0.0.1:$port"
[clock]
mode = "event"
[log]
level = "warn"
EOF
  read -r idle0 total0 < <(cpu_idle)
  t0=$(date +%s.%N)
  # BENCH_WRAP profiles the engine, e.g. BENCH_WRAP="perf record -F 999 -g -o drain.perf --"
  # (the per-thread figures are then the wrapper's, not the engine's).
  # shellcheck disable=SC2086
  ${BENCH_WRAP:-} "$bin" run --config "$work/salespulse.toml" > /dev/null 2> "$work/engine.log" &
  pid=$!
  if [ "$scrapers" -gt 0 ]; then
    wait_for 60 "engine serving" status_is "http://127.0.0.1:$port/healthz" 200
    wrk -t 2 -c "$scrapers" -d 10m -s "$root/tests/fixtures/wrk/complete-metrics.lua" "http://127.0.0.1:$port/metrics" > "$work/wrk.txt" 2>&1 &
    scraper_pid=$!
  fi
  # zero lag on every partition: consumed == produced
  # /api/v1/status: progress without rendering the KPIs (polling /metrics
  # ten times a second would cost the engine a core's share of renders)
  consumed() { local j; j=$(curl -fsS "http://127.0.0.1:$port/api/v1/status" 2>/dev/null) || { echo 0; return; }; j=${j#*\"consumed\":}; echo "${j%%[!0-9]*}"; }
  until [ "$(consumed)" -ge "$events" ]; do
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$work/engine.log" >&2; die "engine died"; }
    sleep 0.1
  done
  t1=$(date +%s.%N)
  read -r idle1 total1 < <(cpu_idle)
  if [ -n "$scraper_pid" ]; then
    # wrk prints its summary (and the lua counters) on SIGINT
    kill -INT "$scraper_pid" 2>/dev/null || true
    wait "$scraper_pid" 2>/dev/null || true
    scraper_pid=""
    scrapes=$(grep -E '^complete=' "$work/wrk.txt" | tail -1)
    scrape_rate=$(awk '/^Requests\/sec/ { print $2 }' "$work/wrk.txt")
  fi
  secs=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
  rss=$(awk '/^VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$pid/status")
  hz=$(getconf CLK_TCK)
  # per thread: name, CPU s (user+sys), waiting for a core s (schedstat)
  threads=$(for t in /proc/"$pid"/task/*; do
      comm=$(cat "$t/comm")
      read -r -a st < <(sed 's/.*) //' "$t/stat")
      cpu=$(( st[11] + st[12] ))
      read -r _ rq _ < "$t/schedstat"
      echo "$comm $cpu $rq"
    done | awk -v hz="$hz" -v secs="$secs" '{ c[$1] += $2 / hz; q[$1] += $3 / 1e9; n[$1]++ }
      END { for (k in c) if (c[k] >= 0.05) {
              b = n[k] * secs - c[k] - q[k]; if (b < 0) b = 0
              printf "%s%s: %.2f s CPU, %.2f s waiting for a core, %.2f s blocked or idle\n", k, (n[k] > 1 ? " (x" n[k] ")" : ""), c[k], q[k], b } }' | sort -t: -k2 -rn)
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  idle=$(python3 -c "print(f'{100 * ($idle1 - $idle0) / max(1, $total1 - $total0):.0f}')")
  log "fold_workers = $w: $secs s from start to zero lag = $(python3 -c "print(f'{$events / ($t1 - $t0):,.0f}')") events/s; machine idle ${idle} %; peak RSS $rss${scrapers:+; $scrapers concurrent /metrics clients}${scrapes:+ ($scrapes, ${scrape_rate:-?} requests/s)}"
  while read -r line; do [ -n "$line" ] && log "  $line"; done <<< "$threads"
done
