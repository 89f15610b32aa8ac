// The public API (/v1), with the session cookie. Every failure is an ApiError carrying the
// API's code, message and per-field problems, so pages show them next to what caused them.

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the server answered ${status}`);
    this.status = status;
    this.code = error.code || 'http-' + status;
    this.fields = error.fields || {};
  }
}

export async function api(method, path, body) {
  const init = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { error: { code: 'network', message: 'the server cannot be reached: check the connection' } });
  }
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body === undefined ? {} : body);
export const del = (path) => api('DELETE', path);

// Follows `path` (a server-sent event stream of `event` events, each the whole resource) until
// `done(resource)` says it is finished. Returns a function that stops following.
export function follow(path, event, onChange, done) {
  const source = new EventSource(path, { withCredentials: true });
  source.addEventListener(event, (e) => {
    const resource = JSON.parse(e.data);
    onChange(resource);
    if (done(resource)) source.close();
  });
  // The server ends a stream once its resource is terminal; EventSource would reconnect.
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) source.close(); };
  return () => source.close();
}

export const TERMINAL_JOB = ['succeeded', 'failed', 'dead', 'cancelled'];
export const TERMINAL_VIDEO = ['succeeded', 'dead'];
