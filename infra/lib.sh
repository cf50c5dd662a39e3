# Shared by infra/up.sh, infra/down.sh and infra/kafka/run-class.sh. Source it; do not run it.
# shellcheck disable=SC2034  # variables here are used by the scripts that source this file
# Callers use `set -euo pipefail`.
#
# Environment (all optional):
#   FUNDGUARD_CACHE                  cache + run data root (default: <repo>/.cache)
#   FUNDGUARD_KAFKA_PORT             broker port (default 19092)
#   FUNDGUARD_KAFKA_CONTROLLER_PORT  KRaft controller port (default 19093)
#   FUNDGUARD_REGISTRY_PORT          schema registry HTTP port (default 18081)
#   FUNDGUARD_REGISTRY_GLOBAL_COMPATIBILITY  default compatibility applied to every subject
#                                    (e.g. BACKWARD, as Confluent's default); empty = none
#   FUNDGUARD_INFRA_TIMEOUT          seconds to wait for a service to become healthy (default 120)
#   FUNDGUARD_STOP_TIMEOUT           seconds between SIGTERM and SIGKILL on stop (default 30)
#   JAVA_HOME                        Java 17+ to use (default: java on PATH)

FG_INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FG_ROOT="$(cd "$FG_INFRA_DIR/.." && pwd)"
FG_CACHE="${FUNDGUARD_CACHE:-$FG_ROOT/.cache}"
mkdir -p "$FG_CACHE"
FG_CACHE="$(cd "$FG_CACHE" && pwd)"

FG_HOST=127.0.0.1
FG_KAFKA_PORT="${FUNDGUARD_KAFKA_PORT:-19092}"
FG_CONTROLLER_PORT="${FUNDGUARD_KAFKA_CONTROLLER_PORT:-19093}"
FG_REGISTRY_PORT="${FUNDGUARD_REGISTRY_PORT:-18081}"
FG_TIMEOUT="${FUNDGUARD_INFRA_TIMEOUT:-120}"
FG_STOP_TIMEOUT="${FUNDGUARD_STOP_TIMEOUT:-30}"

# build caches (kept by `down.sh --clean`)
FG_KAFKA_LIBS="$FG_CACHE/kafka/libs"
FG_REGISTRY_HOME="$FG_CACHE/registry"
FG_REGISTRY_APP="$FG_REGISTRY_HOME/app"            # Quarkus fast-jar: app/quarkus-run.jar
FG_BUILD_LOGS="$FG_CACHE/logs"
# run data (deleted by `down.sh --clean`)
FG_RUN="$FG_CACHE/run"
FG_KAFKA_RUN="$FG_RUN/kafka"
FG_KAFKA_DATA="$FG_KAFKA_RUN/data"
FG_KAFKA_LOGS="$FG_KAFKA_RUN/logs"
FG_KAFKA_PID="$FG_KAFKA_RUN/kafka.pid"
FG_KAFKA_OUT="$FG_KAFKA_RUN/kafka.out"             # JVM stdout/stderr (crashes, GC errors)
FG_KAFKA_LOG="$FG_KAFKA_LOGS/server.log"           # the broker's own log (log4j2)
FG_REGISTRY_RUN="$FG_RUN/registry"
FG_REGISTRY_PID="$FG_REGISTRY_RUN/registry.pid"
FG_REGISTRY_LOG="$FG_REGISTRY_RUN/registry.log"
FG_ENV_FILE="$FG_RUN/env"

FG_KAFKA_BROKERS="$FG_HOST:$FG_KAFKA_PORT"
FG_REGISTRY_URL="http://$FG_HOST:$FG_REGISTRY_PORT/apis/ccompat/v7"

# ---------------------------------------------------------------- logging

fg_log() { printf '[infra] %s\n' "$*" >&2; }
fg_die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

# fg_show_log FILE [LINES]: the tail of a log, to stderr
fg_show_log() {
  local file="$1" lines="${2:-40}"
  if [[ -s "$file" ]]; then
    printf '[infra] ---- last %s lines of %s ----\n' "$lines" "$file" >&2
    tail -n "$lines" "$file" >&2
    printf '[infra] ---- end of %s ----\n' "$file" >&2
  else
    printf '[infra] (%s is empty or missing)\n' "$file" >&2
  fi
}

# ---------------------------------------------------------------- tools

fg_java() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    printf '%s\n' "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    command -v java
  else
    fg_die "java not found: install a Java 17+ runtime or set JAVA_HOME"
  fi
}

fg_check_java() {
  local java version major
  java="$(fg_java)"
  version="$("$java" -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ {print $2; exit}')"
  major="${version%%.*}"
  [[ "$major" =~ ^[0-9]+$ ]] || fg_die "cannot tell the version of $java"
  (( major >= 17 )) || fg_die "$java is Java $version; Kafka 4 needs Java 17 or newer"
}

fg_mvn() {
  command -v mvn >/dev/null 2>&1 || fg_die "mvn (Apache Maven 3.8+) not found on PATH"
  mvn -B --no-transfer-progress "$@"
}

# fg_hash FILE...: one checksum over the given files' contents
fg_hash() { cat "$@" | sha256sum | cut -d' ' -f1; }

# ---------------------------------------------------------------- locking

# fg_lock: serialise up/down across concurrent callers (e.g. parallel test workers)
fg_lock() {
  mkdir -p "$FG_RUN"
  exec 9>"$FG_RUN/.lock"
  if ! flock -w "$((FG_TIMEOUT + 300))" 9; then
    fg_die "another infra/up.sh or down.sh holds $FG_RUN/.lock"
  fi
}

# ---------------------------------------------------------------- processes

# fg_pid_of PIDFILE SERVICE: prints the pid if that process is alive and is our SERVICE
fg_pid_of() {
  local pidfile="$1" service="$2" pid
  [[ -s "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # guard against pid reuse: the java command line carries -Dfundguard.service=SERVICE
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-Dfundguard.service=$service" || return 1
  printf '%s\n' "$pid"
}

# fg_start_bg PIDFILE OUTFILE CMD...: start CMD detached (own session, immune to hangup)
fg_start_bg() {
  local pidfile="$1" outfile="$2"
  shift 2

  mkdir -p "$(dirname "$pidfile")" "$(dirname "$outfile")"
  rm -f "$pidfile"
  # setsid: own session, so it outlives the calling shell / job and its process group;
  # the inner shell writes its own pid, which `exec` hands on to the service itself;
  # 9>&- : the service must not inherit the lock taken by fg_lock
  # shellcheck disable=SC2016  # expanded by the inner shell
  nohup setsid bash -c 'printf "%s\n" "$$" >"$1"; shift; exec "$@"' fg-start "$pidfile" "$@" \
    >>"$outfile" 2>&1 </dev/null 9>&- &
  for _ in $(seq 1 50); do
    [[ -s "$pidfile" ]] && return 0
    sleep 0.1
  done
  fg_die "could not start: $* (see $outfile)"
}

# fg_stop PIDFILE SERVICE TIMEOUT: SIGTERM, wait, then SIGKILL
fg_stop() {
  local pidfile="$1" service="$2" timeout="$3" pid waited=0
  if ! pid="$(fg_pid_of "$pidfile" "$service")"; then
    rm -f "$pidfile"
    fg_log "$service: not running"
    return 0
  fi
  fg_log "$service: stopping pid $pid (SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if (( waited >= timeout * 10 )); then
      fg_log "$service: still running after ${timeout}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$pidfile"
  fg_log "$service: stopped"
}

# fg_port_open PORT: something accepts TCP connections on 127.0.0.1:PORT
fg_port_open() {
  (exec 3<>"/dev/tcp/$FG_HOST/$1") 2>/dev/null
}

# fg_wait_healthy SERVICE PIDFILE LOGFILE CHECK...: poll CHECK until it succeeds,
# fail early if the process dies, fail with the log's tail after FG_TIMEOUT seconds
fg_wait_healthy() {
  local service="$1" pidfile="$2" logfile="$3" start now
  shift 3
  start="$(date +%s)"
  while true; do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    if ! fg_pid_of "$pidfile" "$service" >/dev/null; then
      fg_show_log "$logfile" 60
      fg_die "$service exited during start-up (log: $logfile)"
    fi
    now="$(date +%s)"
    if (( now - start >= FG_TIMEOUT )); then
      fg_show_log "$logfile" 60
      fg_die "$service not healthy after ${FG_TIMEOUT}s (log: $logfile); it is left running: infra/down.sh stops it"
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------- Kafka

# fg_kafka_api_versions: send a Kafka ApiVersions (v0) request to the broker port and
# check that the answer carries our correlation id and error_code 0 (no JVM needed)
fg_kafka_api_versions() {
  local reply
  reply="$(
    exec 3<>"/dev/tcp/$FG_HOST/$FG_KAFKA_PORT" || exit 1
    # size=15 | api_key=18 (ApiVersions) | api_version=0 | correlation_id=0x46470001 | client_id="fgchk"
    printf '\x00\x00\x00\x0f\x00\x12\x00\x00\x46\x47\x00\x01\x00\x05fgchk' >&3
    timeout 5 head -c 10 <&3 | od -An -tx1 | tr -d ' \n'
  )" || return 1
  # int32 size, int32 correlation id, int16 error_code
  [[ "${reply:8:8}" == "46470001" && "${reply:16:4}" == "0000" ]]
}

fg_kafka_classpath() { printf '%s\n' "$FG_KAFKA_LIBS/*"; }

# fg_ensure_kafka_libs: resolve Kafka + tools jars into $CACHE/kafka/libs (cached by pom hash)
fg_ensure_kafka_libs() {
  local stamp="$FG_CACHE/kafka/libs.stamp" want
  want="$(fg_hash "$FG_INFRA_DIR/kafka/pom.xml")"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && compgen -G "$FG_KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  # run-class.sh may get here without up.sh's lock: take one of our own, then look again
  mkdir -p "$FG_CACHE/kafka"
  exec 8>"$FG_CACHE/kafka/.lock"
  flock -w 900 8 || fg_die "kafka: timed out waiting for $FG_CACHE/kafka/.lock"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && compgen -G "$FG_KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
    exec 8>&-
    return 0
  fi
  fg_log "kafka: resolving jars from Maven Central into $FG_KAFKA_LIBS"
  mkdir -p "$FG_BUILD_LOGS"
  rm -rf "$FG_KAFKA_LIBS"
  mkdir -p "$FG_KAFKA_LIBS"
  if ! fg_mvn -f "$FG_INFRA_DIR/kafka/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$FG_KAFKA_LIBS" >"$FG_BUILD_LOGS/kafka-mvn.log" 2>&1; then
    fg_show_log "$FG_BUILD_LOGS/kafka-mvn.log" 40
    fg_die "kafka: Maven could not resolve the jars (log: $FG_BUILD_LOGS/kafka-mvn.log)"
  fi
  printf '%s\n' "$want" >"$stamp"
  exec 8>&-
}

# fg_kafka_tool CLASS ARGS...: run a Kafka CLI class with the cached classpath
fg_kafka_tool() {
  local cls="$1"
  shift
  # shellcheck disable=SC2086
  "$(fg_java)" ${FUNDGUARD_TOOLS_JAVA_OPTS:--Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1} \
    -Dlog4j2.configurationFile="$FG_INFRA_DIR/kafka/tools-log4j2.properties" \
    -cp "$(fg_kafka_classpath)" "$cls" "$@"
}

fg_render_kafka_config() {
  mkdir -p "$FG_KAFKA_RUN"
  sed -e "s|@KAFKA_PORT@|$FG_KAFKA_PORT|g" \
      -e "s|@CONTROLLER_PORT@|$FG_CONTROLLER_PORT|g" \
      -e "s|@DATA_DIR@|$FG_KAFKA_DATA|g" \
      "$FG_INFRA_DIR/kafka/server.properties.template" >"$FG_KAFKA_RUN/server.properties"
}

# fg_format_kafka_storage: format the KRaft log dir once (single voter, --standalone);
# reformat (dropping the data) if the controller port it was formatted for changed
fg_format_kafka_storage() {
  local marker="$FG_KAFKA_RUN/formatted-for" want="controller=$FG_HOST:$FG_CONTROLLER_PORT" cluster_id
  if [[ -f "$FG_KAFKA_DATA/meta.properties" && -f "$marker" && "$(cat "$marker")" == "$want" ]]; then
    return 0
  fi
  if [[ -d "$FG_KAFKA_DATA" ]]; then
    fg_log "kafka: storage was formatted for another controller address: dropping $FG_KAFKA_DATA"
    rm -rf "$FG_KAFKA_DATA"
  fi
  mkdir -p "$FG_KAFKA_LOGS"
  cluster_id="$(fg_kafka_tool kafka.tools.StorageTool random-uuid)"
  fg_log "kafka: formatting $FG_KAFKA_DATA (cluster id $cluster_id, standalone controller)"
  if ! fg_kafka_tool kafka.tools.StorageTool format --standalone \
      --cluster-id "$cluster_id" --config "$FG_KAFKA_RUN/server.properties" \
      >"$FG_KAFKA_RUN/format.log" 2>&1; then
    fg_show_log "$FG_KAFKA_RUN/format.log" 40
    fg_die "kafka: storage format failed"
  fi
  printf '%s\n' "$want" >"$marker"
}

fg_start_kafka() {
  fg_render_kafka_config
  fg_format_kafka_storage
  mkdir -p "$FG_KAFKA_LOGS"
  printf '\n==== %s start ====\n' "$(date -u +%FT%TZ)" >>"$FG_KAFKA_OUT"
  fg_start_bg "$FG_KAFKA_PID" "$FG_KAFKA_OUT" \
    "$(fg_java)" -Dfundguard.service=kafka \
    -Xms1g -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dkafka.logs.dir="$FG_KAFKA_LOGS" \
    -Dlog4j2.configurationFile="$FG_INFRA_DIR/kafka/log4j2.properties" \
    -cp "$(fg_kafka_classpath)" kafka.Kafka "$FG_KAFKA_RUN/server.properties"
}

fg_kafka_healthy() {
  fg_pid_of "$FG_KAFKA_PID" kafka >/dev/null && fg_kafka_api_versions
}

# ---------------------------------------------------------------- schema registry

fg_registry_sources() {
  find "$FG_INFRA_DIR/registry" -path "$FG_INFRA_DIR/registry/NOTES.md" -prune -o -type f -print | LC_ALL=C sort
}

# fg_ensure_registry_app: build Apicurio Registry (Quarkus fast-jar) into $CACHE/registry/app
fg_ensure_registry_app() {
  local stamp="$FG_REGISTRY_HOME/app.stamp" want build="$FG_REGISTRY_HOME/build"
  # shellcheck disable=SC2046
  want="$(fg_hash $(fg_registry_sources))"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -f "$FG_REGISTRY_APP/quarkus-run.jar" ]]; then
    return 0
  fi
  fg_log "registry: building Apicurio Registry from Maven Central artifacts (first time: a few minutes)"
  mkdir -p "$FG_BUILD_LOGS" "$FG_REGISTRY_HOME"
  rm -rf "$build"
  if ! fg_mvn -f "$FG_INFRA_DIR/registry/pom.xml" package \
      -Dfundguard.registry.build="$build" >"$FG_BUILD_LOGS/registry-mvn.log" 2>&1; then
    fg_show_log "$FG_BUILD_LOGS/registry-mvn.log" 60
    fg_die "registry: Maven build failed (log: $FG_BUILD_LOGS/registry-mvn.log)"
  fi
  [[ -f "$build/quarkus-app/quarkus-run.jar" ]] || fg_die "registry: build produced no $build/quarkus-app/quarkus-run.jar"
  rm -rf "$FG_REGISTRY_APP"
  mv "$build/quarkus-app" "$FG_REGISTRY_APP"
  rm -rf "$build"
  printf '%s\n' "$want" >"$stamp"
}

fg_start_registry() {
  local compat=()
  if [[ -n "${FUNDGUARD_REGISTRY_GLOBAL_COMPATIBILITY:-}" ]]; then
    compat=("-Dregistry.rules.global.compatibility=$FUNDGUARD_REGISTRY_GLOBAL_COMPATIBILITY")
  fi
  mkdir -p "$FG_REGISTRY_RUN"
  printf '\n==== %s start ====\n' "$(date -u +%FT%TZ)" >>"$FG_REGISTRY_LOG"
  # In-memory storage (H2 in memory, Apicurio's default): the registry is empty after each start.
  # ccompat ids: legacy-id-mode off = ids are content ids (same schema => same id, as in Confluent).
  # use-canonical-hash stays OFF: when on, Apicurio 2.4 stores the *canonicalised* Avro text,
  # whose record fields are sorted by name - a reader fetching the writer schema by id would
  # then decode Avro binary with the wrong field order.
  # Concurrent writes are serialised by registry/src/.../SerializeWritesFilter.java (H2 id
  # sequences of Apicurio 2.4 are not safe under concurrent registrations).
  fg_start_bg "$FG_REGISTRY_PID" "$FG_REGISTRY_LOG" \
    "$(fg_java)" -Dfundguard.service=registry \
    -Xms128m -Xmx512m -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dquarkus.http.host="$FG_HOST" -Dquarkus.http.port="$FG_REGISTRY_PORT" \
    -Dregistry.ccompat.legacy-id-mode.enabled=false \
    -Dregistry.ccompat.use-canonical-hash=false \
    -Dregistry.ccompat.max-subjects=10000 \
    "${compat[@]}" \
    -jar "$FG_REGISTRY_APP/quarkus-run.jar"
}

# fg_http_ok URL: HTTP GET answers 200
fg_http_ok() {
  local url="$1"
  if command -v curl >/dev/null 2>&1; then
    [[ "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$url")" == "200" ]]
  else
    local rest="${url#http://}" hostport path status
    hostport="${rest%%/*}"
    path="/${rest#*/}"
    status="$(
      exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" || exit 1
      printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" >&3
      timeout 5 head -n 1 <&3
    )" || return 1
    [[ "$status" == *" 200 "* ]]
  fi
}

fg_registry_healthy() {
  fg_pid_of "$FG_REGISTRY_PID" registry >/dev/null && fg_http_ok "$FG_REGISTRY_URL/subjects"
}

# ---------------------------------------------------------------- env file

fg_write_env() {
  mkdir -p "$FG_RUN"
  {
    printf 'KAFKA_BROKERS=%s\n' "$FG_KAFKA_BROKERS"
    printf 'SCHEMA_REGISTRY_URL=%s\n' "$FG_REGISTRY_URL"
  } >"$FG_ENV_FILE.tmp"
  mv "$FG_ENV_FILE.tmp" "$FG_ENV_FILE"
}
