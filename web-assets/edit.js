// Corrections of a segment: an edit form in place (text and speaker, saved against
// the version shown, so a correction made meanwhile by someone else is never
// overwritten), and the segment's history with its original as the agent signed it.

import { api, el, when, can } from './core.js';

const segmentPath = (meetingId, seq) => `/meetings/${encodeURIComponent(meetingId)}/segments/${seq}`;

// The buttons under a segment's time: "Edit" for editors, "History" once corrected.
// `render(segment)` builds a segment's node (app.js owns how a segment looks).
export function segmentActions(meetingId, s, render) {
  const box = el('span', { class: 'seg-actions' });
  if (can('meetings.edit')) {
    box.append(el('button', {
      type: 'button', class: 'tiny edit-segment', text: 'Edit', 'aria-label': `Edit segment ${s.seq + 1}`,
      onclick: (e) => openEditor(meetingId, s, e.target.closest('.segment'), render),
    }));
  }
  if (s.edited) {
    box.append(el('button', {
      type: 'button', class: 'tiny history-segment', text: `Edited · history`, 'aria-label': `History of segment ${s.seq + 1}`,
      onclick: (e) => toggleHistory(meetingId, s.seq, e.target.closest('.segment')),
    }));
  }
  return box;
}

function speakerLabels() {
  return [...new Set([...document.querySelectorAll('#segments [data-speaker]')].map((n) => n.dataset.speaker))].sort();
}

function openEditor(meetingId, s, node, render) {
  if (!node || node.querySelector('form.edit')) return;
  const textArea = el('textarea', { rows: '3', 'aria-label': 'Corrected text', maxlength: '5000' });
  textArea.value = s.text;
  const listId = `speakers-${s.seq}`;
  const speaker = el('input', { 'aria-label': 'Speaker', list: listId, value: s.speaker, maxlength: '40' });
  const error = el('p', { class: 'error', role: 'alert' });
  let current = s;
  // Closing shows the newest version known: ours, or one that arrived meanwhile.
  const close = () => {
    const newer = node.latest && node.latest.version > current.version ? node.latest : current;
    node.replaceWith(render(newer));
  };
  const form = el('form', { class: 'edit', 'data-version': String(s.version) },
    el('label', {}, 'Text', textArea),
    el('label', {}, 'Speaker', speaker,
      el('datalist', { id: listId }, ...speakerLabels().map((l) => el('option', { value: l })))),
    el('div', { class: 'inline' },
      el('button', { type: 'submit', text: 'Save correction' }),
      el('button', { type: 'button', class: 'link', text: 'Cancel', onclick: close })),
    el('p', { class: 'muted hint', text: 'Ctrl+Enter saves, Escape cancels. The original stays in the history.' }),
    error);
  form.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') close();
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { expected_version: current.version };
    if (textArea.value.trim() !== current.text) body.text = textArea.value;
    if (speaker.value.trim() !== current.speaker) body.speaker = speaker.value;
    if (body.text === undefined && body.speaker === undefined) return close();
    try {
      current = await api('PATCH', segmentPath(meetingId, s.seq), body);
      close();
    } catch (err) {
      if (err.status !== 409) {
        error.textContent = err.message;
        return;
      }
      // Someone corrected it meanwhile: show theirs, keep ours in the form to re-apply.
      const h = await api('GET', `${segmentPath(meetingId, s.seq)}/history`);
      current = h.segment;
      form.dataset.version = String(current.version);
      error.textContent = `Someone else corrected this segment meanwhile (${lastBy(h)}). It now reads: “${current.text}”. ` +
        'Your text is still in the box: adjust it and save again.';
    }
  });
  node.querySelector('.text').replaceWith(form);
  textArea.focus();
}

const lastBy = (h) => {
  const r = h.revisions[h.revisions.length - 1];
  return r ? `${r.by}, ${when(r.at_ms)}` : 'just now';
};

const SIGNATURE = {
  verified: (c) => `✓ verified against the agent's signature (envelope ${c.envelope_seq})`,
  mismatch: (c) => `⚠ differs from what the agent signed: “${c.signed_text}”`,
  invalid: (c) => `⚠ the kept envelope does not verify: ${c.reason}`,
  not_kept: (c) => `not verifiable: ${c.reason}`,
};

async function toggleHistory(meetingId, seq, node) {
  const open = node.querySelector('.history');
  if (open) {
    open.remove();
    return;
  }
  const box = el('div', { class: 'history', role: 'region', 'aria-label': `History of segment ${seq + 1}` });
  node.append(box);
  try {
    const h = await api('GET', `${segmentPath(meetingId, seq)}/history`);
    const sig = h.original.signature;
    box.append(
      el('p', { class: 'original' }, el('b', { text: 'Original: ' }), `${h.original.speaker} — “${h.original.text}”`,
        el('span', { class: `signature ${sig.status}`, text: ' ' + SIGNATURE[sig.status](sig) })),
      el('ol', { class: 'revisions' }, ...h.revisions.map((r) => el('li', {},
        el('span', { class: 'muted', text: `v${r.version} · ${r.by} · ${when(r.at_ms)}: ` }),
        r.text_before !== r.text_after ? el('span', {}, el('del', { text: r.text_before }), ' → ', el('ins', { text: r.text_after })) : '',
        r.speaker_before !== r.speaker_after ? el('span', { text: ` speaker ${r.speaker_before} → ${r.speaker_after}` }) : ''))));
  } catch (e) {
    box.append(el('p', { class: 'error', text: e.message }));
  }
}
