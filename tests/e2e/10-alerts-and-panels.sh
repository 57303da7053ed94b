#!/usr/bin/env bash
# End to end with the real programs: Kafka (scripts/kafka.sh) → salespulse run
# → Prometheus (Debian's `prometheus`, loading deploy/prometheus/rules) →
# Alertmanager (Debian's `prometheus-alertmanager`, deploy/alertmanager
# routing) → a webhook receiver; then every Grafana panel query of
# deploy/grafana/dashboards through that Prometheus.
#
# A generated stream has one rep far below the reach benchmark
# (`gen --laggard 1:2`: rep-na-ent-03 at ~8 % reach, every other rep at 42 %
# or more). Checks:
#   1. the engine applies every event (zero lag) and /readyz is 200;
#   2. the SalesRepReachBelowBenchmark alert of that rep reaches the webhook
#      receiver with labels alertname, severity, team="na-ent",
#      rep="rep-na-ent-03", and no other rep's reach alert fires;
#   3. every panel query of every dashboard returns data (scripts/check-panel-queries.py),
#      the region panels through sales_team_info of the [segments.regions] below;
#   4. SIGTERM stops the engine with exit status 0.
#
# With E2E_PROFILE=FILE the engine runs with that exposition profile
# (tests/e2e/11-large-org.sh: config/large-org.toml) and the exposition is
# checked to follow it; everything else is the same.
#
# Needs KAFKA_BOOTSTRAP (scripts/test.sh exports it). Without it: a loud skip
# outside CI, a failure in CI. Rule `for:` durations are shortened to 5s and
# Alertmanager's group waits to 1s in the test's copies; nothing else of the
# shipped files is changed. Runs on loopback only; every process it starts is
# stopped on exit. Keep the work dir with KEEP_E2E=1.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
name=$(basename "$0")
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_kafka_or_skip
bin=$root/target/release/salespulse
[ -x "$bin" ] || die "$bin not built (cargo build --release)"
e2e_needs prometheus prometheus-alertmanager promtool python3

e2e_workdir e2e engine.log prometheus.log alertmanager.log receiver.log

engine_port=$(free_port); prom_port=$(free_port); am_port=$(free_port); recv_port=$(free_port)
http_ok() { curl -fsS -o /dev/null "$1"; }

# ---------------------------------------------------------------- events into Kafka
team=na-ent
rep=rep-na-ent-03
topic=e2e-crm-$$-$RANDOM
"$bin" gen --seed 21 --teams 3 --reps-per-team 5 --days 35 --laggard 1:2 -o "$work/events.ndjson"
events=$(wc -l < "$work/events.ndjson")
scripts/kafka.sh topic "$topic" 3 >/dev/null
"$bin" produce --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" "$work/events.ndjson"

# ---------------------------------------------------------------- the engine
engine_config "$work/salespulse.toml" "$topic" "$engine_port"
# Regions for sales_team_info (the Pipeline & forecast dashboard groups teams
# by region through it; its panels are checked with the others below).
cat >> "$work/salespulse.toml" <<EOF
[segments.regions]
emea-smb = "emea"
na-ent = "americas"
apac-mid = "apac"
EOF
# E2E_PROFILE=FILE (tests/e2e/11-large-org.sh): its [exposition.*] tables
# are appended to the engine's configuration.
if [ -n "${E2E_PROFILE:-}" ]; then
  [ -f "$E2E_PROFILE" ] || die "E2E_PROFILE=$E2E_PROFILE does not exist"
  cat "$E2E_PROFILE" >> "$work/salespulse.toml"
  say "exposition profile: $E2E_PROFILE"
fi
"$bin" run --config "$work/salespulse.toml" > /dev/null 2> "$work/engine.log" &
engine_pid=$!
pids+=("$engine_pid")
engine=http://127.0.0.1:$engine_port
wait_for 120 "engine ready on :$engine_port" http_ok "$engine/readyz"
applied_all() {
  curl -fsS "$engine/metrics" | awk -v want="$events" '
    /^salespulse_events_total\{/ && /result="(applied|duplicate)"/ { n += $2 }
    END { exit !(n == want) }'
}
wait_for 180 "engine consumed all $events events" applied_all
curl -fsS "$engine/metrics" > "$work/metrics.txt"
promtool check metrics < "$work/metrics.txt" || die "promtool check metrics complains about the live exposition"
grep '^sales_reach_upper95_ratio{' "$work/metrics.txt" | grep "rep=\"$rep\"" | grep "team=\"$team\"" | grep -q 'window="7d"' \
  || die "no 7d reach upper bound for $rep in the exposition"
say "$(grep -c '^sales_' "$work/metrics.txt") sales_* series, $(grep '^sales_' "$work/metrics.txt" | grep -c 'rep="') at rep level"
if [ -n "${E2E_PROFILE:-}" ]; then
  # the profile is in force: rep-level series only in its windows
  python3 - "$work/metrics.txt" "$E2E_PROFILE" <<'PY' || die "the exposition does not follow $E2E_PROFILE"
import re, sys, tomllib
text, profile = open(sys.argv[1]).read(), tomllib.load(open(sys.argv[2], "rb"))
rep = profile["exposition"]["rep"]
bad = [l for l in text.splitlines() if l.startswith("sales_") and 'rep="' in l
       and (l.split("{")[0] not in rep["families"]
            or re.search(r'window="([^"]+)"', l) and re.search(r'window="([^"]+)"', l).group(1) not in rep["windows"])]
print(f"rep-level series outside the profile: {len(bad)}", *bad[:5], sep="\n")
sys.exit(1 if bad else 0)
PY
fi

# ---------------------------------------------------------------- the webhook receiver
cat > "$work/receiver.py" <<'PY'
import http.server, json, sys
out = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(out, "a") as f:
            f.write(json.dumps(json.loads(body)) + "\n")
        self.send_response(200); self.end_headers()
    def log_message(self, fmt, *args):
        sys.stderr.write("receiver: " + fmt % args + "\n")
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$work/receiver.py" "$recv_port" "$work/received.ndjson" 2> "$work/receiver.log" &
pids+=($!)

# ---------------------------------------------------------------- Alertmanager (the shipped routing)
mkdir -p "$work/am"
grep -q '127.0.0.1:5001' deploy/alertmanager/alertmanager.yml || die "deploy/alertmanager/alertmanager.yml has no 127.0.0.1:5001 webhook to point at the receiver"
sed -e "s|127.0.0.1:5001|127.0.0.1:$recv_port|g" \
    -e 's|^\(\s*\)group_wait:.*|\1group_wait: 1s|' \
    -e 's|^\(\s*\)group_interval:.*|\1group_interval: 1s|' \
    deploy/alertmanager/alertmanager.yml > "$work/am/alertmanager.yml"
prometheus-alertmanager --config.file="$work/am/alertmanager.yml" --storage.path="$work/am/data" \
  --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address="" \
  > "$work/alertmanager.log" 2>&1 &
pids+=($!)
wait_for 60 "alertmanager ready on :$am_port" http_ok "http://127.0.0.1:$am_port/-/ready"

# ---------------------------------------------------------------- Prometheus (the shipped rules)
mkdir -p "$work/prom/rules"
for f in deploy/prometheus/rules/*.yml; do
  sed -e 's|^\(\s*\)for:.*|\1for: 5s|' "$f" > "$work/prom/rules/$(basename "$f")"
done
promtool check rules "$work"/prom/rules/*.yml > /dev/null
cat > "$work/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["$work/prom/rules/*.yml"]
alerting:
  alertmanagers:
    - static_configs: [{ targets: ["127.0.0.1:$am_port"] }]
scrape_configs:
  - job_name: salespulse
    static_configs: [{ targets: ["127.0.0.1:$engine_port"] }]
EOF
promtool check config "$work/prom/prometheus.yml" > /dev/null
prometheus --config.file="$work/prom/prometheus.yml" --storage.tsdb.path="$work/prom/data" \
  --web.listen-address="127.0.0.1:$prom_port" > "$work/prometheus.log" 2>&1 &
pids+=($!)
prom=http://127.0.0.1:$prom_port
wait_for 60 "prometheus ready on :$prom_port" http_ok "$prom/-/ready"

# ---------------------------------------------------------------- the alert reaches the receiver
got_alert() {
  [ -s "$work/received.ndjson" ] && python3 - "$work/received.ndjson" "$team" "$rep" <<'PY'
import json, sys
path, team, rep = sys.argv[1:]
for line in open(path):
    for a in json.loads(line).get("alerts", []):
        l = a.get("labels", {})
        if l.get("alertname") == "SalesRepReachBelowBenchmark" and l.get("team") == team and l.get("rep") == rep and a.get("status") == "firing":
            sys.exit(0)
sys.exit(1)
PY
}
wait_for 180 "SalesRepReachBelowBenchmark for $team/$rep reached the webhook receiver" got_alert

# Let every rule evaluate a few more times, then: only that rep's reach alert,
# at Prometheus and at the receiver, with the labels a route needs.
sleep 8
curl -fsS "$prom/api/v1/alerts" > "$work/alerts.json"
python3 - "$work/alerts.json" "$work/received.ndjson" "$team" "$rep" <<'PY'
import json, sys
alerts_path, received_path, team, rep = sys.argv[1:]
fail = []
firing = [a for a in json.load(open(alerts_path))["data"]["alerts"] if a["state"] == "firing"]
reach = [a["labels"] for a in firing if a["labels"]["alertname"] == "SalesRepReachBelowBenchmark"]
print("firing at prometheus:", sorted({a["labels"]["alertname"] for a in firing}))
print("rep reach alerts at prometheus:", [(l.get("team"), l.get("rep")) for l in reach])
if [(l.get("team"), l.get("rep")) for l in reach] != [(team, rep)]:
    fail.append(f"expected exactly one SalesRepReachBelowBenchmark, for {team}/{rep}; got {reach}")
received = [a for line in open(received_path) for a in json.loads(line).get("alerts", [])]
rr = [a["labels"] for a in received if a["labels"].get("alertname") == "SalesRepReachBelowBenchmark"]
others = {(l.get("team"), l.get("rep")) for l in rr} - {(team, rep)}
if others:
    fail.append(f"the receiver got reach alerts for other reps: {sorted(others)}")
mine = [l for l in rr if l.get("rep") == rep]
if not mine:
    fail.append("the receiver never got the laggard's alert")
for l in mine:
    for k in ("severity", "team", "rep"):
        if not l.get(k):
            fail.append(f"received alert lacks label {k}: {l}")
ann = [a.get("annotations", {}) for a in received if a["labels"].get("rep") == rep]
if not any(a.get("summary") and a.get("description") for a in ann):
    fail.append(f"received alert lacks summary/description annotations: {ann[:1]}")
print("received alerts:", len(received), "of which for", rep, ":", len(mine), "labels:", mine[:1])
if fail:
    print("\n".join(fail), file=sys.stderr)
    sys.exit(1)
PY

# ---------------------------------------------------------------- every dashboard panel returns data
python3 scripts/check-panel-queries.py --prometheus "$prom" --var "team=$team" --var "rep=$rep" --var window=7d \
  deploy/grafana/dashboards/*.json

# ---------------------------------------------------------------- graceful stop
kill -TERM "$engine_pid"
rc=0
wait "$engine_pid" || rc=$?
pids=("${pids[@]/$engine_pid}")
[ "$rc" = 0 ] || die "engine exited $rc on SIGTERM (want 0)"
grep -q 'final checkpoint' "$work/engine.log" || die "no final checkpoint in the engine log"
say "engine stopped with exit 0 after a final checkpoint"
say "passed"
