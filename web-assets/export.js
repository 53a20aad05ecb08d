// The meeting page's export menu: pick a format, download it with progress shown
// (bytes received of the size announced), then the signed manifest of that very file
// (asked for the transcript state the file was made from: if the transcript changed
// in between, the appliance refuses rather than sign other bytes).

import { $, el, state } from './core.js';

const exportPath = (id, transcript) => {
  const q = new URLSearchParams({ format: $('export-format').value });
  if ($('export-original').checked) q.set('original', '1');
  if (transcript) {
    q.set('manifest', '1');
    q.set('transcript', transcript);
  }
  return `/api/v1/meetings/${encodeURIComponent(id)}/export?${q}`;
};

// The last download: what its manifest must be asked for.
let last = null;

function forget() {
  last = null;
  $('export-manifest').disabled = true;
}

function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

async function manifest() {
  if (!last) return;
  const status = $('export-status');
  try {
    const res = await fetch(exportPath(last.id, last.transcript), { credentials: 'same-origin' });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error((data.error && data.error.message) || res.statusText);
    save(new Blob([JSON.stringify(data)], { type: 'application/json' }), `${last.name}.manifest.json`);
    status.textContent = `${last.name}.manifest.json saved: check the file with roomscribe export verify.`;
  } catch (err) {
    status.textContent = `No manifest: ${err.message}`;
  }
}

async function download(e) {
  e.preventDefault();
  const id = state.meetingId;
  const bar = $('export-progress');
  const status = $('export-status');
  bar.hidden = false;
  bar.value = 0;
  bar.removeAttribute('data-done');
  status.textContent = 'Preparing the export…';
  try {
    forget();
    const res = await fetch(exportPath(id, null), { credentials: 'same-origin' });
    if (!res.ok) {
      const data = await res.json().catch(() => ({}));
      throw new Error((data.error && data.error.message) || res.statusText);
    }
    const total = Number(res.headers.get('content-length')) || 0;
    const name = (/filename="([^"]+)"/.exec(res.headers.get('content-disposition') || '') || [])[1] || 'export';
    const reader = res.body.getReader();
    const chunks = [];
    let got = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      got += value.length;
      if (total) bar.value = Math.min(100, Math.round((got * 100) / total));
      status.textContent = `Downloading ${name}: ${(got / 1024).toFixed(0)} KiB${total ? ` of ${(total / 1024).toFixed(0)} KiB` : ''}`;
    }
    bar.value = 100;
    bar.dataset.done = '1';
    save(new Blob(chunks, { type: res.headers.get('content-type') || 'application/octet-stream' }), name);
    last = { id, name, transcript: res.headers.get('x-roomscribe-transcript-sha256') };
    $('export-manifest').disabled = !last.transcript;
    status.textContent = `${name} downloaded (${(got / 1024).toFixed(0)} KiB). Its signed manifest proves it unchanged: roomscribe export verify.`;
  } catch (err) {
    bar.hidden = true;
    status.textContent = `Export failed: ${err.message}`;
  }
}

export function setupExport() {
  $('export-form').addEventListener('submit', download);
  $('export-manifest').addEventListener('click', manifest);
  // Another format or choice is another file: download it first.
  $('export-format').addEventListener('change', () => {
    // SRT has nowhere to put originals.
    const srt = $('export-format').value === 'srt';
    if (srt) $('export-original').checked = false;
    $('export-original').disabled = srt;
    forget();
  });
  $('export-original').addEventListener('change', forget);
}

// A meeting was opened: the menu starts afresh.
export function exportFor(meetingId) {
  $('export-status').textContent = '';
  $('export-progress').hidden = true;
  state.meetingId = meetingId;
  forget();
}
