#!/usr/bin/env bash
# A real Apache Kafka broker for development, tests and CI: single node,
# combined broker + controller (KRaft), on loopback, from the jars Maven
# fetches from Maven Central (pinned in scripts/kafka/pom.xml), run with the
# machine's Java 17.
#
#   scripts/kafka.sh fetch          download the jars into .kafka/lib (cached)
#   scripts/kafka.sh start          format storage if needed, start, wait until it answers
#   scripts/kafka.sh status         running or not
#   scripts/kafka.sh topic NAME [PARTITIONS]   create a topic
#   scripts/kafka.sh stop [--clean] stop (and delete the data)
#   scripts/kafka.sh logs           tail the broker log
#
# Environment: KAFKA_PORT (default 19092), KAFKA_CONTROLLER_PORT (default
# 19093; not 9093, Alertmanager's), KAFKA_HOME (default .kafka in the repo).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
home=${KAFKA_HOME:-$root/.kafka}
port=${KAFKA_PORT:-19092}
cport=${KAFKA_CONTROLLER_PORT:-19093}
lib=$root/.kafka/lib
data=$home/data-$port
pidfile=$home/broker-$port.pid
logfile=$home/broker-$port.log
props=$home/server-$port.properties
bootstrap=127.0.0.1:$port

die() { echo "kafka.sh: $*" >&2; exit 1; }

fetch() {
  if [ -f "$lib/.complete" ]; then return; fi
  command -v mvn >/dev/null || die "mvn not found (Maven is needed to fetch Kafka from Maven Central)"
  echo "kafka.sh: fetching Apache Kafka $(grep -o '<kafka.version>[^<]*' "$root/scripts/kafka/pom.xml" | cut -d'>' -f2) from Maven Central"
  mkdir -p "$lib"
  mvn -q -B -f "$root/scripts/kafka/pom.xml" dependency:copy-dependencies -DoutputDirectory="$lib" -DincludeScope=runtime
  touch "$lib/.complete"
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

java_cp() { java -Xmx256m -cp "$lib/*" -Dlog4j2.configurationFile="$home/log4j2.properties" "$@"; }

write_config() {
  mkdir -p "$home"
  cat > "$props" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
min.insync.replicas=1
default.replication.factor=1
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=1048577
auto.create.topics.enable=false
PROPS
  cat > "$home/log4j2.properties" <<LOG
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $logfile
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
logger.state.name = state.change.logger
logger.state.level = warn
LOG
}

start() {
  if running; then echo "kafka.sh: already running (pid $(cat "$pidfile")) at $bootstrap"; echo "KAFKA_BOOTSTRAP=$bootstrap"; return; fi
  command -v java >/dev/null || die "java not found (Java 17 is needed)"
  fetch
  write_config
  if [ ! -f "$data/meta.properties" ]; then
    local id
    id=$(java_cp kafka.tools.StorageTool random-uuid | tail -1)
    java_cp kafka.tools.StorageTool format --standalone -t "$id" -c "$props" >/dev/null
  fi
  : > "$logfile"
  nohup java -Xms256m -Xmx512m -XX:+UseSerialGC -Dlog4j2.configurationFile="$home/log4j2.properties" \
    -cp "$lib/*" kafka.Kafka "$props" >> "$home/stdout-$port.log" 2>&1 &
  echo $! > "$pidfile"
  local deadline=$((SECONDS + 90))
  until grep -q "Kafka Server started\|\[KafkaRaftServer nodeId=1\] Kafka Server started" "$logfile" 2>/dev/null; do
    if ! running; then tail -30 "$logfile" "$home/stdout-$port.log" >&2 || true; die "broker exited during start"; fi
    if [ $SECONDS -ge $deadline ]; then tail -30 "$logfile" >&2 || true; die "broker did not start within 90 s"; fi
    sleep 1
  done
  echo "kafka.sh: Apache Kafka started (pid $(cat "$pidfile")), log $logfile"
  echo "KAFKA_BOOTSTRAP=$bootstrap"
}

stop() {
  if running; then
    local pid
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "kafka.sh: stopped"
  else
    echo "kafka.sh: not running"
  fi
  rm -f "$pidfile"
  if [ "${1:-}" = "--clean" ]; then rm -rf "$data"; echo "kafka.sh: data removed"; fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) shift; stop "${1:-}" ;;
  status) if running; then echo "running (pid $(cat "$pidfile")) at $bootstrap"; else echo "not running"; exit 1; fi ;;
  topic)
    [ -n "${2:-}" ] || die "usage: kafka.sh topic NAME [PARTITIONS]"
    java_cp org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --create --if-not-exists --topic "$2" --partitions "${3:-4}" --replication-factor 1 ;;
  logs) tail -n "${2:-50}" "$logfile" ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
