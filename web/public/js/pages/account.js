// The account: API keys (create, the secret shown once, revoke) and webhooks (create, the
// signing secret shown once, delete, the delivery log with redelivery).

import { ApiError, del, get, post } from '../api.js';
import { badge, h, problem, replace, showErrors, toast, when } from '../dom.js';
import { currentUser } from '../app.js';

function secretBox(label, value) {
  return h('div', { class: 'secret', role: 'alert' },
    h('p', {}, h('strong', {}, label), ' It is shown this once: copy it now.'),
    h('output', { class: 'secret-value' }, value));
}

export async function accountPage(main) {
  document.title = 'Account · Vidsnap';
  const keys = h('section', { 'aria-labelledby': 'keys-title' });
  const hooks = h('section', { 'aria-labelledby': 'hooks-title' });
  replace(main, h('h1', {}, 'Account'), h('p', {}, `Signed in as ${currentUser().email}.`), keys, hooks);
  await Promise.all([drawKeys(keys), drawHooks(hooks)]);
}

async function drawKeys(section, fresh) {
  const list = await get('/v1/api-keys');
  const name = h('input', { id: 'key-name', name: 'name', required: true, maxlength: 100, 'data-field': 'name' });
  const form = h('form', { class: 'inline' }, h('label', { for: 'key-name' }, 'Name'), name, h('button', { type: 'submit' }, 'Create key'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const created = await post('/v1/api-keys', { name: name.value });
      await drawKeys(section, secretBox(`The key ${created.name}: `, created.key));
    } catch (err) {
      if (err instanceof ApiError) showErrors(form, err); else throw err;
    }
  });
  const rows = list.map((key) => h('tr', { 'data-key': key.name },
    h('th', { scope: 'row' }, key.name), h('td', {}, h('code', {}, `${key.prefix}…`)), h('td', {}, when(key.created_at)),
    h('td', {}, key.last_used_at ? when(key.last_used_at) : 'never'),
    h('td', {}, key.revoked_at ? ['revoked ', when(key.revoked_at)]
      : h('button', { type: 'button', class: 'danger', onclick: async () => {
        if (!confirm(`Revoke the key ${key.name}? Clients using it stop working.`)) return;
        try { await del(`/v1/api-keys/${key.id}`); toast(`Revoked ${key.name}`); await drawKeys(section); } catch (err) { section.append(problem(err)); }
      } }, `Revoke ${key.name}`))));
  replace(section, h('h2', { id: 'keys-title' }, 'API keys'),
    h('p', { class: 'hint' }, 'For scripts and machines: send as Authorization: Bearer or X-Api-Key.'),
    fresh, form,
    rows.length ? h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Key', 'Created', 'Last used', ''].map((c) => h('th', { scope: 'col' }, c)))), h('tbody', {}, rows)) : h('p', {}, 'No keys yet.'));
}

async function drawHooks(section, fresh) {
  const list = await get('/v1/webhooks');
  const url = h('input', { id: 'hook-url', name: 'url', type: 'url', required: true, placeholder: 'https://example.com/hooks/vidsnap', 'data-field': 'url' });
  const form = h('form', { class: 'inline' }, h('label', { for: 'hook-url' }, 'URL'), url, h('button', { type: 'submit' }, 'Add webhook'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const created = await post('/v1/webhooks', { url: url.value });
      await drawHooks(section, secretBox(`The signing secret of ${created.url}: `, created.secret));
    } catch (err) {
      if (err instanceof ApiError) showErrors(form, err); else throw err;
    }
  });
  const rows = list.map((hook) => h('tr', {},
    h('th', { scope: 'row' }, hook.url), h('td', {}, when(hook.created_at)),
    h('td', {}, h('a', { href: `/account/webhooks/${hook.id}` }, 'Deliveries')),
    h('td', {}, h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!confirm(`Delete the webhook ${hook.url}?`)) return;
      try { await del(`/v1/webhooks/${hook.id}`); await drawHooks(section); } catch (err) { section.append(problem(err)); }
    } }, 'Delete'))));
  replace(section, h('h2', { id: 'hooks-title' }, 'Webhooks'),
    h('p', { class: 'hint' }, 'Signed POSTs when a job or video finishes (Vidsnap-Signature: an HMAC-SHA256 with the secret).'),
    fresh, form,
    rows.length ? h('table', {}, h('thead', {}, h('tr', {}, ['URL', 'Created', '', ''].map((c) => h('th', { scope: 'col' }, c)))), h('tbody', {}, rows)) : h('p', {}, 'No webhooks yet.'));
}

export async function deliveriesPage(main, id) {
  document.title = 'Deliveries · Vidsnap';
  const deliveries = await get(`/v1/webhooks/${id}/deliveries`);
  const items = Array.isArray(deliveries) ? deliveries : deliveries.items || [];
  const errors = h('div');
  replace(main, h('p', {}, h('a', { href: '/account' }, '← Account')), h('h1', {}, 'Deliveries'), errors,
    items.length ? h('table', {},
      h('thead', {}, h('tr', {}, ['Event', 'Status', 'Attempts', 'Last answer', 'Created', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, items.map((d) => h('tr', {},
        h('th', { scope: 'row' }, d.event), h('td', {}, badge(d.status)), h('td', {}, d.attempts),
        h('td', {}, [d.last_status_code, d.last_error].filter(Boolean).join(': ') || '—'), h('td', {}, when(d.created_at)),
        h('td', {}, h('button', { type: 'button', onclick: async () => {
          try { await post(`/v1/webhooks/${id}/deliveries/${d.id}/redeliver`); toast('Queued for delivery'); await deliveriesPage(main, id); } catch (err) { errors.append(problem(err)); }
        } }, 'Redeliver')))))) : h('p', {}, 'Nothing delivered yet.'));
}
