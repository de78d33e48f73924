#!/bin/busybox sh
# /init of the sandbot guest's initramfs: load the virtio disk drivers, mount the (read-only) root disk
# and hand over to its init. Anything going wrong powers the guest off, so the host sees it die and says so.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /newroot
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

fail() {
  echo "sandbot-initramfs: $*" >/dev/console
  echo o >/proc/sysrq-trigger
  sleep 10
}

# Modules in dependency order, worked out at build time (modprobe --show-depends).
while read -r module; do
  [ -n "$module" ] && insmod "/modules/$module" 2>/dev/null
done </modules.order

for _ in $(seq 100); do
  [ -b /dev/vda ] && break
  sleep 0.1
done
[ -b /dev/vda ] || fail "no root disk /dev/vda (virtio-blk driver missing?)"
mount -t ext4 -o ro /dev/vda /newroot || fail "cannot mount the root disk /dev/vda"

umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /usr/bin/tini -s -- /sbin/sandbot-init
