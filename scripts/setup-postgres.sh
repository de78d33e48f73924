#!/usr/bin/env bash
# PostgreSQL for sandbot's shared audit log (SANDBOT_DATABASE_URL): installs Debian's `postgresql` when
# missing, starts its cluster, and makes a role "sandbot" (LOGIN, a generated password, nothing more)
# owning a database "sandbot". The URL goes to ENV_FILE (mode 0600) as VAR, over 127.0.0.1 (password
# authentication; Debian's pg_hba.conf asks for it on TCP).
# Safe to run again: a URL already in ENV_FILE (under VAR, or another line for the same role) that
# connects is kept; only when none does is the role's password set afresh (a URL with the old one in
# another file then needs the new one).
# A URL under VAR that names another server is left as it is: nothing is started here for it.
# Usage: setup-postgres.sh [ENV_FILE] [VAR]   (defaults: .env SANDBOT_DATABASE_URL)
#   CI:  setup-postgres.sh .env SANDBOT_TEST_DATABASE_URL   (what the PostgreSQL tests read)
set -euo pipefail
env_file=${1:-.env}
var=${2:-SANDBOT_DATABASE_URL}
role=sandbot
db=sandbot

log() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
die() { echo "setup-postgres: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  die "need root for: $*"; fi; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else as_root -u postgres "$@"; fi; }
connects() { [ -n "$1" ] && psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }
[[ $var =~ ^[A-Z_][A-Z0-9_]*$ ]] || die "VAR must be an environment variable name, not \"$var\""

url_of() { [ -f "$env_file" ] && sed -n "s/^$1=//p" "$env_file" | tail -n 1 | tr -d "\"'"; }
url=$(url_of "$var" || true)
if [ -n "$url" ] && [[ ! $url =~ ^postgres(ql)?://[^@/]*@(127\.0\.0\.1|localhost)(:[0-9]+)?/ ]]; then
  log "$var names another PostgreSQL server: not starting one here"
  exit 0
fi

if ! command -v pg_ctlcluster >/dev/null || ! command -v psql >/dev/null; then
  log "installing postgresql"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
read -r version cluster port status _ < <(pg_lsclusters -h | head -n 1) || die "no PostgreSQL cluster (pg_lsclusters)"
if [ "$status" != online ]; then
  log "starting PostgreSQL $version/$cluster on port $port"
  as_root pg_ctlcluster "$version" "$cluster" start
fi
for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 1; done
pg_isready -q -h 127.0.0.1 -p "$port" || die "PostgreSQL did not answer on 127.0.0.1:$port within 30s"

if connects "$url"; then
  log "$var in $env_file connects: kept"
  exit 0
fi
# Another line of the file for the same role (e.g. the tests' URL next to sandbot's): its password
# still works, and setting a new one would break that line.
password=
if [ -f "$env_file" ]; then
  while IFS= read -r other; do
    if [[ $other =~ ^postgres(ql)?://$role:([A-Za-z0-9]+)@ ]] && connects "$other"; then
      password=${BASH_REMATCH[2]}
      break
    fi
  done < <(sed -n 's/^[A-Z_][A-Z0-9_]*=\(postgres\(ql\)\?:\/\/\)/\1/p' "$env_file" | tr -d "\"'")
fi
if [ -z "$password" ]; then
  password=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
  log "setting a new password for role $role"
  as_postgres psql -p "$port" -v ON_ERROR_STOP=1 -qAt >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN CREATE ROLE $role LOGIN; END IF;
END \$\$;
ALTER ROLE $role WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$password';
SQL
fi
if [ "$(as_postgres psql -p "$port" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
  log "creating database $db (owner $role)"
  as_postgres createdb -p "$port" -O "$role" "$db"
fi
url="postgresql://$role:$password@127.0.0.1:$port/$db"
connects "$url" || die "the role $role cannot connect over 127.0.0.1:$port (pg_hba.conf?)"

# The URL into the env file, replacing an earlier line for VAR; the file readable by its owner only.
(
  umask 077
  touch "$env_file"
  chmod 600 "$env_file"
  kept=$(grep -v "^$var=" "$env_file" || true)
  { [ -n "$kept" ] && printf '%s\n' "$kept"; printf '%s=%s\n' "$var" "$url"; } >"$env_file.tmp"
  chmod 600 "$env_file.tmp"
  mv "$env_file.tmp" "$env_file"
)
log "$var (with the password) is in $env_file"
