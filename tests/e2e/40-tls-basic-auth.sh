#!/usr/bin/env bash
# A real Prometheus scrapes a real engine over TLS with basic auth, and a
# scrape without the credentials is refused:
#   1. a self-signed certificate (openssl) and a bcrypt hash (salespulse
#      hash-password) go into a web configuration file like
#      deploy/web-config.example.yml; the engine (demo broker: no Kafka) reads
#      it from http.web_config_file;
#   2. curl without credentials, with wrong ones: 401; /healthz open: 200;
#   3. Debian's Prometheus with deploy/prometheus/prometheus-tls.example.yml
#      (paths and target replaced) scrapes it: up{job="salespulse"} == 1 and
#      KPI series arrive; a second job on the same target without basic_auth
#      is down with a 401.
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
e2e_needs prometheus promtool openssl curl python3

e2e_workdir tls engine.log prometheus.log

port=$(free_port); prom_port=$(free_port)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout "$work/salespulse.key" -out "$work/salespulse.crt" 2>/dev/null
password=e2e-$RANDOM-$RANDOM
printf %s "$password" > "$work/scrape-password"
hash=$(printf %s "$password" | "$bin" hash-password --cost 8)
sed -e "s|^  prometheus: .*|  prometheus: $hash|" deploy/web-config.example.yml > "$work/web.yml"
cat > "$work/salespulse.toml" <<EOT
[http]
listen = "127.0.0.1:$port"
web_config_file = "$work/web.yml"
[demo]
history_days = 2
[log]
level = "info,rdkafka=warn"
EOT
"$bin" check-config "$work/salespulse.toml" | grep "web_config_file: ok (with TLS, 1 basic-auth users)" > /dev/null || die "check-config does not accept the web config"
"$bin" run --config "$work/salespulse.toml" > /dev/null 2> "$work/engine.log" &
pids+=($!)
base=https://127.0.0.1:$port
code() { curl -s -o /dev/null -w '%{http_code}' --cacert "$work/salespulse.crt" "$@"; }
code_is() { [ "$(code "${@:2}")" = "$1" ]; }
wait_for 60 "engine serving over TLS" code_is 200 "$base/healthz"
[ "$(code "$base/metrics")" = 401 ] || die "/metrics without credentials is not 401"
[ "$(code -u prometheus:wrong "$base/metrics")" = 401 ] || die "/metrics with a wrong password is not 401"
[ "$(code -u prometheus:"$password" "$base/metrics")" = 200 ] || die "/metrics with the password is not 200"
[ "$(code "$base/readyz")" != 401 ] || die "/readyz must stay open"
say "curl: 401 without or with wrong credentials, 200 with them, probes open"

# Prometheus: the shipped example, with this test's paths and target, plus
# a job without credentials.
mkdir -p "$work/prom"
python3 - "$work" "$port" <<'PY'
import sys, yaml
work, port = sys.argv[1], sys.argv[2]
cfg = yaml.safe_load(open("deploy/prometheus/prometheus-tls.example.yml"))
cfg.pop("rule_files", None)
job = cfg["scrape_configs"][0]
job["scrape_interval"] = "1s"
job["tls_config"]["ca_file"] = f"{work}/salespulse.crt"
job["basic_auth"]["password_file"] = f"{work}/scrape-password"
job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
anon = {k: v for k, v in job.items() if k != "basic_auth"}
anon["job_name"] = "salespulse-anonymous"
cfg["scrape_configs"].append(anon)
yaml.safe_dump(cfg, open(f"{work}/prom/prometheus.yml", "w"))
PY
promtool check config "$work/prom/prometheus.yml" > /dev/null
prometheus --config.file="$work/prom/prometheus.yml" --storage.tsdb.path="$work/prom/data" \
  --web.listen-address="127.0.0.1:$prom_port" > "$work/prometheus.log" 2>&1 &
pids+=($!)
prom=http://127.0.0.1:$prom_port
wait_for 60 "prometheus ready" curl -fsS -o /dev/null "$prom/-/ready"
query() { curl -fsS --get "$prom/api/v1/query" --data-urlencode "query=$1" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'; }
query_is() { [ "$(query "$1")" = "$2" ]; }
query_some() { [ -n "$(query "$1")" ]; }
wait_for 60 "prometheus scraped over TLS with basic auth" query_is 'up{job="salespulse"}' 1
wait_for 30 "KPI series in prometheus" query_some 'count(sales_events_total)'
wait_for 30 "the job without credentials is down" query_is 'up{job="salespulse-anonymous"}' 0
curl -fsS "$prom/api/v1/targets" | python3 -c '
import json, sys
ts = json.load(sys.stdin)["data"]["activeTargets"]
anon = [t for t in ts if t["labels"]["job"] == "salespulse-anonymous"]
assert anon and "401" in anon[0]["lastError"], anon
print("anonymous scrape refused:", anon[0]["lastError"])
'
say "passed"
