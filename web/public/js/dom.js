// A tiny DOM builder: text is always text (no HTML from data), so nothing the API returns can
// inject markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return h('time', { datetime: iso, title: d.toISOString() }, d.toLocaleString());
}

export function bytes(n) {
  if (n === undefined || n === null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function seconds(s) {
  if (typeof s !== 'number') return '';
  return `${s.toFixed(s < 10 ? 2 : 1)} s`;
}

// A status as a badge: its word, never a colour alone.
export function badge(status) {
  return h('span', { class: `badge s-${status}` }, status.replace('_', ' '));
}

// An API error in words, with each field's problem.
export function problem(error) {
  const fields = Object.entries(error.fields || {});
  return h('div', { class: 'error', role: 'alert' },
    h('p', {}, h('strong', {}, error.code ? `${error.code}: ` : ''), error.message),
    fields.length ? h('ul', {}, fields.map(([k, v]) => h('li', {}, h('code', {}, k), ' ', v))) : null);
}

// Puts `error`'s field problems next to the inputs named after them (`data-field`) and the
// rest at the top of `form`.
export function showErrors(form, error) {
  form.querySelectorAll('.field-error').forEach((e) => e.remove());
  form.querySelectorAll('[aria-invalid]').forEach((e) => e.removeAttribute('aria-invalid'));
  form.querySelector('.error')?.remove();
  let shown = 0;
  for (const [field, message] of Object.entries(error.fields || {})) {
    const input = form.querySelector(`[data-field="${CSS.escape(field)}"]`);
    if (!input) continue;
    const id = `${input.id}-error`;
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', id);
    input.after(h('p', { class: 'field-error', id }, message));
    shown++;
  }
  if (!shown || shown < Object.keys(error.fields || {}).length) form.prepend(problem(error));
  (form.querySelector('[aria-invalid]') || form.querySelector('.error'))?.focus?.();
}

export function toast(message) {
  const el = document.getElementById('toast');
  el.textContent = message;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.textContent = ''; }, 4000);
}
