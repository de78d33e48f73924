#!/usr/bin/env bash
# Installs and starts what sandbot needs on a Debian/Ubuntu machine, then builds it:
# Redis (with a password, in .env) and a Docker engine (from Debian's packages), gVisor registered with the engine, npm
# dependencies, the TypeScript build, the sandbox image (from a public base image where a registry
# answers, else from a local root filesystem), and the micro-VM guest where the host has hardware
# virtualization: the layers SANDBOX_LAYER=auto chooses from.
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
# gVisor (SANDBOX_LAYER=gvisor, and auto's choice without hardware virtualization), and a C compiler for the sandbox image's statx shim that Debian's
# runsc needs (sandbox/gvisor/statx-shim.c).
command -v runsc >/dev/null || missing+=(runsc)
command -v cc >/dev/null || missing+=(gcc libc6-dev)
# strace for skill vetting's behavioural run (`sandbot skill add|scan`): copied read-only into the
# throwaway sandbox that runs a skill's tools, to record what they do.
command -v strace >/dev/null || missing+=(strace)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The micro-VM layer (SANDBOX_LAYER=microvm, `sandbot vm build`): QEMU, busybox for the guest's
# initramfs, e2fsprogs for its disks, openssl for its engine's TLS keys. Without recommends: QEMU's
# pull in firmware and GUI libraries the headless guest does not use.
vm_missing=()
command -v qemu-system-x86_64 >/dev/null || vm_missing+=(qemu-system-x86)
# A static busybox (ldd fails on it): the initramfs has no libraries.
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || vm_missing+=(busybox-static)
command -v mkfs.ext4 >/dev/null || vm_missing+=(e2fsprogs)
command -v openssl >/dev/null || vm_missing+=(openssl)
if [ ${#vm_missing[@]} -gt 0 ]; then
  log "installing ${vm_missing[*]} (micro-VM layer)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${vm_missing[@]}" >/dev/null
fi

# Redis behind a password (an ACL user whose URL goes to .env, mode 0600); one already running is left
# as it is, and `sandbot doctor --security` says when it is open.
bash scripts/setup-redis.sh 6379 /var/lib/redis .env

# Register runsc with the local engine (merged into daemon.json, only when it has no "runsc" yet; an
# entry of the operator's is kept, and `sandbot doctor` says if it does not suit).
# --network=none: this runsc cannot use a container network on current kernels (README, Layers);
# --oci-seccomp: gVisor applies the sandboxes' own seccomp profile (sandbox/host/layers/gvisor-seccomp.ts).
if [ -z "${DOCKER_HOST:-}" ] && command -v runsc >/dev/null; then
  registered=$(as_root env KEEP_EXISTING=1 "$(command -v node)" scripts/register-runtime.mjs runsc "$(command -v runsc)" \
    --network=none --oci-seccomp)
  if docker info >/dev/null 2>&1 &&
    { [ "$registered" = changed ] || ! docker info --format '{{json .Runtimes}}' | grep -q '"runsc"'; }; then
    log "registered runsc in /etc/docker/daemon.json; reloading the engine"
    as_root kill -HUP "$(pidof dockerd)"
    wait_for 20 "the engine's runsc runtime" sh -c "docker info --format '{{json .Runtimes}}' | grep -q runsc"
  fi
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

# SANDBOX_LAYER=auto (the default) takes the micro-VM where the CPU has hardware virtualization and its
# guest is built, so build it there (skipped when current); elsewhere runsc, registered above, makes
# gVisor the layer. Emulation (a /dev/kvm without vmx/svm, e.g. PVM) does not count.
case "${SANDBOX_LAYER:-auto}" in auto | microvm)
  if [ -e /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
    log "hardware virtualization: building the micro-VM guest (sandbot vm build)"
    as_root "$(command -v node)" dist/src/cli/main.js vm build --quiet
  fi ;;
esac
log "ready"
