#!/usr/bin/env python3
"""Helper for bench/frames (stdlib only).

  frames_report.py targets DURATION EVERY      the target times, one per line (as vidsnap's)
  frames_report.py zipcount ZIP                the number of frames in a vidsnap zip's manifest
  frames_report.py align VIDEO EVERY           "mean_d max_d fps": frames from the keyframe at or
                                               before each target's frame to it (packet list only)
  frames_report.py report RESULTS.tsv EVERY BIN   the tables, targets and checks; exits 3 when a
                                               vidsnap zip does not hold ceil(duration/N) frames

RESULTS.tsv columns: minutes, gop, duration, expected, mean_d, max_d, fps, method, frames, cpu_s,
wall_s, rss_kib.
"""

import bisect
import json
import math
import os
import subprocess
import sys
import zipfile

METHODS = [
    ("vidsnap-exact", "a", "vidsnap frames --mode exact"),
    ("vidsnap-keyframe", "b", "vidsnap frames --mode keyframe"),
    ("ffmpeg-pass", "c", "ffmpeg single pass fps=1/N"),
    ("seed-ss", "d", "seed: ffmpeg -ss T per frame"),
]

# The targets at N = 10 s: (method, gop frames, minimum CPU speed-up vs the single pass).
TARGETS = [
    ("vidsnap-exact", 60, 4.0),
    ("vidsnap-exact", 240, 2.0),
    ("vidsnap-keyframe", 60, 25.0),
    ("vidsnap-keyframe", 240, 25.0),
]


def fmt_time(t):
    return ("%.6f" % t).rstrip("0").rstrip(".")


def target_times(duration, step):
    """t = 0, N, 2N, ... strictly below the duration, and always 0 (domain::target_times)."""
    times = [0.0]
    k = 1
    while k * step < duration:
        times.append(k * step)
        k += 1
    return times


def zip_count(path):
    with zipfile.ZipFile(path) as z:
        manifest = json.loads(z.read("manifest.json"))
        images = [n for n in z.namelist() if n != "manifest.json"]
    frames = manifest["frames"]
    if len(images) != len(frames):
        sys.exit(f"{path}: manifest lists {len(frames)} frames but the zip holds {len(images)} images")
    return len(frames)


def align(video, every):
    """How far each target lies from the keyframe before it, in frames (presentation order).

    The frame shown at T is the last one with pts <= T; d is the number of frames between the
    keyframe at or before it and it (0: the target is a keyframe, exact mode's best case). Reads
    only the packet list: no decoding.
    """
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "packet=pts_time,flags", "-of", "csv=p=0", video],
        capture_output=True, text=True, check=True,
    ).stdout
    frames = []
    for line in out.splitlines():
        fields = line.split(",")
        if len(fields) >= 2 and fields[0] not in ("", "N/A"):
            frames.append((float(fields[0]), "K" in fields[1]))
    frames.sort()
    if not frames:
        sys.exit(f"{video}: no video packets")
    duration = frames[-1][0] - frames[0][0]
    fps = (len(frames) - 1) / duration if duration > 0 else 0.0
    d = []
    times = [pts for pts, _ in frames]
    for t in target_times(float(probe_duration(video)), every):
        shown = max(bisect.bisect_right(times, t + 1e-6) - 1, 0)
        key = shown
        while key > 0 and not frames[key][1]:
            key -= 1
        d.append(shown - key)
    return sum(d) / len(d), max(d), fps


def probe_duration(video):
    return subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "default=nw=1:nk=1", video],
        capture_output=True, text=True, check=True,
    ).stdout.strip()


def ratio(base, value):
    if value <= 0:
        return "  (0 s)"
    return f"{base / value:7.2f}x"


def gop_seconds(gop):
    return f"{int(gop) / 30:g} s"


def ffmpeg_version():
    try:
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True).stdout
        return out.splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "ffmpeg: unknown version"


def report(path, every, binary):
    rows = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            m, gop, dur, exp, mean_d, max_d, fps, method, frames, cpu, wall, rss = line.rstrip("\n").split("\t")
            rows.append(
                dict(minutes=m, gop=int(gop), duration=float(dur), expected=int(exp),
                     mean_d=float(mean_d), max_d=int(max_d), fps=float(fps), method=method,
                     frames=int(frames), cpu=float(cpu), wall=float(wall), rss_mib=int(rss) / 1024)
            )
    videos = []
    for r in rows:
        key = (r["minutes"], r["gop"])
        if key not in videos:
            videos.append(key)
    get = {(r["minutes"], r["gop"], r["method"]): r for r in rows}

    print()
    print(f"bench/frames: N = {fmt_time(every)} s, {os.cpu_count()} CPUs, {ffmpeg_version()}")
    print(f"vidsnap: {binary}")
    print("CPU = user+sys of the process and every child it waited for (vidsnap: ffprobe and the")
    print("`vidsnap internal-extract` decoder child; d: all its ffmpeg runs). Peak RSS = GNU time's")
    print("%M: the max resident set of the biggest single process in the tree (for vidsnap the")
    print("larger of the parent and its internal-extract child; for d the biggest ffmpeg run), not")
    print("the sum. Outputs: a/b JPEG q95 (vidsnap default) in a zip; c JPEG -q:v 3; d PNG.")
    print("Speed-ups are base/method: > 1 means the method is faster than the base.")

    failures = []
    for minutes, gop in videos:
        any_row = next(r for r in rows if r["minutes"] == minutes and r["gop"] == gop)
        print()
        print(
            f"== {minutes} min, GOP {gop_seconds(gop)} (-g {gop}): duration {any_row['duration']:.3f} s, "
            f"{any_row['expected']} targets = ceil(duration/N)"
        )
        mean_d, fps = any_row["mean_d"], any_row["fps"]
        note = " (every target is a keyframe: the best case for exact mode)" if any_row["max_d"] == 0 else ""
        print(
            f"   targets lie d = {mean_d:.1f} frames (max {any_row['max_d']}) after the keyframe before them{note};"
        )
        print(
            f"   /work/shared/FRAMES.md's model for exact mode: ~N*fps/(d+5) = {every * fps / (mean_d + 5):.1f}x vs c"
        )
        header = (
            f"  {'method':<36} {'frames':>6} {'CPU s':>8} {'wall s':>8} {'RSS MiB':>8}"
            f"  {'CPU vs c':>8} {'wall vs c':>9}  {'CPU vs d':>8} {'wall vs d':>9}"
        )
        print(header)
        print("  " + "-" * (len(header) - 2))
        c = get.get((minutes, gop, "ffmpeg-pass"))
        d = get.get((minutes, gop, "seed-ss"))
        for method, letter, label in METHODS:
            r = get.get((minutes, gop, method))
            if r is None:
                continue
            vs_c = f"{ratio(c['cpu'], r['cpu']):>8} {ratio(c['wall'], r['wall']):>9}" if c else ""
            vs_d = f"{ratio(d['cpu'], r['cpu']):>8} {ratio(d['wall'], r['wall']):>9}" if d else ""
            print(
                f"  {letter + '. ' + label:<36} {r['frames']:>6} {r['cpu']:>8.2f} {r['wall']:>8.2f}"
                f" {r['rss_mib']:>8.1f}  {vs_c}  {vs_d}"
            )
        for method in ("vidsnap-exact", "vidsnap-keyframe"):
            r = get.get((minutes, gop, method))
            if r is None:
                continue
            ok = r["frames"] == r["expected"]
            verdict = "OK" if ok else "MISMATCH"
            print(
                f"  check: {method} zip manifest has {r['frames']} frames, "
                f"ceil({r['duration']:.3f}/{fmt_time(every)}) = {r['expected']}: {verdict}"
            )
            if not ok:
                failures.append(f"{minutes} min GOP {gop}: {method} wrote {r['frames']} of {r['expected']}")

    print()
    title = "Targets (the issue: CPU time of the single pass c / CPU time of the method, at N = 10 s)"
    print(title)
    if abs(every - 10) > 1e-9:
        print(f"  note: this run used N = {fmt_time(every)} s; the targets are stated for N = 10 s")
    for minutes, gop in videos:
        c = get.get((minutes, gop, "ffmpeg-pass"))
        for method, tgop, need in TARGETS:
            if tgop != gop:
                continue
            r = get.get((minutes, gop, method))
            if r is None or c is None:
                continue
            got = c["cpu"] / r["cpu"] if r["cpu"] > 0 else math.inf
            mode = method.split("-")[1]
            verdict = "met" if got >= need else "MISSED"
            if mode == "exact" and r["max_d"] == 0:
                verdict += " (best case: every target on a keyframe)"
            print(
                f"  {minutes:>4} min  GOP {gop_seconds(gop):<4} {mode:<8} >= {need:>4g}x : "
                f"{got:6.2f}x  {verdict}"
            )

    print()
    print("Peak RSS vs video length (should not grow with the length):")
    for method in ("vidsnap-exact", "vidsnap-keyframe"):
        parts = []
        for gop in sorted({g for _, g in videos}):
            per_len = [
                f"{m} min {get[(m, gop, method)]['rss_mib']:.1f} MiB"
                for m, g in videos
                if g == gop and (m, gop, method) in get
            ]
            parts.append(f"GOP {gop_seconds(gop)}: " + ", ".join(per_len))
        print(f"  {method}: " + "; ".join(parts))
    if len({m for m, _ in videos}) < 2:
        print("  (one length only: run with --minutes 1,10 to compare)")

    if failures:
        print()
        print("CORRECTNESS MISMATCH: " + "; ".join(failures))
        return 3
    return 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "targets" and len(argv) == 4:
        for t in target_times(float(argv[2]), float(argv[3])):
            print(fmt_time(t))
        return 0
    if len(argv) == 4 and argv[1] == "align":
        mean_d, max_d, fps = align(argv[2], float(argv[3]))
        print(f"{mean_d:.3f}\t{max_d}\t{fps:.4f}")
        return 0
    if len(argv) == 3 and argv[1] == "zipcount":
        print(zip_count(argv[2]))
        return 0
    if len(argv) == 5 and argv[1] == "report":
        return report(argv[2], float(argv[3]), argv[4])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
