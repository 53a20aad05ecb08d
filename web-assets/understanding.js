// The meeting page's summary panel: the summary's sentences, the action items (their
// status editable with meetings.edit) and the insights, each moment a button that
// goes to its segment. Loaded once when a meeting opens (each load is an audited
// read), again after a status change or on "Refresh".

import { $, api, el, can } from './core.js';

const clock = (s) => {
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600);
  const mm = String(Math.floor((t % 3600) / 60)).padStart(h ? 2 : 1, '0');
  const ss = String(t % 60).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
};
const pct = (x) => `${Math.round(x * 100)}%`;
const speakerName = (s) => (s === 'unknown' ? 'Unknown speaker' : s);

let focus = () => {};
let current = null;

// The button that goes to a moment of the meeting.
function moment(seq, at) {
  return el('button', { type: 'button', class: 'tiny at', text: clock(at), 'aria-label': `Go to ${clock(at)}`, onclick: () => focus(seq) });
}

function itemRow(meetingId, i) {
  const status = can('meetings.edit')
    ? el('select', { 'aria-label': `Status of: ${i.text}`, 'data-item': i.id, onchange: (e) => setStatus(meetingId, i.id, e.target.value) },
      ...['open', 'done', 'dismissed'].map((s) => el('option', { value: s, text: s, selected: s === i.status })))
    : el('span', { class: 'badge', text: i.status });
  const facts = [
    i.owner ? `owner ${i.owner}` : 'no owner named',
    i.due ? `due ${new Date(`${i.due}T12:00:00`).toLocaleDateString(undefined, { weekday: 'short', year: 'numeric', month: 'short', day: 'numeric' })}` : null,
    i.source === 'marked' ? 'marked in the room' : null,
  ].filter(Boolean).join(' · ');
  return el('li', { class: `action-item status-${i.status}`, 'data-action-item': i.id },
    moment(i.seq, i.at), ' ',
    el('span', { class: 'item-text', text: i.text }), ' ',
    el('span', { class: 'muted', text: facts }), ' ',
    status);
}

function insightsList(ins) {
  const facts = [];
  const add = (k, v) => facts.push(el('dt', { text: k }), el('dd', {}, ...[].concat(v)));
  add('Questions asked', String(ins.question_count));
  if (ins.longest_monologue) {
    const m = ins.longest_monologue;
    add('Longest monologue', `${speakerName(m.speaker)}, ${clock(m.seconds)} from ${clock(m.start)}`);
  }
  add('Words per minute', ins.words_per_minute == null ? '—' : String(Math.round(ins.words_per_minute)));
  add('Filler words', `${ins.filler_words} (${ins.filler_rate.toFixed(1)} per 100 words)`);
  add('Silence', ins.silence_share == null ? '—' : pct(ins.silence_share));
  add('Overlapping speech', ins.overlaps.length ? `${ins.overlaps.length} time(s)` : 'none');
  for (const s of ins.speakers) add(speakerName(s.speaker), `${pct(s.share)} of the speaking time, ${s.turns} turn(s), ${s.words} words`);
  // Tone, only when the appliance is set to compute it; always with its method.
  if (ins.sentiment) {
    const t = ins.sentiment;
    const means = Object.entries(t.by_speaker).map(([who, m]) => `${speakerName(who)} ${m >= 0 ? '+' : ''}${m.toFixed(2)}`).join(', ');
    add(`Tone (${t.method})`, `${t.positive} positive, ${t.neutral} neutral, ${t.negative} negative segment(s)${t.skipped ? `; ${t.skipped} not scored` : ''}. Mean per speaker (−1 to +1): ${means}`);
  }
  const out = [el('dl', { class: 'facts insights' }, ...facts)];
  // The team's keyword trackers: each mention, a button to its moment.
  if (ins.trackers.length) {
    out.push(el('h3', { text: 'Keyword trackers' }), el('ul', { class: 'plain tracker-hits' },
      ...ins.trackers.map((t) => el('li', { 'data-tracker': t.name },
        el('b', { text: t.name }), `: ${t.count} mention(s) `,
        ...t.hits.map((h) => moment(h.seq, h.at))))));
  }
  if (ins.questions.length) {
    out.push(el('details', { class: 'questions' },
      el('summary', { text: `The ${ins.questions.length} question(s)` }),
      el('ol', {}, ...ins.questions.map((q) => el('li', {}, moment(q.seq, q.at), ' ', el('b', { text: speakerName(q.speaker) }), ': ', q.text)))));
  }
  return out;
}

function render(meetingId, s) {
  const box = $('understanding');
  const open = s.action_items.filter((i) => i.status === 'open').length;
  box.replaceChildren(
    el('div', { class: 'understanding-head' },
      el('h2', { text: 'Summary' }),
      el('button', { type: 'button', class: 'tiny link', text: 'Refresh', onclick: () => renderUnderstanding(meetingId) })),
    s.sentences.length
      ? el('ol', { class: 'summary-sentences' }, ...s.sentences.map((m) => el('li', {}, moment(m.seq, m.at), ' ', el('b', { text: speakerName(m.speaker) }), ': ', m.text)))
      : el('p', { class: 'muted', text: 'Nothing said yet to sum up.' }),
    el('p', { class: 'muted generated', text: `Generated: ${s.generated_by}. Check it against the transcript.` }),
    el('h3', { text: `Action items (${open} open of ${s.action_items.length})` }),
    s.action_items.length
      ? el('ul', { class: 'action-items' }, ...s.action_items.map((i) => itemRow(meetingId, i)))
      : el('p', { class: 'muted', text: 'None found.' }),
    el('p', { id: 'understanding-status', class: 'muted', role: 'status' }),
    el('details', { class: 'insights-panel' }, el('summary', { text: 'Insights' }), ...insightsList(s.insights)));
  box.hidden = false;
}

async function setStatus(meetingId, id, status) {
  try {
    await api('PUT', `/meetings/${encodeURIComponent(meetingId)}/action-items/${encodeURIComponent(id)}`, { status });
    await renderUnderstanding(meetingId);
    $('understanding-status').textContent = `Marked ${status}.`;
    $('understanding').querySelector(`select[data-item="${id}"]`)?.focus();
  } catch (e) {
    $('understanding-status').textContent = e.message;
  }
}

// Loads and shows the panel for a meeting; `go` shows a segment by its number.
export async function renderUnderstanding(meetingId, go) {
  if (go) focus = go;
  current = meetingId;
  try {
    const s = await api('GET', `/meetings/${encodeURIComponent(meetingId)}/summary`);
    if (current === meetingId) render(meetingId, s);
  } catch (e) {
    $('understanding').replaceChildren(el('p', { class: 'muted', text: `No summary: ${e.message}` }));
    $('understanding').hidden = false;
  }
}

// The Action items page: every meeting's items in the caller's reach, open ones
// first by default, filtered by status and owner; each links to its moment.
export async function actionsPage(body) {
  const statusSel = el('select', { 'aria-label': 'Status' },
    ...[['open', 'Open'], ['done', 'Done'], ['dismissed', 'Dismissed'], ['', 'Any status']].map(([v, t]) => el('option', { value: v, text: t })));
  const owner = el('input', { type: 'search', placeholder: 'Owner', 'aria-label': 'Owner', maxlength: 80 });
  const list = el('div', { class: 'scroll' });
  const note = el('p', { class: 'muted', role: 'status' });
  const due = (d) => (d ? new Date(`${d}T12:00:00`).toLocaleDateString(undefined, { weekday: 'short', month: 'short', day: 'numeric' }) : '—');
  const load = async () => {
    const q = new URLSearchParams();
    if (statusSel.value) q.set('status', statusSel.value);
    if (owner.value.trim()) q.set('owner', owner.value.trim());
    try {
      const rows = await api('GET', `/action-items?${q}`);
      note.textContent = `${rows.length} action item(s)`;
      list.replaceChildren(rows.length ? el('table', { class: 'list action-table' },
        el('thead', {}, el('tr', {}, ...['Due', 'Action item', 'Owner', 'Meeting', 'Status'].map((h) => el('th', { text: h })))),
        el('tbody', {}, ...rows.map((r) => el('tr', { 'data-action-row': r.item.id },
          el('td', { text: due(r.item.due) }),
          el('td', { class: 'item-text', text: r.item.text }),
          el('td', { text: r.item.owner || '—' }),
          el('td', {}, el('a', { href: `#/meetings/${encodeURIComponent(r.meeting_id)}/s/${r.item.seq}`, text: `${r.meeting_title || 'Untitled meeting'} at ${clock(r.item.at)}` })),
          el('td', {}, can('meetings.edit')
            ? el('select', {
              'aria-label': `Status of: ${r.item.text}`,
              onchange: async (e) => {
                try {
                  await api('PUT', `/meetings/${encodeURIComponent(r.meeting_id)}/action-items/${encodeURIComponent(r.item.id)}`, { status: e.target.value });
                  note.textContent = `Marked ${e.target.value}.`;
                } catch (err) {
                  note.textContent = err.message;
                }
              },
            }, ...['open', 'done', 'dismissed'].map((s) => el('option', { value: s, text: s, selected: s === r.item.status })))
            : r.item.status))))) : el('p', { class: 'muted', text: 'No action items match.' }));
    } catch (e) {
      note.textContent = e.message;
    }
  };
  statusSel.addEventListener('change', load);
  let timer;
  owner.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(load, 300); });
  body.append(el('div', { class: 'inline filters' }, statusSel, owner), note, list);
  await load();
}
