#!/usr/bin/env bash
# The web UI's browser tests (web/tests, node --test): playwright-core drives Debian's Chromium
# (installed by scripts/install-deps.sh; nothing is downloaded) against `vidsnap serve` on port
# 0. Usage: scripts/test-web.sh [PATH TO vidsnap]; default: the debug build. A failing test
# leaves a screenshot in web/test-results/.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-${CARGO_TARGET_DIR:-target}/debug/vidsnap}"
[ -x "$bin" ] || { echo "test-web: $bin is not built (cargo build -p vidsnap)" >&2; exit 1; }
command -v chromium >/dev/null || { echo "test-web: chromium is missing: run scripts/install-deps.sh" >&2; exit 1; }
[ -d web/node_modules/playwright-core ] || { echo "test-web: web/node_modules is missing: run scripts/install-deps.sh" >&2; exit 1; }
export VIDSNAP_BIN="$(realpath "$bin")"
cd web
exec node --test --test-concurrency=1 tests/
