#!/usr/bin/env bash
# Print the path of a Docker Compose v2 binary, building it when none is at hand: the `docker
# compose` plugin if installed, else $CACHE/tools/docker-compose, built from the Go module proxy
# (github.com/docker/compose/v2, pinned below) with the machine's Go. It only reads and checks
# compose files here (`config`); running the stack still needs a Docker engine.
# First build about 2 minutes (module downloads into the shared Go caches), then a few seconds.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

COMPOSE_VERSION=v2.40.3
out="$FG_CACHE/tools/docker-compose-$COMPOSE_VERSION"

if command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
  printf 'docker compose\n'
  exit 0
fi
if [[ ! -x "$out" ]]; then
  command -v go >/dev/null || fg_die "compose: no 'docker compose' plugin and no Go toolchain to build one"
  fg_log "compose: building Docker Compose $COMPOSE_VERSION from the Go module proxy"
  dir="$(go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$dir" ]] || fg_die "compose: go mod download gave no source folder"
  src="$(mktemp -d)"
  trap 'rm -rf "$src"' EXIT
  # The module's go.mod has exclude directives, so it builds as the main module, not by `go install`.
  cp -r "$dir/." "$src" && chmod -R u+w "$src"
  mkdir -p "$(dirname "$out")"
  (cd "$src" && go build -trimpath -o "$out.tmp" ./cmd) || fg_die "compose: go build failed"
  mv "$out.tmp" "$out"
fi
printf '%s\n' "$out"
