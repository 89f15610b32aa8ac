"""The faults the chaos suite injects, besides SIGKILLs: a loopback TCP proxy that can drop every
connection for a while (storage, or the database when no private PostgreSQL can be run), and
FFmpeg tools that fail on purpose while a control file says so."""

import os
import selectors
import socket
import struct
import threading


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of `upstream` (host, port), a thread per connection.

    `outage()` drops every open connection (RST) and, until `restore()`, resets each new one at
    once: to its clients the service behind is unreachable, as when a network path or a load
    balancer fails. Connections it accepted and forwarded are counted, and so are the ones it
    dropped."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._open = set()
        self._down = False
        self._closed = False
        self.forwarded = 0
        self.dropped = 0
        threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True).start()

    def outage(self):
        with self._lock:
            self._down = True
            victims = list(self._open)
            self._open.clear()
        for sock in victims:
            _reset(sock)
        with self._lock:
            self.dropped += len(victims)

    def restore(self):
        with self._lock:
            self._down = False

    @property
    def down(self):
        return self._down

    def close(self):
        self._closed = True
        self.outage()
        try:
            self.listener.close()
        except OSError:
            pass

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                down = self._down
                if down:
                    self.dropped += 1
            if down:
                _reset(client)
                continue
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client):
        try:
            server = socket.create_connection(self.upstream, timeout=10)
            server.settimeout(None)
        except OSError:
            _reset(client)
            return
        with self._lock:
            if self._down:
                _reset(client)
                _reset(server)
                return
            self._open.update((client, server))
            self.forwarded += 1
        peers = {client: server, server: client}
        selector = selectors.DefaultSelector()
        try:
            for sock in peers:
                selector.register(sock, selectors.EVENT_READ)
            open_ends = 2
            while open_ends:
                # outage() closes the sockets under this thread, which epoll does not report:
                # wake up now and then to notice.
                if client.fileno() == -1 or server.fileno() == -1:
                    return
                for key, _ in selector.select(timeout=0.5):
                    try:
                        data = key.fileobj.recv(65536)
                    except OSError:
                        data = None
                    if data is None:
                        return  # reset by outage() or by a peer
                    if not data:
                        # One side finished sending: pass the half-close on.
                        selector.unregister(key.fileobj)
                        open_ends -= 1
                        try:
                            peers[key.fileobj].shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        continue
                    try:
                        peers[key.fileobj].sendall(data)
                    except OSError:
                        return
        finally:
            selector.close()
            with self._lock:
                self._open.discard(client)
                self._open.discard(server)
            for sock in peers:
                try:
                    sock.close()
                except OSError:
                    pass


def _reset(sock):
    """Closes with SO_LINGER 0: the peer gets a RST, not an orderly end."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


# An FFmpeg tool (ffprobe, ffmpeg) that, while the control file holds a percentage, fails that
# share of its runs in one of three ways, and logs each one: truncated JSON on a clean exit
# (ffprobe's output then reads as the engine's internal error: machine trouble, retried), exit 1
# with a message (ffprobe's answer to a file it cannot read: not-a-video, never retried), or
# SIGKILL of itself (a crashed tool, also read as not-a-video). Otherwise it is the real tool.
# Vidsnap decodes frames with the FFmpeg libraries in its own child process; the tools run as
# processes are ffprobe (every job probes its input) and ffmpeg (the qc operation).
WRAPPER = """#!/usr/bin/env bash
# Written by chaos/faults.py: the real {tool}, except when {control} says to fail.
percent=0
[ -s '{control}' ] && read -r percent < '{control}'
if [ "$percent" -gt 0 ] && [ $((RANDOM % 100)) -lt "$percent" ]; then
  case $((RANDOM % 5)) in
    0|1|2) echo "garbage {tool} $$" >> '{log}'; echo '{{"streams": ['; exit 0 ;;
    3) echo "exit {tool} $$" >> '{log}'; echo "chaos: injected {tool} failure" >&2; exit 1 ;;
    4) echo "kill {tool} $$" >> '{log}'; kill -KILL $$ ;;
  esac
fi
exec '{real}' "$@"
"""


class FailingFfmpeg:
    """A directory holding the wrappers as `ffprobe` and `ffmpeg`, to put first on the servers'
    PATH, and the switch that makes them fail."""

    def __init__(self, work):
        self.dir = os.path.join(work, "bin")
        os.makedirs(self.dir, exist_ok=True)
        self.control = os.path.join(work, "ffmpeg-fail-percent")
        self.log = os.path.join(work, "ffmpeg-failures.log")
        for tool in ("ffprobe", "ffmpeg"):
            real = _which(tool)
            if real is None:
                raise SystemExit(f"{tool} is missing: apt-get install ffmpeg (make deps does)")
            path = os.path.join(self.dir, tool)
            with open(path, "w") as f:
                f.write(WRAPPER.format(tool=tool, control=self.control, log=self.log, real=real))
            os.chmod(path, 0o755)
        self.set(0)

    def set(self, percent):
        with open(self.control + ".new", "w") as f:
            f.write(f"{percent}\n")
        os.replace(self.control + ".new", self.control)

    def path_env(self):
        return f"{self.dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"

    def injected(self):
        """Failures injected so far, by kind ("garbage", "exit", "kill") and by tool."""
        counts = {"garbage": 0, "exit": 0, "kill": 0}
        tools = {}
        try:
            with open(self.log) as f:
                for line in f:
                    kind, tool = line.split()[:2]
                    counts[kind] = counts.get(kind, 0) + 1
                    tools[tool] = tools.get(tool, 0) + 1
        except FileNotFoundError:
            pass
        return counts, tools


def _which(name):
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None
