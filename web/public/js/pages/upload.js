// Uploads with tus-js-client against /v1/uploads (the session cookie authenticates them): one
// row per file with its progress, pause and resume. tus-js-client remembers each upload's URL
// in localStorage under a fingerprint of the file, so after a reload or a dropped network the
// same file picked again continues from the offset the server has (HEAD), not from zero.
// The recipe and its parameters go in the upload's metadata (`recipe`, `params`).

import { get } from '../api.js';
import { bytes, h, problem, replace } from '../dom.js';
import { onLeave } from '../app.js';

const CHUNK = 8 * 1024 * 1024;

// Bytes per PATCH; `localStorage['vidsnap.uploadChunkBytes']` overrides it (the browser tests
// use small pieces so an upload can be interrupted half-way).
function chunkSize() {
  const n = Number(localStorage.getItem('vidsnap.uploadChunkBytes'));
  return Number.isFinite(n) && n > 0 ? n : CHUNK;
}

export async function uploadPage(main) {
  document.title = 'Upload · Vidsnap';
  if (!window.tus) {
    replace(main, h('h1', {}, 'Upload'), problem({ code: 'missing-library', message: (window.vidsnapMissing || ['tus-js-client did not load']).join('; ') }));
    return;
  }
  const { recipes } = await get('/v1/recipes');
  const single = recipes.filter((r) => (r.recipe.inputs || ['video']).length === 1);
  const recipe = h('select', { id: 'recipe', name: 'recipe' },
    single.map((r) => h('option', { value: r.name, selected: r.name === 'frames' }, r.name)));
  const about = h('p', { class: 'hint', id: 'recipe-hint' });
  recipe.setAttribute('aria-describedby', 'recipe-hint');
  const params = h('fieldset', { class: 'params' });
  const showParams = () => {
    const chosen = single.find((r) => r.name === recipe.value);
    about.textContent = chosen.description;
    replace(params, h('legend', {}, 'Parameters'),
      Object.entries(chosen.recipe.params || {}).map(([name, spec]) => param(name, spec)));
    if (!Object.keys(chosen.recipe.params || {}).length) params.append(h('p', {}, 'This recipe takes none.'));
  };
  recipe.addEventListener('change', showParams);
  showParams();

  const input = h('input', { id: 'files', type: 'file', multiple: true, accept: 'video/*,audio/*,.mkv,.mov,.mp4,.webm,.avi,.m4a,.mp3,.wav' });
  const drop = h('div', { class: 'drop', id: 'drop' },
    h('p', {}, 'Drop video files here, or'),
    h('label', { for: 'files', class: 'button' }, 'Choose files'), input);
  const rows = h('ul', { class: 'uploads', 'aria-label': 'Uploads' });
  const pending = h('section', { 'aria-labelledby': 'pending-title' });
  replace(main,
    h('h1', {}, 'Upload'),
    h('form', { class: 'card', onsubmit: (e) => e.preventDefault() },
      h('label', { for: 'recipe' }, 'Recipe'), recipe, about, params, drop),
    rows, pending);

  const uploads = [];
  onLeave(() => uploads.forEach((u) => u.abort()));
  const start = (files) => {
    for (const file of files) uploads.push(begin(file, recipe.value, values(params), rows));
  };
  input.addEventListener('change', () => { start(input.files); input.value = ''; });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    start(e.dataTransfer.files);
  });
  showPending(pending);
}

// An input for one recipe parameter, typed by its default.
function param(name, spec) {
  const id = `param-${name}`;
  const hint = h('p', { class: 'hint', id: `${id}-hint` }, spec.description || '');
  if (typeof spec.default === 'boolean') {
    return h('div', { class: 'check' },
      h('input', { id, type: 'checkbox', 'data-param': name, 'data-field': `params.${name}`, checked: spec.default, 'aria-describedby': `${id}-hint` }),
      h('label', { for: id }, name), hint);
  }
  const list = Array.isArray(spec.default) ? spec.default.join(',') : spec.default;
  return h('div', {},
    h('label', { for: id }, name),
    h('input', { id, 'data-param': name, 'data-field': `params.${name}`, 'data-kind': typeof spec.default, value: list ?? '', 'aria-describedby': `${id}-hint` }),
    hint);
}

function values(fieldset) {
  const out = {};
  for (const input of fieldset.querySelectorAll('[data-param]')) {
    const name = input.dataset.param;
    if (input.type === 'checkbox') out[name] = input.checked;
    else if (input.value.trim() === '') continue;
    else if (input.dataset.kind === 'number' && !Number.isNaN(Number(input.value))) out[name] = Number(input.value);
    else out[name] = input.value.trim();
  }
  return out;
}

function begin(file, recipe, params, rows) {
  const bar = h('progress', { max: 100, value: 0, 'aria-label': `${file.name} uploaded` });
  const state = h('span', { class: 'state' }, 'starting…');
  const pause = h('button', { type: 'button' }, 'Pause');
  const link = h('span');
  const row = h('li', { class: 'upload', 'data-file': file.name },
    h('strong', {}, file.name), ' ', h('span', { class: 'hint' }, bytes(file.size)), bar, state, pause, link);
  rows.append(row);
  let video = null;
  let paused = false;
  const upload = new window.tus.Upload(file, {
    endpoint: '/v1/uploads',
    chunkSize: chunkSize(),
    retryDelays: [0, 1000, 3000, 5000, 10000],
    metadata: { filename: file.name, recipe, params: JSON.stringify(params) },
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    onAfterResponse(_request, response) {
      const id = response.getHeader('Vidsnap-Video');
      if (id && !video) {
        video = id;
        get(`/v1/videos/${id}`).then((v) => {
          if (v.job) replace(link, h('a', { href: `/jobs/${v.job}` }, 'Job'));
        }).catch(() => {});
      }
    },
    onProgress(sent, total) {
      const percent = total ? Math.floor((sent / total) * 100) : 0;
      bar.value = percent;
      state.textContent = `${percent}% (${bytes(sent)} of ${bytes(total)})`;
      row.dataset.offset = String(sent);
    },
    onSuccess() {
      bar.value = 100;
      state.textContent = 'uploaded: processing starts';
      row.dataset.done = 'true';
      pause.remove();
    },
    onError(error) {
      const body = error.originalResponse?.getBody?.();
      let message = error.message;
      try { const parsed = JSON.parse(body); message = `${parsed.error.code}: ${parsed.error.message}`; } catch { /* not ours */ }
      state.textContent = `failed: ${message}`;
      row.dataset.failed = 'true';
      pause.textContent = 'Retry';
      paused = true;
    },
  });
  pause.addEventListener('click', () => {
    if (paused) { paused = false; pause.textContent = 'Pause'; upload.start(); } else {
      paused = true; pause.textContent = 'Resume'; upload.abort(); state.textContent += ' (paused)';
    }
  });
  upload.findPreviousUploads().then((previous) => {
    if (previous.length) {
      upload.resumeFromPreviousUpload(previous[0]);
      row.dataset.resumed = 'true';
      state.textContent = 'resuming…';
    }
    upload.start();
  });
  return upload;
}

// Uploads this browser started and did not finish (tus-js-client's records): pick the same
// file again to continue it.
async function showPending(section) {
  const storage = window.tus.defaultOptions?.urlStorage;
  const all = storage ? await storage.findAllUploads().catch(() => []) : [];
  if (!all.length) return;
  replace(section, h('h2', { id: 'pending-title' }, 'Unfinished uploads'),
    h('p', {}, 'Choose the same file again to continue where it stopped.'),
    h('ul', {}, all.map((u) => h('li', {}, (u.metadata && u.metadata.filename) || 'a file', ' ', h('span', { class: 'hint' }, `(${bytes(u.size)}, started ${new Date(u.creationTime).toLocaleString()})`)))));
}
