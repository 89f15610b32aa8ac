"""bench/uploads' measurements (stdlib only); see bench/uploads for what and why."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import socket
import urllib.parse
import urllib.request

MIB = 1024 * 1024


def call(method, url, token=None, body=None, headers=None):
    headers = dict(headers or {})
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        raw = response.read()
        return response.headers, (json.loads(raw) if raw else None)


def source_file(gib):
    """Random bytes (incompressible), made once and kept in .bench/."""
    os.makedirs(".bench", exist_ok=True)
    path = os.path.join(".bench", f"upload-{gib}g.bin")
    size = int(gib * 1024 * MIB)
    if not os.path.exists(path) or os.path.getsize(path) != size:
        partial = path + ".partial"
        with open("/dev/urandom", "rb") as rnd, open(partial, "wb") as out:
            left = size
            while left:
                block = rnd.read(min(left, 8 * MIB))
                out.write(block)
                left -= len(block)
        os.rename(partial, path)
    return path, size


def timed_copy(src, work):
    dst = os.path.join(work, "copy.bin")
    started = time.monotonic()
    shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.monotonic() - started
    os.remove(dst)
    return elapsed


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def patch(url, token, path, offset, length):
    """One PATCH of `length` bytes of `path` from `offset`: the request head, then the body with
    sendfile(2), so the client spends next to no CPU copying and the server's receiving path is
    what is measured. Returns the server's new Upload-Offset."""
    parsed = urllib.parse.urlsplit(url)
    head = (f"PATCH {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
            f"Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n\r\n")
    with socket.create_connection((parsed.hostname, parsed.port)) as sock, open(path, "rb") as f:
        sock.sendall(head.encode())
        sent = sock.sendfile(f, offset, length)
        if sent != length:
            raise SystemExit(f"sent {sent} of {length} bytes")
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    headers = answer.decode(errors="replace").lower()
    status = headers.split("\r\n", 1)[0]
    if " 204" not in status:
        raise SystemExit(f"PATCH at {offset} answered: {status.strip()}")
    for line in headers.split("\r\n"):
        if line.startswith("upload-offset:"):
            return int(line.split(":", 1)[1])
    raise SystemExit("PATCH answer without Upload-Offset")


RUNS = 3


def timed_upload(url, token, path, size, chunk_mib):
    """One tus upload of the file: creation, then PATCHes. Returns its wall time."""
    started = time.monotonic()
    headers, _ = call("POST", f"{url}/v1/uploads", token, headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": str(size),
        # base64("big.mp4")
        "Upload-Metadata": "filename YmlnLm1wNA=="})
    location = headers["Location"]
    if location.startswith("/"):
        location = url + location
    offset = 0
    step = chunk_mib * MIB if chunk_mib else size
    while offset < size:
        offset = patch(location, token, path, offset, min(step, size - offset))
    return time.monotonic() - started


def main():
    binary, gib, chunk_mib = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    path, size = source_file(gib)
    work = tempfile.mkdtemp(prefix="vidsnap-bench-uploads-", dir=os.path.abspath(".bench"))
    server = None
    try:
        env = dict(os.environ, VIDSNAP_API__PASSWORD_COST__MEMORY_KIB="1024",
                   VIDSNAP_API__PASSWORD_COST__ITERATIONS="1", VIDSNAP_LOG="error",
                   VIDSNAP_LIMITS__MAX_BYTES=str(size * 2))
        server = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(work, "data")],
            stdout=subprocess.PIPE, env=env, cwd=work, text=True,
        )
        line = server.stdout.readline()
        url = next(w for w in line.split() if w.startswith("http://"))
        _, registered = call("POST", f"{url}/v1/auth/register", body={
            "email": "bench@example.com", "password": "correct horse battery"})
        token = registered["access_token"]
        rss_before = peak_rss_mib(server.pid)

        # Alternating runs, the median of each: the disk's speed varies from run to run.
        copies, uploads = [], []
        for _ in range(RUNS):
            copies.append(timed_copy(path, work))
            uploads.append(timed_upload(url, token, path, size, chunk_mib))
        copy_seconds = sorted(copies)[RUNS // 2]
        tus_seconds = sorted(uploads)[RUNS // 2]
        rss = peak_rss_mib(server.pid)

        copy_rate = size / MIB / copy_seconds
        tus_rate = size / MIB / tus_seconds
        ratio = tus_rate / copy_rate
        print(f"file: {size / MIB:.0f} MiB of random bytes; "
              f"{'one PATCH' if not chunk_mib else f'PATCHes of {chunk_mib} MiB'}; "
              f"medians of {RUNS} alternating runs")
        print(f"{'':24}{'seconds':>10}{'MiB/s':>10}")
        print(f"{'local copy + fsync':24}{copy_seconds:10.2f}{copy_rate:10.0f}")
        print(f"{'tus upload (loopback)':24}{tus_seconds:10.2f}{tus_rate:10.0f}")
        print(f"tus / copy: {ratio:.0%} (target >= 70%: {'met' if ratio >= 0.7 else 'MISSED'})")
        print(f"server peak RSS: {rss:.1f} MiB (before the upload: {rss_before:.1f} MiB; "
              f"target < 100 MB = 95.4 MiB: {'met' if rss < 95.4 else 'MISSED'})")
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
