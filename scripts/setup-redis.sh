#!/usr/bin/env bash
# Redis for sandbot, behind a password: started (when none answers on 127.0.0.1:PORT) bound to loopback,
# its default user off and an ACL user "sandbot" that may not reconfigure or stop it (CONFIG, MODULE,
# DEBUG, SHUTDOWN, replication: a way from Redis to the host's files), with append-only persistence in
# DIR. The password goes to ENV_FILE (mode 0600) as SANDBOT_REDIS_URL, which sandbot and the tests read;
# it is kept across runs, so a restarted Redis takes the same one.
# A Redis that already answers is left as it is: without a password it is only reported (here and by
# `sandbot doctor --security`), never reconfigured under whoever else uses it.
# Usage: setup-redis.sh [PORT] [DIR] [ENV_FILE]   (defaults: 6379 /var/lib/redis .env)
set -euo pipefail
port=${1:-6379}
dir=${2:-/var/lib/redis}
env_file=${3:-.env}

log() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "setup: need root for: $*" >&2; exit 1; fi; }
# Root only where DIR is not ours to write (the default, /var/lib/redis).
in_dir() { if mkdir -p "$dir" 2>/dev/null && [ -w "$dir" ]; then "$@"; else as_root "$@"; fi; }
ping_with() { redis-cli --no-auth-warning -h 127.0.0.1 -p "$port" "$@" ping 2>/dev/null | grep -qx PONG; }

# The URL sandbot will use: the environment's (it wins over .env), else the env file's.
url=${SANDBOT_REDIS_URL:-}
if [ -z "$url" ] && [ -f "$env_file" ]; then
  url=$(sed -n 's/^SANDBOT_REDIS_URL=//p' "$env_file" | tail -n 1 | tr -d "\"'")
fi
password=
if [[ $url =~ ^redis://sandbot:([A-Za-z0-9]+)@(127\.0\.0\.1|localhost):([0-9]+)/?$ ]] &&
  [ "${BASH_REMATCH[3]}" = "$port" ]; then
  password=${BASH_REMATCH[1]}
elif [ -n "$url" ] && [[ ! $url =~ ^redis://([^@/]*@)?(127\.0\.0\.1|localhost)(:$port)?/?$ ]]; then
  log "SANDBOT_REDIS_URL names another Redis: not starting one here"
  exit 0
fi

if [ -n "$password" ] && ping_with --user sandbot --pass "$password"; then
  exit 0 # ours, answering
fi
if ping_with; then
  log "warning: the Redis on 127.0.0.1:$port accepts commands without a password (left as it is;" \
    "\`sandbot doctor --security\` reports it). To protect it, stop it and run setup again."
  exit 0
fi
if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
  echo "setup: the Redis on 127.0.0.1:$port wants a password SANDBOT_REDIS_URL does not hold: put it there (in $env_file)" >&2
  exit 1
fi

if [ -n "${SANDBOT_REDIS_URL:-}" ] && [ -z "$password" ]; then
  log "warning: SANDBOT_REDIS_URL in the environment wins over $env_file: unset it to use the password written there"
fi
password=${password:-$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')}
log "starting redis-server on 127.0.0.1:$port with a password (append-only persistence in $dir)"
hash=$(printf %s "$password" | sha256sum | cut -d' ' -f1)
in_dir mkdir -p "$dir"
# Only the hash is written to the ACL file; the password itself lives in the env file alone.
in_dir sh -c "umask 077 && cat > '$dir/sandbot-users.acl'" <<EOF
user default off
user sandbot on #$hash ~* &* +@all -config -module -debug -shutdown -replicaof -slaveof -failover -sync -psync -monitor -save -bgsave -bgrewriteaof -acl
EOF
# umask 077: its data files (conversations, queues) readable by the server's user alone.
(umask 077 && in_dir redis-server --daemonize yes --appendonly yes --dir "$dir" --port "$port" --bind 127.0.0.1 \
  --protected-mode yes --aclfile "$dir/sandbot-users.acl" --pidfile "$dir/redis-$port.pid" \
  --logfile "$dir/redis-$port.log" >/dev/null)
for _ in $(seq 20); do ping_with --user sandbot --pass "$password" && break; sleep 1; done
ping_with --user sandbot --pass "$password" || {
  echo "setup: redis-server did not answer within 20s (log: $dir/redis-$port.log)" >&2
  exit 1
}

# SANDBOT_REDIS_URL into the env file, replacing an earlier line; the file readable by its owner only.
line="SANDBOT_REDIS_URL=redis://sandbot:$password@127.0.0.1:$port"
(
  umask 077
  touch "$env_file"
  chmod 600 "$env_file"
  kept=$(grep -v '^SANDBOT_REDIS_URL=' "$env_file" || true)
  { [ -n "$kept" ] && printf '%s\n' "$kept"; printf '%s\n' "$line"; } >"$env_file.tmp"
  chmod 600 "$env_file.tmp"
  mv "$env_file.tmp" "$env_file"
)
log "SANDBOT_REDIS_URL (with the password) is in $env_file"
