// The Backups page (`backups.manage`): the alarm if it rings, the schedule, the
// target and its health, "Back up now" with a progress bar, the last runs (status,
// sizes, duration, what retention dropped) as a table and a bar chart of what each
// run stored, and what a restore of this appliance needs.
// The banner: everyone who may manage backups sees the alarm on every page.

import { $, api, el, when, can } from './core.js';

const mib = (b) => (b === undefined || b === null ? '—' : `${(b / 1048576).toFixed(b < 10485760 ? 2 : 1)} MiB`);
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;

// Shows or hides the alarm banner (called at start and after each run).
export async function backupBanner() {
  const banner = $('banner');
  if (!can('backups.manage')) {
    banner.hidden = true;
    return;
  }
  try {
    const s = await api('GET', '/backups');
    banner.hidden = !s.alarm;
    banner.replaceChildren(...(s.alarm
      ? [el('strong', { text: 'Backups: ' }), s.alarm, ' ', el('a', { href: '#/backups', text: 'See backups' })]
      : []));
  } catch (e) {
    banner.hidden = true;
  }
}

// What each run stored, newest on the right: a run that stored little is a cheap
// nightly increment; a failed one is a red bar at full height.
function chart(runs) {
  const shown = runs.slice(0, 14).reverse();
  const max = Math.max(1, ...shown.map((r) => (r.set ? r.set.new_stored_bytes : 0)));
  const w = 28;
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${Math.max(shown.length, 14) * w + 4} 84`);
  svg.setAttribute('preserveAspectRatio', 'xMinYMid meet');
  svg.setAttribute('class', 'run-chart');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'Bytes stored by each of the last runs');
  shown.forEach((r, i) => {
    const stored = r.set ? r.set.new_stored_bytes : 0;
    const h = r.ok ? Math.max(2, (stored / max) * 70) : 70;
    const rect = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
    rect.setAttribute('x', i * w + 4);
    rect.setAttribute('y', 76 - h);
    rect.setAttribute('width', w - 8);
    rect.setAttribute('height', h);
    rect.setAttribute('class', r.ok ? 'ok' : 'failed');
    const title = document.createElementNS('http://www.w3.org/2000/svg', 'title');
    title.textContent = `${when(r.started_at_ms)}: ${r.ok ? `${mib(stored)} stored` : 'failed'}`;
    rect.append(title);
    svg.append(rect);
  });
  return svg;
}

// The target's health: a look at it now (reachable, what it holds, room left), with
// "Check again". Never changes the target.
function targetHealth() {
  const badge = el('span', { class: 'badge', text: 'checking…' });
  const text = el('span', { class: 'muted', text: '' });
  const again = el('button', { type: 'button', class: 'link', text: 'Check again' });
  const dd = el('dd', { 'data-target-health': 'checking' }, badge, ' ', text, ' ', again);
  const look = async () => {
    again.disabled = true;
    badge.className = 'badge';
    badge.textContent = 'checking…';
    try {
      const h = await api('GET', '/backups/target');
      const kind = { good: 'good', empty: 'good', warning: 'alarm', failed: 'live' }[h.state] || '';
      badge.className = `badge ${kind}`;
      badge.textContent = { good: 'healthy', empty: 'empty', warning: 'check it', failed: 'failing' }[h.state] || h.state;
      const free = h.free_bytes === null || h.free_bytes === undefined ? '' : `; ${(h.free_bytes / 1073741824).toFixed(1)} GiB free`;
      text.textContent = `${h.message}${free} (checked ${when(h.checked_at_ms)})`;
      dd.dataset.targetHealth = h.state;
    } catch (e) {
      badge.className = 'badge live';
      badge.textContent = 'failing';
      text.textContent = e.message;
      dd.dataset.targetHealth = 'error';
    }
    again.disabled = false;
  };
  again.addEventListener('click', look);
  look();
  return dd;
}

function runsTable(runs) {
  if (!runs.length) return el('p', { class: 'muted', text: 'No backup has run yet.' });
  const rows = runs.map((r) => el('tr', { 'data-run': r.started_at_ms },
    el('td', { text: when(r.started_at_ms) }),
    el('td', {}, el('span', { class: `badge ${r.ok ? 'good' : 'alarm'}`, text: r.ok ? 'good' : 'failed' })),
    el('td', { text: r.trigger === 'schedule' ? 'scheduled' : 'on request' }),
    el('td', { text: r.set ? `set ${r.set.seq}` : '—' }),
    el('td', { text: r.set ? mib(r.set.bytes) : '—' }),
    el('td', { text: r.set ? mib(r.set.new_stored_bytes) : '—' }),
    el('td', { text: secs(r.finished_at_ms - r.started_at_ms) }),
    el('td', { text: r.error || (r.verify_problems.length ? `does not verify: ${r.verify_problems[0]}` : (r.pruned.length ? `verified; retention dropped ${r.pruned.length} set(s)` : 'verified')) })));
  return el('table', { class: 'list' },
    el('thead', {}, el('tr', {}, ...['Started', 'Status', 'Why', 'Set', 'Size', 'Stored', 'Took', 'Notes'].map((h) => el('th', { text: h })))),
    el('tbody', {}, ...rows));
}

function restoreHelp(s) {
  const cmd = [
    'roomscribe backup restore latest',
    `  --from '${s.target || 'TARGET'}'`,
    `  --data-dir '${s.data_dir}'`,
    `  --key-dir '${s.key_dir}'`,
    '  --master-key /media/safe/master.key',
    '  --backup-key /media/safe/backup.key',
  ].join(' \\\n');
  return [
    el('h2', { text: 'Restoring this appliance' }),
    el('p', { text: 'A restore needs two keys that are not on the backup target. Keep copies of both in the safe, apart from the target:' }),
    el('ul', {},
      el('li', { text: `the backup key: ${s.key_file}${s.backup_key_id ? ` (id ${s.backup_key_id})` : ' (made at the first backup)'};` }),
      el('li', { text: 'the master key that wraps the meeting keys (storage.master_key_file; after roomscribe keys rotate, the new one).' })),
    el('p', { text: 'On the new machine, install the same version, stop the service, then run as the service user:' }),
    el('pre', { class: 'command', text: cmd }),
    el('p', { class: 'muted', text: 'Then start the service. Meetings erased since the set was made are removed at start; each room sends again what it sent after the set (its kept envelopes). If the new machine has another address, point the rooms\' DNS name at it.' }),
  ];
}

export async function backupsPage(body) {
  const s = await api('GET', '/backups');
  const status = el('p', { role: 'status', class: 'muted', 'data-backup-status': '' });
  const bar = el('progress', { max: 100, value: 0, hidden: true, 'aria-label': 'Backup progress' });
  const now = el('button', { type: 'button', text: 'Back up now', disabled: !s.target });
  const alarm = s.alarm ? el('p', { class: 'error', role: 'alert', text: s.alarm }) : null;
  const facts = el('dl', { class: 'facts' },
    el('dt', { text: 'Target' }), el('dd', { text: s.target || 'not set (backup.target)' }),
    el('dt', { text: 'Target health' }), targetHealth(),
    el('dt', { text: 'Schedule' }), el('dd', { text: s.schedule ? `every day at ${s.schedule} (next ${when(s.next_run_ms)})` : 'none (backup.schedule): on request only' }),
    el('dt', { text: 'Retention' }), el('dd', { text: `${s.keep.daily} daily, ${s.keep.weekly} weekly, ${s.keep.monthly} monthly` }),
    el('dt', { text: 'Last good backup' }), el('dd', { text: s.last_good ? `${when(s.last_good.finished_at_ms)}, set ${s.last_good.set.seq}, ${mib(s.last_good.set.bytes)}` : 'none' }));

  const follow = async () => {
    for (;;) {
      const cur = await api('GET', '/backups');
      if (!cur.running) {
        const last = cur.runs[0];
        status.textContent = last && last.ok ? `Backup set ${last.set.seq} made and verified.` : `The backup failed: ${last ? (last.error || last.verify_problems[0]) : ''}`;
        bar.hidden = true;
        await backupBanner();
        setTimeout(() => renderAgain(body), 1500);
        return;
      }
      const p = cur.running;
      bar.hidden = false;
      bar.value = p.bytes_estimate ? Math.min(99, Math.round((100 * p.bytes_done) / p.bytes_estimate)) : 0;
      status.textContent = `${p.phase[0].toUpperCase()}${p.phase.slice(1)}: ${mib(p.bytes_done)} of about ${mib(p.bytes_estimate)}`;
      await new Promise((ok) => setTimeout(ok, 500));
    }
  };
  now.addEventListener('click', async () => {
    now.disabled = true;
    status.textContent = 'Starting…';
    try {
      await api('POST', '/backups');
      await follow();
    } catch (e) {
      status.textContent = e.message;
      now.disabled = false;
    }
  });
  body.append(
    ...(alarm ? [alarm] : []),
    facts,
    el('div', { class: 'backup-now' }, now, bar, status),
    el('h2', { text: 'Last runs' }),
    ...(s.runs.length ? [el('p', { class: 'muted', text: 'What each run stored on the target (newest on the right; a failed run is red).' }), chart(s.runs)] : []),
    el('div', { class: 'scroll' }, runsTable(s.runs)),
    ...restoreHelp(s),
  );
  if (s.running) {
    now.disabled = true;
    follow();
  }
}

let renderAgain = () => {};
export function onRerender(f) {
  renderAgain = f;
}
