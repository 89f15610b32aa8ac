"""bench/service's measurements (stdlib only); see bench/service for what and why."""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime


def call(method, url, token=None, body=None, data=None):
    headers = {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        raw = response.read()
        return json.loads(raw) if raw else None


def parse_time(text):
    # RFC 3339 with up to nanoseconds; Python wants at most microseconds.
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return datetime.fromisoformat(text)


def percentile(ordered, p):
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def main():
    binary, runs, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    work = tempfile.mkdtemp(prefix="vidsnap-bench-service-")
    server = None
    try:
        clip = os.path.join(work, "clip.mp4")
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
             "testsrc2=size=640x360:rate=30:duration=30", "-c:v", "libx264", "-preset", "veryfast",
             "-pix_fmt", "yuv420p", clip],
            check=True,
        )
        env = dict(os.environ, VIDSNAP_API__PASSWORD_COST__MEMORY_KIB="1024",
                   VIDSNAP_API__PASSWORD_COST__ITERATIONS="1", VIDSNAP_LOG="error")
        server = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(work, "data")],
            stdout=subprocess.PIPE, env=env, cwd=work, text=True,
        )
        line = server.stdout.readline()
        url = next(w for w in line.split() if w.startswith("http://"))
        token = call("POST", f"{url}/v1/auth/register", body={
            "email": "bench@example.com", "password": "correct horse battery"})["access_token"]

        pipeline = []
        video_id = None
        for _ in range(runs):
            created = call("POST", f"{url}/v1/videos", token,
                           {"file_name": "clip.mp4", "options": {"every": "10s"}})
            video_id = created["video"]["id"]
            with open(clip, "rb") as f:
                call("PUT", created["upload"]["url"], data=f.read())
            deadline = time.monotonic() + 120
            while True:
                video = call("GET", f"{url}/v1/videos/{video_id}", token)
                if video["status"] in ("succeeded", "dead"):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"video {video_id} did not finish")
                time.sleep(0.01)
            assert video["status"] == "succeeded", video
            at = {h["status"]: parse_time(h["at"]) for h in video["history"]}
            pipeline.append((at["succeeded"] - at["queued"]).total_seconds())

        # Per-step overhead of the job pipeline: one-step jobs (recipe `probe`) over the video
        # uploaded above; from the step's `ready` line of the job's history (its task is queued
        # in the same change) to its `running` line (a worker claimed the task and started the
        # step). Both are the server's clock. One job first, not counted, to warm up.
        queued_to_running = []
        for n in range(runs + 1):
            created = call("POST", f"{url}/v1/jobs", token,
                           {"recipe_name": "probe", "inputs": {"video": video_id}})
            job_id = created["id"]
            deadline = time.monotonic() + 120
            while True:
                job = call("GET", f"{url}/v1/jobs/{job_id}", token)
                if job["status"] in ("succeeded", "failed", "dead", "cancelled"):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"job {job_id} did not finish")
                time.sleep(0.01)
            assert job["status"] == "succeeded", job
            lines = [h for h in job["history"] if h["step"] == "probe"]
            ready = next(parse_time(h["at"]) for h in lines if h["status"] == "ready")
            running = next(parse_time(h["at"]) for h in lines if h["status"] == "running")
            if n > 0:
                queued_to_running.append((running - ready).total_seconds())

        engine = []
        out = os.path.join(work, "frames")
        for _ in range(runs):
            started = time.monotonic()
            subprocess.run([binary, "frames", clip, "--every", "10s", "--out", out],
                           check=True, stdout=subprocess.DEVNULL)
            engine.append(time.monotonic() - started)

        # The engine as timed inside the server (worker metric, per operation), free of a CLI
        # process start.
        metrics = urllib.request.urlopen(f"{url}/metrics", timeout=30).read().decode()
        inside = next(
            (float(line.split()[-1]) for line in metrics.splitlines()
             if line.startswith("vidsnap_media_seconds{") and 'op="frames"' in line
             and 'quantile="0.5"' in line),
            None,
        )
        p, e = statistics.median(pipeline), statistics.median(engine)
        overhead_ms = (p - e) * 1000
        print(f"clip: 30 s 640x360 H.264, frames every 10 s; {runs} runs each")
        print(f"pipeline (upload complete -> succeeded, server clock): median {p*1000:.1f} ms "
              f"(min {min(pipeline)*1000:.1f}, max {max(pipeline)*1000:.1f})")
        print(f"media engine alone (vidsnap frames, wall):             median {e*1000:.1f} ms "
              f"(min {min(engine)*1000:.1f}, max {max(engine)*1000:.1f})")
        verdict = "met" if overhead_ms <= 100 else "MISSED"
        print(f"pipeline overhead vs the CLI: {overhead_ms:.1f} ms (target <= 100 ms: {verdict}); "
              "the CLI's time includes its own process start")
        if inside is not None:
            inside_ms = (p - inside) * 1000
            verdict = "met" if inside_ms <= 100 else "MISSED"
            print(f"media engine inside the server (vidsnap_media_seconds median): {inside*1000:.1f} ms; "
                  f"pipeline overhead vs it: {inside_ms:.1f} ms (target <= 100 ms: {verdict})")

        step_ms = sorted(x * 1000 for x in queued_to_running)
        median_ms = statistics.median(step_ms)
        p95_ms = percentile(step_ms, 95)
        verdict = "met" if p95_ms < 20 else "MISSED"
        print(f"step pipeline (task queued -> step running: the step's ready -> running lines, "
              f"server clock; recipe probe, {runs} jobs): median {median_ms:.1f} ms, "
              f"p95 {p95_ms:.1f} ms (min {step_ms[0]:.1f}, max {step_ms[-1]:.1f}; "
              f"target < 20 ms embedded: {verdict})")

        script = os.path.join(work, "auth.lua")
        with open(script, "w") as f:
            f.write(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
        result = subprocess.run(
            ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", script,
             f"{url}/v1/videos/{video_id}"],
            check=True, capture_output=True, text=True,
        )
        rps = next(l for l in result.stdout.splitlines() if "Requests/sec" in l).split()[-1]
        p99 = next(l for l in result.stdout.splitlines() if l.strip().startswith("99%")).split()[-1]
        p50 = next(l for l in result.stdout.splitlines() if l.strip().startswith("50%")).split()[-1]
        errors = [l for l in result.stdout.splitlines() if "Non-2xx" in l or "Socket errors" in l]
        print(f"GET /v1/videos/{{id}} (wrk, 2 threads, 16 connections, {seconds} s, loopback): "
              f"{rps} requests/s, p50 {p50}, p99 {p99}")
        for line in errors:
            print(f"  {line.strip()}")
    finally:
        if server:
            server.terminate()
            server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
