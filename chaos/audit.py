"""After the faults: what the service holds, checked against the invariants of issue #11, as
figures and a list of violations."""

import datetime
import itertools
import os
import re
import sqlite3
import subprocess
import urllib.parse

ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TERMINAL_JOB = {"succeeded", "failed", "dead", "cancelled"}
TERMINAL_VIDEO = {"succeeded", "dead"}


class Audit:
    def __init__(self):
        self.figures = []  # (label, text), printed in order
        self.violations = []
        # Wrong behaviour outside the invariants of #11: printed, not failing the run.
        self.anomalies = []

    def figure(self, label, text):
        self.figures.append((label, text))

    def violate(self, text):
        self.violations.append(text)


def jobs_and_videos(audit, api, planned):
    """The service's videos and jobs, against what the clients asked for. Returns the live ids
    (video ids, job ids) and the terminal jobs by id (detail with history)."""
    videos = {v["id"]: v for v in api.listing("/v1/videos")}
    jobs = {j["id"]: j for j in api.listing("/v1/jobs")}
    known = {v.id for v in planned if v.id}
    # Creations whose answer a kill lost: recognised by name, never uploaded, removed by the
    # client once it knows (what a careful client does; the scheduler would remove them after
    # the upload URL's expiry and a grace period).
    names = {name: v for v in planned for name in v.names}
    lost = [v for v in videos.values() if v["id"] not in known]
    for video in lost:
        if video["file_name"] not in names or video["status"] != "awaiting_upload":
            audit.violate(f"video {video['id']} ({video['file_name']}, {video['status']}) "
                          "was never asked for")
        status, _ = api.retrying("DELETE", f"/v1/videos/{video['id']}")
        if status not in (204, 404):
            audit.violate(f"deleting lost creation {video['id']}: {status}")
        videos.pop(video["id"], None)
        if video.get("job"):
            jobs.pop(video["job"], None)

    deleted = [v for v in planned if v.deleted]
    for v in deleted:
        if v.id in videos:
            audit.violate(f"video {v.id} was deleted (204) but is still listed")
    for v in planned:
        for note in v.notes:
            if note.startswith("client error"):
                audit.violate(f"video {v.index} ({v.id}): {note}")
        if v.id and not v.uploaded and not v.deleted:
            audit.violate(f"video {v.index} ({v.id}) was never uploaded")

    counts = {s: 0 for s in ("succeeded", "failed", "dead", "cancelled")}
    details = {}
    non_terminal = []
    for job_id, job in jobs.items():
        if job["status"] not in TERMINAL_JOB:
            non_terminal.append(f"{job_id} ({job['status']}, video {job.get('video')})")
            continue
        counts[job["status"]] += 1
        status, detail = api.retrying("GET", f"/v1/jobs/{job_id}")
        if status == 200:
            details[job_id] = detail
    for entry in non_terminal:
        audit.violate(f"job not terminal: {entry}")
    for video in videos.values():
        if video["status"] not in TERMINAL_VIDEO:
            audit.violate(f"video not terminal: {video['id']} ({video['status']})")

    # Each succeeded once: one `succeeded` line per step of a job (and per video), none for a
    # job that did not succeed.
    twice = []
    for job_id, job in details.items():
        lines = job.get("history") or []
        for step in job["steps"]:
            wins = [h for h in lines if h["step"] == step["name"] and h["status"] == "succeeded"]
            expected = 1 if step["status"] == "succeeded" else 0
            if len(wins) != expected:
                twice.append(f"job {job_id} step {step['name']}: {len(wins)} succeeded lines "
                             f"(status {step['status']})")
    for video in videos.values():
        wins = [h for h in video.get("history", []) if h["status"] == "succeeded"]
        if len(wins) > 1:
            twice.append(f"video {video['id']}: {len(wins)} succeeded entries")
    for entry in twice:
        audit.violate(f"succeeded more than once: {entry}")

    injected = sum(1 for j in details.values() if j["status"] != "succeeded" and _injected(j))
    retried = sum(1 for j in details.values() if any(s["attempts"] > 1 for s in j["steps"]))
    total = len(jobs)
    audit.figure("jobs", f"{total} total, {sum(counts.values())} terminal, "
                         f"{counts['succeeded']} succeeded, {counts['failed']} failed, "
                         f"{counts['dead']} dead, {counts['cancelled']} cancelled "
                         f"({injected} of the failed/dead by an injected FFmpeg tool failure; "
                         f"{retried} jobs needed more than one attempt of a step)")
    audit.figure("successes", f"{counts['succeeded']} jobs succeeded, "
                              f"{len(twice)} steps or videos with a second success")
    runs = [h for j in details.values() for h in (j.get("history") or [])
            if h["status"] == "running"]
    takeovers = sum(1 for h in runs if "took over" in (h.get("reason") or ""))
    durations = sorted(
        (_time(s["finished_at"]) - _time(s["started_at"])).total_seconds()
        for j in details.values() for s in j["steps"]
        if s["status"] == "succeeded" and s.get("started_at") and s.get("finished_at"))
    if durations:
        audit.figure("steps", f"{len(runs)} step runs started, {takeovers} of them taking over "
                              f"a killed worker's step; succeeded steps took median "
                              f"{durations[len(durations) // 2]:.1f} s, max {durations[-1]:.1f} s")
    audit.figure("clients", f"{len(planned)} videos asked for, {len(deleted)} deleted mid-run, "
                            f"{len(lost)} creations whose answer was lost to a fault (removed), "
                            f"{sum(v.upload_retries for v in planned)} interrupted uploads retried")
    return set(videos), set(jobs), details


def _time(text):
    """RFC 3339 with up to nanoseconds (Python reads at most microseconds)."""
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(itertools.takewhile(str.isdigit, rest))
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}"
    return datetime.datetime.fromisoformat(text)


def _injected(job):
    """Whether a job that did not succeed ended on a failure the suite injected (the clips are
    valid videos: not-a-video or an unreadable tool output can only come from the wrappers)."""
    for step in job["steps"]:
        error = step.get("last_error") or {}
        message = str(error.get("message", ""))
        if error.get("code") == "not-a-video" or "chaos: injected" in message or \
                "unexpected" in message:
            return True
    return False


def notifications(audit, details, videos, rows, webhook_posts, mail):
    """One terminal notification per job and channel.

    `rows` are the service's notifications (its database: {subject, channel, event, status}):
    each terminal job must own exactly one per channel (the e-mail and the webhook), of the
    event its outcome announces, delivered; nothing else may own one. Then what arrived: each
    webhook notification (by its id) and each e-mail posted at least once. The same notification
    arriving again is a redelivery (a delivery sent and not recorded before a kill or a database
    restart: at least once is the design) and is counted apart; webhook receivers de-duplicate
    by the notification id."""
    owned = {}
    for row in rows:
        owned.setdefault(row["subject"], []).append(row)
    missing = doubled = wrong = undelivered = 0
    announced = 0
    for job_id, job in details.items():
        subject = job.get("video") or job_id
        expected = _event(job)
        mine = owned.pop(subject, [])
        if expected is None:
            if mine:
                audit.violate(f"{job['status']} job {job_id} has notifications: {mine}")
            continue
        announced += 1
        for channel in ("email", "webhook"):
            found = [r for r in mine if r["channel"].split(":")[0] == channel]
            if not found:
                missing += 1
                audit.violate(f"job {job_id} ({subject}, {job['status']}) has no {channel} "
                              "notification")
            elif len(found) > 1:
                doubled += 1
                audit.violate(f"job {job_id} ({subject}) has {len(found)} {channel} "
                              f"notifications: {found}")
            for row in found:
                if row["event"] != expected:
                    wrong += 1
                    audit.violate(f"{subject} {channel}: {row['event']}, expected {expected}")
                if row["status"] != "delivered":
                    undelivered += 1
                    audit.violate(f"{subject} {channel} notification {row['status']} "
                                  f"after {row['attempts']} attempts")
    for subject, mine in owned.items():
        audit.violate(f"notifications of {subject}, not a terminal job the suite knows: {mine}")

    posts, emails = {}, {}
    for post in webhook_posts:
        posts.setdefault(post["notification"], []).append(post)
    # E-mails by notification (Message-ID), or by subject from builds that set no Message-ID.
    by_id = all(m["notification"] for m in mail)
    for message in mail:
        key = message["notification"] if by_id else message["video"] or message["job"]
        emails.setdefault(key, []).append(message)
    lost = 0
    for row in rows:
        if row["status"] != "delivered":
            continue
        channel = row["channel"].split(":")[0]
        if channel == "webhook":
            arrived = posts.get(row["id"])
        else:
            arrived = emails.get(row["id"] if by_id else row["subject"])
        if not arrived:
            lost += 1
            audit.violate(f"{row['subject']} {channel} notification {row['id']} is delivered "
                          "but never arrived")
    known = {r["id"] for r in rows}
    # Posts of notifications no longer in the database: of videos deleted after their outcome.
    gone = [n for n in posts if n not in known]
    for notification in gone:
        subject = posts[notification][0]["video"] or posts[notification][0]["job"]
        if subject in videos:
            audit.violate(f"webhook notification {notification} of {subject} is not in the "
                          "database")
    hook_again = sum(len(p) - 1 for n, p in posts.items() if n in known)
    owners = known if by_id else {r["subject"] for r in rows}
    mail_again = sum(len(m) - 1 for key, m in emails.items() if key in owners)
    audit.figure("notifications",
                 f"{announced} terminal jobs announced, {len(rows)} notifications in the "
                 f"database; {missing} missing, {doubled} doubled, {wrong} of the wrong event, "
                 f"{undelivered} undelivered, {lost} delivered but never arrived; redelivered "
                 f"after a fault: {hook_again} webhook posts, {mail_again} e-mails; "
                 f"{len(gone)} posts about videos deleted after their outcome")
    if mail_again and not by_id:
        audit.anomalies.append(
            f"{mail_again} e-mails sent twice (sent, then the process was killed or the database "
            "went away before the delivery was recorded): they carry no Message-ID, so neither "
            "a mail server nor a reader can tell the repeat from a second notification")


NOTIFICATIONS = ("SELECT id, coalesce(video, job), channel_key, event, status, attempts "
                 "FROM notifications")


def sqlite_notifications(path):
    """The notifications in a (stopped) server's SQLite database."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return [_row(values) for values in db.execute(NOTIFICATIONS)]


def postgres_notifications(url):
    """The notifications in a PostgreSQL database (psql, tab-separated)."""
    sql = NOTIFICATIONS.replace("coalesce(video, job)", "coalesce(video, job)::text")
    out = subprocess.run(["psql", url, "-AtF", "\t", "-c", sql], check=True,
                         capture_output=True, text=True).stdout
    return [_row(line.split("\t")) for line in out.splitlines() if line]


def _row(values):
    id_, subject, channel, event, status, attempts = values
    return {"id": str(id_), "subject": str(subject), "channel": channel, "event": event,
            "status": status, "attempts": int(attempts)}


def _event(job):
    prefix = "video" if job.get("video") else "job"
    status = job["status"]
    if status == "cancelled":
        return None
    if prefix == "video":
        return "video.succeeded" if status == "succeeded" else "video.dead"
    return f"job.{status}"


def announced(details, webhook_posts, mail):
    """Whether every terminal job has its webhook and e-mail (to wait for, before stopping)."""
    hooks = {p["video"] or p["job"] for p in webhook_posts}
    mails = {m["video"] or m["job"] for m in mail}
    waiting = [j for j in details.values() if _event(j)
               and ((j.get("video") or j["id"]) not in hooks
                    or (j.get("video") or j["id"]) not in mails)]
    return not waiting


def leftovers(audit, stored, scratch_dirs, videos, jobs, details, incomplete_uploads):
    """Bytes in scratch, temporary and partial files, and blobs of no video or job.

    `stored` is {key: size} of every blob (files under the local root, or bucket objects);
    `scratch_dirs` the processes' scratch folders; `incomplete_uploads` [(key, bytes)] of
    multipart uploads begun and never completed (S3)."""
    scratch_bytes, scratch_files = 0, []
    for folder in scratch_dirs:
        for path, size in walk(folder):
            scratch_bytes += size
            scratch_files.append(f"{path} ({size} B)")
    partial, orphans = unowned(stored, videos, jobs)
    partial_bytes = sum(partial.values()) + sum(b for _, b in incomplete_uploads)
    missing = []
    for job_id, job in details.items():
        for step in job["steps"]:
            for artefact in step.get("artefacts", []):
                key = _key_of(artefact["url"], stored)
                if key is None or stored[key] != artefact["bytes"]:
                    missing.append(f"job {job_id} {step['name']}/{artefact['name']}")
    if scratch_bytes:
        audit.violate(f"{scratch_bytes} B left in scratch: {scratch_files[:10]}")
    if partial_bytes:
        audit.violate(f"{partial_bytes} B left in partial files or uploads: "
                      f"{list(partial)[:10]} {incomplete_uploads[:10]}")
    if orphans:
        audit.violate(f"{len(orphans)} orphaned blobs ({sum(orphans.values())} B): "
                      f"{sorted(orphans)[:10]}")
    if missing:
        audit.violate(f"{len(missing)} artefacts missing from storage: {missing[:10]}")
    audit.figure("leftovers", f"scratch {scratch_bytes} B ({len(scratch_files)} files), "
                              f"partial {partial_bytes} B ({len(partial)} files, "
                              f"{len(incomplete_uploads)} incomplete multipart uploads), "
                              f"orphaned blobs {len(orphans)} ({sum(orphans.values())} B); "
                              f"{len(stored) - len(partial) - len(orphans)} blobs stored, "
                              f"{len(missing)} artefacts missing")


def unowned(stored, videos, jobs):
    """({key: size} of temporary and partial files, {key: size} of blobs whose video or job has
    no row) among `stored`."""
    partial = {k: s for k, s in stored.items() if _is_partial(k)}
    orphans = {}
    for key, size in stored.items():
        if key in partial:
            continue
        owner = _owner(key)
        if owner is None or (owner[0] == "video" and owner[1] not in videos) or \
                (owner[0] == "job" and owner[1] not in jobs):
            orphans[key] = size
    return partial, orphans


def walk(folder):
    """(path, size) of every file under `folder` (nothing if it does not exist)."""
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            try:
                yield path, os.path.getsize(path)
            except OSError:
                pass


def local_blobs(root):
    """{key: size} of the files under a local storage root."""
    return {os.path.relpath(path, root): size for path, size in walk(root)}


def _is_partial(key):
    name = key.rsplit("/", 1)[-1]
    return name.endswith(".partial") or key.startswith(".uploads/") or name.startswith(".")


def _owner(key):
    """("video", id) or ("job", id) a blob belongs to by its key: `{user}/{video}/…` or
    `{user}/jobs/{job}/…`; None for a key of neither shape."""
    parts = key.split("/")
    if len(parts) >= 3 and parts[1] == "jobs" and ID.match(parts[2]):
        return ("job", parts[2])
    if len(parts) >= 2 and ID.match(parts[1]):
        return ("video", parts[1])
    return None


def _key_of(url, stored):
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path).lstrip("/")
    parts = path.split("/")
    for i in range(len(parts)):
        candidate = "/".join(parts[i:])
        if candidate in stored:
            return candidate
    return None
