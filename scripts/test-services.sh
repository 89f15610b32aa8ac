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
#   smtp  aiosmtpd writing every message to a Maildir
#         -> VIDSNAP_TEST_SMTP=127.0.0.1:PORT, VIDSNAP_TEST_MAILDIR=DIR
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
SERVICES=(smtp)

log() { echo "test-services: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# --- helpers ---------------------------------------------------------------------------------

# The virtualenv every Python tool goes into (never the system Python).
ensure_venv() {
  [ -x "$VENV/bin/python" ] && return
  command -v python3 >/dev/null || die "python3 is missing: apt-get install python3 python3-venv"
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    log "python3 cannot create virtualenvs; installing python3-venv"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      python3-venv >/dev/null
  fi
  mkdir -p "$DIR"
  log "creating $VENV"
  python3 -m venv "$VENV"
}

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

# --- main ------------------------------------------------------------------------------------

case "${1:-start}" in
  start)
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
