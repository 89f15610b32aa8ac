// The page router: every path is served index.html; this module reads the path, checks the
// session (GET /v1/me with the cookie) and shows the page. Links within the app change the
// history instead of reloading.

import { ApiError, del, get } from './api.js';
import { h, problem, replace } from './dom.js';
import { signIn, signUp } from './pages/auth.js';
import { uploadPage } from './pages/upload.js';
import { jobsPage, videosPage } from './pages/lists.js';
import { jobPage } from './pages/job.js';
import { galleryPage } from './pages/gallery.js';
import { accountPage, deliveriesPage } from './pages/account.js';

const routes = [
  [/^\/signin$/, signIn, false],
  [/^\/signup$/, signUp, false],
  [/^\/(jobs)?$/, jobsPage, true],
  [/^\/videos$/, videosPage, true],
  [/^\/upload$/, uploadPage, true],
  [/^\/jobs\/([^/]+)$/, jobPage, true],
  [/^\/jobs\/([^/]+)\/frames\/([^/]+)$/, galleryPage, true],
  [/^\/account$/, accountPage, true],
  [/^\/account\/webhooks\/([^/]+)$/, deliveriesPage, true],
];

const app = { user: null, cleanup: [] };

// Navigates within the app.
export function go(path, replaceState = false) {
  if (replaceState) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

// Registers something to stop (an event stream, a player) when the page changes.
export function onLeave(stop) {
  app.cleanup.push(stop);
}

export function currentUser() {
  return app.user;
}

export function setUser(user) {
  app.user = user;
  nav();
}

function nav() {
  const el = document.getElementById('nav');
  const link = (href, text) => h('a', { href, 'aria-current': location.pathname === href ? 'page' : null }, text);
  if (!app.user) {
    replace(el, h('ul', {}, h('li', {}, link('/signin', 'Sign in')), h('li', {}, link('/signup', 'Sign up'))));
    return;
  }
  replace(el, h('ul', {},
    h('li', {}, link('/jobs', 'Jobs')),
    h('li', {}, link('/videos', 'Videos')),
    h('li', {}, link('/upload', 'Upload')),
    h('li', {}, link('/account', 'Account')),
    h('li', {}, h('button', { type: 'button', class: 'link', onclick: signOut }, `Sign out (${app.user.email})`))));
}

async function signOut() {
  try { await del('/v1/auth/session'); } catch { /* the cookie is gone either way */ }
  app.user = null;
  go('/signin');
}

async function render() {
  for (const stop of app.cleanup.splice(0)) {
    try { stop(); } catch { /* already stopped */ }
  }
  const main = document.getElementById('main');
  const path = location.pathname;
  const route = routes.find(([pattern]) => pattern.test(path));
  if (app.user === null) {
    try { app.user = await get('/v1/me'); } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) {
        replace(main, h('h1', {}, 'Vidsnap'), problem(e));
        return;
      }
      app.user = false;
    }
  }
  nav();
  if (!route) {
    document.title = 'Not found · Vidsnap';
    replace(main, h('h1', {}, 'Not found'), h('p', {}, 'No page here. ', h('a', { href: '/' }, 'Go to your jobs.')));
    return;
  }
  const [pattern, page, needsUser] = route;
  if (needsUser && !app.user) {
    go(`/signin?next=${encodeURIComponent(path + location.search)}`, true);
    return;
  }
  const params = path.match(pattern).slice(1).map(decodeURIComponent);
  try {
    await page(main, ...params);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      app.user = false;
      go('/signin', true);
      return;
    }
    replace(main, h('h1', {}, 'Something went wrong'), problem(e));
  }
  main.focus({ preventScroll: true });
}

document.addEventListener('click', (event) => {
  const a = event.target.closest('a[href]');
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || a.target || a.hasAttribute('download')) return;
  if (url.pathname.startsWith('/v1/') || url.pathname === '/docs') return;
  event.preventDefault();
  go(url.pathname + url.search);
});
window.addEventListener('popstate', render);
render();
