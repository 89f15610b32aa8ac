"""The two scenarios: `vidsnap serve` embedded on its defaults, and a loopback cluster on
PostgreSQL + SeaweedFS. Each plans its faults from the seeded RNG, runs the clients through
them, waits for the service to settle, and hands back an audit."""

import contextlib
import os
import subprocess
import tempfile
import threading
import time

import audit as checks
from clients import Clients, plan, write_log
from faults import FailingFfmpeg, Proxy
from peers import Api, S3, WebhookReceiver, mails
from services import PrivatePostgres, Server, SharedPostgres, Smtp, wait_until

# The full run and the light one (`--light`): videos, seconds of faults.
SIZES = {"full": {"videos": 40, "seconds": 60}, "light": {"videos": 10, "seconds": 15}}
# Share of the videos deleted mid-run (at least one).
DELETED = 0.15

# Settings that make a run short without changing what is tested: cheap password hashing,
# quick takeovers of a dead worker's step (3 s lease), short backoffs, notifications retried
# until the receiver is back (the suite turns it off for a while), and the scheduler's sweeps
# every few seconds.
SERVICE_ENV = {
    "VIDSNAP_API__PASSWORD_COST__MEMORY_KIB": "1024",
    "VIDSNAP_API__PASSWORD_COST__ITERATIONS": "1",
    "VIDSNAP_WORKER__LEASE_SECONDS": "3",
    "VIDSNAP_WORKER__STEP_HEARTBEAT_SECONDS": "0.5",
    "VIDSNAP_WORKER__BACKOFF__BASE_SECONDS": "0.2",
    "VIDSNAP_WORKER__BACKOFF__MAX_SECONDS": "1",
    "VIDSNAP_WORKER__SHUTDOWN_GRACE_SECONDS": "5",
    "VIDSNAP_NOTIFICATIONS__BACKOFF_BASE_SECONDS": "0.2",
    "VIDSNAP_NOTIFICATIONS__BACKOFF_CAP_SECONDS": "1",
    "VIDSNAP_NOTIFICATIONS__POLL_INTERVAL_SECONDS": "0.2",
    "VIDSNAP_NOTIFICATIONS__LEASE_SECONDS": "5",
    "VIDSNAP_NOTIFICATIONS__MAX_ATTEMPTS": "100",
    "VIDSNAP_SCHEDULER__SWEEP_SECONDS": "2",
    # A step left `ready` with its task lost (the enqueue after the change failed: the database
    # went away in between) is queued again this long after it was due (900 s by default).
    "VIDSNAP_SCHEDULER__REQUEUE_AFTER_SECONDS": "10",
    "VIDSNAP_SCHEDULER__CLEANUP_SECONDS": "2",
    "VIDSNAP_AUTH__SECRET": "the chaos suite's secret, 32+ characters",
    "VIDSNAP_LOG": os.environ.get("VIDSNAP_LOG", "warn"),
}

# The scheduler's storage sweep (issue #11: stale partial files, abandoned multipart uploads,
# blobs with no row), every 2 s with short grace periods, where the binary has it: the suite
# then waits for it to clear what the faults left. Multipart uploads get longer: an output
# upload paused by a storage outage is still live.
SWEEP_ENV = {
    "VIDSNAP_SCHEDULER__STORAGE__INTERVAL_SECONDS": "2",
    "VIDSNAP_SCHEDULER__STORAGE__TEMPORARY_GRACE_SECONDS": "5",
    "VIDSNAP_SCHEDULER__STORAGE__MULTIPART_GRACE_SECONDS": "30",
    "VIDSNAP_SCHEDULER__STORAGE__ORPHAN_GRACE_SECONDS": "5",
}


def log(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def sweep_env(binary):
    """SWEEP_ENV if this build knows those settings (`vidsnap config` refuses unknown keys)."""
    with tempfile.TemporaryDirectory() as empty:
        env = dict(os.environ, **SERVICE_ENV, **SWEEP_ENV)
        env.pop("VIDSNAP_CONFIG", None)
        done = subprocess.run([binary, "config"], cwd=empty, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return SWEEP_ENV if done.returncode == 0 else {}


class Timeline:
    """Faults at planned moments (seconds from the start), drawn from the seeded RNG before the
    run, so a seed names one schedule. Each lane (a process, the database, the storage path, …)
    runs its events in order in a thread of its own, so a restart waiting for the database does
    not hold up the database's own restart."""

    def __init__(self):
        self.events = []  # (at, lane, label, action)
        self.errors = []  # actions that failed (a process that would not start again)

    def add(self, at, lane, label, action):
        self.events.append((at, lane, label, action))

    def windows(self, rng, seconds, gap, length, on, off, label):
        """Repeated on/off windows: `on()` at each start, `off()` at each end."""
        at = rng.uniform(*gap) / 2
        count = 0
        while at + 1 < seconds:
            end = min(seconds, at + rng.uniform(*length))
            self.add(at, label, f"{label}: on", on)
            self.add(end, label, f"{label}: off", off)
            count += 1
            at = end + rng.uniform(*gap)
        return count

    def kill_and_restart(self, at, server, rng, pause):
        """SIGKILL `server` at `at`, start it again after a random pause; returns when."""
        self.add(at, server.name, f"SIGKILL {server.name}", server.kill)
        back = at + rng.uniform(*pause)
        self.add(back, server.name, f"start {server.name}", server.start_if_stopped)
        return back

    def run(self, started):
        lanes = {}
        for event in self.events:
            lanes.setdefault(event[1], []).append(event)
        self.threads = [threading.Thread(target=self._run, args=(started, events), daemon=True)
                        for events in lanes.values()]
        for thread in self.threads:
            thread.start()

    def _run(self, started, events):
        for at, _, label, action in sorted(events, key=lambda e: e[0]):
            time.sleep(max(0.0, started + at - time.monotonic()))
            log(f"  t={at:5.1f}s {label}")
            try:
                action()
            except Exception as e:
                log(f"  t={at:5.1f}s {label} failed: {e}")
                self.errors.append(f"{label}: {e}")

    def join(self):
        for thread in self.threads:
            thread.join()


class Scenario:
    """What both scenarios share: the SMTP listener, the webhook receiver, the failing FFmpeg
    tools, the fault timeline, the clients, and the end: settle, audit, stop."""

    def __init__(self, name, args, rng, work, binary, clips, venv_python, cleanup):
        self.name = name
        self.rng = rng
        self.work = work
        self.binary = binary
        self.clips = clips
        size = SIZES[args.size]
        self.seconds = args.seconds or size["seconds"]
        self.videos = args.videos or size["videos"]
        self.logs = os.path.join(work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.ffmpeg = FailingFfmpeg(work)
        self.smtp = Smtp(venv_python, os.path.join(work, "maildir"), self.logs)
        cleanup.callback(self.smtp.stop)
        self.receiver = WebhookReceiver()
        cleanup.callback(self.receiver.close)
        self.sweep = {} if args.no_sweep else sweep_env(binary)
        self.env = dict(os.environ, **SERVICE_ENV, **self.sweep, **self.smtp.env(),
                        PATH=self.ffmpeg.path_env())
        self.env.pop("VIDSNAP_CONFIG", None)
        self.timeline = Timeline()
        self.processes = []
        self.cleanup = cleanup

    def server(self, name, **env):
        server = Server(name, self.binary, os.path.join(self.work, name),
                        dict(self.env, **env), self.logs)
        self.processes.append(server)
        self.cleanup.callback(server.kill)
        return server.start()

    def ffmpeg_failures(self):
        return self.timeline.windows(self.rng, self.seconds, (4, 10), (2, 5),
                                     lambda: self.ffmpeg.set(35), lambda: self.ffmpeg.set(0),
                                     "ffprobe and ffmpeg failing (35% of runs)")

    def drive(self, api, direct_upload, plans, end_faults):
        """A user with an API key and a webhook; the planned videos' clients and the faults run
        together; then every fault ends (`end_faults`) and every process runs."""
        self.api = api
        status, body = api.retrying("POST", "/v1/auth/register", {
            "email": "chaos@example.com", "password": "correct horse battery"})
        assert status == 201, body
        # An API key, not an access token: a run may outlast one.
        status, key = api.retrying("POST", "/v1/api-keys", {"name": "chaos"},
                                   token=body["access_token"])
        assert status == 201, key
        api.key = key["key"]
        status, hook = api.retrying("POST", "/v1/webhooks", {"url": self.receiver.url})
        assert status == 201, hook
        self.planned = plan(self.rng, self.videos, self.seconds, DELETED)
        log(f"{self.name}: {len(self.planned)} videos over {self.seconds:.0f} s; {plans}")
        started = time.monotonic()
        clients = Clients(api, self.planned, self.clips, direct_upload)
        clients.start(started)
        self.timeline.run(started)
        self.timeline.join()
        self.ffmpeg.set(0)
        end_faults()
        clients.join()
        write_log(os.path.join(self.logs, "clients.log"), self.planned)
        log(f"{self.name}: faults over after {time.monotonic() - started:.0f} s; "
            "waiting for every job")
        for process in self.processes:
            if not process.check_alive():
                log(f"  {process.exits[-1]}; starting it again")
                process.start()

    def conclude(self, storage, scratch, notification_rows):
        """Waits (with deadlines) until the service settles, audits it, stops every process
        (gracefully) and audits what they left. `storage()` is ({key: size}, [(key, bytes)] of
        incomplete multipart uploads); `notification_rows()` reads the database."""
        api = self.api
        wait_until("the API to be ready", lambda: _ready(api), 120, 0.2)
        watched = [v for v in self.planned if v.id and v.uploaded and not v.deleted]

        def terminal():
            listed = {v["id"]: v["status"] for v in api.listing("/v1/videos")}
            return all(listed.get(v.id, "dead") in checks.TERMINAL_VIDEO for v in watched)
        _wait("every job to end", terminal, 300)
        ended = {j["id"]: j for j in api.listing("/v1/jobs")
                 if j["status"] in checks.TERMINAL_JOB}
        _wait("every terminal job's notifications",
              lambda: checks.announced(ended, self.receiver.received(), mails(self.smtp.maildir)),
              120)

        audit = checks.Audit()
        for error in self.timeline.errors + [e for p in self.processes for e in p.exits]:
            audit.violate(error)
        videos, jobs, details = checks.jobs_and_videos(audit, api, self.planned)
        if api.refused_key:
            audit.anomalies.append(
                f"the valid API key was refused with 401 unauthorized {len(api.refused_key)} "
                f"times (retried as a 503): {api.refused_key[:3]}")
        if self.sweep:
            waited, seen = time.monotonic(), []

            def swept():
                stored, incomplete = storage()
                partial, orphans = checks.unowned(stored, videos, jobs)
                seen.append((len(partial) + len(incomplete), len(orphans)))
                return not (partial or orphans or incomplete)
            _wait("the storage sweep to clear what the faults left", swept, 60)
            removed = self.sweep_metrics()
            audit.figure("storage sweep", (
                f"every 2 s (grace 5 s, multipart 30 s); when every job had ended "
                f"{seen[0][0]} partial files or uploads and {seen[0][1]} orphaned blobs were "
                f"left, {time.monotonic() - waited:.1f} s later {seen[-1][0]} and {seen[-1][1]}"
                f"{removed}"))
        else:
            audit.figure("storage sweep", "at its defaults (--no-sweep) or not in this build: "
                                          "what the faults left stays")
        for process in self.processes:
            code = process.stop()
            if code != 0:
                audit.violate(f"{process.name} did not stop cleanly: {code}")
        checks.notifications(audit, details, videos, notification_rows(),
                             self.receiver.received(), mails(self.smtp.maildir))
        stored, incomplete = storage()
        checks.leftovers(audit, stored, scratch, videos, jobs, details, incomplete)
        lost = self.logged("enqueue failed; the sweep will queue it again")
        requeued = self.logged("ready without progress: enqueueing again")
        audit.figure("lost tasks", f"{lost} enqueues failed after their step was made ready; "
                                   f"the scheduler queued {requeued} steps again "
                                   "(requeue_after_seconds: 10 here, 900 by default)")
        return audit

    def logged(self, text):
        """How many lines of the processes' logs contain `text`."""
        count = 0
        for process in self.processes:
            with open(process.log_path, errors="replace") as f:
                count += sum(1 for line in f if text in line)
        return count

    def sweep_metrics(self):
        """What the storage sweep says it removed, from the /metrics of the processes running
        it (since each last started)."""
        totals = {}
        for process in self.processes:
            try:
                status, page = Api(process).call("GET", "/metrics")
            except Exception:
                continue
            if status != 200 or not isinstance(page, str):
                continue
            for line in page.splitlines():
                for name in ("vidsnap_storage_orphans_removed_total",
                             "vidsnap_storage_temporaries_removed_total"):
                    if line.startswith(name):
                        totals[name] = totals.get(name, 0) + float(line.split()[-1])
        if not totals:
            return ""
        return (f"; by its metrics it removed "
                f"{totals.get('vidsnap_storage_orphans_removed_total', 0):.0f} orphans "
                f"and {totals.get('vidsnap_storage_temporaries_removed_total', 0):.0f} "
                "temporaries")

    def injected(self):
        counts, tools = self.ffmpeg.injected()
        by_tool = ", ".join(f"{tool} {n}" for tool, n in sorted(tools.items())) or "none"
        return (f"FFmpeg tool failures injected: {sum(counts.values())} ({by_tool}; truncated "
                f"output {counts['garbage']}, exit 1 {counts['exit']}, SIGKILL {counts['kill']})")


def _ready(api):
    try:
        return api.call("GET", "/readyz")[0] == 200
    except Exception:
        return False


def _wait(what, check, seconds):
    """wait_until, but a timeout is left for the audit to report."""
    try:
        wait_until(what, check, seconds, 0.5)
    except TimeoutError as e:
        log(f"  {e}")


def embedded(args, rng, work, binary, clips, venv_python):
    """`vidsnap serve` on its defaults (SQLite, local disk, the database queue, every role in
    one process), SIGKILLed at random moments and started again; FFmpeg tools failing for a while;
    the webhook receiver answering 500 for a while."""
    with contextlib.ExitStack() as cleanup:
        s = Scenario("embedded", args, rng, work, binary, clips, venv_python, cleanup)
        server = s.server("embedded")
        at, kills = rng.uniform(1.5, 3), 0
        while at < s.seconds:
            at = s.timeline.kill_and_restart(at, server, rng, (0.1, 1.5)) + rng.uniform(2, 6)
            kills += 1
        ffmpeg_windows = s.ffmpeg_failures()
        receiver = s.receiver
        hook_windows = s.timeline.windows(rng, s.seconds, (6, 12), (1, 3),
                                          lambda: setattr(receiver, "failing", True),
                                          lambda: setattr(receiver, "failing", False),
                                          "webhook receiver answering 500")
        s.drive(Api(server), False,
                f"{kills} SIGKILLs, {ffmpeg_windows} ffprobe/ffmpeg failure windows, "
                f"{hook_windows} webhook outages planned",
                lambda: setattr(receiver, "failing", False))
        data = server.data_dir
        audit = s.conclude(
            lambda: (checks.local_blobs(os.path.join(data, "blobs")), []),
            [os.path.join(data, "tmp")],
            lambda: checks.sqlite_notifications(os.path.join(data, "vidsnap.db")))
        audit.figures.insert(0, ("faults", (
            f"{server.kills} SIGKILLs of vidsnap serve, each started again; {s.injected()}; "
            f"webhook posts answered 500: {receiver.refused}; the database (SQLite) and the "
            "storage (local disk) are in the process: their faults are its kills")))
        return audit


def cluster(args, rng, work, binary, clips, venv_python, services):
    """PostgreSQL (a private cluster, crashed and started again) + SeaweedFS reached through a
    proxy that drops every connection for a while + the database queue; one API process, two
    workers SIGKILLed at random moments and started again, one scheduler; FFmpeg tools failing for a
    while."""
    for key in ("VIDSNAP_TEST_S3_ENDPOINT", "VIDSNAP_TEST_S3_ACCESS_KEY",
                "VIDSNAP_TEST_S3_SECRET_KEY"):
        if not services.get(key):
            raise SystemExit(f"{key} is not set: run scripts/test-services.sh first")
    with contextlib.ExitStack() as cleanup:
        s = Scenario("cluster", args, rng, work, binary, clips, venv_python, cleanup)
        endpoint = services["VIDSNAP_TEST_S3_ENDPOINT"]
        access = services["VIDSNAP_TEST_S3_ACCESS_KEY"]
        secret = services["VIDSNAP_TEST_S3_SECRET_KEY"]
        s3 = S3(endpoint, access, secret)
        bucket = f"vidsnap-chaos-{os.getpid()}-{rng.randrange(10**6)}"
        s3.create_bucket(bucket)
        cleanup.callback(_quietly, s3.empty_and_delete, bucket)
        host, port = endpoint.split("//", 1)[1].split(":")
        storage_proxy = Proxy((host, int(port)))
        cleanup.callback(storage_proxy.close)

        if PrivatePostgres.available():
            postgres = PrivatePostgres(work)
            cleanup.callback(postgres.stop)
            postgres.start().create_database()
            database_url = direct_url = postgres.url
            db_proxy = None
            db_fault = "a private PostgreSQL stopped as by a crash (pg_ctl -m immediate), started"
        else:
            # No private cluster here: the machine's server, every connection dropped.
            shared = SharedPostgres(services.get("VIDSNAP_TEST_POSTGRES_URL",
                                                 "postgres://postgres@127.0.0.1:5432/postgres"),
                                    bucket.replace("-", "_"))
            shared.create_database()
            cleanup.callback(shared.drop_database)
            host, port = shared.host_port.split(":")
            db_proxy = Proxy((host, int(port)))
            cleanup.callback(db_proxy.close)
            database_url = f"postgres://{shared.user}@{db_proxy.address}/{shared.name}"
            direct_url = shared.direct_url
            db_fault = ("the machine's PostgreSQL (no private cluster possible here) behind a "
                        "proxy dropping every connection")

        env = dict(VIDSNAP_DATABASE__KIND="postgres", VIDSNAP_DATABASE__URL=database_url,
                   VIDSNAP_QUEUE__KIND="database", VIDSNAP_STORAGE__KIND="s3",
                   VIDSNAP_STORAGE__BUCKET=bucket,
                   VIDSNAP_STORAGE__ENDPOINT=f"http://{storage_proxy.address}",
                   VIDSNAP_STORAGE__REGION="us-east-1", VIDSNAP_STORAGE__PATH_STYLE="true",
                   VIDSNAP_STORAGE__ALLOW_HTTP="true", VIDSNAP_STORAGE__ACCESS_KEY_ID=access,
                   VIDSNAP_STORAGE__SECRET_ACCESS_KEY=secret)
        # HOSTNAME names each process in worker ids (`{HOSTNAME}-{pid}`) and step histories.
        api_server = s.server("api", VIDSNAP_SERVER__ROLE="api", HOSTNAME="api", **env)
        s.server("scheduler", VIDSNAP_SERVER__ROLE="scheduler", HOSTNAME="scheduler", **env)
        workers = [s.server(f"worker-{i}", VIDSNAP_SERVER__ROLE="worker",
                            HOSTNAME=f"worker-{i}", **env) for i in (1, 2)]

        at, kills = rng.uniform(1.5, 3), 0
        while at < s.seconds:
            s.timeline.kill_and_restart(at, rng.choice(workers), rng, (0.2, 2))
            kills += 1
            at += rng.uniform(2, 5)
        storage_windows = s.timeline.windows(rng, s.seconds, (10, 20), (3, 6),
                                             storage_proxy.outage, storage_proxy.restore,
                                             "storage unreachable")
        restarts = 0
        at = rng.uniform(s.seconds * 0.2, s.seconds * 0.4)
        while at < s.seconds - 3:
            back = at + rng.uniform(1, 3)
            if db_proxy is None:
                s.timeline.add(at, "postgres", "PostgreSQL crash", postgres.crash)
                s.timeline.add(back, "postgres", "PostgreSQL start", postgres.restart_after_crash)
            else:
                s.timeline.add(at, "postgres", "PostgreSQL unreachable", db_proxy.outage)
                s.timeline.add(back, "postgres", "PostgreSQL reachable", db_proxy.restore)
            restarts += 1
            at += rng.uniform(s.seconds * 0.4, s.seconds * 0.6)
        ffmpeg_windows = s.ffmpeg_failures()

        def end_faults():
            storage_proxy.restore()
            if db_proxy:
                db_proxy.restore()
        s.drive(Api(api_server), True,
                f"{kills} worker SIGKILLs, {storage_windows} storage outages, {restarts} "
                f"database restarts, {ffmpeg_windows} ffprobe/ffmpeg failure windows planned",
                end_faults)

        def storage():
            incomplete = [(key, s3.upload_bytes(bucket, key, upload))
                          for key, upload in s3.multipart_uploads(bucket)]
            return s3.objects(bucket), incomplete
        audit = s.conclude(
            storage,
            [os.path.join(p.data_dir, sub) for p in s.processes
             for sub in ("tmp", "upload-scratch")],
            lambda: checks.postgres_notifications(direct_url))
        audit.figures.insert(0, ("faults", (
            f"{sum(w.kills for w in workers)} worker SIGKILLs, each started again "
            f"({sum(p.refused_starts for p in s.processes)} starts refused while the database "
            f"was down, retried as a supervisor would); storage unreachable {storage_windows} "
            f"times ({storage_proxy.dropped} connections dropped or refused); database: "
            f"{restarts} times {db_fault}; {s.injected()}")))
        return audit


def _quietly(action, *args):
    try:
        action(*args)
    except Exception as e:
        log(f"cleaning up: {e}")
