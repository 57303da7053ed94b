#!/usr/bin/env bash
# Sizing benchmark (docs/platform.md, "Sizing"): for an org of R reps in
# teams of 10, and for each exposition profile, a real `salespulse run` on a
# real Kafka broker drains 33 days of generated events (event clock: the
# windows stay where the data ends, a Friday at 18:00), then a real
# Prometheus (Debian's `prometheus`) scrapes it every 15 s for a few minutes.
# Reported per (reps, profile): sales_* series, bytes per scrape, mean render
# time, the engine's RSS, and Prometheus' head series and resident memory
# (its own process_resident_memory_bytes) at the end.
# Results are appended to target/bench-results.txt.
#
#   scripts/bench-series.sh [--reps "500 5000"] [--profiles "config/salespulse.toml config/large-org.toml"]
#                           [--minutes 5] [--partitions 4]
#
# Uses KAFKA_BOOTSTRAP if set, else this checkout's broker (scripts/kafka.sh
# start; stopped afterwards if this script started it). 5,000 reps are ~7.8 M
# events (1.4 GB of NDJSON in a temporary directory) and a Prometheus of a
# few GB: run it on an otherwise quiet machine.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
name=bench-series
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

reps_list="500 5000" profiles="config/salespulse.toml config/large-org.toml" minutes=5 partitions=4
while [ $# -gt 0 ]; do
  case $1 in
    --reps) reps_list=$2; shift 2 ;;
    --profiles) profiles=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    *) die "unknown option $1 (see the header of $0)" ;;
  esac
done
command -v prometheus >/dev/null || die "prometheus not found (scripts/install-deps.sh installs it)"
out=target/bench-results.txt
mkdir -p target
log() { echo "$*" | tee -a "$out"; }

cargo build --release --locked --bin salespulse 2>&1 | tail -1
bin=$root/target/release/salespulse
kafka_for_bench
work=$(mktemp -d)
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  set +e
  stop_all
  [ "$started" = 1 ] && scripts/kafka.sh stop >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# prom_value URL QUERY: the first sample's value of an instant query.
prom_value() {
  curl -fsS --data-urlencode "query=$2" "$1/api/v1/query" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "nan")'
}

log ""
log "== bench-series $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git rev-parse --short HEAD) load: $(cut -d' ' -f1-3 /proc/loadavg) cores: $(nproc)"
log "reps | profile | sales_* series | bytes/scrape | render ms (mean) | engine RSS MiB | Prometheus head series | Prometheus RSS MiB (after ${minutes} min at 15 s)"
for reps in $reps_list; do
  teams=$(( (reps + 9) / 10 ))
  events_file=$work/events-$reps.ndjson
  "$bin" gen --seed 5 --teams "$teams" --reps-per-team 10 --days 33 --start 2026-10-05T00:00:00Z -o "$events_file" 2>/dev/null
  events=$(wc -l < "$events_file")
  topic=series-$$-$reps
  scripts/kafka.sh topic "$topic" "$partitions" >/dev/null 2>&1 || die "could not create $topic"
  say "$reps reps ($teams teams): producing $events events to $topic"
  "$bin" produce --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" "$events_file" 2>/dev/null
  rm -f "$events_file"
  for profile in $profiles; do
    tag=$(basename "$profile" .toml)
    port=$(free_port) prom_port=$(free_port)
    cfg=$work/engine-$tag.toml
    engine_config "$cfg" "$topic" "$port" 30 "warn"
    sed -i "s/^group_id = .*/group_id = \"$topic-$tag\"/; s/^checkpoint_topic = .*/checkpoint_topic = \"$topic-$tag-ckpt\"/" "$cfg"
    [ "$profile" = config/salespulse.toml ] || cat "$profile" >> "$cfg"
    "$bin" run --config "$cfg" > /dev/null 2> "$work/engine-$tag.log" &
    engine_pid=$!
    pids+=("$engine_pid")
    engine=http://127.0.0.1:$port
    consumed() { curl -fsS "$engine/api/v1/status" | python3 -c "import json,sys; sys.exit(json.load(sys.stdin)['consumed'] < $events)"; }
    wait_for 1800 "engine ($tag) consumed $events events" consumed
    curl -fsS "$engine/metrics" > "$work/m.txt"
    series=$(grep -c '^sales_' "$work/m.txt")
    bytes=$(wc -c < "$work/m.txt")
    mkdir -p "$work/prom-$tag"
    cat > "$work/prom-$tag/prometheus.yml" <<EOF
global: { scrape_interval: 15s, scrape_timeout: 14s }
scrape_configs:
  - job_name: salespulse
    static_configs: [{ targets: ["127.0.0.1:$port"] }]
  - job_name: prometheus
    static_configs: [{ targets: ["127.0.0.1:$prom_port"] }]
EOF
    prometheus --config.file="$work/prom-$tag/prometheus.yml" --storage.tsdb.path="$work/prom-$tag/data" \
      --web.listen-address="127.0.0.1:$prom_port" > "$work/prom-$tag.log" 2>&1 &
    pids+=($!)
    prom=http://127.0.0.1:$prom_port
    wait_for 60 "prometheus ready" curl -fsS -o /dev/null "$prom/-/ready"
    sleep $((minutes * 60))
    head=$(prom_value "$prom" 'prometheus_tsdb_head_series')
    prom_rss=$(prom_value "$prom" 'process_resident_memory_bytes{job="prometheus"}')
    up=$(prom_value "$prom" 'up{job="salespulse"}')
    scrape_s=$(prom_value "$prom" 'scrape_duration_seconds{job="salespulse"}')
    curl -fsS "$engine/metrics" > "$work/m.txt"
    render_ms=$(awk '/^salespulse_render_duration_seconds_sum/ { s = $2 } /^salespulse_render_duration_seconds_count/ { n = $2 }
                     END { printf "%.0f", n ? 1000 * s / n : 0 }' "$work/m.txt")
    engine_rss=$(awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$engine_pid/status")
    log "$reps | $tag | $series | $bytes | $render_ms | $engine_rss | ${head%.*} | $(python3 -c "print(round(float('$prom_rss') / 2**20))") (up=$up, scrape ${scrape_s}s)"
    stop_all
  done
done
