#!/usr/bin/env bash
# Run a Java class with the cached Kafka classpath (Kafka 4 server, clients and tools),
# e.g. infra/kafka/run-class.sh org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:19092 --list
#      infra/kafka/run-class.sh org.apache.kafka.tools.ConsumerPerformance --bootstrap-server ... --topic t --messages 1000
# Resolves the jars first if they are not cached yet. Tools log warnings to stderr.
# JVM options: FUNDGUARD_TOOLS_JAVA_OPTS (default: -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=../lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

if (( $# < 1 )) || [[ "$1" == -h || "$1" == --help ]]; then
  sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi

fg_ensure_kafka_libs
cls="$1"
shift
# shellcheck disable=SC2086
exec "$(fg_java)" ${FUNDGUARD_TOOLS_JAVA_OPTS:--Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1} \
  -Dlog4j2.configurationFile="$FG_INFRA_DIR/kafka/tools-log4j2.properties" \
  -cp "$(fg_kafka_classpath)" "$cls" "$@"
