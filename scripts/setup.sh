#!/usr/bin/env bash
# Installs and starts what sandbot needs on a Debian/Ubuntu machine, then builds it:
# Redis and a Docker engine (from Debian's packages), npm dependencies, the TypeScript build, and the
# sandbox image (from a public base image where a registry answers, else from a local root filesystem).
# Safe to run again: every step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "setup: need root for: $*" >&2; exit 1; fi; }
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq "$seconds"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "setup: $what did not answer within ${seconds}s" >&2; return 1
}

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v iptables >/dev/null || missing+=(iptables)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! redis-cli ping >/dev/null 2>&1; then
  log "starting redis-server (append-only persistence in /var/lib/redis)"
  as_root mkdir -p /var/lib/redis
  as_root redis-server --daemonize yes --appendonly yes --dir /var/lib/redis >/dev/null
  wait_for 20 "redis-server" redis-cli ping
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: /var/log/dockerd.log)"
  as_root bash -c 'setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &'
  wait_for 60 "dockerd" docker info
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm dependencies"
  # `npm ci` refuses lock files that lack optional platform packages missing from some registries.
  npm install --no-audit --no-fund --loglevel=error
fi
log "building"
npm run --silent build

image=${SANDBOX_IMAGE:-sandbot-sandbox:latest}
if [ "${SANDBOT_REBUILD_IMAGE:-}" = 1 ] || ! docker image inspect "$image" >/dev/null 2>&1; then
  if ! docker image inspect node:20-bookworm-slim >/dev/null 2>&1 && ! docker image inspect sandbot-base:bookworm >/dev/null 2>&1; then
    if ! timeout 60 docker pull node:20-bookworm-slim >/dev/null 2>&1; then
      log "no container registry answers: building the base image from Debian packages"
      bash sandbox/base/build-base.sh
    fi
  fi
  log "building the sandbox image $image"
  node dist/src/cli/main.js image build --tag "$image"
fi
log "ready"
