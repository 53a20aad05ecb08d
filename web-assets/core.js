// Shared by the console's modules: state, the API call, DOM building, formatting.
// Every value from the server is inserted with textContent, never as HTML.

export const $ = (id) => document.getElementById(id);
export const state = { me: null, meetingId: null, events: null, meetings: new Map(), agents: new Map(), answers: {} };

export async function api(method, path, body, retried = false) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  // Every state-changing request echoes the session's CSRF token.
  if (method !== 'GET' && state.csrf) opts.headers['x-csrf-token'] = state.csrf;
  if (body !== undefined) {
    opts.headers['content-type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch('/api/v1' + path, opts);
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  // Too many password checks at once: the appliance asks to come back in a moment.
  if (res.status === 503 && data.error && data.error.code === 'busy' && !retried) {
    const wait = Number(res.headers.get('retry-after')) || 1;
    await new Promise((ok) => setTimeout(ok, wait * 1000));
    return api(method, path, body, true);
  }
  if (!res.ok) {
    const err = new Error((data.error && data.error.message) || res.statusText);
    err.status = res.status;
    err.code = data.error && data.error.code;
    throw err;
  }
  return data;
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== '') e.append(c);
  return e;
}

export const when = (ms) => (ms ? new Date(ms).toLocaleString() : 'never');
// Whether the signed-in user holds a permission (in any scope); the server decides.
export const can = (p) => Boolean(state.me && state.me.permissions && state.me.permissions[p]);
