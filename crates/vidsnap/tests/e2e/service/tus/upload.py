"""Uploads a file with tuspy (tus-py-client, the official Python client, from .services/venv), as
the end-to-end tests drive it. One argument, JSON:
  {"endpoint": "http://…/v1/uploads", "url": "http://…/v1/uploads/ID" (resume instead of
   creating), "token": "…", "file": "/path", "metadata": {…}, "chunk_size": 262144,
   "checksum": true (send Upload-Checksum: sha1 with every PATCH), "stop_at": N (stop once N
   bytes are acknowledged)}
Prints one JSON line per event on stdout: {"event": "url", "url"} once the upload exists,
{"event": "chunk", "offset"} after each acknowledged PATCH, {"event": "done", "offset"} at the
end. Failures raise (exit status 1, traceback on stderr).
"""

import json
import sys

from tusclient import client


def say(event):
    print(json.dumps(event), flush=True)


def main():
    args = json.loads(sys.argv[1])
    tus = client.TusClient(args["endpoint"], headers={"Authorization": f"Bearer {args['token']}"})
    options = {
        "file_path": args["file"],
        "metadata": args.get("metadata", {}),
        "upload_checksum": bool(args.get("checksum")),
        # 409 and 423 (another request still holds the upload): ask for the offset again.
        "retries": 5,
        "retry_delay": 0.2,
    }
    if args.get("chunk_size"):
        options["chunk_size"] = args["chunk_size"]
    if args.get("url"):
        options["url"] = args["url"]
    uploader = tus.uploader(**options)
    if not uploader.url:
        uploader.set_url(uploader.create_url())
    say({"event": "url", "url": uploader.url})
    stop_at = args.get("stop_at") or uploader.get_file_size()
    while uploader.offset < stop_at:
        uploader.upload_chunk()
        say({"event": "chunk", "offset": uploader.offset})
    say({"event": "done", "offset": uploader.offset})


if __name__ == "__main__":
    main()
