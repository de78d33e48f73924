#!/usr/bin/env bash
# Builds sandbot's local base image without any container registry:
# a Debian bookworm root filesystem from debootstrap (bash, coreutils, git, python3, curl, ca-certificates)
# plus this host's node binary (and npm), imported with `docker import`.
# Used by CI and scripts/setup.sh where `docker pull` cannot work. Idempotent: skips when the tag exists.
set -euo pipefail

TAG="sandbot-base:bookworm"
FORCE=0
SUITE="bookworm"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="bash,coreutils,git,python3,curl,ca-certificates"

usage() {
  cat <<EOF
Usage: $0 [--tag TAG] [--force] [--mirror URL]
  --tag TAG     image tag to create (default: $TAG)
  --force       rebuild even when TAG already exists
  --mirror URL  Debian mirror (default: \$DEBIAN_MIRROR or http://deb.debian.org/debian)
Needs root, a reachable Docker engine, debootstrap (installed with apt if missing) and node 20 on the host.
EOF
}

die() {
  echo "build-base: error: $*" >&2
  exit 1
}
log() { echo "build-base: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
  --tag) [ $# -ge 2 ] || die "--tag needs a value"; TAG="$2"; shift 2 ;;
  --force) FORCE=1; shift ;;
  --mirror) [ $# -ge 2 ] || die "--mirror needs a value"; MIRROR="$2"; shift 2 ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; die "unknown argument: $1" ;;
  esac
done

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
T_START=$(now)

command -v docker >/dev/null || die "the docker CLI is not installed (apt-get install -y docker.io)"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine: is dockerd running, and is DOCKER_HOST right?"

if [ "$FORCE" = 0 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
  log "$TAG already exists; skipping (use --force to rebuild)"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "debootstrap needs root: run this script as root (sudo $0)"

NODE_BIN="$(command -v node || true)"
[ -n "$NODE_BIN" ] || die "node is not installed on this host; the base image copies the host's node 20 binary"
NODE_BIN="$(readlink -f "$NODE_BIN")"
NODE_MAJOR="$("$NODE_BIN" -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" = 20 ] || die "host node is v$NODE_MAJOR, expected v20 (install node 20 or set PATH to it)"

if ! command -v debootstrap >/dev/null; then
  command -v apt-get >/dev/null || die "debootstrap is missing and apt-get is not available to install it"
  log "installing debootstrap with apt"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
    die "could not install debootstrap with apt-get"
fi

WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/sandbot-base.XXXXXX")"
ROOTFS="$WORK/rootfs"
cleanup() {
  # A failed debootstrap can leave /proc or /sys mounted inside the root filesystem: unmount before deleting.
  if [ -d "$ROOTFS" ]; then
    awk -v root="$ROOTFS" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
  fi
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM # so the EXIT trap cleans up on interruption too

log "debootstrap $SUITE from $MIRROR into $ROOTFS"
T=$(now)
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
  tail -n 30 "$WORK/debootstrap.log" >&2
  [ -f "$ROOTFS/debootstrap/debootstrap.log" ] && tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2
  die "debootstrap failed (log above); check that $MIRROR is reachable"
fi
log "debootstrap done in $(since "$T")"

T=$(now)
install -D -m 0755 "$NODE_BIN" "$ROOTFS/usr/local/bin/node"
# The host is Debian 12 too, so node's libraries are normally in the rootfs already; copy any that are not.
ldd "$NODE_BIN" | awk '/=>/ { print $3 } !/=>/ && $1 ~ /^\// { print $1 }' | while read -r lib; do
  [ -n "$lib" ] || continue
  if [ ! -e "$ROOTFS$lib" ]; then
    log "copying missing library $lib"
    install -D -m 0644 "$(readlink -f "$lib")" "$ROOTFS$lib"
  fi
done
NPM_DIR="$(dirname "$NODE_BIN")/../lib/node_modules/npm"
if [ -f "$NPM_DIR/bin/npm-cli.js" ]; then
  # npm lets images built FROM this base run `npm ci` (the gateway/worker Dockerfile does).
  mkdir -p "$ROOTFS/usr/local/lib/node_modules"
  cp -a "$(readlink -f "$NPM_DIR")" "$ROOTFS/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"
else
  log "warning: npm not found next to $NODE_BIN; the image will have node but no npm"
fi
chroot "$ROOTFS" /usr/local/bin/node -e 'process.exit(0)' ||
  die "the copied node binary does not run inside the root filesystem (library mismatch?)"
log "node $("$NODE_BIN" -v) installed in $(since "$T")"

# Keep the image small: package caches, lists, docs, man pages and logs are not needed at run time.
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/cache/debconf/*-old \
  "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
  "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* "$ROOTFS"/debootstrap
find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +

log "importing as $TAG"
T=$(now)
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'LABEL sandbot.image=base' \
  -c 'CMD ["node"]' \
  -m "sandbot base: debootstrap $SUITE minbase + host node $("$NODE_BIN" -v)" \
  - "$TAG" >/dev/null || die "docker import failed"
log "import done in $(since "$T")"

docker run --rm --network none "$TAG" node -e 'process.exit(0)' || die "the imported image cannot run node"
SIZE="$(docker image inspect -f '{{.Size}}' "$TAG")"
log "built $TAG ($((SIZE / 1024 / 1024)) MB) in $(since "$T_START")"
