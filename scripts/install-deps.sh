#!/usr/bin/env bash
# Installs what building and running Vidsnap needs on Debian/Ubuntu, skipping what is present:
# FFmpeg (ffmpeg, ffprobe and the libav* development files the extractor links against), clang
# (bindgen), pkg-config, a C toolchain, Node.js with the web UI's npm packages (web/, from its lock
# file) and Chromium for its browser tests, and the Rust toolchain pinned in rust-toolchain.toml.
set -euo pipefail

need_apt=()
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
for pc in libavformat libavcodec libavutil libavfilter libswscale libavdevice libswresample; do
  pkg-config --exists "$pc" 2>/dev/null || need_apt+=("${pc}-dev")
done
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v clang >/dev/null || need_apt+=(clang libclang-dev)
[ -n "$(ls /usr/lib/llvm-*/lib/libclang*.so* 2>/dev/null)" ] || need_apt+=(libclang-dev)
command -v cc >/dev/null || need_apt+=(build-essential)
command -v unzip >/dev/null || need_apt+=(unzip)
# The web UI: its npm libraries are embedded at build time; its browser tests drive Chromium.
command -v npm >/dev/null || need_apt+=(nodejs npm)
command -v chromium >/dev/null || need_apt+=(chromium fonts-dejavu-core)

if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need_apt[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    $(printf '%s\n' "${need_apt[@]}" | sort -u) >/dev/null
fi

# The web UI's packages, from web/package-lock.json, when missing or older than the lock file.
web="$(dirname "$0")/../web"
if [ ! -f "$web/node_modules/.package-lock.json" ] \
  || [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
  echo "installing the web UI's npm packages (npm ci in web/)" >&2
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
fi

if ! command -v cargo >/dev/null; then
  echo "cargo was not found: install Rust with rustup (https://rustup.rs); rust-toolchain.toml" >&2
  echo "selects the version. If it is installed, add ~/.cargo/bin to PATH." >&2
  exit 1
fi
