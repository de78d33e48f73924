#!/usr/bin/env bash
# Builds sandbot's micro-VM guest from Debian packages, without any container registry:
#   vmlinuz     the kernel of linux-image-cloud-amd64 (apt-get download + dpkg -x)
#   initrd.img  a busybox initramfs that loads the virtio disk drivers and switch_roots
#   root.img    an ext4 root disk (mounted read-only): debootstrap minbase + docker.io + the kernel's
#               modules + the guest init + the engine's TLS server keys
# Called by `sandbot vm build` (sandbox/host/vm/build.ts), which decides whether anything changed. The
# debootstrap result is cached in CACHE as a tarball keyed by its inputs, so changing only the init or
# the keys rebuilds in seconds. Needs root, debootstrap, busybox-static, e2fsprogs and apt.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

OUT="" CACHE="" TLS="" FILES=""
SUITE="bookworm"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="docker.io,kmod,iproute2"
KERNEL_META="linux-image-cloud-amd64"

die() { echo "build-guest: error: $*" >&2; exit 1; }
log() { echo "build-guest: $*"; }
while [ $# -gt 0 ]; do
  case "$1" in
  --out) OUT="$2"; shift 2 ;;
  --cache) CACHE="$2"; shift 2 ;;
  --tls) TLS="$2"; shift 2 ;;
  --files) FILES="$2"; shift 2 ;;
  --mirror) MIRROR="$2"; shift 2 ;;
  *) die "unknown argument: $1" ;;
  esac
done
[ -n "$OUT" ] && [ -n "$CACHE" ] && [ -n "$TLS" ] && [ -n "$FILES" ] || die "usage: $0 --out DIR --cache DIR --tls DIR --files DIR"
[ "$(id -u)" = 0 ] || die "building the guest needs root (debootstrap, chroot): run as root"
for tool in debootstrap mkfs.ext4 busybox apt-get dpkg; do
  command -v "$tool" >/dev/null || die "$tool is missing: run scripts/setup.sh (or apt-get install debootstrap e2fsprogs busybox-static)"
done
BUSYBOX="$(command -v busybox)"
if ldd "$BUSYBOX" >/dev/null 2>&1; then die "$BUSYBOX is dynamically linked: apt-get install busybox-static"; fi
for file in ca.pem server-cert.pem server-key.pem; do [ -f "$TLS/$file" ] || die "missing $TLS/$file"; done

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
T_START=$(now)
mkdir -p "$OUT" "$CACHE"

# The kernel package the meta package points at today (apt lists are refreshed once if they lack it).
kernel_package() { apt-cache depends "$KERNEL_META" 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }'; }
KPKG="$(kernel_package)"
if [ -z "$KPKG" ]; then
  log "refreshing apt lists to find $KERNEL_META"
  apt-get update -qq >/dev/null || die "apt-get update failed"
  KPKG="$(kernel_package)"
fi
[ -n "$KPKG" ] || die "apt knows no $KERNEL_META: add Debian's main archive to the apt sources"
KVER="${KPKG#linux-image-}"
KPKG_VERSION="$(apt-cache policy "$KPKG" | awk '/Candidate:/ { print $2 }')"

WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/sandbot-guest.XXXXXX")"
cleanup() {
  awk -v root="$WORK" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. The base root filesystem (debootstrap + kernel), cached by its inputs.
BASE_KEY="$(printf '%s\n' "$SUITE" "$PACKAGES" "$KPKG" "$KPKG_VERSION" "base-v1" | sha256sum | cut -c1-16)"
BASE_TAR="$CACHE/base-$BASE_KEY.tar"
ROOT="$WORK/root"
mkdir -p "$ROOT"
if [ -f "$BASE_TAR" ]; then
  log "base root filesystem from cache ($KPKG $KPKG_VERSION)"
else
  log "debootstrap $SUITE ($PACKAGES) from $MIRROR"
  T=$(now)
  if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -n 30 "$WORK/debootstrap.log" >&2
    die "debootstrap failed (log above); check that $MIRROR is reachable"
  fi
  log "debootstrap done in $(since "$T")"
  log "kernel $KPKG $KPKG_VERSION"
  (cd "$WORK" && apt-get download "$KPKG" >/dev/null 2>&1) || die "apt-get download $KPKG failed"
  # Extracted aside: dpkg -x would replace the root's merged-/usr symlinks (/lib -> usr/lib) with directories.
  dpkg -x "$WORK"/"$KPKG"_*.deb "$WORK/kernel"
  cp -a "$WORK/kernel/boot/." "$ROOT/boot/"
  mkdir -p "$ROOT/usr/lib/modules"
  for dir in lib/modules usr/lib/modules; do
    [ -d "$WORK/kernel/$dir" ] && cp -a "$WORK/kernel/$dir/." "$ROOT/usr/lib/modules/"
  done
  chroot "$ROOT" depmod "$KVER"
  # Not needed at run time: the docker CLI and containerd's (the host drives the engine over its API),
  # package caches, lists, docs, man pages, locales.
  rm -f "$ROOT"/usr/bin/docker "$ROOT"/usr/bin/ctr
  chroot "$ROOT" apt-get clean
  rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* \
    "$ROOT"/usr/share/info/* "$ROOT"/var/log/*.log "$ROOT"/debootstrap
  find "$ROOT/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
  rm -f "$CACHE"/base-*.tar
  tar --numeric-owner -C "$ROOT" -cf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
fi
if [ -z "$(ls -A "$ROOT")" ]; then tar --numeric-owner -C "$ROOT" -xf "$BASE_TAR"; fi
[ -f "$ROOT/boot/vmlinuz-$KVER" ] || die "the cached base lacks /boot/vmlinuz-$KVER: delete $BASE_TAR and build again"

# 2. The guest's own files: its init, the engine's TLS server keys, mount points of a read-only root.
install -m 0755 "$FILES/guest-init.sh" "$ROOT/sbin/sandbot-init"
install -d -m 0700 "$ROOT/etc/sandbot/tls"
install -m 0644 "$TLS/ca.pem" "$TLS/server-cert.pem" "$ROOT/etc/sandbot/tls/"
install -m 0600 "$TLS/server-key.pem" "$ROOT/etc/sandbot/tls/"
mkdir -p "$ROOT/var/lib/docker" "$ROOT/etc/docker" "$ROOT/run" "$ROOT/tmp" "$ROOT/sys/fs/cgroup"
echo sandbot-guest >"$ROOT/etc/hostname"

# 3. The initramfs: busybox, the virtio disk modules in dependency order, and /init.
INITRAMFS="$WORK/initramfs"
mkdir -p "$INITRAMFS/bin" "$INITRAMFS/modules"
install -m 0755 "$BUSYBOX" "$INITRAMFS/bin/busybox"
install -m 0755 "$FILES/initramfs-init.sh" "$INITRAMFS/init"
chroot "$ROOT" modprobe --show-depends -S "$KVER" -a virtio_pci virtio_blk |
  awk '$1 == "insmod" { print $2 }' | while read -r path; do
  name="$(basename "$path")"
  if [ ! -f "$INITRAMFS/modules/$name" ]; then
    install -m 0644 "$ROOT$path" "$INITRAMFS/modules/$name"
    echo "$name" >>"$INITRAMFS/modules.order"
  fi
done
[ -s "$INITRAMFS/modules.order" ] || die "found no virtio modules in $KPKG"
(cd "$INITRAMFS" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$OUT/initrd.img.tmp"

# 4. The disks and the kernel, moved into place only when all are made.
SIZE_MB=$(($(du -sm "$ROOT" | cut -f1) * 5 / 4 + 64))
rm -f "$OUT/root.img.tmp"
mkfs.ext4 -q -F -L sandbot-root -d "$ROOT" "$OUT/root.img.tmp" "${SIZE_MB}M" >/dev/null || die "mkfs.ext4 -d failed"
chmod 0600 "$OUT/root.img.tmp" # it holds the engine's TLS server key
install -m 0644 "$ROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz.tmp"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"
mv "$OUT/root.img.tmp" "$OUT/root.img"
ENGINE="$(chroot "$ROOT" /usr/sbin/dockerd --version | awk '{ print $3 }' | tr -d ,)"
printf '{"kernelPackage":"%s","kernelVersion":"%s","engineVersion":"%s","rootMb":%s}\n' \
  "$KPKG" "$KPKG_VERSION" "$ENGINE" "$SIZE_MB" >"$OUT/manifest.json"
log "built the guest in $(since "$T_START"): kernel $KVER, root disk ${SIZE_MB} MB"
