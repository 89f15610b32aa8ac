# Sourced by scripts/test-services.sh and scripts/check-deploy.sh: the one virtualenv every Python
# tool of the project goes into (never the system Python). Needs VENV, DIR and the functions
# log and die from the caller.

# ensure_venv: creates $VENV, installing python3-venv first when python3 cannot make one.
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
