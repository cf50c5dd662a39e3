#!/usr/bin/env bash
# Start the local Kafka broker (KRaft, single node) and the schema registry (Apicurio,
# Confluent-compatible API) in the background, wait until both are healthy, and write
# $CACHE/run/env (KAFKA_BROKERS=..., SCHEMA_REGISTRY_URL=...).
# Idempotent: services that are already up and healthy are left alone.
# First run resolves / builds everything into $CACHE (Maven, ~/.m2); later runs reuse it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

case "${1:-}" in
  "") ;;
  -h|--help) sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) fg_die "unknown argument: $1 (usage: infra/up.sh)" ;;
esac

fg_lock
fg_check_java

kafka_up=0 registry_up=0
fg_kafka_healthy && kafka_up=1
fg_registry_healthy && registry_up=1

if (( !kafka_up )); then
  if fg_pid_of "$FG_KAFKA_PID" kafka >/dev/null; then
    fg_log "kafka: already started, waiting for it to answer"
  else
    for port in "$FG_KAFKA_PORT" "$FG_CONTROLLER_PORT"; do
      fg_port_open "$port" && fg_die "kafka: port $FG_HOST:$port is taken by another process (set FUNDGUARD_KAFKA_PORT / FUNDGUARD_KAFKA_CONTROLLER_PORT)"
    done
  fi
fi
if (( !registry_up )) && ! fg_pid_of "$FG_REGISTRY_PID" registry >/dev/null; then
  fg_port_open "$FG_REGISTRY_PORT" && fg_die "registry: port $FG_HOST:$FG_REGISTRY_PORT is taken by another process (set FUNDGUARD_REGISTRY_PORT)"
fi

# fetch / build whatever is missing before starting anything
(( kafka_up )) || fg_ensure_kafka_libs
(( registry_up )) || fg_ensure_registry_app

kafka_started=0
if (( !kafka_up )) && ! fg_pid_of "$FG_KAFKA_PID" kafka >/dev/null; then
  fg_log "kafka: starting on $FG_KAFKA_BROKERS (controller $FG_HOST:$FG_CONTROLLER_PORT)"
  fg_start_kafka
  kafka_started=1
fi
if (( !registry_up )) && ! fg_pid_of "$FG_REGISTRY_PID" registry >/dev/null; then
  fg_log "registry: starting on http://$FG_HOST:$FG_REGISTRY_PORT"
  fg_start_registry
fi

if (( !kafka_up )); then
  fg_wait_healthy kafka "$FG_KAFKA_PID" "$FG_KAFKA_LOG" fg_kafka_api_versions
  if (( kafka_started )); then
    # a first real client round trip (metadata) before declaring it ready
    # shellcheck disable=SC2016  # expanded by the inner shell
    if ! topics="$(timeout 60 bash -c 'source "$1"; fg_kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$FG_KAFKA_BROKERS" --list' _ "$FG_INFRA_DIR/lib.sh" 2>&1)"; then
      printf '%s\n' "$topics" >&2
      fg_show_log "$FG_KAFKA_LOG" 40
      fg_die "kafka: answers ApiVersions but listing topics failed"
    fi
  fi
  fg_log "kafka: healthy"
fi
if (( !registry_up )); then
  fg_wait_healthy registry "$FG_REGISTRY_PID" "$FG_REGISTRY_LOG" fg_http_ok "$FG_REGISTRY_URL/subjects"
  fg_log "registry: healthy"
fi

if (( kafka_up && registry_up )); then
  fg_log "already running and healthy"
fi
fg_write_env
fg_log "kafka    pid $(cat "$FG_KAFKA_PID")  $FG_KAFKA_BROKERS  log: $FG_KAFKA_LOG (JVM output: $FG_KAFKA_OUT)"
fg_log "registry pid $(cat "$FG_REGISTRY_PID")  $FG_REGISTRY_URL  log: $FG_REGISTRY_LOG"
fg_log "env file: $FG_ENV_FILE   stop with: infra/down.sh [--clean]"
cat "$FG_ENV_FILE"
