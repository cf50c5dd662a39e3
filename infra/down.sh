#!/usr/bin/env bash
# Stop the local schema registry and Kafka started by infra/up.sh (SIGTERM, then SIGKILL
# after FUNDGUARD_STOP_TIMEOUT seconds). With --clean, also delete the run data
# ($CACHE/run: Kafka's topics and logs); build caches are kept.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

clean=0
for arg in "$@"; do
  case "$arg" in
    --clean) clean=1 ;;
    -h|--help) sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) fg_die "unknown argument: $arg (usage: infra/down.sh [--clean])" ;;
  esac
done

fg_lock
fg_stop "$FG_REGISTRY_PID" registry "$FG_STOP_TIMEOUT"
fg_stop "$FG_KAFKA_PID" kafka "$FG_STOP_TIMEOUT"
rm -f "$FG_ENV_FILE"

if (( clean )); then
  fg_log "deleting run data in $FG_RUN"
  find "$FG_RUN" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf {} +
fi
