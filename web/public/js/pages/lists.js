// The caller's jobs and videos, newest first: a status filter, pages by cursor, and live status.
// A browser holds at most six connections to a server over HTTP/1.1, so at most three unfinished
// items are followed by their event streams; when more are unfinished the page is read again
// every few seconds instead.

import { TERMINAL_JOB, TERMINAL_VIDEO, follow, get } from '../api.js';
import { badge, bytes, h, replace, when } from '../dom.js';
import { onLeave } from '../app.js';

const STREAMS = 3;

const JOB_STATUSES = ['waiting', 'queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled'];
const VIDEO_STATUSES = ['awaiting_upload', 'queued', 'processing', 'succeeded', 'failed', 'dead'];

export function jobsPage(main) {
  return listPage(main, {
    title: 'Jobs', path: '/jobs', api: '/v1/jobs', statuses: JOB_STATUSES, terminal: TERMINAL_JOB,
    event: 'job', events: (job) => `/v1/jobs/${job.id}/events`,
    head: ['Job', 'Recipe', 'Status', 'Steps', 'Created'],
    row: (job) => [
      h('a', { href: `/jobs/${job.id}` }, job.id.slice(-8)),
      job.recipe_name || 'custom',
      badge(job.status),
      job.steps.map((s) => `${s.name}: ${s.status}`).join(', '),
      when(job.created_at),
    ],
  });
}

export function videosPage(main) {
  return listPage(main, {
    title: 'Videos', path: '/videos', api: '/v1/videos', statuses: VIDEO_STATUSES, terminal: TERMINAL_VIDEO,
    event: 'video', events: (video) => `/v1/videos/${video.id}/events`,
    head: ['File', 'Size', 'Status', 'Error', 'Created'],
    row: (video) => [
      video.job ? h('a', { href: `/jobs/${video.job}` }, video.file_name) : video.file_name,
      bytes(video.size),
      badge(video.status),
      video.last_error ? `${video.last_error.code}: ${video.last_error.message}` : '',
      when(video.created_at),
    ],
  });
}

async function listPage(main, list) {
  document.title = `${list.title} · Vidsnap`;
  const query = new URLSearchParams(location.search);
  const status = query.get('status') || '';
  const cursor = query.get('cursor') || '';
  const filter = h('select', { id: 'status', name: 'status' },
    h('option', { value: '' }, 'Any'),
    list.statuses.map((s) => h('option', { value: s, selected: s === status }, s.replace('_', ' '))));
  const form = h('form', { class: 'filter', method: 'get', action: list.path },
    h('label', { for: 'status' }, 'Status'), filter, h('button', { type: 'submit' }, 'Filter'));
  const body = h('tbody');
  const table = h('table', {},
    h('caption', { class: 'visually-hidden' }, list.title),
    h('thead', {}, h('tr', {}, list.head.map((c) => h('th', { scope: 'col' }, c)))), body);
  const pages = h('nav', { 'aria-label': 'Pages', class: 'pages' });
  replace(main, h('h1', {}, list.title), form, table, pages);
  filter.addEventListener('change', () => form.requestSubmit());

  const url = new URL(list.api, location.origin);
  if (status) url.searchParams.set('status', status);
  if (cursor) url.searchParams.set('cursor', cursor);
  url.searchParams.set('limit', '20');
  const stops = [];
  let timer = null;
  onLeave(() => { stops.forEach((stop) => stop()); clearTimeout(timer); });

  const rows = new Map();
  const show = (item) => {
    const tr = h('tr', { 'data-id': item.id, 'data-status': item.status },
      list.row(item).map((c, i) => (i === 0 ? h('th', { scope: 'row' }, c) : h('td', {}, c))));
    const old = rows.get(item.id);
    if (old) old.replaceWith(tr); else body.append(tr);
    rows.set(item.id, tr);
  };
  const load = async () => {
    const page = await get(url.pathname + url.search);
    page.items.forEach(show);
    if (!page.items.length) replace(body, h('tr', {}, h('td', { colspan: list.head.length }, `No ${list.title.toLowerCase()} yet. `, h('a', { href: '/upload' }, 'Upload a video.'))));
    const next = new URLSearchParams({ ...(status ? { status } : {}), ...(page.next_cursor ? { cursor: page.next_cursor } : {}) });
    replace(pages,
      cursor ? h('a', { href: list.path + (status ? `?status=${status}` : '') }, 'First page') : null,
      page.next_cursor ? h('a', { href: `${list.path}?${next}`, rel: 'next' }, 'Next page') : null);
    return page.items.filter((item) => !list.terminal.includes(item.status));
  };
  const unfinished = await load();
  unfinished.slice(0, STREAMS).forEach((item) => {
    stops.push(follow(list.events(item), list.event, show, (it) => list.terminal.includes(it.status)));
  });
  if (unfinished.length > STREAMS) {
    const again = async () => {
      const left = await load().catch(() => [true]);
      if (left.length) timer = setTimeout(again, 4000);
    };
    timer = setTimeout(again, 4000);
  }
}
