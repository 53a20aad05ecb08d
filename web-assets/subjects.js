// The subject requests page: a data subject's access request (everything held about
// one person, as the signed archive `roomscribe subject export` writes, with its
// manifest) and their erasure request (what they said, and their name, erased from
// every meeting within reach; meetings under legal hold are named, not touched).

import { api, el, can } from './core.js';

function save(bytes, type, name) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = el('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

const field = (name, label, attrs = {}) => el('label', {}, label, el('input', { name, 'aria-label': label, ...attrs }));

function requestForm(id, fields, label, action) {
  const status = el('p', { class: 'muted', role: 'status', 'data-status': id });
  const f = el('form', { class: 'subject-form', 'data-form': id }, ...fields, el('button', { type: 'submit', text: label }), status);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    status.textContent = 'Working…';
    try {
      status.textContent = await action(new FormData(f));
    } catch (e) {
      status.textContent = e.message;
    }
  });
  return f;
}

const who = (data) => ({ name: data.get('name'), ...(data.get('user') ? { username: data.get('user') } : {}) });

export async function subjectsPage(body) {
  const parts = [el('p', { class: 'muted', text: 'A person\'s requests about what the appliance holds of them: access (GDPR Art. 15 and 20) and erasure (Art. 17). Each is audited.' })];
  if (can('audit.read') && can('meetings.export')) {
    parts.push(el('h2', { text: 'Access: everything about one person' }), requestForm('export', [
      field('name', 'Name, as a participant or speaker', { required: true, maxlength: 200 }),
      field('user', 'Their console account (optional)', { maxlength: 64 }),
    ], 'Download the archive', async (data) => {
      const r = await api('POST', '/subjects/export', who(data));
      const bytes = Uint8Array.from(atob(r.archive), (c) => c.charCodeAt(0));
      save(bytes, 'application/zip', r.file_name);
      save(JSON.stringify(r.manifest), 'application/json', `${r.file_name}.manifest.json`);
      return `${r.file_name}: ${r.meetings} meeting(s), ${r.segments} segment(s), ${r.audit_entries} audit entr(ies), with its signed manifest (roomscribe export verify checks it).`;
    }));
  }
  if (can('meetings.delete')) {
    parts.push(el('h2', { text: 'Erasure: what they said' }), requestForm('erase', [
      field('name', 'Name, as a participant or speaker', { required: true, maxlength: 200 }),
      field('user', 'Their console account (optional)', { maxlength: 64 }),
      field('reason', 'Reason (the request\'s reference)', { required: true, maxlength: 500 }),
    ], 'Erase', async (data) => {
      if (!window.confirm(`Erase everything ${data.get('name')} said, in every meeting? This cannot be undone.`)) return 'Nothing erased.';
      const r = await api('POST', '/subjects/erase', { ...who(data), reason: data.get('reason') });
      const held = r.held.length ? ` ${r.held.length} meeting(s) under legal hold were left as they are.` : '';
      return `${r.segments} segment(s) erased from ${r.meetings} meeting(s).${held}`;
    }));
  }
  body.append(...parts);
}
