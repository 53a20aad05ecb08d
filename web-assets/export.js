// The meeting page's export menu: pick a format, download it with progress shown
// (bytes received of the size announced), and the signed manifest of the same file.

import { $, el, state } from './core.js';

const exportPath = (id, manifest) => {
  const q = new URLSearchParams({ format: $('export-format').value });
  if ($('export-original').checked) q.set('original', '1');
  if (manifest) q.set('manifest', '1');
  return `/api/v1/meetings/${encodeURIComponent(id)}/export?${q}`;
};

function refreshManifestLink() {
  if (state.meetingId) $('export-manifest').href = exportPath(state.meetingId, true);
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
    const res = await fetch(exportPath(id, false), { credentials: 'same-origin' });
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
    const url = URL.createObjectURL(new Blob(chunks, { type: res.headers.get('content-type') || 'application/octet-stream' }));
    const a = el('a', { href: url, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    status.textContent = `${name} downloaded (${(got / 1024).toFixed(0)} KiB). Its signed manifest proves it unchanged: roomscribe export verify.`;
  } catch (err) {
    bar.hidden = true;
    status.textContent = `Export failed: ${err.message}`;
  }
}

export function setupExport() {
  $('export-form').addEventListener('submit', download);
  $('export-format').addEventListener('change', refreshManifestLink);
  $('export-original').addEventListener('change', refreshManifestLink);
}

// A meeting was opened: the menu's manifest link follows it.
export function exportFor(meetingId) {
  $('export-status').textContent = '';
  $('export-progress').hidden = true;
  state.meetingId = meetingId;
  refreshManifestLink();
}
