// Roomscribe console. No framework, no build step, no inline code (CSP: script-src 'self').
// Every value from the server is inserted with textContent, never as HTML.

import { $, state, api, el, when, can } from './core.js';
import { renderPage } from './pages.js';
import { renderSearch } from './search.js';
import { segmentActions } from './edit.js';
import { setupExport, exportFor } from './export.js';
import { setupRetention, retentionFor } from './retention.js';
import { backupBanner } from './backups.js';
import { setupMeetingPage, renderDetails, renderShare, renderReview, resetTools, speakerClass, linkButton } from './meeting.js';
import { renderUnderstanding } from './understanding.js';

function show(view) {
  for (const v of ['login-view', 'password-view', 'app-view', 'page-view']) $(v).hidden = v !== view;
  const signedIn = view !== 'login-view';
  $('whoami').hidden = !signedIn;
  $('logout').hidden = !signedIn;
  $('nav').hidden = !(view === 'app-view' || view === 'page-view');
  $('search-form').hidden = $('nav').hidden || !can('meetings.read');
}

const clock = (s) => {
  const m = Math.floor(s / 60);
  return `${String(m).padStart(2, '0')}:${(s - m * 60).toFixed(1).padStart(4, '0')}`;
};

// The sign-in page: single sign-on when configured, and the reason a single sign-on
// came back refused (the appliance redirects here with ?sso_error=…).
async function showLogin() {
  show('login-view');
  const params = new URLSearchParams(location.search);
  if (params.has('sso_error')) {
    $('login-error').textContent = params.get('sso_error');
    history.replaceState(null, '', location.pathname + location.hash);
  }
  try {
    const m = await api('GET', '/auth/methods');
    $('sso').hidden = !m.oidc;
    $('sso-button').textContent = m.oidc || '';
  } catch (e) {
    $('sso').hidden = true;
  }
}

async function start() {
  try {
    state.me = await api('GET', '/me');
    state.csrf = state.me.csrf_token;
  } catch (e) {
    await showLogin();
    return;
  }
  $('whoami').textContent = `${state.me.username} (${state.me.roles.join(', ') || 'no role'})`;
  if (state.me.must_change_password) {
    show('password-view');
    return;
  }
  for (const e of document.querySelectorAll('[data-needs]')) e.hidden = !can(e.dataset.needs);
  if (state.me.must_enroll_totp) {
    // A role requires a second factor: nothing else until it is set up.
    location.hash = '#/profile';
    route();
    return;
  }
  backupBanner();
  await Promise.all([
    can('rooms.read') ? loadRooms() : null,
    can('agents.read') ? loadAgents() : null,
    can('meetings.read') ? loadMeetings() : null,
  ]);
  route();
  listen();
}

// Rooms are redrawn in place (the agent stream updates them every heartbeat), so an
// open schedule and a half-typed entry survive.
async function loadRooms() {
  const rooms = await api('GET', '/rooms');
  const list = $('rooms');
  if (!rooms.length) {
    list.replaceChildren(el('li', { class: 'muted', text: 'No rooms yet: create an enrollment token.' }));
    return;
  }
  const keep = new Set(rooms.map((r) => r.id));
  for (const li of [...list.children]) if (!keep.has(li.dataset.roomId)) li.remove();
  for (const r of rooms) {
    let li = list.querySelector(`[data-room-id="${r.id}"]`);
    if (!li) {
      const box = el('div', { class: 'schedule', 'data-room': r.id, hidden: '' });
      const toggle = el('button', {
        class: 'link', text: 'Schedule', 'data-schedule-toggle': r.id,
        onclick: async () => {
          box.hidden = !box.hidden;
          if (!box.hidden) await loadSchedule(r.id, box);
        },
      });
      li = el('li', { 'data-room-id': r.id }, el('span', { class: 'dot' }), r.name,
        el('span', { class: 'muted count' }), toggle, box);
      list.append(li);
    }
    const dot = li.querySelector('.dot');
    dot.className = 'dot' + (r.online ? ' on' : '');
    dot.title = r.online ? 'online' : 'offline';
    li.querySelector('.count').textContent = `  ${r.agent_count} agent(s)  `;
  }
}

// A room's calendar: its agent records these meetings on its own, even offline.
async function loadSchedule(roomId, box) {
  const s = await api('GET', `/rooms/${encodeURIComponent(roomId)}/schedule`);
  const admin = can('rooms.manage');
  const items = s.entries.map((e) => el('li', { 'data-entry': e.id },
    el('b', { text: e.title }), ` ${when(e.starts_at_ms)} – ${new Date(e.ends_at_ms).toLocaleTimeString()}`,
    admin ? el('button', {
      class: 'small', text: 'Delete', onclick: async () => {
        await api('DELETE', `/rooms/${encodeURIComponent(roomId)}/schedule/${encodeURIComponent(e.id)}`);
        await loadSchedule(roomId, box);
      },
    }) : ''));
  const children = [el('ul', { class: 'plain entries' },
    ...(items.length ? items : [el('li', { class: 'muted', text: 'No scheduled meetings.' })]))];
  if (admin) {
    const error = el('p', { class: 'error', role: 'alert' });
    const form = el('form', { class: 'schedule-form' },
      el('input', { name: 'title', placeholder: 'Meeting title', required: '', 'aria-label': 'Meeting title' }),
      el('input', { name: 'starts', type: 'datetime-local', required: '', 'aria-label': 'Starts' }),
      el('input', { name: 'minutes', type: 'number', min: '1', max: '720', value: '60', required: '', 'aria-label': 'Minutes' }),
      el('button', { type: 'submit', text: 'Schedule' }), error);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const starts = new Date(f.get('starts')).getTime();
      try {
        await api('POST', `/rooms/${encodeURIComponent(roomId)}/schedule`, {
          title: f.get('title'), starts_at_ms: starts, ends_at_ms: starts + Number(f.get('minutes')) * 60000,
        });
        await loadSchedule(roomId, box);
      } catch (e) {
        error.textContent = e.message;
      }
    });
    children.push(form);
  }
  box.replaceChildren(...children);
}

// Meeting control from the console: a signed command the agent answers.
async function control(a, action) {
  // Kept in state: the agents table is redrawn on every heartbeat.
  try {
    const r = await api('POST', `/agents/${encodeURIComponent(a.id)}/commands`, { action });
    state.answers[a.id] = (r.ok ? '✓ ' : '✗ ') + r.message;
  } catch (e) {
    state.answers[a.id] = '✗ ' + e.message;
  }
  const row = document.querySelector(`[data-agent="${a.id}"] .answer`);
  if (row) row.textContent = state.answers[a.id];
}

async function loadAgents() {
  const agents = await api('GET', '/agents');
  state.agents = new Map(agents.map((a) => [a.id, a]));
  renderAgents();
}

// Heartbeats arrive as events with the whole agent: redrawn from them, not refetched
// (a console must stay far below the API rate limit however many rooms report).
function renderAgents() {
  const agents = [...state.agents.values()].sort((a, b) => a.enrolled_at_ms - b.enrolled_at_ms);
  $('agents').replaceChildren(
    ...agents.map((a) => {
      const stateCell = a.revoked
        ? el('span', { class: 'badge revoked', text: 'revoked' })
        : el('span', {}, el('span', { class: 'dot' + (a.online ? ' on' : '') }), a.online ? 'online' : `seen ${when(a.last_seen_ms)}`);
      const action = can('agents.revoke') && !a.revoked
        ? el('button', { class: 'small', text: 'Revoke', onclick: () => revoke(a) })
        : '';
      const controls = can('meetings.control') && !a.revoked && a.online
        ? el('div', { class: 'controls' },
          ...[['start', 'Start'], ['pause', 'Pause'], ['resume', 'Resume'], ['stop', 'Stop'], ['mark_highlight', 'Highlight']]
            .map(([act, label]) => el('button', { class: 'tiny', text: label, 'data-action': act, onclick: () => control(a, act) })),
          el('span', { class: 'answer muted', text: state.answers[a.id] || '' }))
        : '';
      const st = a.status;
      const detail = st
        ? [`${st.version} · model ${st.model || '–'}${st.engine ? ' · ' + st.engine : ''}`, `device ${st.device || '–'}${st.device_connected ? '' : ' (not connected)'}`,
          st.input_level_dbfs == null ? 'level –' : `level ${st.input_level_dbfs.toFixed(0)} dBFS`,
          `disk budget left ${(st.budget_left_bytes / 1048576).toFixed(1)} MiB`,
          `clock offset ${a.clock_offset_ms} ms`].join('\n')
        : 'no heartbeat since the appliance started';
      const alarms = (st && st.alarms.length)
        ? st.alarms.filter((x) => x !== 'envelope_quarantined').map((x) => el('span', { class: 'badge alarm', text: x.replaceAll('_', ' ') }))
        : [];
      // Recording state, when the agent is in a meeting: "awaiting consent" says why
      // nothing is transcribed.
      if (a.online && st && st.meeting_state && st.meeting_state !== 'idle') {
        alarms.unshift(el('span', { class: `badge ${st.meeting_state === 'awaiting_consent' ? 'alarm' : 'live'}`, 'data-meeting-state': st.meeting_state, text: st.meeting_state.replaceAll('_', ' ') }));
      }
      if (a.quarantined && a.quarantined.length) {
        alarms.push(el('span', {
          class: 'badge alarm',
          'data-quarantined': a.quarantined.join(' '),
          text: `${a.quarantined.length} quarantined`,
          title: `Envelope(s) ${a.quarantined.join(', ')} refused for good and held on ${a.hostname}: run "roomscribe-agent queue list" there, then requeue or discard`,
        }));
        // Why each was refused, readable without hovering.
        alarms.push(el('ul', { class: 'quarantine muted' },
          ...(a.quarantine || []).map((q) => el('li', { 'data-seq': String(q.seq), text: `envelope ${q.seq}: ${q.reason || 'refused'}` }))));
      }
      const queue = st
        ? `${st.queue_depth}${st.oldest_queued_age_s == null ? '' : ` (oldest ${st.oldest_queued_age_s}s)`}`
        : '–';
      return el('tr', { 'data-agent': a.id, title: detail },
        el('td', { text: a.hostname, title: a.id }), el('td', { text: a.room_name }), el('td', {}, stateCell, ...alarms),
        el('td', { class: 'queue', text: queue }), el('td', {}, action, controls));
    }),
  );
}

async function revoke(a) {
  if (!confirm(`Revoke agent ${a.hostname} (${a.id})? Its envelopes will be refused.`)) return;
  await api('POST', `/agents/${encodeURIComponent(a.id)}/revoke`);
  await loadAgents();
}

// A meeting was erased (here or elsewhere): it leaves the list, and its page closes.
function dropMeeting(id) {
  state.meetings.delete(id);
  renderMeetings();
  if (id === state.meetingId) {
    state.meetingId = null;
    $('transcript-view').hidden = true;
    $('transcript-empty').hidden = false;
    $('transcript-empty').textContent = 'This meeting was erased.';
    if (location.hash.startsWith('#/meetings/')) history.replaceState(null, '', '#/');
  }
}

async function loadMeetings() {
  const meetings = await api('GET', '/meetings');
  state.meetings = new Map(meetings.map((m) => [m.id, m]));
  renderMeetings();
}

function renderMeetings() {
  const list = [...state.meetings.values()].sort((a, b) => b.started_at_corrected_ms - a.started_at_corrected_ms);
  $('meetings').replaceChildren(
    ...(list.length
      ? list.map((m) =>
          el('li', {},
            el('a', { href: `#/meetings/${m.id}`, class: m.id === state.meetingId ? 'active' : '', text: m.title || 'Untitled meeting' }),
            ' ', el('span', { class: 'badge' + (m.status === 'live' ? ' live' : ''), text: m.status }),
            el('div', { class: 'muted', text: `${m.room_name} · ${when(m.started_at_corrected_ms)} · ${m.segment_count} segment(s)` })))
      : [el('li', { class: 'muted', text: 'No meetings yet.' })]),
  );
}

const speakerName = (label) => (state.speakerNames && state.speakerNames[label]) || label;

// Speaker labels of the open meeting ("channel N") with a field to name each.
function renderSpeakers(meetingId) {
  const labels = [...new Set([...$('segments').querySelectorAll('[data-speaker]')].map((n) => n.dataset.speaker))]
    .filter((l) => l !== 'unknown').sort();
  const box = $('speakers');
  box.hidden = labels.length === 0;
  box.replaceChildren(...labels.map((label) => {
    const input = el('input', { value: (state.speakerNames || {})[label] || '', placeholder: `Name for ${label}`, 'aria-label': `Name for ${label}` });
    const save = el('button', {
      class: 'small', text: 'Save', onclick: async () => {
        const m = await api('POST', `/meetings/${encodeURIComponent(meetingId)}/speakers`, { speaker: label, name: input.value });
        applySpeakerNames(m);
      },
    });
    return el('span', { class: 'speaker-name' }, el('b', { text: `${label}: ` }), input, save);
  }));
}

function applySpeakerNames(m) {
  state.speakerNames = m.speaker_names || {};
  renderShare();
  for (const n of $('segments').querySelectorAll('[data-speaker] .speaker')) {
    const label = n.closest('[data-speaker]').dataset.speaker;
    n.textContent = label === 'unknown' ? 'Unknown speaker' : speakerName(label);
  }
}

function segmentNode(s, fresh) {
  const text = el('div', { class: 'text' });
  if (s.words && s.words.length) {
    s.words.forEach((w, i) => {
      if (i) text.append(' ');
      text.append(el('span', {
        class: 'word' + (w.conf < 0.6 ? ' low' : ''),
        title: `${clock(w.start)}–${clock(w.end)} · confidence ${w.conf.toFixed(2)}`,
        text: w.word,
      }));
    });
  } else {
    text.textContent = s.text;
  }
  const actions = segmentActions(state.meetingId, s, (seg) => {
    const node = segmentNode(seg, false);
    setTimeout(() => { renderShare(); renderReview(); });
    return node;
  });
  actions.prepend(linkButton(state.meetingId, s.seq));
  return el('li', {
    class: `segment ${speakerClass(s.speaker)}` + (fresh ? ' new' : '') + (s.edited ? ' edited' : ''),
    'data-seq': String(s.seq), 'data-speaker': s.speaker, 'data-version': String(s.version || 0),
    'data-start': String(s.start), 'data-end': String(s.end),
  },
    el('div', { class: 'when', title: 'wall-clock time (corrected for the agent clock) · time into the meeting' },
      el('span', { class: 'speaker', text: s.speaker === 'unknown' ? 'Unknown speaker' : speakerName(s.speaker) }), ' · ',
      (state.meetingStart ? new Date(state.meetingStart + s.start * 1000).toLocaleTimeString() + ' · ' : '') +
      `${clock(s.start)} – ${clock(s.end)}`,
      el('span', { class: 'conf', text: `confidence ${s.confidence.toFixed(2)}` }),
      s.engine ? el('span', { class: 'engine', title: 'the engine and model that produced this text', text: ` · ${s.engine}${s.model ? ' ' + s.model : ''}` }) : '',
      actions),
    text);
}

const EVENT_LABELS = {
  start: 'Recording started', stop: 'Recording stopped', pause: 'Paused', resume: 'Resumed',
  action_item: 'Action item', highlight: 'Highlight',
  consent_pending: 'Waiting for everyone\'s consent (nothing transcribed)', consent_given: 'Consent given: transcribing',
  notice: 'Recording notice announced',
};
const SOURCE_LABELS = {
  voice: 'voice command', local: 'room control', appliance: 'console', schedule: 'room schedule',
  autostart: 'automatic start', shutdown: 'agent shut down', disk_full: 'disk full on the room computer',
  fault: 'an error on the room computer', recovered: 'room computer stopped unexpectedly',
  policy: 'the team\'s consent rule',
};

// Voice commands, pauses and marks of the open meeting, in time order.
function addEvent(meetingId, ev) {
  if (meetingId !== state.meetingId) return;
  const list = $('meeting-events');
  if (list.querySelector(`[data-event="${ev.seq}"]`)) return;
  const node = el('li', { class: `event ${ev.kind}`, 'data-event': String(ev.seq), 'data-kind': ev.kind, 'data-at': String(ev.at) },
    el('span', { class: 'at', text: clock(ev.at) }), ' ',
    el('b', { text: EVENT_LABELS[ev.kind] || ev.kind }),
    el('span', { class: 'muted', text: ` · ${SOURCE_LABELS[ev.source] || ev.source}` }));
  const after = [...list.children].find((c) => Number(c.dataset.at) > ev.at);
  list.insertBefore(node, after || null);
  list.hidden = false;
}

function renderMeetingHeader(m) {
  $('meeting-title').textContent = m.title || 'Untitled meeting';
  state.meetingStart = m.started_at_corrected_ms;
  const skew = m.clock_skew_ms ? ` (agent clock ${m.clock_skew_ms > 0 ? '+' : ''}${(m.clock_skew_ms / 1000).toFixed(1)} s, corrected)` : '';
  $('meeting-meta').textContent = `${m.room_name} · started ${when(m.started_at_corrected_ms)}${skew} · ${m.status}` +
    ` · ${m.segment_count} segment(s) · ${clock(m.duration_s)}` + (m.held ? ' · under legal hold' : '');
  renderDetails(m);
  retentionFor(m);
}

async function openMeeting(id) {
  state.meetingId = id;
  state.speakerOrder = [];
  renderMeetings();
  try {
    const t = await api('GET', `/meetings/${encodeURIComponent(id)}/transcript`);
    renderMeetingHeader(t.meeting);
    exportFor(id);
    state.speakerNames = t.meeting.speaker_names || {};
    $('segments').replaceChildren(...t.segments.map((s) => segmentNode(s, false)));
    $('meeting-events').replaceChildren();
    $('meeting-events').hidden = true;
    for (const ev of t.events || []) addEvent(id, ev);
    renderSpeakers(id);
    resetTools();
    renderShare();
    renderReview();
    state.lastSeq = t.segments.length ? t.segments[t.segments.length - 1].seq : null;
    showCaption(id, t.caption);
    $('understanding').hidden = true;
    renderUnderstanding(id, focusSegment);
    $('transcript-empty').hidden = true;
    $('transcript-view').hidden = false;
  } catch (e) {
    $('transcript-view').hidden = true;
    $('transcript-empty').hidden = false;
    $('transcript-empty').textContent = e.message;
  }
}

// The live caption: words of the utterance in progress, until its final segment arrives.
function showCaption(meetingId, c) {
  if (meetingId !== state.meetingId) return;
  const node = $('caption');
  const done = !c || (state.lastSeq != null && c.segment_seq <= state.lastSeq);
  node.hidden = done;
  node.textContent = done ? '' : c.text;
  node.dataset.seq = done ? '' : String(c.segment_seq);
}

function addSegment(meetingId, s) {
  if (meetingId !== state.meetingId) return;
  state.lastSeq = Math.max(state.lastSeq ?? -1, s.seq);
  if ($('caption').dataset.seq && Number($('caption').dataset.seq) <= s.seq) showCaption(meetingId, null);
  const list = $('segments');
  const old = list.querySelector(`[data-seq="${s.seq}"]`);
  if (old) {
    // A correction (by anyone): shown, unless this page is editing that segment.
    // Being edited here: kept for when the editor closes without saving.
    if (old.querySelector('form.edit') && (s.version || 0) > Number(old.dataset.version)) old.latest = s;
    if ((s.version || 0) > Number(old.dataset.version) && !old.querySelector('form.edit')) {
      old.replaceWith(segmentNode(s, true));
      renderShare();
      renderReview();
    }
    return;
  }
  const node = segmentNode(s, true);
  const after = [...list.children].find((c) => Number(c.dataset.seq) > s.seq);
  list.insertBefore(node, after || null);
  renderShare();
  renderReview();
  if (s.speaker !== 'unknown' && !$('speakers').querySelector(`input[aria-label="Name for ${s.speaker}"]`)) renderSpeakers(meetingId);
}

function listen() {
  if (state.events) state.events.close();
  const es = new EventSource('/api/v1/events');
  es.addEventListener('segment', (e) => {
    const d = JSON.parse(e.data);
    addSegment(d.meeting_id, d.segment);
  });
  es.addEventListener('meeting_event', (e) => {
    const d = JSON.parse(e.data);
    addEvent(d.meeting_id, d.event);
  });
  es.addEventListener('caption', (e) => {
    const d = JSON.parse(e.data);
    showCaption(d.meeting_id, d.caption);
  });
  es.addEventListener('meeting', (e) => {
    const m = JSON.parse(e.data).meeting;
    state.meetings.set(m.id, m);
    renderMeetings();
    if (m.id === state.meetingId) {
      renderMeetingHeader(m);
      applySpeakerNames(m);
      if (m.status === 'ended') showCaption(m.id, null);
    }
  });
  es.addEventListener('meeting_erased', (e) => dropMeeting(JSON.parse(e.data).meeting_id));
  es.addEventListener('agent', (e) => {
    const a = JSON.parse(e.data).agent;
    if (can('agents.read')) {
      state.agents.set(a.id, a);
      renderAgents();
    }
    // Room dots (online, agent count) follow, at most every few seconds.
    if (can('rooms.read') && !state.roomsTimer) {
      state.roomsTimer = setTimeout(() => { state.roomsTimer = null; loadRooms(); }, 2000);
    }
  });
  state.events = es;
}

// #/ and #/meetings/<id>: the meetings view; #/users, #/teams, #/roles, #/audit,
// #/profile: the other pages.
function route() {
  if (!state.me) return;
  const page = location.hash.match(/^#\/(actions|analytics|users|teams|roles|retention|subjects|backups|audit|profile)$/);
  for (const a of $('nav').querySelectorAll('a')) {
    const searching = /^#\/search(\?|$)/.test(location.hash);
    a.classList.toggle('active', page ? a.getAttribute('href') === `#/${page[1]}` : !searching && a.getAttribute('href') === '#/');
  }
  if (page) {
    show('page-view');
    renderPage(page[1], { onAccountChanged: start });
    return;
  }
  if (state.me.must_enroll_totp) return;
  if (/^#\/search(\?|$)/.test(location.hash)) {
    show('page-view');
    $('page-title').textContent = 'Search';
    $('page-denied').hidden = true;
    renderSearch($('page-body'));
    return;
  }
  show('app-view');
  // #/meetings/<id>/s/<n>: that moment of the meeting (a search hit's link).
  const m = location.hash.match(/^#\/meetings\/([0-9a-f-]+)(?:\/s\/(\d+))?$/);
  if (m) openMeeting(m[1]).then(() => m[2] && focusSegment(m[2]));
}

// Scrolls to a segment and marks it until another is chosen.
function focusSegment(seq) {
  for (const old of $('segments').querySelectorAll('.focused')) old.classList.remove('focused');
  const node = $('segments').querySelector(`[data-seq="${seq}"]`);
  if (!node) return;
  node.classList.add('focused');
  node.setAttribute('tabindex', '-1');
  node.scrollIntoView({ block: 'center' });
  node.focus({ preventScroll: true });
}

setupExport();
setupRetention(dropMeeting);
setupMeetingPage();
$('search-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const q = $('search-q').value.trim();
  if (q) location.hash = '#/search?q=' + encodeURIComponent(q);
});

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  $('login-error').textContent = '';
  const body = { username: f.get('username'), password: f.get('password') };
  if (!$('totp-field').hidden) body.totp = f.get('totp');
  try {
    await api('POST', '/session', body);
    ev.target.reset();
    $('totp-field').hidden = true;
    await start();
  } catch (e) {
    if (e.code === 'totp_required') {
      // The password was right; the account also needs its second factor.
      $('totp-field').hidden = false;
      ev.target.elements.totp.focus();
    }
    $('login-error').textContent = e.message;
  }
});

$('password-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  $('password-error').textContent = '';
  try {
    await api('POST', '/me/password', { current_password: f.get('current_password'), new_password: f.get('new_password') });
    ev.target.reset();
    await start();
  } catch (e) {
    $('password-error').textContent = e.message;
  }
});

$('enroll-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try {
    const t = await api('POST', '/enroll-tokens', { room: f.get('room') });
    $('enroll-token').textContent =
      `Single-use token for "${t.room_name}" (expires ${when(t.expires_at_ms)}; shown once):\n${t.token}\n\n` +
      `On the room's computer:\nroomscribe-agent enroll --appliance ${location.hostname}:${t.ingest_port} --token ${t.token}`;
    $('enroll-token').hidden = false;
    ev.target.reset();
    await loadRooms();
  } catch (e) {
    $('enroll-token').textContent = e.message;
    $('enroll-token').hidden = false;
  }
});

$('logout').addEventListener('click', async () => {
  await api('DELETE', '/session').catch(() => {});
  if (state.events) state.events.close();
  state.me = null;
  showLogin();
});

window.addEventListener('hashchange', route);
start();
