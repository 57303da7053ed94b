#!/usr/bin/env bash
# The page in a real browser (Debian's headless chromium):
#   1. the demo engine (embedded broker, its laggard rep-na-ent-03) with a
#      long scrape cache, so /metrics, /api/v1/kpis and the page all read one
#      render; chromium loads / and runs its script (--virtual-time-budget),
#      and the dumped DOM is checked against /api/v1/kpis fetched before and
#      after (tests/e2e/page_dom.py): every funnel, leaderboard,
#      below-benchmark and health number equals the JSON, the displayed
#      counts read as the JSON's, the below-benchmark list names the laggard;
#   2. `salespulse replay --report` of a generated export with a laggard,
#      duplicates and broken lines: chromium renders the file (no server),
#      its DOM equals the embedded document and replay summary, and the
#      embedded documents equal what `replay` prints;
#   3. a screenshot of each (and of the live page at phone width); with
#      SCREENSHOTS=docs/img they are written there (README shows them).
# Loopback only; every process it starts is stopped on exit (KEEP_E2E=1
# keeps the work dir).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
name=$(basename "$0")
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
bin=$root/target/release/salespulse
[ -x "$bin" ] || die "$bin not built (cargo build --release)"
e2e_needs chromium curl python3

e2e_workdir page engine.log chromium.log

# Headless chromium as root (CI) needs --no-sandbox; its own profile dir in
# the work dir keeps runs apart.
browse() {
  chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars --no-first-run \
    --user-data-dir="$work/chromium-profile" --virtual-time-budget=5000 "$@" 2>> "$work/chromium.log"
}

# ---------------------------------------------------------------- 1. live page
port=$(free_port)
cat > "$work/salespulse.toml" <<EOT
[http]
listen = "127.0.0.1:$port"
scrape_cache = "600s"
[demo]
history_days = 20
events_per_second = 20
laggard = "1:2"
[log]
level = "info,rdkafka=warn"
EOT
"$bin" run --config "$work/salespulse.toml" > /dev/null 2> "$work/engine.log" &
pids+=($!)
base=http://127.0.0.1:$port
wait_for 60 "engine ready" status_is "$base/readyz" 200
# The first KPI render is kept for 600 s: wait until the history is consumed
# (the feeder logs how many events it produced; /api/v1/status renders nothing).
history_sent() { grep 'produced the generated history' "$work/engine.log" | grep -o 'events=[0-9]*' | head -n 1 | cut -d= -f2; }
history_produced() { [ -n "$(history_sent)" ]; }
wait_for 120 "the demo history produced" history_produced
history_consumed() {
  local want
  want=$(history_sent)
  curl -fsS "$base/api/v1/status" | python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin)['consumed'] >= $want else 1)"
}
wait_for 120 "the history consumed" history_consumed
curl -fsS "$base/api/v1/kpis" > "$work/before.json"
browse --dump-dom "$base/" > "$work/live.html"
curl -fsS "$base/api/v1/kpis" > "$work/after.json"
cmp -s "$work/before.json" "$work/after.json" || die "/api/v1/kpis changed while chromium loaded the page (the scrape cache expired?)"
python3 tests/e2e/page_dom.py "$work/live.html" "$work/before.json" na-ent rep-na-ent-03
say "live page: DOM equals /api/v1/kpis"
browse --window-size=1280,2200 --screenshot="$work/page-live.png" "$base/" > /dev/null
browse --window-size=390,1600 --screenshot="$work/page-phone.png" "$base/" > /dev/null

# ---------------------------------------------------------------- 2. static report
"$bin" gen --seed 21 --teams 3 --reps-per-team 5 --days 35 --laggard 1:2 --broken 0.002 --redeliver 0.01 -o "$work/export.ndjson"
"$bin" replay -q "$work/export.ndjson" > "$work/export.prom" 2> /dev/null
(cd "$work" && "$bin" replay -q --report report.html export.ndjson 2> replay.log)
grep -q "wrote the report to" "$work/replay.log" || die "replay --report: $(cat "$work/replay.log")"
python3 - "$work" <<'PY'
import json, re, sys
work = sys.argv[1]
html = open(f"{work}/report.html", encoding="utf-8").read()
m = re.search(r'<script type="application/json" id="salespulse-data">(.*?)</script>', html, re.S)
assert m, "no embedded data in the report"
data = json.loads(m.group(1))
json.dump(data["documents"][data["window"]], open(f"{work}/report-doc.json", "w"))
json.dump(data["replay"], open(f"{work}/report-replay.json", "w"))
# every embedded value is the exposition `replay` prints (same labels)
prom = {}
for line in open(f"{work}/export.prom"):
    if line.startswith("#") or not line.strip():
        continue
    series, value = line.rsplit(" ", 1)
    name, _, labels = series.partition("{")
    labels = dict(re.findall(r'(\w+)="([^"]*)"', labels))
    prom[(name, tuple(sorted(labels.items())))] = float(value)
n = 0
for w, doc in data["documents"].items():
    for t in doc["teams"]:
        for e, rep in [(t, None)] + [(r, r["rep"]) for r in t["reps"]]:
            for part, win in (("kpis", w), ("current", None)):
                for k, v in e[part].items():
                    name, _, extra = k.partition("{")
                    labels = dict(re.findall(r'(\w+)="([^"]*)"', extra))
                    labels["team"] = t["team"]
                    if rep:
                        labels["rep"] = rep
                    if win:
                        labels["window"] = win
                    want = prom.get((name, tuple(sorted(labels.items()))))
                    assert want == v, f"{w} {k} {labels}: report {v}, replay {want}"
                    n += 1
kpi = [k for k in prom if k[0].startswith("sales_") and k[0] != "sales_benchmark"]
assert n >= len(kpi), f"the report has {n} values, the exposition {len(kpi)} KPI series"
print(f"report: {n} embedded values equal replay's exposition")
PY
browse --dump-dom "file://$work/report.html" > "$work/report-dom.html"
python3 tests/e2e/page_dom.py "$work/report-dom.html" "$work/report-doc.json" na-ent rep-na-ent-03 "$work/report-replay.json"
say "static report: DOM equals the embedded document and replay summary"
browse --window-size=1280,2600 --screenshot="$work/page-report.png" "file://$work/report.html" > /dev/null

# ---------------------------------------------------------------- 3. screenshots
for f in page-live page-phone page-report; do
  [ "$(head -c 8 "$work/$f.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || die "$f.png is not a PNG"
done
if [ -n "${SCREENSHOTS:-}" ]; then
  mkdir -p "$SCREENSHOTS"
  cp "$work"/page-live.png "$work"/page-phone.png "$work"/page-report.png "$SCREENSHOTS"/
  say "screenshots written to $SCREENSHOTS"
fi
say "passed"
