// The meeting page around its transcript: details (title, type, tags, participants)
// and their edit form, who spoke how much (a bar), find-in-meeting with hit
// navigation, the review of uncertain words, engine details on demand, and links to
// a moment. app.js owns the segments themselves.

import { $, state, api, el, can } from './core.js';

const LOW = 0.6;
let meeting = null;

// A speaker's colour class, stable within the page (labels in order of appearance).
export function speakerClass(label) {
  if (!label || label === 'unknown') return 'spk-unknown';
  state.speakerOrder = state.speakerOrder || [];
  let i = state.speakerOrder.indexOf(label);
  if (i < 0) i = state.speakerOrder.push(label) - 1;
  return `spk-${i % 8}`;
}

// Title, type, tags and participants as shown under the title.
export function renderDetails(m) {
  meeting = m;
  const box = $('meeting-details');
  const chips = [];
  if (m.type) chips.push(el('span', { class: 'badge type', text: m.type }));
  for (const t of m.tags || []) chips.push(el('span', { class: 'badge tag', text: `#${t}` }));
  if ((m.participants || []).length) {
    chips.push(el('span', { class: 'muted participants', text: `with ${m.participants.map((p) => p.name + (p.username ? ` (@${p.username})` : '')).join(', ')}` }));
  }
  box.replaceChildren(...chips);
  box.hidden = chips.length === 0;
  $('edit-details').hidden = !can('meetings.edit');
  renderConsent(m);
}

const STATE_TEXT = { none: 'nothing recorded', notified: 'notified', consented: 'consented', declined: 'declined', withdrawn: 'withdrawn' };

// Each participant's consent, buttons to record it (how: in the console), and the
// evidence kept, oldest first.
function renderConsent(m) {
  const c = m.consent || { participants: [], evidence: [] };
  const panel = $('consent-panel');
  panel.hidden = !c.participants.length && !c.required && !c.evidence.length;
  const yes = c.participants.filter((p) => p.state === 'consented').length;
  $('consent-summary').replaceChildren(`Consent: ${yes} of ${c.participants.length} consented`,
    ...(c.awaiting ? [' ', el('span', { class: 'badge alarm', text: 'waiting for everyone\'s consent: nothing is transcribed' })] : []),
    ...(c.notice_at_s != null ? [' ', el('span', { class: 'badge', text: 'notice announced' })] : []));
  const edit = can('meetings.edit');
  $('consent-people').replaceChildren(...c.participants.map((p) => el('li', { 'data-participant': p.name },
    el('b', { text: p.name }), ' ',
    el('span', { class: `badge consent-${p.state}`, text: STATE_TEXT[p.state] || p.state }),
    ...(edit ? [['consented', 'Consented'], ['declined', 'Declined'], ['withdrawn', 'Withdrew']].map(([state, label]) =>
      el('button', { type: 'button', class: 'tiny', text: label, 'aria-label': `${p.name}: ${label.toLowerCase()}`, onclick: () => recordConsent(m.id, p.name, state) })) : []))));
  if (!c.participants.length) {
    $('consent-people').append(el('li', { class: 'muted', text: 'Add participants (Edit details) to record their consent.' }));
  }
  $('consent-evidence').replaceChildren(...c.evidence.map((e) => el('li', {
    text: `${new Date(e.at_ms).toLocaleString()} · ${e.participant}: ${e.state} (${e.how}) by ${e.by}${e.note ? ` · ${e.note}` : ''}`,
  })));
}

async function recordConsent(id, participant, state) {
  const status = $('consent-status');
  status.textContent = 'Recording…';
  try {
    const r = await api('POST', `/meetings/${id}/consent`, { participant, state, how: 'console' });
    renderDetails(r.meeting);
    $('consent-panel').open = true;
    const erased = {
      segments: (e) => `${e.segments.length} of their segment(s) erased.`,
      meeting: () => 'The team erases the whole meeting on a withdrawal: it was erased.',
      nothing_attributed: () => 'No segment is attributed to them: nothing erased.',
      held: (e) => `A legal hold keeps everything: ${e.reason}`,
    };
    const parts = [r.agent ? `The room's agent: ${r.agent.message}.`
      : r.agent_unreachable ? 'Recorded; the room\'s agent is not connected, so it keeps waiting.' : 'Recorded.'];
    if (r.erasure) parts.push(erased[r.erasure.kind](r.erasure));
    // What was erased leaves the page at once.
    for (const seq of (r.erasure && r.erasure.segments) || []) {
      const node = $('segments').querySelector(`[data-seq="${seq}"]`);
      if (node) node.remove();
    }
    status.textContent = parts.join(' ');
  } catch (e) {
    status.textContent = e.message;
  }
}

async function openDetailsForm() {
  const m = meeting;
  if (!m) return;
  const form = $('details-form');
  let types = [];
  try {
    types = (await api('GET', '/meeting-types')).types;
  } catch (e) { /* the list is optional */ }
  $('details-title').value = m.title || '';
  $('details-type').replaceChildren(el('option', { value: '', text: '— no type —' }),
    ...[...new Set([...types, ...(m.type ? [m.type] : [])])].map((t) => el('option', { value: t, text: t, selected: t === m.type })));
  $('details-tags').value = (m.tags || []).join(', ');
  $('details-participants').value = (m.participants || []).map((p) => p.username ? `${p.name} <${p.username}>` : p.name).join('\n');
  $('details-error').textContent = '';
  form.hidden = false;
  $('details-title').focus();
}

function parseParticipants(text) {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const m = /^(.*?)\s*<([^>]+)>$/.exec(l);
    return m ? { name: m[1], username: m[2] } : { name: l };
  });
}

async function saveDetails(e) {
  e.preventDefault();
  // Only what changed is sent.
  const m = meeting;
  const next = {
    title: $('details-title').value.trim(),
    type: $('details-type').value,
    tags: $('details-tags').value.split(',').map((t) => t.trim()).filter(Boolean),
    participants: parseParticipants($('details-participants').value),
  };
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  const body = {};
  if (next.title !== (m.title || '')) body.title = next.title;
  if (next.type !== (m.type || '')) body.type = next.type;
  if (!same(next.tags, m.tags || [])) body.tags = next.tags;
  const was = (m.participants || []).map((p) => (p.username ? { name: p.name, username: p.username } : { name: p.name }));
  if (!same(next.participants, was)) body.participants = next.participants;
  if (!Object.keys(body).length) {
    $('details-form').hidden = true;
    return;
  }
  try {
    const saved = await api('PATCH', `/meetings/${encodeURIComponent(meeting.id)}`, body);
    $('details-form').hidden = true;
    $('meeting-title').textContent = saved.title || 'Untitled meeting';
    renderDetails(saved);
    $('edit-details').focus();
  } catch (err) {
    $('details-error').textContent = err.message;
  }
}

// Who spoke how long: one bar, a legend with each speaker's share.
export function renderShare() {
  const totals = new Map();
  for (const n of $('segments').children) {
    const d = Number(n.dataset.end) - Number(n.dataset.start);
    if (d > 0) totals.set(n.dataset.speaker, (totals.get(n.dataset.speaker) || 0) + d);
  }
  const sum = [...totals.values()].reduce((a, b) => a + b, 0);
  const box = $('speaker-share');
  box.hidden = sum === 0;
  if (!sum) return;
  const rows = [...totals.entries()].sort((a, b) => b[1] - a[1]);
  const name = (l) => (l === 'unknown' ? 'Unknown speaker' : ((state.speakerNames || {})[l] || l));
  const bar = el('div', { class: 'share-bar', role: 'img', 'aria-label': rows.map(([l, t]) => `${name(l)} ${Math.round((t * 100) / sum)}%`).join(', ') });
  for (const [l, t] of rows) {
    const part = el('span', { class: `share-part ${speakerClass(l)}`, title: `${name(l)}: ${Math.round((t * 100) / sum)}%` });
    // The width is the share (set through the CSSOM: no inline style attribute).
    part.style.width = `${(t * 100) / sum}%`;
    bar.append(part);
  }
  box.replaceChildren(bar, el('ul', { class: 'share-legend' }, ...rows.map(([l, t]) => el('li', {},
    el('span', { class: `swatch ${speakerClass(l)}` }), `${name(l)} ${Math.round((t * 100) / sum)}%`))));
}

// "Review N uncertain words": only the segments with words under the confidence bar.
export function renderReview() {
  const n = $('segments').querySelectorAll('.word.low').length;
  const button = $('review-uncertain');
  button.hidden = n === 0 && !$('segments').classList.contains('reviewing');
  const on = $('segments').classList.contains('reviewing');
  button.textContent = on ? 'Show every segment' : `Review ${n} uncertain word${n === 1 ? '' : 's'}`;
  button.setAttribute('aria-pressed', String(on));
}

let hits = [];
let at = -1;

function find() {
  const q = $('find-in-meeting').value.trim().toLowerCase();
  for (const n of $('segments').querySelectorAll('.find-hit, .find-current')) n.classList.remove('find-hit', 'find-current');
  hits = q ? [...$('segments').children].filter((n) => n.querySelector('.text')?.textContent.toLowerCase().includes(q)) : [];
  for (const n of hits) n.classList.add('find-hit');
  at = -1;
  $('find-count').textContent = q ? `${hits.length} segment${hits.length === 1 ? '' : 's'}` : '';
  if (hits.length) step(1);
}

function step(d) {
  if (!hits.length) return;
  if (at >= 0) hits[at].classList.remove('find-current');
  at = (at + d + hits.length) % hits.length;
  hits[at].classList.add('find-current');
  hits[at].scrollIntoView({ block: 'center' });
  $('find-count').textContent = `${at + 1} of ${hits.length}`;
}

// A link to this moment of the meeting, copied (shown when the clipboard is refused).
export function linkButton(meetingId, seq) {
  return el('button', {
    type: 'button', class: 'tiny link-segment', text: 'Link', 'aria-label': `Copy a link to segment ${seq + 1}`,
    onclick: async (e) => {
      const url = `${location.origin}${location.pathname}#/meetings/${encodeURIComponent(meetingId)}/s/${seq}`;
      try {
        await navigator.clipboard.writeText(url);
        e.target.textContent = 'Copied';
      } catch (err) {
        e.target.textContent = 'Copy failed';
        e.target.title = url;
      }
      setTimeout(() => { e.target.textContent = 'Link'; }, 2000);
    },
  });
}

export function setupMeetingPage() {
  $('edit-details').addEventListener('click', openDetailsForm);
  $('details-form').addEventListener('submit', saveDetails);
  $('details-cancel').addEventListener('click', () => { $('details-form').hidden = true; $('edit-details').focus(); });
  $('details-form').addEventListener('keydown', (e) => { if (e.key === 'Escape') $('details-cancel').click(); });
  $('find-in-meeting').addEventListener('input', find);
  $('find-in-meeting').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); step(e.shiftKey ? -1 : 1); }
  });
  $('find-prev').addEventListener('click', () => step(-1));
  $('find-next').addEventListener('click', () => step(1));
  $('review-uncertain').addEventListener('click', () => {
    $('segments').classList.toggle('reviewing');
    renderReview();
  });
  $('show-engine').addEventListener('change', (e) => $('segments').classList.toggle('details', e.target.checked));
}

// A meeting was opened: tools start afresh.
export function resetTools() {
  $('find-in-meeting').value = '';
  $('find-count').textContent = '';
  hits = [];
  at = -1;
  $('segments').classList.remove('reviewing');
  $('details-form').hidden = true;
}
