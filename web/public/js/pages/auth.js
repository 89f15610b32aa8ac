// Sign in and sign up: both end with a session cookie (POST /v1/auth/session).

import { ApiError, post } from '../api.js';
import { h, replace, showErrors } from '../dom.js';
import { go, setUser } from '../app.js';

function form(title, action, extra, submit) {
  const email = h('input', { id: 'email', name: 'email', type: 'email', autocomplete: 'email', required: true, 'data-field': 'email' });
  const password = h('input', {
    id: 'password', name: 'password', type: 'password', required: true, minlength: 10,
    autocomplete: action === 'signup' ? 'new-password' : 'current-password', 'data-field': 'password',
  });
  const el = h('form', { class: 'card narrow', novalidate: true },
    h('h1', {}, title),
    h('label', { for: 'email' }, 'E-mail'), email,
    h('label', { for: 'password' }, 'Password'),
    action === 'signup' ? h('p', { class: 'hint', id: 'password-hint' }, '10 characters or more.') : null,
    password,
    h('button', { type: 'submit' }, title),
    extra);
  if (action === 'signup') password.setAttribute('aria-describedby', 'password-hint');
  el.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = el.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      await submit({ email: email.value, password: password.value });
      const user = await post('/v1/auth/session', { email: email.value, password: password.value });
      setUser(user);
      const next = new URLSearchParams(location.search).get('next');
      go(next && next.startsWith('/') && !next.startsWith('//') ? next : '/jobs', true);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      showErrors(el, e);
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

export function signIn(main) {
  document.title = 'Sign in · Vidsnap';
  replace(main, form('Sign in', 'signin',
    h('p', {}, 'No account yet? ', h('a', { href: '/signup' }, 'Sign up')),
    async () => {}));
}

export function signUp(main) {
  document.title = 'Sign up · Vidsnap';
  replace(main, form('Sign up', 'signup',
    h('p', {}, 'Have an account? ', h('a', { href: '/signin' }, 'Sign in')),
    (credentials) => post('/v1/auth/register', credentials)));
}
