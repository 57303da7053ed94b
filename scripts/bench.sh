#!/usr/bin/env bash
# Reproducible benchmarks: criterion benches of the pure core plus the
# end-to-end replay throughput of a generated stream through the release
# binary. Results go to target/bench-results.txt; README quotes them.
#
#   scripts/bench.sh            # everything (~10 minutes on 2 cores)
#   scripts/bench.sh quick      # shorter measurement times
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-full}
measure=10
[ "$mode" = quick ] && measure=3
out=target/bench-results.txt
mkdir -p target
: > "$out"
log() { echo "$*" | tee -a "$out"; }

log "# salespulse benchmarks $(date -u +%Y-%m-%dT%H:%M:%SZ)"
log "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), rustc $(rustc --version | cut -d' ' -f2)"

cargo build --release --locked --bin salespulse 2>&1 | tail -1
bin=target/release/salespulse

log "## criterion: fold (events/s, one core)"
cargo bench --locked --bench fold -- --warm-up-time 2 --measurement-time "$measure" 2>&1 | grep -E 'fold bench|time:|thrpt:|^fold/' | tee -a "$out"

log "## criterion: render"
cargo bench --locked --bench render -- --warm-up-time 1 --measurement-time "$measure" 2>&1 | grep -E 'render bench|time:|thrpt:|^render/' | tee -a "$out"

log "## state size per active rep"
cargo bench --locked --bench state_size 2>&1 | grep -E 'state size|bytes' | tee -a "$out"

log "## end to end: gen | replay (release binary, one core for replay)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" gen --teams 20 --reps-per-team 10 --days 30 --redeliver 0.01 --disorder-s 60 > "$tmp/events.ndjson" 2>/dev/null
lines=$(wc -l < "$tmp/events.ndjson")
bytes=$(stat -c %s "$tmp/events.ndjson")
log "stream: $lines events, $bytes bytes"
for i in 1 2 3; do
  "$bin" replay "$tmp/events.ndjson" 2>&1 >/dev/null | grep -o 'events_per_second=[0-9]*' | tee -a "$out"
done
log "results in $out"
