#!/usr/bin/env bash
# A real Apache Kafka broker for development, tests and CI: one node that is
# both broker and KRaft controller, on loopback, run with the machine's Java 17
# from the jars Maven fetches from Maven Central (version pinned in
# scripts/kafka/pom.xml, jars cached in .kafka/lib).
#
#   scripts/kafka.sh fetch                    download the jars into .kafka/lib (once; cached)
#   scripts/kafka.sh start                    format storage if needed, start, wait until it answers,
#                                             print KAFKA_BOOTSTRAP=127.0.0.1:19092
#   scripts/kafka.sh status                   running or not (exit 0 / 1)
#   scripts/kafka.sh env                      print KAFKA_BOOTSTRAP=... of the running broker
#   scripts/kafka.sh topic NAME [PARTITIONS] [--config k=v ...]
#                                             create a topic (default 1 partition; no-op if it exists)
#   scripts/kafka.sh topics                   list topics
#   scripts/kafka.sh messages NAME            messages in a topic (sum of its partitions' end offsets)
#   scripts/kafka.sh selftest                 transactions, read_committed, offsets in a
#                                             transaction and log compaction against the broker
#   scripts/kafka.sh logs [-f|N]              tail the broker log (.kafka/broker.log)
#   scripts/kafka.sh stop [--clean]           stop (SIGTERM, then SIGKILL); --clean deletes the data
#
# Environment:
#   KAFKA_PORT             broker port (default 19092)
#   KAFKA_CONTROLLER_PORT  controller port (default 19093; not 9093, Alertmanager's)
#   KAFKA_DATA_DIR         log dirs (default .kafka/data)
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to answer (default 90)
#   KAFKA_HEAP_OPTS        broker heap (default -Xms256m -Xmx512m)
#   KAFKA_AUTO_CREATE_TOPICS  auto.create.topics.enable (default false)
# Works from any directory: paths are resolved from this script's location.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=$root/.kafka
lib=$state/lib
pom=$root/scripts/kafka/pom.xml
host=127.0.0.1
port=${KAFKA_PORT:-19092}
cport=${KAFKA_CONTROLLER_PORT:-19093}
data=${KAFKA_DATA_DIR:-$state/data}
case $data in /*) ;; *) data=$PWD/$data ;; esac
pidfile=$state/broker.pid
envfile=$state/broker.env
logfile=$state/broker.log
outfile=$state/broker.out
props=$state/server.properties
log4j=$state/log4j2.properties
tools_log4j=$state/tools-log4j2.properties
tools_props=$state/tools.properties
start_timeout=${KAFKA_START_TIMEOUT:-90}

say() { echo "kafka.sh: $*"; }
die() { echo "kafka.sh: error: $*" >&2; exit 1; }

kafka_version() { sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom"; }
pom_stamp() { sha256sum "$pom" | cut -d' ' -f1; }

# ---------------------------------------------------------------- fetch
fetch() {
  local want
  want=$(pom_stamp)
  if [ -f "$lib/.complete" ] && [ "$(cat "$lib/.complete")" = "$want" ]; then
    return 0
  fi
  local pid
  if [ -d "$lib" ] && pid=$(broker_pid); then
    # Do not pull the jars from under a running JVM; it keeps the old ones.
    say "warning: scripts/kafka/pom.xml changed but a broker (pid $pid) runs from .kafka/lib;" \
        "stop it and run 'scripts/kafka.sh fetch' to refresh the jars" >&2
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found: Maven is needed to fetch Kafka from Maven Central (apt-get install maven)"
  say "fetching Apache Kafka $(kafka_version) and its runtime from Maven Central into .kafka/lib"
  local t0=$SECONDS tmp=$state/lib.fetching
  mkdir -p "$state"
  rm -rf "$tmp"
  if ! mvn -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
        -DoutputDirectory="$tmp" -DincludeScope=runtime > "$state/fetch.log" 2>&1; then
    rm -rf "$tmp"
    grep -E 'ERROR|FAIL' "$state/fetch.log" | tail -n 30 >&2 || tail -n 30 "$state/fetch.log" >&2
    die "mvn could not fetch the Kafka jars (full output: $state/fetch.log)"
  fi
  [ -n "$(compgen -G "$tmp/kafka_2.13-*.jar")" ] || die "mvn finished but no kafka_2.13 jar in $tmp"
  echo "$want" > "$tmp/.complete"
  rm -rf "$lib"
  mv "$tmp" "$lib"
  say "fetched $(find "$lib" -name '*.jar' | wc -l) jars ($(du -sh "$lib" | cut -f1)) in $((SECONDS - t0)) s"
}

need_java() { command -v java >/dev/null || die "java not found: Java 17+ is needed (apt-get install openjdk-17-jre-headless)"; }

# ---------------------------------------------------------------- process state
is_broker() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -q 'kafka\.Kafka'; }

# Pid of this checkout's broker, if it runs. Also recognises the pid file of
# the earlier layout (.kafka/broker-PORT.pid) so a broker started by an older
# version of this script can still be stopped.
broker_pid() {
  local f pid
  for f in "$pidfile" "$state"/broker-[0-9]*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null || true)
    if [ -n "$pid" ] && is_broker "$pid"; then echo "$pid"; return 0; fi
  done
  return 1
}

# Bootstrap address and data dir of the running broker: from broker.env,
# else (a broker started by the older layout) from its server properties.
running_bootstrap() {
  if [ -f "$envfile" ]; then sed -n 's/^KAFKA_BOOTSTRAP=//p' "$envfile"; return; fi
  local p
  p=$(grep -ho '^listeners=PLAINTEXT://[^,]*' "$state"/server*.properties 2>/dev/null | head -n 1 | sed 's|.*PLAINTEXT://||')
  echo "${p:-$host:$port}"
}
running_data() {
  if [ -f "$envfile" ]; then sed -n 's/^KAFKA_DATA_DIR=//p' "$envfile"; return; fi
  local d
  d=$(grep -h '^log.dirs=' "$state"/server*.properties 2>/dev/null | head -n 1 | cut -d= -f2-)
  echo "${d:-$data}"
}

port_open() { (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }

# ---------------------------------------------------------------- configuration
write_config() {
  mkdir -p "$state"
  cat > "$props" <<PROPS
# Written by scripts/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$host:$cport
listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$cport
advertised.listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$cport
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.cleaner.enable=true
log.cleaner.dedupe.buffer.size=1048577
auto.create.topics.enable=${KAFKA_AUTO_CREATE_TOPICS:-false}
PROPS
  cat > "$log4j" <<LOG
# Broker logging (log4j2), written by scripts/kafka.sh.
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = $logfile
appender.file.filePattern = $logfile.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 2
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.state.name = state.change.logger
logger.state.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = warn
LOG
}

write_tools_config() {
  mkdir -p "$state"
  cat > "$tools_log4j" <<LOG
# Command-line tools (topic, storage, selftest): warnings and errors to stderr.
status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = err
LOG
  cat > "$tools_props" <<PROPS
request.timeout.ms=5000
default.api.timeout.ms=15000
PROPS
}

# A Kafka command-line tool from the jars: small heap, quick JIT.
tool() {
  if [ ! -f "$tools_log4j" ] || [ ! -f "$tools_props" ]; then write_tools_config; fi
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$tools_log4j" -cp "$lib/*" "$@"
}

answers() {
  timeout 30 java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$tools_log4j" -cp "$lib/*" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "$1" --command-config "$tools_props" --list \
    >/dev/null 2>&1
}

show_log_tail() {
  echo "---- last lines of $logfile ----" >&2
  tail -n 40 "$logfile" >&2 2>/dev/null || echo "(no broker log)" >&2
  if [ -s "$outfile" ]; then
    echo "---- last lines of $outfile (JVM stdout/stderr) ----" >&2
    tail -n 20 "$outfile" >&2
  fi
}

# ---------------------------------------------------------------- commands
start() {
  local pid
  if pid=$(broker_pid); then
    say "already running (pid $pid) at $(running_bootstrap)"
    echo "KAFKA_BOOTSTRAP=$(running_bootstrap)"
    return 0
  fi
  need_java
  fetch
  [ "$port" != "$cport" ] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT are both $port"
  for p in "$port" "$cport"; do
    if port_open "$p"; then
      die "port $host:$p is already in use by another process (another broker? see 'ss -ltnp');" \
          "choose free ports with KAFKA_PORT=... KAFKA_CONTROLLER_PORT=..."
    fi
  done
  write_config
  write_tools_config
  rm -f "$envfile" "$pidfile"

  local stamp=$data/.salespulse-listeners want="$host:$port $host:$cport"
  if [ -f "$data/meta.properties" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$want" ]; then
    die "$data was formatted for listeners $(cat "$stamp"), not $want (the controller address is part of" \
        "the KRaft metadata): run 'scripts/kafka.sh stop --clean' or set KAFKA_DATA_DIR to another directory"
  fi
  if [ ! -f "$data/meta.properties" ]; then
    local id
    mkdir -p "$data"
    id=$(tool kafka.tools.StorageTool random-uuid | tail -n 1)
    [ -n "$id" ] || die "kafka.tools.StorageTool random-uuid printed no cluster id"
    tool kafka.tools.StorageTool format --standalone -t "$id" -c "$props" >/dev/null \
      || die "formatting the KRaft storage in $data failed"
    echo "$want" > "$stamp"
    say "formatted KRaft storage in $data (cluster id $id)"
  fi

  # one run per log file: the previous run's log is kept as broker.previous.log
  if [ -s "$logfile" ]; then mv -f "$logfile" "$state/broker.previous.log"; fi
  rm -f "$logfile".[0-9]*
  : > "$outfile"
  local t0=$SECONDS
  # shellcheck disable=SC2086  # KAFKA_HEAP_OPTS / KAFKA_JVM_OPTS are word lists
  nohup java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} ${KAFKA_JVM_OPTS:--XX:+UseSerialGC} \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$log4j" \
    -cp "$lib/*" kafka.Kafka "$props" < /dev/null >> "$outfile" 2>&1 &
  pid=$!
  echo "$pid" > "$pidfile"
  say "starting Apache Kafka $(kafka_version) (pid $pid) on $host:$port, controller $host:$cport, data $data"

  local deadline=$((SECONDS + start_timeout))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pidfile"
      show_log_tail
      die "the broker exited during start-up (log above)"
    fi
    if port_open "$port" && answers "$host:$port"; then break; fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      show_log_tail
      terminate "$pid"
      rm -f "$pidfile"
      die "the broker did not answer on $host:$port within $start_timeout s (log above); stopped it"
    fi
    sleep 0.5
  done
  printf 'KAFKA_BOOTSTRAP=%s\nKAFKA_DATA_DIR=%s\n' "$host:$port" "$data" > "$envfile"
  say "ready in $((SECONDS - t0)) s; log: $logfile"
  echo "KAFKA_BOOTSTRAP=$host:$port"
}

# SIGTERM (controlled shutdown), wait up to KAFKA_STOP_TIMEOUT s, then SIGKILL.
terminate() {
  local pid=$1 timeout=${KAFKA_STOP_TIMEOUT:-30} t0=$SECONDS
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && [ $((SECONDS - t0)) -lt "$timeout" ]; do sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    say "pid $pid still running after $timeout s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  fi
}

stop() {
  local pid clean=0 dir=$data
  [ "${1:-}" = "--clean" ] && clean=1
  if pid=$(broker_pid); then
    local t0=$SECONDS
    dir=$(running_data)
    say "stopping the broker (pid $pid)"
    terminate "$pid"
    say "stopped in $((SECONDS - t0)) s"
  else
    say "not running"
  fi
  rm -f "$pidfile" "$envfile" "$state"/broker-[0-9]*.pid
  if [ "$clean" = 1 ]; then
    rm -rf "$dir"
    say "removed $dir"
  fi
}

status() {
  local pid
  if pid=$(broker_pid); then
    say "running (pid $pid) at $(running_bootstrap), data $(running_data)"
    echo "KAFKA_BOOTSTRAP=$(running_bootstrap)"
  else
    say "not running"
    return 1
  fi
}

need_running() { broker_pid >/dev/null || die "the broker is not running (scripts/kafka.sh start)"; }

topic() {
  [ -n "${1:-}" ] || die "usage: scripts/kafka.sh topic NAME [PARTITIONS] [--config key=value ...]"
  local name=$1 parts=1
  shift
  if [ $# -ge 1 ] && [[ $1 =~ ^[0-9]+$ ]]; then parts=$1; shift; fi
  need_running
  tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(running_bootstrap)" \
    --command-config "$tools_props" --create --if-not-exists --topic "$name" \
    --partitions "$parts" --replication-factor 1 "$@"
  tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(running_bootstrap)" \
    --command-config "$tools_props" --describe --topic "$name" | head -n 1
}

case "${1:-}" in
  fetch) fetch; say "Apache Kafka $(kafka_version) jars in $lib" ;;
  start) start ;;
  stop) shift; stop "${1:-}" ;;
  status) status ;;
  env) need_running; echo "KAFKA_BOOTSTRAP=$(running_bootstrap)" ;;
  topic) shift; topic "$@" ;;
  messages)
    [ -n "${2:-}" ] || die "usage: scripts/kafka.sh messages NAME"
    need_running
    tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$(running_bootstrap)" \
      --command-config "$tools_props" --topic "$2" --time -1 | awk -F: '{ n += $3 } END { print n + 0 }' ;;
  topics)
    need_running
    tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(running_bootstrap)" --command-config "$tools_props" --list ;;
  selftest)
    need_running
    tool "$root/scripts/kafka/SelfTest.java" "$(running_bootstrap)" ;;
  logs)
    case "${2:-}" in
      -f) tail -n 50 -F "$logfile" ;;
      '') tail -n 100 "$logfile" ;;
      *) tail -n "$2" "$logfile" ;;
    esac ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
