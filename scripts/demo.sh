#!/usr/bin/env bash
# `make run` until `vidsnap serve` exists: generates a 61-second clip under ./data/demo and
# extracts a frame every 10 seconds from it with the embedded defaults.
set -euo pipefail
vidsnap=${1:?usage: demo.sh PATH/TO/vidsnap}
dir=data/demo
mkdir -p "$dir"
clip="$dir/demo.mp4"
if [ ! -s "$clip" ]; then
  echo "generating $clip (61 s, 640x360, H.264 + AAC)"
  ffmpeg -nostdin -v error -y \
    -f lavfi -i "testsrc2=size=640x360:rate=30:duration=61" \
    -f lavfi -i "sine=frequency=440:duration=61" \
    -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -shortest "$clip.partial.mp4"
  mv "$clip.partial.mp4" "$clip"
fi
"$vidsnap" probe "$clip"
echo
"$vidsnap" frames "$clip" --every 10s --out "$dir"
echo
unzip -l "$dir/demo-images.zip"
