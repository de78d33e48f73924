#!/bin/sh
# The sandbot guest's init (under tini, which reaps orphans): mounts, the data disk, the network
# interface the host forwards the engine's port to, and dockerd with TLS client verification. The host
# asks for a clean power-off by writing "poweroff" to the second serial port.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
log() { echo "sandbot-guest: $*" >/dev/console; }
power_off() {
  sync
  echo o >/proc/sysrq-trigger
  sleep 30
}

mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
# loop: size-capped sandbox volumes are ext4 images loop-mounted here (sandbox/host/vm/guest-quota.ts).
modprobe -a virtio_net virtio_rng overlay loop 2>/dev/null
hostname sandbot-guest

# The data disk keeps images, containers and volumes across restarts (the root disk is read-only).
if ! mount -t ext4 -o nosuid,nodev /dev/vdb /var/lib/docker; then
  log "cannot mount the data disk /dev/vdb"
  power_off
fi
mkdir -p /var/lib/docker/etc-docker
mount --bind /var/lib/docker/etc-docker /etc/docker

# QEMU's user network with restrict=on: the host forwards one loopback port here; nothing goes out.
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0

TLS=/etc/sandbot/tls
start_engine() {
  dockerd --host tcp://10.0.2.15:2376 --tlsverify --tlscacert "$TLS/ca.pem" \
    --tlscert "$TLS/server-cert.pem" --tlskey "$TLS/server-key.pem" \
    --bridge none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --userland-proxy=false --data-root /var/lib/docker --exec-root /run/docker \
    --storage-driver overlay2 --log-level warn >/dev/console 2>&1 &
  engine=$!
}

stopping=0
shutdown() {
  stopping=1
  log "stopping the engine"
  kill -TERM "$engine" 2>/dev/null
  for _ in $(seq 60); do kill -0 "$engine" 2>/dev/null || break; sleep 0.5; done
  kill -TERM -1 2>/dev/null
  sleep 1
  kill -KILL -1 2>/dev/null
  # Size-capped volumes (loop-mounted images on the data disk) first, so the disk can go read-only.
  for mnt in /var/lib/docker/sandbot-quota/mnt/*; do umount "$mnt" 2>/dev/null; done
  sync
  mount -o remount,ro /var/lib/docker 2>/dev/null
  log "powering off"
  power_off
}
trap shutdown TERM

# The control line: the host writes "poweroff" to ttyS1.
(
  stty -F /dev/ttyS1 raw -echo 2>/dev/null
  while read -r command </dev/ttyS1; do
    [ "$command" = poweroff ] && kill -TERM $$
  done
) &

log "starting the engine"
start_engine
while :; do
  wait "$engine"
  status=$?
  [ "$stopping" = 1 ] && break
  # wait returns early when a trapped signal arrives; only restart an engine that really exited.
  if ! kill -0 "$engine" 2>/dev/null; then
    log "the engine exited ($status); starting it again"
    sleep 1
    start_engine
  fi
done
sleep 3600
