// The meeting page's export menu. The appliance makes the file in the background
// (a long meeting's PDF takes a while): the menu starts the export, shows how far
// it is, then downloads the file with the bytes received shown, and offers the
// manifest the appliance signed for those very bytes.

import { $, api, el, state } from './core.js';

// The last finished export: its job, whose manifest the button fetches.
let last = null;
// Bumped by each new export, so that an older one still polling stops.
let generation = 0;

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

const pause = (ms) => new Promise((ok) => setTimeout(ok, ms));

async function manifest() {
  if (!last) return;
  const status = $('export-status');
  try {
    const data = await api('GET', `/exports/${encodeURIComponent(last.job)}/manifest`);
    save(new Blob([JSON.stringify(data)], { type: 'application/json' }), `${last.name}.manifest.json`);
    status.textContent = `${last.name}.manifest.json saved: check the file with roomscribe export verify.`;
  } catch (err) {
    status.textContent = `No manifest: ${err.message}`;
  }
}

// Polls the job until it is ready (or failed), showing its progress.
async function made(job, mine) {
  const bar = $('export-progress');
  const status = $('export-status');
  const what = $('export-format').selectedOptions[0].textContent.split(' (')[0];
  for (;;) {
    if (mine !== generation) return null;
    bar.value = job.progress;
    status.textContent = `Making the ${what} file: ${job.progress}%`;
    if (job.state === 'ready') return job;
    if (job.state === 'failed') throw new Error(job.error || 'the appliance could not make it');
    await pause(250);
    job = await api('GET', `/exports/${encodeURIComponent(job.id)}`);
  }
}

async function fetchFile(job, mine) {
  const bar = $('export-progress');
  const status = $('export-status');
  const res = await fetch(`/api/v1/exports/${encodeURIComponent(job.id)}/file`, { credentials: 'same-origin' });
  if (!res.ok) {
    const data = await res.json().catch(() => ({}));
    throw new Error((data.error && data.error.message) || res.statusText);
  }
  const total = Number(res.headers.get('content-length')) || job.size || 0;
  const reader = res.body.getReader();
  const chunks = [];
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (mine !== generation) return null;
    chunks.push(value);
    got += value.length;
    if (total) bar.value = Math.min(100, Math.round((got * 100) / total));
    status.textContent = `Downloading ${job.file_name}: ${(got / 1024).toFixed(0)} KiB${total ? ` of ${(total / 1024).toFixed(0)} KiB` : ''}`;
  }
  return { blob: new Blob(chunks, { type: res.headers.get('content-type') || 'application/octet-stream' }), got };
}

async function download(e) {
  e.preventDefault();
  const mine = ++generation;
  const bar = $('export-progress');
  const status = $('export-status');
  bar.hidden = false;
  bar.value = 0;
  bar.removeAttribute('data-done');
  status.textContent = 'Starting the export…';
  try {
    forget();
    const started = await api('POST', `/meetings/${encodeURIComponent(state.meetingId)}/exports`, {
      format: $('export-format').value,
      original: $('export-original').checked,
    });
    const job = await made(started, mine);
    if (!job) return;
    const file = await fetchFile(job, mine);
    if (!file) return;
    bar.value = 100;
    bar.dataset.done = '1';
    save(file.blob, job.file_name);
    last = { job: job.id, name: job.file_name };
    $('export-manifest').disabled = false;
    status.textContent = `${job.file_name} downloaded (${(file.got / 1024).toFixed(0)} KiB). Its signed manifest proves it unchanged: roomscribe export verify.`;
  } catch (err) {
    if (mine !== generation) return;
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

// A meeting was opened: the menu starts afresh (an export still running is dropped).
export function exportFor(meetingId) {
  generation += 1;
  $('export-status').textContent = '';
  $('export-progress').hidden = true;
  state.meetingId = meetingId;
  forget();
}
