#!/usr/bin/env bash
# Regenerates docs/screenshots/*.png of the web UI's main pages (web/scripts/screenshots.js:
# a fresh `vidsnap serve` on port 0, a generated clip, headless Chromium). Usage:
# scripts/screenshots.sh [PATH TO vidsnap]; default: the debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-${CARGO_TARGET_DIR:-target}/debug/vidsnap}"
[ -x "$bin" ] || { echo "screenshots: $bin is not built (cargo build -p vidsnap)" >&2; exit 1; }
export VIDSNAP_BIN="$(realpath "$bin")"
cd web
exec node scripts/screenshots.js
