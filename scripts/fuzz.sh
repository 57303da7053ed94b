#!/usr/bin/env bash
# Fuzzes the event parser and the configuration loader with cargo-fuzz
# (libFuzzer, AddressSanitizer, nightly toolchain) for SECONDS each, both at
# once (one libFuzzer process per target, so two cores). Not run by CI.
#
#   scripts/fuzz.sh [SECONDS]      (default 600 per target)
#
# Targets (fuzz/fuzz_targets/, properties in fuzz/src/lib.rs):
#   event_parser   any bytes as one message: the direct scan and serde agree,
#                  and agree with std's UTF-8 check and serde_json; no panic
#   config_loader  any text as a configuration file: load and validate; no panic
#
# Corpora start from tests/fixtures (contract examples, generated lines,
# config/*.toml, tests/fixtures/fuzz/) and grow in fuzz/corpus/ (not in git).
# A crash leaves its input in fuzz/artifacts/<target>/: keep it under
# tests/fixtures/fuzz/<target>/ (tests/bad_input.rs runs the same checks on
# it), then fix the bug. Each run's summary is appended to
# target/fuzz-results.txt; the script fails if a target crashed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
name=fuzz
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
secs=${1:-600}
targets=(event_parser config_loader)

rustup run nightly rustc --version >/dev/null 2>&1 || die "no nightly toolchain (rustup toolchain install nightly)"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Seeds.
mkdir -p fuzz/corpus/event_parser fuzz/corpus/config_loader target
n=0
for f in tests/fixtures/contract/*.ndjson; do
  while IFS= read -r line; do
    n=$((n + 1))
    printf '%s' "$line" > "fuzz/corpus/event_parser/seed-contract-$n"
  done < "$f"
done
# generated lines: any build of the binary will do for seeds
[ -x target/release/salespulse ] || cargo build --release --locked --bin salespulse 2>&1 | tail -1
for style in compact crm; do
  target/release/salespulse gen --days 1 --teams 2 --reps-per-team 3 --broken 0.05 --style "$style" 2>/dev/null |
    head -200 | split -l 1 -a 3 - "fuzz/corpus/event_parser/seed-gen-$style-" || true
done
cp tests/fixtures/fuzz/event_parser/* fuzz/corpus/event_parser/
cp config/*.toml tests/fixtures/fuzz/config_loader/* fuzz/corpus/config_loader/

say "building the targets (nightly, AddressSanitizer)"
cargo +nightly fuzz build 2>&1 | tail -1

date=$(date -u +%Y-%m-%dT%H:%MZ)
load=$(cut -d' ' -f1-3 /proc/loadavg)
say "fuzzing ${targets[*]} for ${secs}s each, at once (load $load)"
pids=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/artifacts/$t"
  dict=()
  [ -f "fuzz/$t.dict" ] && dict=("-dict=fuzz/$t.dict")
  cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -max_len=4096 -timeout=10 \
    -print_final_stats=1 "${dict[@]}" > "target/fuzz-$t.log" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!targets[@]}"; do
  wait "${pids[$i]}" || failed=1
done

for t in "${targets[@]}"; do
  log=target/fuzz-$t.log
  # libFuzzer's last status line (cov: edges, ft: features, corp: corpus) and its totals
  done_line=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -E 's/^#[0-9]+[[:space:]]+[A-Z]+[[:space:]]+//; s/ lim:.*rss:/ rss:/; s/ L:.*//' || true)
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1)
  crashes=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
  line="$date $t ${secs}s load=[$load] execs=${execs:-?} ${done_line:-no status line (see $log)} crash/oom/timeout inputs=$crashes"
  echo "$line" | tee -a target/fuzz-results.txt
  [ "$crashes" = 0 ] || { failed=1; find "fuzz/artifacts/$t" -type f; }
done
[ "$failed" = 0 ] || die "a target crashed: keep the input under tests/fixtures/fuzz/<target>/ and fix it (logs: target/fuzz-*.log)"
say "no crash"
