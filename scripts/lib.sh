# Shell helpers shared by tests/e2e/*.sh and scripts/bench-live.sh (sourced,
# not run). The caller sets `name` (for messages) and runs from the repo root.

say() { echo "[$name $(date -u +%H:%M:%S)] $*"; }
die() { echo "[$name] FAIL: $*" >&2; exit 1; }

# Exits 0 with a loud SKIPPED line when KAFKA_BOOTSTRAP is unset outside CI;
# fails in CI, where scripts/test.sh always starts a broker.
need_kafka_or_skip() {
  if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
    [ -n "${CI:-}" ] && die "KAFKA_BOOTSTRAP is not set in CI (scripts/test.sh starts the broker)"
    echo "*** SKIPPED $name: KAFKA_BOOTSTRAP is not set; run scripts/kafka.sh start and export KAFKA_BOOTSTRAP ***"
    exit 0
  fi
}

# For tests that stop and restart the broker: skips loudly (exit 0) unless
# KAFKA_BOOTSTRAP is this checkout's broker (scripts/kafka.sh), and exports
# what it takes to start the same broker again (KAFKA_PORT,
# KAFKA_CONTROLLER_PORT, KAFKA_DATA_DIR).
need_own_broker_or_skip() {
  need_kafka_or_skip
  local ours
  ours=$(scripts/kafka.sh env 2>/dev/null | sed -n 's/^KAFKA_BOOTSTRAP=//p' || true)
  if [ "$ours" != "$KAFKA_BOOTSTRAP" ]; then
    echo "*** SKIPPED $name: KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP is not this checkout's broker (scripts/kafka.sh), which this test would stop and restart ***"
    exit 0
  fi
  export KAFKA_PORT=${KAFKA_BOOTSTRAP##*:}
  export KAFKA_CONTROLLER_PORT
  KAFKA_CONTROLLER_PORT=$(sed -n 's/^controller.quorum.bootstrap.servers=.*:\([0-9]*\)$/\1/p' .kafka/server.properties)
  export KAFKA_DATA_DIR
  KAFKA_DATA_DIR=$(sed -n 's/^KAFKA_DATA_DIR=//p' .kafka/broker.env)
  [ -n "$KAFKA_CONTROLLER_PORT" ] && [ -n "$KAFKA_DATA_DIR" ] || die "cannot read the running broker's controller port and data dir from .kafka/"
}

# For benchmarks: KAFKA_BOOTSTRAP if set, else this checkout's broker, started
# if it is not running (then started_broker=1: stop it on exit).
started_broker=0
use_or_start_broker() {
  if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
    if ! scripts/kafka.sh status >/dev/null 2>&1; then
      scripts/kafka.sh start >/dev/null
      started_broker=1
    fi
    KAFKA_BOOTSTRAP=$(scripts/kafka.sh env | sed -n 's/^KAFKA_BOOTSTRAP=//p')
  fi
}

# For benchmarks: builds the binary (bin=...), uses or starts the broker
# (use_or_start_broker), makes a work dir (work=...) and, on exit, stops the
# process whose pid the caller puts in `pid`, the broker if it was started
# here, and deletes the work dir.
bench_setup() {
  cargo build --release --locked --bin salespulse 2>&1 | tail -1
  bin=$root/target/release/salespulse
  use_or_start_broker
  work=$(mktemp -d)
  pid=""
  trap bench_cleanup EXIT
}
bench_cleanup() {
  set +e
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ "$started_broker" = 1 ] && scripts/kafka.sh stop >/dev/null
  rm -rf "$work"
}

# bridge_config FILE TOPIC PORT TOKEN [PRODUCE_TIMEOUT] [LOG_LEVEL]: a
# salespulse.toml for `salespulse bridge` on KAFKA_BOOTSTRAP, producing to
# TOPIC, on 127.0.0.1:PORT, accepting the bearer TOKEN and the Standard
# Webhooks test secret of tests/bridge.rs; Retry-After 7 s.
bridge_config() {
  cat > "$1" <<EOF
[kafka]
brokers = "$KAFKA_BOOTSTRAP"
topics = ["$2"]
[bridge]
listen = "127.0.0.1:$3"
tokens = ["$4"]
webhook_secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
produce_timeout = "${5:-10s}"
retry_after_s = 7
[log]
level = "${6:-info,rdkafka=error}"
EOF
}

# A TCP port free on loopback right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_for SECS WHAT CMD...: polls CMD every second until it succeeds.
wait_for() {
  local secs=$1 what=$2; shift 2
  local t0=$SECONDS
  until "$@" >/dev/null 2>&1; do
    [ $((SECONDS - t0)) -lt "$secs" ] || die "timed out after ${secs}s waiting for $what"
    sleep 1
  done
  say "$what (after $((SECONDS - t0)) s)"
}

# status_is URL CODE: the HTTP status of a GET is CODE.
status_is() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = "$2" ]; }

# engine_config FILE TOPIC PORT [CHECKPOINT_INTERVAL_S] [LOG_LEVEL]: a
# salespulse.toml for `run` on KAFKA_BOOTSTRAP with topic-derived group, DLQ
# and checkpoint names, /metrics on 127.0.0.1:PORT and the event clock (a
# generated stream ends before today's midnight: the event clock keeps every
# window the same however long a test takes).
engine_config() {
  cat > "$1" <<EOF
[kafka]
brokers = "$KAFKA_BOOTSTRAP"
topics = ["$2"]
group_id = "$2-group"
dlq_topic = "$2-dlq"
checkpoint_topic = "$2-ckpt"
checkpoint_interval_s = ${4:-2}
[http]
listen = "127.0.0.1:$3"
[clock]
mode = "event"
[log]
level = "${5:-info,rdkafka=warn}"
EOF
}

# same_kpis WANT.prom URL: every sales_* series of the exposition at URL
# (an engine's /metrics) equals WANT.prom's (1e-9 relative), and no series
# is missing or extra. Prints the first differences on stderr.
same_kpis() {
  local got
  got=$(mktemp)
  curl -fsS "$2" > "$got" || { rm -f "$got"; return 1; }
  python3 - "$1" "$got" <<'PY'
import re, sys
def load(path):
    out = {}
    for line in open(path):
        if not line.startswith("sales_"):
            continue
        m = re.match(r'^([a-z_0-9]+)(?:\{(.*)\})? (\S+)$', line.strip())
        labels = ",".join(sorted(re.findall(r'[a-z_]+="[^"]*"', m.group(2) or "")))
        out[m.group(1) + "{" + labels + "}"] = float(m.group(3))
    return out
want, got = load(sys.argv[1]), load(sys.argv[2])
bad = [k for k in want.keys() | got.keys()
       if k not in want or k not in got or abs(want[k] - got[k]) > 1e-9 * max(1.0, abs(want[k]))]
if bad:
    print(f"{len(bad)} of {len(want)} series differ, e.g. " + "; ".join(
        f"{k}: want {want.get(k)} got {got.get(k)}" for k in sorted(bad)[:3]), file=sys.stderr)
    sys.exit(1)
PY
  local rc=$?
  rm -f "$got"
  return $rc
}

# kafka_for_bench: sets KAFKA_BOOTSTRAP to the given broker, else to this
# checkout's (started if it does not run; then `started=1`, for the caller
# to stop it with scripts/kafka.sh stop).
kafka_for_bench() {
  started=0
  if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
    if ! scripts/kafka.sh status >/dev/null 2>&1; then
      scripts/kafka.sh start >/dev/null
      started=1
    fi
    KAFKA_BOOTSTRAP=$(scripts/kafka.sh env | sed -n 's/^KAFKA_BOOTSTRAP=//p')
  fi
  export KAFKA_BOOTSTRAP
}

# e2e_needs TOOL...: dies unless every TOOL is on the PATH.
e2e_needs() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || die "$t not found (scripts/install-deps.sh installs it)"
  done
}

# e2e_workdir NAME LOG...: an e2e script's work directory and clean-up. Sets
# `work` (a fresh /tmp/salespulse-NAME.* directory) and `pids` (append the
# background processes to it), and traps EXIT: stop and reap the pids; when
# the script failed, print the last lines of each LOG found in $work; remove
# $work unless KEEP_E2E is set; exit with the script's status.
e2e_workdir() {
  work=$(mktemp -d "/tmp/salespulse-$1.XXXXXX")
  shift
  pids=()
  e2e_logs=("$@")
  trap e2e_cleanup EXIT
}

e2e_cleanup() {
  local rc=$? p f
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ "$rc" != 0 ]; then
    for f in "${e2e_logs[@]}"; do
      [ -f "$work/$f" ] && { echo "---- last lines of $f"; tail -n 25 "$work/$f"; }
    done
  fi
  if [ -n "${KEEP_E2E:-}" ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
  exit "$rc"
}
