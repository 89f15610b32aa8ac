"""What the chaos suite talks to and listens with: the API (retrying through restarts), a
webhook receiver that records every delivery, the SMTP Maildir, and an S3 client (SigV4, stdlib
only) to look into the bucket."""

import datetime
import email
import email.policy
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree


class Unavailable(Exception):
    """The server did not answer (down, restarting, connection dropped) or answered 5xx."""


def request(method, url, headers=None, data=None, timeout=30):
    """One HTTP request: (status, body bytes), or Unavailable."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        body = e.read()
        if e.code >= 500:
            raise Unavailable(f"{method} {url}: {e.code} {body[:200]!r}") from None
        return e.code, body
    except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError, OSError,
            http.client.HTTPException) as e:
        raise Unavailable(f"{method} {url}: {e}") from None


class Api:
    """The API of one server (or API process), whose address `server()` gives at each call (it
    is the same port across restarts; the indirection keeps that a detail)."""

    def __init__(self, server, key=None):
        self.server = server
        self.key = key
        # 401s to the suite's own valid API key: the API's answer while it could not look the
        # key up. Retried like a 503 (what the answer should have been) and counted.
        self.refused_key = []

    @property
    def url(self):
        return self.server.url

    def call(self, method, path, body=None, token=None):
        headers = {}
        if token or self.key:
            headers["authorization"] = f"Bearer {token or self.key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        status, raw = request(method, f"{self.url}{path}", headers, data)
        if status == 401 and self.key and not token:
            self.refused_key.append(f"{time.strftime('%H:%M:%S')} {method} {path}")
            raise Unavailable(f"{method} {path}: 401 for a valid API key")
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def retrying(self, method, path, body=None, token=None, seconds=180):
        """Calls until the server answers (not 5xx), through kills and restarts."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                return self.call(method, path, body, token)
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def listing(self, path):
        """Every item of a paged listing (`/v1/videos`, `/v1/jobs`)."""
        items, cursor = [], None
        while True:
            query = "limit=100" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
            sep = "&" if "?" in path else "?"
            status, page = self.retrying("GET", f"{path}{sep}{query}")
            if status != 200:
                raise SystemExit(f"GET {path}: {status} {page}")
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items


class WebhookReceiver:
    """Records every POST (event, delivery id, notification id, video or job id). While
    `failing` is set it answers 500, so deliveries are retried."""

    def __init__(self):
        self.deliveries = []
        self.failing = False
        self.refused = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if receiver.failing:
                    with receiver._lock:
                        receiver.refused += 1
                    self.send_response(500)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {}
                with receiver._lock:
                    receiver.deliveries.append({
                        "event": self.headers.get("vidsnap-event", ""),
                        "delivery": self.headers.get("vidsnap-delivery", ""),
                        "notification": payload.get("id"),
                        "video": (payload.get("video") or {}).get("id"),
                        "job": (payload.get("job") or {}).get("id"),
                    })
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self):
        with self._lock:
            return list(self.deliveries)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def mails(maildir):
    """Every message in the Maildir as {subject, video, job, notification} (ids from the text
    part and the Message-ID)."""
    found = []
    folder = os.path.join(maildir, "new")
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            message = email.message_from_binary_file(f, policy=email.policy.default)
        part = message.get_body(preferencelist=("plain",))
        text = part.get_content() if part else ""
        video = re.search(rf"Video id: ({ID})", text)
        job = re.search(rf"Job id: ({ID})", text)
        # Builds that name the notification in the Message-ID (`<{id}@domain>`).
        notification = re.match(rf"<({ID})@", str(message["message-id"] or ""))
        found.append({
            "subject": str(message["subject"]),
            "video": video.group(1) if video else None,
            "job": job.group(1) if job else None,
            "notification": notification.group(1) if notification else None,
        })
    return found


class S3:
    """Just enough S3 for the suite's own bookkeeping (bucket, listing, multipart uploads,
    deletes), signed with SigV4, path-style."""

    def __init__(self, endpoint, access_key, secret_key, region="us-east-1"):
        self.endpoint = endpoint.rstrip("/")
        self.host = urllib.parse.urlsplit(self.endpoint).netloc
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region

    def call(self, method, path, query=None, data=b""):
        query = sorted((query or {}).items())
        canonical_query = "&".join(
            f"{_quote(k)}={_quote(v)}" for k, v in query)
        now = datetime.datetime.now(datetime.timezone.utc)
        stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        payload = hashlib.sha256(data).hexdigest()
        headers = {"host": self.host, "x-amz-content-sha256": payload, "x-amz-date": stamp}
        signed = ";".join(sorted(headers))
        canonical = "\n".join([
            method, _quote(path, safe="/~"), canonical_query,
            "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed, payload])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + self.secret_key).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={signature}")
        del headers["host"]
        url = f"{self.endpoint}{_quote(path, safe='/~')}"
        if canonical_query:
            url += f"?{canonical_query}"
        return request(method, url, headers, data if method in ("PUT", "POST") else None)

    def create_bucket(self, bucket):
        status, body = self.call("PUT", f"/{bucket}")
        if status != 200:
            raise SystemExit(f"creating bucket {bucket}: {status} {body[:300]!r}")

    def objects(self, bucket):
        """{key: size} of every object."""
        found, token = {}, None
        while True:
            query = {"list-type": "2"}
            if token:
                query["continuation-token"] = token
            status, body = self.call("GET", f"/{bucket}", query)
            if status != 200:
                raise SystemExit(f"listing {bucket}: {status} {body[:300]!r}")
            root = ElementTree.fromstring(body)
            for item in root.iter():
                if item.tag.endswith("}Contents") or item.tag == "Contents":
                    found[_child(item, "Key")] = int(_child(item, "Size"))
            truncated = _child(root, "IsTruncated") == "true"
            token = _child(root, "NextContinuationToken")
            if not truncated or not token:
                return found

    def multipart_uploads(self, bucket):
        """[(key, upload id)] of multipart uploads begun and neither completed nor aborted."""
        status, body = self.call("GET", f"/{bucket}", {"uploads": ""})
        if status != 200:
            raise SystemExit(f"listing multipart uploads of {bucket}: {status} {body[:300]!r}")
        root = ElementTree.fromstring(body)
        return [(_child(u, "Key"), _child(u, "UploadId"))
                for u in root.iter() if u.tag.endswith("Upload") and _child(u, "UploadId")]

    def upload_bytes(self, bucket, key, upload):
        """The bytes a multipart upload's parts hold so far."""
        status, body = self.call("GET", f"/{bucket}/{key}", {"uploadId": upload})
        if status != 200:
            return 0
        root = ElementTree.fromstring(body)
        return sum(int(_child(p, "Size") or 0) for p in root.iter() if p.tag.endswith("Part"))

    def empty_and_delete(self, bucket):
        for key, upload in self.multipart_uploads(bucket):
            self.call("DELETE", f"/{bucket}/{key}", {"uploadId": upload})
        for key in self.objects(bucket):
            self.call("DELETE", f"/{bucket}/{key}")
        self.call("DELETE", f"/{bucket}")


def _quote(text, safe="~"):
    return urllib.parse.quote(text, safe=safe)


def _child(element, name):
    for child in element:
        if child.tag == name or child.tag.endswith("}" + name):
            return child.text
    return None
