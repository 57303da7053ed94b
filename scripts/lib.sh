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
