"""The chaos suite of issue #11: jobs through SIGKILLs, outages, a database restart and failing
ffprobe runs, then every invariant checked and its figures printed. See chaos/run for usage."""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

from scenarios import cluster, embedded


def make_clips(work):
    """A 3 s and a 20 s clip (lavfi test patterns, H.264), generated once per run. The long one
    makes 80 PNG frames at 720p: seconds of work (so kills land mid-step) and a zip past S3's
    multipart threshold (8 MiB)."""
    clips = {}
    for name, source in (("short", "testsrc=size=320x240:rate=25:duration=3"),
                         ("long", "testsrc2=size=1280x720:rate=25:duration=20")):
        path = os.path.join(work, f"{name}.mp4")
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", source,
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "28",
                        "-pix_fmt", "yuv420p", path], check=True)
        with open(path, "rb") as f:
            clips[name] = f.read()
    return clips


def read_services(root):
    path = os.environ.get("VIDSNAP_SERVICES_DIR") or os.path.join(root, ".services")
    found = {}
    try:
        with open(os.path.join(path, "env")) as f:
            for line in f:
                if "=" in line:
                    key, value = line.strip().split("=", 1)
                    found[key] = value
    except FileNotFoundError:
        pass
    found.update({k: v for k, v in os.environ.items() if k.startswith("VIDSNAP_TEST_")})
    return found, os.path.join(path, "venv", "bin", "python")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("binary")
    parser.add_argument("--light", dest="size", action="store_const", const="light",
                        default="full")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--only", choices=["embedded", "cluster"])
    parser.add_argument("--videos", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--no-sweep", action="store_true",
                        help="leave the scheduler's storage sweep at its defaults (hourly): "
                             "shows what the faults leave behind")
    args = parser.parse_args()
    args.binary = os.path.abspath(args.binary)  # the servers run in directories of their own
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    services, venv_python = read_services(root)
    if not os.path.exists(venv_python):
        raise SystemExit(f"{venv_python} is missing: run scripts/test-services.sh first")
    work = tempfile.mkdtemp(prefix="vidsnap-chaos-")
    os.chmod(work, 0o755)  # a private PostgreSQL runs as user postgres under it
    print(f"chaos suite ({args.size}): seed {seed} (again: chaos/run "
          f"{'--light ' if args.size == 'light' else ''}--seed {seed}); {args.binary}; "
          f"work dir {work}", flush=True)
    started = time.monotonic()
    results = []
    failed = True
    try:
        clips = make_clips(work)
        for name in ("embedded", "cluster"):
            if args.only and args.only != name:
                continue
            rng = random.Random(f"{seed}-{name}")
            scenario_work = os.path.join(work, name)
            os.makedirs(scenario_work)
            os.chmod(scenario_work, 0o755)
            scenario_started = time.monotonic()
            if name == "embedded":
                audit = embedded(args, rng, scenario_work, args.binary, clips, venv_python)
            else:
                audit = cluster(args, rng, scenario_work, args.binary, clips, venv_python,
                                services)
            results.append((name, audit, time.monotonic() - scenario_started))
        failed = report(results, seed, time.monotonic() - started)
    finally:
        if failed or args.keep:
            print(f"logs kept in {work}/*/logs", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


def report(results, seed, elapsed):
    failed = False
    print()
    for name, audit, seconds in results:
        verdict = "OK" if not audit.violations else f"{len(audit.violations)} VIOLATIONS"
        print(f"== {name} ({seconds:.0f} s): {verdict}")
        for label, text in audit.figures:
            print(f"  {label:14} {text}")
        for violation in audit.violations:
            print(f"  VIOLATION: {violation}")
        for anomaly in audit.anomalies:
            print(f"  ANOMALY (not an invariant of #11): {anomaly}")
        failed |= bool(audit.violations)
    print(f"chaos suite: seed {seed}, {elapsed:.0f} s, "
          f"{'FAILED' if failed else 'every invariant held'}", flush=True)
    return failed


if __name__ == "__main__":
    main()
