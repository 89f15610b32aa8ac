"""The processes the chaos suite runs: `vidsnap serve` (any role), a private PostgreSQL it can
restart for real, and an SMTP listener writing to a Maildir."""

import glob
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time


def free_port():
    """A port the OS says is free now (it is bound again by the process that gets it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_until(what, check, seconds, interval=0.1):
    """Polls `check` until it returns something truthy; fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(interval)


class Server:
    """`vidsnap serve` with its own data directory. Each start keeps the port it got first (so
    presigned URLs and clients keep working across restarts, as behind a fixed address); the
    log of every run is appended to `{log_dir}/{name}.log`."""

    def __init__(self, name, binary, data_dir, env, log_dir):
        self.name = name
        self.binary = binary
        self.data_dir = data_dir
        self.env = env
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.port = free_port()
        self.url = None
        self.process = None
        self.starts = 0
        self.kills = 0
        self.refused_starts = 0  # runs that exited before listening (and were started again)
        self.exits = []  # exits after listening that nobody asked for
        self._recorded = []
        os.makedirs(data_dir, exist_ok=True)

    def start(self, seconds=120):
        """Starts the process and waits for its "listening" line. Like a supervisor (systemd,
        Kubernetes) it starts it again when it exits first (a database still down at start-up
        is such a case: the process says so and exits), for up to `seconds`."""
        deadline = time.monotonic() + seconds
        with open(self.log_path, "a") as log:
            while True:
                log.write(f"--- start {self.starts + 1} ---\n")
                log.flush()
                self.process = subprocess.Popen(
                    [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}",
                     "--data-dir", self.data_dir],
                    stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=self.env,
                    cwd=self.data_dir, text=True,
                )
                lines = queue.Queue()
                threading.Thread(target=_drain, args=(self.process.stdout, lines),
                                 daemon=True).start()
                try:
                    line = lines.get(timeout=max(1.0, deadline - time.monotonic()))
                except queue.Empty:
                    self.process.kill()
                    self.process.wait()
                    raise RuntimeError(f"{self.name} did not start within {seconds} s "
                                       f"(log: {self.log_path})") from None
                if line is not None:
                    self.url = next(w for w in line.split() if w.startswith("http://"))
                    self.starts += 1
                    return self
                self.process.wait()
                self._recorded.append(self.process)
                self.refused_starts += 1
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} kept exiting at start-up for {seconds} s "
                                       f"(log: {self.log_path})")
                time.sleep(0.5)

    def start_if_stopped(self):
        if not self.check_alive() or self.process is None:
            self.start()

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        """SIGKILL: no chance to clean up, as when a machine dies."""
        self.check_alive()
        if self.running:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self._recorded.append(self.process)
            self.kills += 1

    def check_alive(self):
        """Records an exit nobody asked for (a crash) in `exits`; True if it runs."""
        if self.process is None or self.running:
            return True
        if self.process not in self._recorded:
            self._recorded.append(self.process)
            self.exits.append(f"{self.name} exited by itself ({self.process.returncode}); "
                              f"log: {self.log_path}")
        return False

    def stop(self, seconds=90):
        """SIGTERM and a graceful exit; returns the exit code."""
        if not self.check_alive():
            return self.process.returncode
        if self.process is None:
            return 0
        self._recorded.append(self.process)
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return f"killed: no graceful exit within {seconds} s"


def _drain(stream, lines):
    """Hands the first stdout line over, then keeps reading so the server never blocks."""
    first = True
    for line in stream:
        if first:
            lines.put(line)
            first = False
    if first:
        lines.put(None)


def _pg_bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()])
    return found[-1] if found else shutil.which(name)


class PrivatePostgres:
    """A PostgreSQL cluster of the run's own (initdb on a temp dir, trust auth, loopback, a free
    port, fsync off), so the suite can restart it for real. `available()` says whether this
    machine can run one."""

    def __init__(self, work):
        self.dir = os.path.join(work, "postgres")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.restarts = 0
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/vidsnap"

    @staticmethod
    def available():
        if not (_pg_bin("initdb") and _pg_bin("pg_ctl")):
            return False
        if os.getuid() == 0:
            # initdb refuses root: it runs as user postgres.
            return shutil.which("runuser") is not None and _user_exists("postgres")
        return True

    def _as_postgres(self, argv, **kwargs):
        if os.getuid() == 0:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        return subprocess.run(argv, check=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, **kwargs)

    def start(self):
        if not os.path.exists(self.data):
            os.makedirs(self.dir, exist_ok=True)
            if os.getuid() == 0:
                shutil.chown(self.dir, "postgres", "postgres")
            self._as_postgres([_pg_bin("initdb"), "-D", self.data, "-U", "postgres", "-A", "trust",
                               "-E", "UTF8", "--no-sync"])
        # fsync off: a crash of PostgreSQL (not of the machine) loses nothing it acknowledged,
        # since the OS keeps what was written. synchronous_commit stays on: with it off, an
        # immediate stop loses commits already acknowledged, which no production setup accepts.
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.dir} -c fsync=off -c full_page_writes=off")
        self._as_postgres([_pg_bin("pg_ctl"), "-D", self.data, "-l", os.path.join(self.dir, "log"),
                           "-w", "-t", "60", "-o", options, "start"])
        return self

    def create_database(self):
        subprocess.run([_pg_bin("psql") or "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                        "postgres", "-d", "postgres", "-qc", "CREATE DATABASE vidsnap"],
                       check=True, stdout=subprocess.DEVNULL)

    def crash(self):
        """Stops at once, as a crash would (no shutdown checkpoint; recovery at the next start)."""
        self._as_postgres([_pg_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"])

    def restart_after_crash(self):
        self.start()
        self.restarts += 1

    def stop(self):
        try:
            self._as_postgres([_pg_bin("pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop"])
        except subprocess.CalledProcessError:
            pass


class SharedPostgres:
    """The machine's PostgreSQL (the test services' one), with a database of this run's own,
    created and dropped here. Used when no private cluster can be run."""

    def __init__(self, url, name):
        # url: postgres://postgres@127.0.0.1:5432/postgres
        self.admin = url
        self.name = name
        base = url.rsplit("/", 1)[0]
        self.host_port = base.split("@", 1)[1]
        self.user = base.split("//", 1)[1].split("@", 1)[0]
        self.direct_url = f"{base}/{name}"

    def _psql(self, sql):
        host, port = self.host_port.split(":")
        subprocess.run([_pg_bin("psql") or "psql", "-h", host, "-p", port, "-U", self.user, "-d",
                        "postgres", "-qc", sql], check=True, stdout=subprocess.DEVNULL)

    def create_database(self):
        self._psql(f"CREATE DATABASE {self.name}")

    def drop_database(self):
        self._psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def _user_exists(name):
    try:
        import pwd
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


class Smtp:
    """aiosmtpd (from the test services' virtualenv) writing every message to a Maildir."""

    def __init__(self, python, maildir, log_dir):
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)
        self.maildir = maildir
        for _ in range(3):
            self.port = free_port()
            self.process = subprocess.Popen(
                [python, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}",
                 "-c", "aiosmtpd.handlers.Mailbox", maildir],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(log_dir, "smtp.log"), "a"),
            )
            try:
                wait_until("aiosmtpd",
                           lambda: port_open(self.port) or self.process.poll() is not None, 30)
            except TimeoutError:
                pass
            if self.process.poll() is None and port_open(self.port):
                return
            self.process.kill()
            self.process.wait()
        raise SystemExit("aiosmtpd did not start")

    def env(self):
        return {"VIDSNAP_SMTP__HOST": "127.0.0.1", "VIDSNAP_SMTP__PORT": str(self.port),
                "VIDSNAP_SMTP__TLS": "none"}

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
