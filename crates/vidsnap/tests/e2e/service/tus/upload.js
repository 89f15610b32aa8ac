// Uploads a file with tus-js-client (the official JavaScript client, from .services/node), as the
// end-to-end tests drive it. One argument, JSON:
//   {"endpoint": "http://…/v1/uploads", "uploadUrl": "http://…/v1/uploads/ID" (resume instead of
//    creating), "token": "…", "file": "/path", "metadata": {…}, "chunkSize": 262144}
// Prints one JSON line per event on stdout: {"event": "url", "url"} once the upload exists,
// {"event": "chunk", "offset"} after each acknowledged PATCH, {"event": "success", "url"} at the
// end; on failure {"event": "error", "message"} and exit status 1.
'use strict'

const fs = require('node:fs')
const tus = require('tus-js-client')

const args = JSON.parse(process.argv[2])
const say = (event) => process.stdout.write(`${JSON.stringify(event)}\n`)

const upload = new tus.Upload(fs.readFileSync(args.file), {
  endpoint: args.endpoint,
  uploadUrl: args.uploadUrl || null,
  headers: { Authorization: `Bearer ${args.token}` },
  metadata: args.metadata || {},
  chunkSize: args.chunkSize || Infinity,
  // 409 and 423 (another request still holds the upload) are retried, as tus-js-client does.
  retryDelays: [0, 100, 250, 500, 1000, 2000, 3000],
  storeFingerprintForResuming: false,
  onUploadUrlAvailable: () => say({ event: 'url', url: upload.url }),
  onChunkComplete: (_size, accepted, _total) => say({ event: 'chunk', offset: accepted }),
  onSuccess: () => say({ event: 'success', url: upload.url }),
  onError: (error) => {
    say({ event: 'error', message: String(error) })
    process.exitCode = 1
  },
})
upload.start()
