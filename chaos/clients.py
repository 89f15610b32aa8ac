"""The chaos suite's users: each video is created, uploaded and sometimes deleted by a client
that keeps trying through kills, restarts and outages, as a careful real client would, and
records what it saw."""

import threading
import time

from peers import Unavailable, request

# What the suite uploads: (clip, the create request's processing part). The long one runs for
# seconds, so kills land mid-step; `preview` is a job of three steps (two in parallel).
KINDS = {
    "frames-short": ("short", {"options": {"every": "1s"}}),
    "frames-long": ("long", {"options": {"every": "0.25s", "format": "png"}}),
    "preview": ("short", {"recipe_name": "preview", "params": {"at": 0.5}}),
}
KIND_WEIGHTS = {"frames-short": 5, "frames-long": 3, "preview": 2}


class Video:
    """One video the suite asked for, and what happened to its requests."""

    def __init__(self, index, kind, at, delete_after):
        self.index = index
        self.kind = kind
        self.at = at
        self.delete_after = delete_after  # seconds after the upload, or None
        self.id = None
        self.names = []  # file names of every create sent (a retry uses a new one)
        self.uploaded = False
        self.deleted = False
        self.upload_retries = 0
        self.notes = []
        self.events = []  # (wall clock, what the client did or saw), for logs/clients.log

    def event(self, text):
        now = time.time()
        at = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
        self.events.append((at, text))


def plan(rng, count, window, delete_share):
    """The videos of a run: kinds, when each is created, which are deleted and when."""
    kinds = list(KIND_WEIGHTS)
    weights = [KIND_WEIGHTS[k] for k in kinds]
    deleted = set(rng.sample(range(count), max(1, round(count * delete_share))))
    videos = []
    for i in range(count):
        at = window * 0.8 * i / max(1, count - 1)
        kind = rng.choices(kinds, weights)[0]
        delete_after = rng.uniform(0, 4) if i in deleted else None
        videos.append(Video(i, kind, at, delete_after))
    return videos


class Clients:
    """Runs every planned video's client in a thread of its own, from `start`."""

    def __init__(self, api, videos, clips, direct_upload, seconds=240):
        self.api = api
        self.videos = videos
        self.clips = clips
        # S3: the bytes go to the bucket, then the client reports them (POST .../uploaded).
        self.direct_upload = direct_upload
        self.seconds = seconds
        self.threads = []

    def start(self, started):
        for video in self.videos:
            thread = threading.Thread(target=self._run, args=(video, started), daemon=True)
            thread.start()
            self.threads.append(thread)

    def join(self):
        for thread in self.threads:
            thread.join()

    def _run(self, video, started):
        time.sleep(max(0.0, started + video.at - time.monotonic()))
        deadline = time.monotonic() + self.seconds
        try:
            created = self._create(video, deadline)
            self._upload(video, created, deadline)
            if video.delete_after is not None:
                time.sleep(video.delete_after)
                self._delete(video, deadline)
        except Exception as e:  # recorded and reported as a violation, not a crash of the run
            video.notes.append(f"client error: {e}")
            video.event(f"client error: {e}")

    def _create(self, video, deadline):
        clip, processing = KINDS[video.kind]
        while True:
            name = f"chaos-{video.index:03d}-{len(video.names) + 1}.mp4"
            video.names.append(name)
            try:
                body = {"file_name": name, **processing}
                status, body = self.api.call("POST", "/v1/videos", body)
            except Unavailable:
                # Maybe created, the answer lost: the video named `name` then waits for an upload
                # that never comes (the audit finds it by its name). Retry under a new name.
                _pause(deadline, f"creating video {video.index}")
                continue
            if status != 201:
                raise RuntimeError(f"POST /v1/videos: {status} {body}")
            video.id = body["video"]["id"]
            video.event(f"created {video.id} ({name}, {video.kind})")
            return body

    def _upload(self, video, created, deadline):
        clip = self.clips[KINDS[video.kind][0]]
        url = created["upload"]["url"]
        path = f"/v1/videos/{video.id}"
        while True:
            try:
                status, body = request("PUT", url, data=clip, timeout=60)
            except Unavailable as e:
                video.upload_retries += 1
                video.event(f"PUT interrupted: {e}")
                if not self.direct_upload and self._arrived(video, deadline):
                    return
                _pause(deadline, f"uploading video {video.index}")
                continue
            if status in (200, 204):
                video.event(f"PUT {status}")
                break
            if status == 409:  # local storage: the upload had arrived before the interruption
                video.event("PUT: 409, the upload had arrived")
                break
            raise RuntimeError(f"PUT {path}: {status} {body[:200]!r}")
        if self.direct_upload:
            self._report_upload(video, deadline)
        else:
            video.uploaded = True

    def _arrived(self, video, deadline):
        """After an interrupted PUT (local storage): whether the upload counts as arrived, if
        need be by saying so (POST .../uploaded checks the bytes and queues the video)."""
        status, body = self.api.retrying("GET", f"/v1/videos/{video.id}",
                                         seconds=deadline - time.monotonic())
        if status == 200 and body["status"] != "awaiting_upload":
            video.uploaded = True
            return True
        status, body = self.api.retrying("POST", f"/v1/videos/{video.id}/uploaded",
                                         seconds=deadline - time.monotonic())
        if status == 202:
            video.event("interrupted PUT completed: reported with POST .../uploaded (202)")
            video.uploaded = True
            return True
        return False  # upload-missing: the bytes did not land; PUT again

    def _report_upload(self, video, deadline):
        while True:
            status, body = self.api.retrying("POST", f"/v1/videos/{video.id}/uploaded",
                                             seconds=deadline - time.monotonic())
            if status == 202:
                video.event("POST .../uploaded 202")
                video.uploaded = True
                return
            # 409 upload-missing after the store said 200 to the PUT would be a lost object.
            raise RuntimeError(f"POST /v1/videos/{video.id}/uploaded: {status} {body}")

    def _delete(self, video, deadline):
        for _ in range(5):
            status, body = self.api.retrying("DELETE", f"/v1/videos/{video.id}",
                                             seconds=deadline - time.monotonic())
            video.event(f"DELETE {status}")
            if status in (204, 404):
                video.deleted = True
                return
            if status != 409:
                raise RuntimeError(f"DELETE /v1/videos/{video.id}: {status} {body}")
            time.sleep(1)  # a job of its own still runs (invalid-state): try again
        video.event("still in use after 5 deletes: kept")


def _pause(deadline, what):
    if time.monotonic() > deadline:
        raise RuntimeError(f"gave up {what}: the service stayed unreachable")
    time.sleep(0.3)



def write_log(path, videos):
    with open(path, "w") as f:
        events = [(at, v, text) for v in videos for at, text in v.events]
        for at, video, text in sorted(events, key=lambda e: e[0]):
            f.write(f"{at} video {video.index:3d} {video.id}: {text}\n")
