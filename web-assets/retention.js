// The meeting page's legal hold and erasure panel: who may manage holds places or
// lifts one on the open meeting, with a reason; who may erase meetings erases it,
// with a reason, after confirming. The appliance refuses to erase a held meeting and
// says why; the panel shows that answer as it is.

import { $, api, can, state } from './core.js';

let erased = () => {};

function showError(err) {
  $('retention-error').textContent = err ? err.message : '';
}

async function place(e) {
  e.preventDefault();
  try {
    await api('POST', `/meetings/${encodeURIComponent(state.meetingId)}/hold`, { reason: $('hold-reason').value });
    $('hold-reason').value = '';
    showError(null);
  } catch (err) {
    showError(err);
  }
}

async function lift() {
  try {
    await api('DELETE', `/meetings/${encodeURIComponent(state.meetingId)}/hold`);
    showError(null);
  } catch (err) {
    showError(err);
  }
}

async function erase(e) {
  e.preventDefault();
  const id = state.meetingId;
  const title = $('meeting-title').textContent;
  if (!confirm(`Erase "${title}" for good? Its transcript, corrections and events are removed; only the record that it was erased is kept.`)) return;
  try {
    await api('DELETE', `/meetings/${encodeURIComponent(id)}`, { reason: $('erase-reason').value });
    $('erase-reason').value = '';
    showError(null);
    erased(id);
  } catch (err) {
    showError(err);
  }
}

// `onErased(id)` is told when this console erased a meeting.
export function setupRetention(onErased) {
  erased = onErased;
  $('hold-form').addEventListener('submit', place);
  $('hold-lift').addEventListener('click', lift);
  $('erase-form').addEventListener('submit', erase);
}

// The open meeting's header changed (opened, or a hold placed or lifted).
export function retentionFor(m) {
  const panel = $('retention-menu');
  panel.hidden = !(can('retention.manage') || can('meetings.delete'));
  $('hold-status').textContent = m.held
    ? 'Under legal hold: nobody can erase this meeting until the hold is lifted.'
    : 'No legal hold covers this meeting.';
  $('hold-lift').hidden = !m.held;
  panel.classList.toggle('held', Boolean(m.held));
}
