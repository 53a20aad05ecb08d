// The console's administration and account pages: users, teams (and rooms' teams),
// roles, retention, the audit log, and one's own profile (password, second factor,
// API tokens).
// Each page asks the API; a refusal is shown as such (the server decides who may).
import { $, state, api, el, when, can } from './core.js';
import { subjectsPage } from './subjects.js';
import { backupsPage, onRerender } from './backups.js';
import { actionsPage } from './understanding.js';
import { analyticsPage } from './analytics.js';

const PAGES = {
  actions: ['Action items', actionsPage],
  analytics: ['Analytics', analyticsPage],
  users: ['Users', usersPage],
  teams: ['Teams and rooms', teamsPage],
  roles: ['Roles', rolesPage],
  retention: ['Retention', retentionPage],
  subjects: ['Subject requests', subjectsPage],
  backups: ['Backups', backupsPage],
  audit: ['Audit log', auditPage],
  profile: ['Your profile', profilePage],
};

let hooks = {};

export async function renderPage(name, h) {
  hooks = h;
  const [title, render] = PAGES[name];
  $('page-title').textContent = title;
  $('page-denied').hidden = true;
  const body = $('page-body');
  body.replaceChildren();
  try {
    await render(body);
  } catch (e) {
    body.replaceChildren();
    $('page-denied').textContent = e.status === 403 || e.status === 404
      ? `You cannot use this page: ${e.message}.`
      : e.message;
    $('page-denied').hidden = false;
  }
}

const rerender = (name) => renderPage(name, hooks);
onRerender(() => rerender('backups'));

// A form whose submit calls `action(FormData)`, showing errors beside it.
function form(cls, fields, label, action) {
  const error = el('p', { class: 'error', role: 'alert' });
  const f = el('form', { class: cls }, ...fields, el('button', { type: 'submit', text: label }), error);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    try {
      await action(new FormData(f), f);
    } catch (e) {
      error.textContent = e.message;
    }
  });
  return f;
}

const input = (name, label, attrs = {}) => el('label', {}, label, el('input', { name, 'aria-label': label, ...attrs }));
const select = (name, label, options, attrs = {}) => el('label', {}, label,
  el('select', { name, 'aria-label': label, ...attrs }, ...options.map(([v, t]) => el('option', { value: v, text: t }))));
const button = (text, onclick, cls = 'tiny') => el('button', { class: cls, type: 'button', text, onclick });
const table = (head, rows) => el('table', {}, el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { text: h })))),
  el('tbody', {}, ...rows));
// Runs an action from a row button; errors go to the page's alert line.
async function act(fn, page) {
  try {
    await fn();
    await rerender(page);
  } catch (e) {
    $('page-denied').textContent = e.message;
    $('page-denied').hidden = false;
  }
}

// Roles that make someone an administrator in all but name: confirm before granting.
const powerful = (roles, name) => {
  const r = roles.find((x) => x.name === name);
  return Boolean(r && (r.name === 'admin' || r.permissions.includes('users.manage') || r.permissions.includes('roles.assign')));
};
const confirmGrant = (roles, user, role) => !powerful(roles, role)
  || confirm(`Give ${user} the role ${role}? It can manage user accounts (and with them, much of this appliance).`);

async function usersPage(body) {
  const [users, roles, teams] = await Promise.all([api('GET', '/users'), api('GET', '/roles'), api('GET', '/teams')]);
  // Least privilege first: the role preselected for a new user is the weakest.
  const order = ['viewer', 'member', 'manager', 'compliance_officer', 'admin'];
  const rank = (r) => (order.includes(r.name) ? order.indexOf(r.name) : 1.5);
  const roleOptions = [...roles].sort((a, b) => rank(a) - rank(b)).map((r) => [r.name, r.name]);
  const rows = users.map((u) => {
    const grants = u.grants.map((g) => el('span', {
      class: 'pill' + (g.active ? '' : ' expired'),
      title: `granted by ${g.granted_by} ${when(g.granted_at_ms)}`,
      text: g.expires_at_ms ? `${g.role} until ${new Date(g.expires_at_ms).toLocaleDateString()}` : g.role,
    }, ' ', button('×', () => act(() => api('DELETE', `/users/${encodeURIComponent(u.username)}/grants/${encodeURIComponent(g.role)}`), 'users'))));
    const grantForm = form('inline', [
      el('select', { name: 'role', 'aria-label': `Role for ${u.username}` }, ...roleOptions.map(([v, t]) => el('option', { value: v, text: t }))),
      el('input', { name: 'until', type: 'date', 'aria-label': 'Until (optional)' }),
    ], 'Grant', async (f) => {
      if (!confirmGrant(roles, u.username, f.get('role'))) return;
      const until = f.get('until');
      await api('POST', `/users/${encodeURIComponent(u.username)}/grants`,
        { role: f.get('role'), expires_at_ms: until ? new Date(`${until}T23:59:59`).getTime() : null });
      await rerender('users');
    });
    const name = encodeURIComponent(u.username);
    return el('tr', { 'data-user': u.username },
      el('td', {}, el('b', { text: u.username }), u.disabled ? el('span', { class: 'badge revoked', text: ' disabled' }) : '',
        u.must_change_password ? el('div', { class: 'muted', text: 'one-time password' }) : ''),
      el('td', {}, ...grants, grantForm),
      el('td', { text: u.teams.join(', ') || '–' }),
      el('td', {}, el('div', { class: 'actions' },
        button(u.disabled ? 'Enable' : 'Disable', () => act(() => api('POST', `/users/${name}/disabled`, { disabled: !u.disabled }), 'users')),
        button('Reset password', () => {
          const pw = prompt(`New one-time password for ${u.username} (at least 12 characters):`);
          if (pw) act(() => api('POST', `/users/${name}/password`, { password: pw }), 'users');
        }),
        button('Reset second factor', () => act(() => api('DELETE', `/users/${name}/totp`), 'users')),
        button('Delete', () => {
          if (confirm(`Delete ${u.username}? Their audit entries stay.`)) act(() => api('DELETE', `/users/${name}`), 'users');
        }))));
  });
  body.append(
    el('h2', { text: 'New user' }),
    form('grid', [
      input('username', 'Username', { required: true, autocomplete: 'off' }),
      input('password', 'One-time password', { type: 'password', required: true, minlength: '12', autocomplete: 'new-password' }),
      select('role', 'Role', roleOptions),
      select('team', 'Team', [['', '(none)'], ...teams.map((t) => [t.id, t.name])]),
    ], 'Create user', async (f) => {
      if (!confirmGrant(roles, f.get('username'), f.get('role'))) return;
      await api('POST', '/users', {
        username: f.get('username'), password: f.get('password'), role: f.get('role'),
        teams: f.get('team') ? [f.get('team')] : [],
      });
      await rerender('users');
    }),
    el('h2', { text: 'Users' }),
    table(['User', 'Roles', 'Teams', ''], rows));
}

async function teamsPage(body) {
  const [teams, rooms] = await Promise.all([api('GET', '/teams'), can('rooms.read') ? api('GET', '/rooms') : []]);
  const rows = teams.map((t) => el('tr', { 'data-team': t.name },
    el('td', {}, el('b', { text: t.name })),
    el('td', {}, ...t.members.map((m) => el('span', { class: 'pill' }, m, ' ',
      button('×', () => act(() => api('DELETE', `/teams/${t.id}/members/${encodeURIComponent(m)}`), 'teams')))),
    form('inline', [el('input', { name: 'username', placeholder: 'username', 'aria-label': `Add to ${t.name}` })], 'Add',
      async (f) => {
        await api('PUT', `/teams/${t.id}/members/${encodeURIComponent(f.get('username'))}`);
        await rerender('teams');
      })),
    el('td', {}, button('Delete', () => act(() => api('DELETE', `/teams/${t.id}`), 'teams')))));
  body.append(
    form('inline', [el('input', { name: 'name', placeholder: 'Team name', required: true, 'aria-label': 'Team name' })], 'Create team',
      async (f) => {
        await api('POST', '/teams', { name: f.get('name') });
        await rerender('teams');
      }),
    table(['Team', 'Members', ''], rows),
    el('h2', { text: 'Consent' }),
    el('p', { class: 'muted', text: 'Each team\'s rule for recording people. The agents of its rooms keep to it from their next meeting on, offline too.' }),
    table(['Team', 'Rule, and the notice the room announces'], teams.map(consentRow)),
    el('h2', { text: 'Keyword trackers' }),
    el('p', { class: 'muted', text: 'Phrases counted in each team\'s meetings (earlier ones too), shown with every mention in a meeting\'s insights and week by week in Analytics. One tracker a line: its name, a colon, its phrases separated by commas.' }),
    table(['Team', 'Trackers'], teams.map(trackersRow)));
  if (can('rooms.manage')) {
    const roomRows = rooms.map((r) => {
      const pick = el('select', { 'aria-label': `Team of ${r.name}` },
        el('option', { value: '', text: '(no team: only roles over everything see it)' }),
        ...teams.map((t) => el('option', { value: t.id, text: t.name, selected: t.id === r.team_id })));
      pick.addEventListener('change', () => act(() => api('POST', `/rooms/${r.id}/team`, { team_id: pick.value || null }), 'teams'));
      return el('tr', {}, el('td', { text: r.name }), el('td', {}, pick));
    });
    body.append(el('h2', { text: 'Rooms' }),
      el('p', { class: 'muted', text: 'A room\'s team owns the meetings recorded there from now on.' }),
      table(['Room', 'Team'], roomRows));
  }
}

// "Name: phrase, phrase" a line, and back.
const trackersText = (trackers) => trackers.map((t) => `${t.name}: ${t.phrases.join(', ')}`).join('\n');
function parseTrackers(text) {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((line) => {
    const at = line.indexOf(':');
    if (at < 1) throw new Error(`"${line}": write the tracker's name, a colon, then its phrases`);
    return { name: line.slice(0, at).trim(), phrases: line.slice(at + 1).split(',').map((p) => p.trim()).filter(Boolean) };
  });
}

// One team's keyword trackers, changed in place.
function trackersRow(t) {
  const f = form('trackers', [
    el('textarea', { name: 'trackers', rows: 3, 'aria-label': `Keyword trackers of ${t.name}`, placeholder: 'Complaints: complaint, adverse event\nCompetitors: Acme, Globex' }),
  ], 'Save', async (data) => {
    await api('PUT', `/teams/${t.id}/trackers`, { trackers: parseTrackers(data.get('trackers') || '') });
    await rerender('teams');
  });
  f.elements.trackers.value = trackersText(t.trackers);
  return el('tr', { 'data-trackers': t.name },
    el('td', {}, el('b', { text: t.name }), el('div', { class: 'muted', text: `${t.trackers.length} tracker(s)` })),
    el('td', {}, f));
}

const CONSENT_RULES = [
  ['record_without_consent', 'Record without consent (a notice is enough)'],
  ['require_all', 'Everyone must consent first (nothing is transcribed until then)'],
  ['require_announcement', 'The room announces the notice at the start'],
];

// One team's consent rule, changed in place.
function consentRow(t) {
  const f = form('consent-rule', [
    el('select', { name: 'rule', 'aria-label': `Consent rule of ${t.name}` }, ...CONSENT_RULES.map(([v, text]) => el('option', { value: v, text }))),
    el('select', { name: 'withdrawal', 'aria-label': `What a withdrawal erases in ${t.name}` },
      el('option', { value: 'speaker', text: 'A withdrawal erases what they said' }),
      el('option', { value: 'meeting', text: '…or the whole meeting when nothing is attributed to them' })),
    el('textarea', { name: 'notice', rows: 2, 'aria-label': `Notice of ${t.name}`, placeholder: 'This meeting is transcribed for the minutes…' }),
  ], 'Save', async (data) => {
    await api('PUT', `/teams/${t.id}/consent`, { rule: data.get('rule'), notice: data.get('notice') || '', withdrawal: data.get('withdrawal') });
    await rerender('teams');
  });
  f.elements.rule.value = t.consent.rule;
  f.elements.notice.value = t.consent.notice;
  f.elements.withdrawal.value = t.consent.withdrawal;
  return el('tr', { 'data-consent': t.name },
    el('td', {}, el('b', { text: t.name }), el('div', { class: 'muted', text: t.consent.version ? `version ${t.consent.version}` : 'never set' })),
    el('td', {}, f));
}

const day = (ms) => new Date(ms).toISOString().slice(0, 10);

// Retention policies (one per team and per meeting type: days after the meeting, or
// for ever) and what they make due by a day: what the retention job erases then, and
// what a legal hold keeps.
async function retentionPage(body) {
  const [policies, teams, { types }, jobs] = await Promise.all([
    api('GET', '/retention/policies'), api('GET', '/teams'), api('GET', '/meeting-types'), api('GET', '/jobs')]);
  const job = jobs.find((j) => j.name === 'meeting-retention');
  const teamName = (id) => (teams.find((t) => t.id === id) || {}).name || id;
  const save = (next) => act(() => api('PUT', '/retention/policies', { policies: next }), 'retention');
  const rows = policies.map((p, i) => el('tr', { 'data-policy': `${p.scope}:${p.value}` },
    el('td', { text: p.scope === 'team' ? `Team ${teamName(p.value)}` : `Type ${p.value}` }),
    el('td', { text: p.keep_days === null ? 'for ever' : `${p.keep_days} day(s) after the meeting` }),
    el('td', {}, button('Remove', () => save(policies.filter((_, j) => j !== i))))));
  const options = [
    ...teams.map((t) => [`team:${t.id}`, `Team ${t.name}`]),
    ...types.map((t) => [`type:${t}`, `Type ${t}`]),
  ];
  body.append(
    el('p', { class: 'muted', text: 'Every policy of a meeting\'s team and type applies; the fewest days win; a legal hold always wins.' }),
    job ? el('p', { class: `job ${job.last_ok === false ? 'error' : ''}`, 'data-job': job.name, role: 'status' },
      `The retention job runs every ${Math.round(job.every_secs / 60)} minutes. `,
      job.last_ok === null
        ? 'It has not run since the appliance started. '
        : `Last run ${when(job.last_finished_ms)}: ${job.last_ok ? 'succeeded' : `failed (${job.last_error})`}. `,
      `Next run ${when(job.next_run_ms)}.`) : '',
    table(['Applies to', 'Keep', ''], rows),
    form('inline', [
      select('target', 'Applies to', options),
      input('days', 'Days (empty: for ever)', { type: 'number', min: 1, max: 36500 }),
    ], 'Add policy', async (f) => {
      const [scope, ...rest] = String(f.get('target')).split(':');
      const days = f.get('days') ? Number(f.get('days')) : null;
      await api('PUT', '/retention/policies', { policies: [...policies, { scope, value: rest.join(':'), keep_days: days }] });
      await rerender('retention');
    }));
  const list = el('ul', { class: 'plain due', 'aria-label': 'Meetings due' });
  const show = async (asOf) => {
    const due = await api('GET', `/retention/preview?as_of=${encodeURIComponent(asOf)}`);
    list.replaceChildren(...(due.length
      ? due.map((d) => el('li', { 'data-meeting': d.meeting_id, class: d.held ? 'held' : '' },
        el('b', { text: d.title || 'Untitled meeting' }),
        ` · due ${day(d.due_at_ms)} · ${d.policy}`,
        d.held ? el('span', { class: 'badge', text: 'kept: legal hold' }) : ''))
      : [el('li', { class: 'muted', text: 'Nothing is due by then.' })]));
  };
  body.append(el('h2', { text: 'What is due' }),
    form('inline', [input('as_of', 'By the end of', { type: 'date', required: true, value: day(Date.now()) })], 'Show',
      (f) => show(f.get('as_of'))),
    list);
  await show(day(Date.now()));
}

async function rolesPage(body) {
  const [roles, catalogue] = await Promise.all([api('GET', '/roles'), api('GET', '/permissions')]);
  const rows = roles.map((r) => el('tr', { 'data-role': r.name },
    el('td', {}, el('b', { text: r.name }), el('div', { class: 'muted', text: r.description })),
    el('td', { text: r.scope === 'all' ? 'everything' : 'own teams' }),
    el('td', {}, ...r.permissions.map((p) => el('span', { class: 'pill', text: p }))),
    el('td', {}, r.builtin ? el('span', { class: 'muted', text: 'built in' })
      : button('Delete', () => act(() => api('DELETE', `/roles/${encodeURIComponent(r.name)}`), 'roles')))));
  body.append(table(['Role', 'Reaches', 'Permissions', ''], rows));
  if (can('roles.manage')) {
    // A permission that gates nothing yet says so (it takes effect with its feature).
    const perms = el('div', { class: 'perms' }, ...catalogue.map((p) => el('label', {
      title: p.enforced ? p.description : `${p.description}; takes effect with ${p.takes_effect_with}`,
    }, el('input', { type: 'checkbox', name: 'perm', value: p.name }), p.name,
    p.enforced ? '' : el('span', { class: 'muted', text: ' (not enforced yet)' }))));
    body.append(el('h2', { text: 'New custom role' }),
      form('grid', [
        input('name', 'Name (a-z, 0-9, _)', { required: true, pattern: '[a-z0-9_]{1,40}' }),
        input('description', 'Description'),
        select('scope', 'Reaches', [['teams', 'own teams'], ['all', 'everything']]),
        perms,
      ], 'Create role', async (f) => {
        await api('POST', '/roles', {
          name: f.get('name'), description: f.get('description') || '', scope: f.get('scope'), permissions: f.getAll('perm'),
        });
        await rerender('roles');
      }));
  }
}

async function auditPage(body) {
  const list = el('tbody');
  const verdict = el('p', { id: 'audit-verdict', class: 'muted' });
  let oldest = null;
  let filters = {};
  const row = (e) => el('tr', { 'data-seq': String(e.seq) },
    el('td', { text: String(e.seq) }), el('td', { text: when(e.at_ms) }),
    el('td', {}, el('b', { text: e.actor }), el('div', { class: 'muted', text: `${e.via}${e.ip ? ' · ' + e.ip : ''}`, title: e.user_agent || '' })),
    el('td', { text: e.action }), el('td', { text: e.target || '' }),
    el('td', { class: e.outcome === 'success' ? 'ok' : 'error', text: e.outcome }), el('td', { text: e.detail || '' }));
  async function load(more) {
    const q = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    q.set('limit', '100');
    if (more && oldest) q.set('before_seq', String(oldest));
    const entries = await api('GET', `/audit?${q}`);
    if (!more) list.replaceChildren();
    list.append(...entries.map(row));
    if (entries.length) oldest = entries[entries.length - 1].seq;
    older.hidden = entries.length < 100;
  }
  const older = button('Older entries', () => load(true));
  const toMs = (d) => (d ? new Date(d).getTime() : '');
  body.append(
    form('grid', [
      input('actor', 'Who'), input('action', 'Action (e.g. login, meeting.)'), input('target', 'Target contains'),
      select('outcome', 'Outcome', [['', 'any'], ['success', 'success'], ['failure', 'failure'], ['denied', 'denied']]),
      input('since', 'From', { type: 'datetime-local' }), input('until', 'Until', { type: 'datetime-local' }),
    ], 'Filter', async (f) => {
      filters = {
        actor: f.get('actor'), action: f.get('action'), target: f.get('target'), outcome: f.get('outcome'),
        since_ms: toMs(f.get('since')), until_ms: toMs(f.get('until')),
      };
      await load(false);
    }),
    el('p', {},
      button('Verify the whole log', async () => {
        const v = await api('GET', '/audit/verify');
        verdict.textContent = v.summary;
        verdict.className = v.ok ? 'ok' : 'error';
      }, 'tiny'), ' ',
      el('a', { class: 'button', href: '/api/v1/audit/export', download: 'roomscribe-audit.jsonl', text: 'Export (signed, verifiable offline)' })),
    verdict,
    table(['#', 'When', 'Who', 'Action', 'Target', 'Outcome', 'Detail'], []),
    older);
  body.querySelector('table').replaceChild(list, body.querySelector('table tbody'));
  await load(false);
}

async function profilePage(body) {
  const me = state.me;
  body.append(el('p', {}, el('b', { text: me.username }), ` · signed in with ${me.via} · roles: ${me.roles.join(', ') || 'none'} · teams: ${me.teams.join(', ') || 'none'}`));
  if (me.must_enroll_totp) {
    body.append(el('p', { class: 'error', role: 'alert', id: 'totp-required', text: 'Your role requires a second factor. Set it up to continue.' }));
  }
  // Second factor.
  const totp = el('div', { id: 'totp' });
  body.append(el('h2', { text: 'Second factor (authenticator app)' }), totp);
  if (me.via === 'oidc') {
    totp.append(el('p', { class: 'muted', text: 'Your identity provider asks for your second factor.' }));
  } else if (me.totp_enabled) {
    totp.append(el('p', { class: 'ok', text: 'On: signing in asks for a code from your app.' }),
      form('inline', [el('input', { name: 'code', placeholder: 'current code', inputmode: 'numeric', 'aria-label': 'Current code' })], 'Turn off',
        async (f) => {
          await api('DELETE', '/me/totp', { code: f.get('code') });
          await hooks.onAccountChanged();
        }));
  } else {
    // A new credential needs the password again (a stolen session alone cannot add one).
    const local = me.via === 'password';
    totp.append(el('p', { class: 'muted', text: 'Off.' }), form('inline', local
      ? [el('input', { name: 'password', type: 'password', placeholder: 'current password', autocomplete: 'current-password', 'aria-label': 'Current password' })]
      : [], 'Set up', async (f) => {
      const s = await api('POST', '/me/totp', local ? { password: f.get('password') } : {});
      totp.replaceChildren(
        el('p', { text: 'Add this key to your authenticator app (or paste the link), then enter the code it shows.' }),
        el('p', { class: 'secret', id: 'totp-secret', text: s.secret }),
        el('p', { class: 'secret', id: 'totp-uri', text: s.otpauth_uri }),
        form('inline', [el('input', { name: 'code', placeholder: '6-digit code', inputmode: 'numeric', autocomplete: 'one-time-code', 'aria-label': 'Code from the app' })],
          'Confirm', async (f) => {
            await api('POST', '/me/totp/confirm', { code: f.get('code') });
            // Set up: on to the meetings (if it was required, nothing else was open).
            history.replaceState(null, '', '#/');
            await hooks.onAccountChanged();
          }));
    }));
  }
  if (me.must_enroll_totp) return;
  if (me.via === 'password') {
    body.append(el('h2', { text: 'Password' }),
      form('grid', [
        input('current_password', 'Current password', { type: 'password', required: true, autocomplete: 'current-password' }),
        input('new_password', 'New password', { type: 'password', required: true, minlength: '12', autocomplete: 'new-password' }),
      ], 'Change password', async (f, node) => {
        await api('POST', '/me/password', { current_password: f.get('current_password'), new_password: f.get('new_password') });
        node.reset();
        node.querySelector('.error').textContent = 'Changed. Your other sessions were signed out.';
      }));
  }
  // API tokens.
  const tokens = await api('GET', '/tokens');
  const shown = el('p', { class: 'secret', id: 'new-token', hidden: true });
  const mine = Object.keys(me.permissions).sort();
  body.append(el('h2', { text: 'API tokens' }),
    el('p', { class: 'muted', text: 'For integrations: a token holds only the permissions you tick, and expires.' }),
    form('grid', [
      input('name', 'Name', { required: true }),
      input('days', 'Valid for (days)', { type: 'number', min: '1', max: '365', value: '90' }),
      el('div', { class: 'perms' }, ...mine.map((p) => el('label', {}, el('input', { type: 'checkbox', name: 'perm', value: p }), p))),
      me.via === 'password' ? input('password', 'Your current password', { type: 'password', required: true, autocomplete: 'current-password' }) : '',
    ], 'Create token', async (f) => {
      const t = await api('POST', '/tokens', {
        name: f.get('name'), permissions: f.getAll('perm'), expires_at_ms: Date.now() + Number(f.get('days')) * 86400000,
        password: f.get('password') || undefined,
      });
      await rerender('profile');
      $('new-token').textContent = `Copy it now, it is shown only once: ${t.token}`;
      $('new-token').hidden = false;
    }),
    shown,
    table(['Name', 'Owner', 'Permissions', 'Expires', 'Last used', ''], tokens.map((t) => el('tr', {},
      el('td', { text: t.name }), el('td', { text: t.owner }), el('td', {}, ...t.permissions.map((p) => el('span', { class: 'pill', text: p }))),
      el('td', { text: when(t.expires_at_ms) }), el('td', { text: when(t.last_used_ms) }),
      el('td', {}, t.revoked ? el('span', { class: 'muted', text: 'revoked' })
        : button('Revoke', () => act(() => api('DELETE', `/tokens/${t.id}`), 'profile')))))));
}
