// The Analytics page (`analytics.read`, the caller's teams): hours recorded per
// week, room and team; who spoke how much; keyword trackers' hits; action items
// found and closed; recognition confidence per room. Each chart is drawn on the
// appliance (an SVG image: nothing runs in it), has its numbers in a table below it
// and a CSV download. One request per view (and one audit entry).

import { api, el, can } from './core.js';

const iso = (d) => d.toISOString().slice(0, 10);

// A cell as people read it: shares as percentages, other numbers as they are.
function show(table, col, v) {
  if (typeof v !== 'number') return v;
  if (table.chart.unit === 'share' && table.columns[col] !== 'Segments' && table.columns[col] !== 'Hours') {
    return `${(v * 100).toFixed(1)}%`;
  }
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

function section(t, query) {
  const q = new URLSearchParams(query);
  q.set('table', t.id);
  const img = el('img', {
    class: 'chart',
    src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(t.svg)}`,
    alt: `Chart: ${t.title}. Its numbers are in the table below it.`,
    width: 760,
    height: 300,
  });
  const numbers = t.rows.length
    ? el('div', { class: 'scroll' }, el('table', { class: 'list numbers', 'data-table': t.id },
      el('thead', {}, el('tr', {}, ...t.columns.map((c) => el('th', { text: c })))),
      el('tbody', {}, ...t.rows.map((r) => el('tr', {}, ...r.map((v, i) => el('td', { text: show(t, i, v), class: typeof v === 'number' ? 'num' : null })))))))
    : el('p', { class: 'muted', text: 'Nothing in this range.' });
  return el('section', { class: 'card analytics-card', id: `chart-${t.id}`, 'aria-label': t.title },
    el('div', { class: 'understanding-head' },
      el('h2', { text: t.title }),
      el('a', { class: 'tiny', href: `/api/v1/analytics/csv?${q}`, download: '', text: 'Download CSV', 'aria-label': `Download ${t.title} as CSV` })),
    el('div', { class: 'scroll chart-box' }, img),
    el('details', { class: 'numbers' }, el('summary', { text: `The numbers (${t.rows.length} row(s))` }), numbers));
}

export async function analyticsPage(body) {
  const today = new Date();
  const start = new Date(today);
  // This week and the eleven before (the appliance's default).
  start.setDate(start.getDate() - ((start.getDay() + 6) % 7) - 77);
  const from = el('input', { type: 'date', 'aria-label': 'From', value: iso(start) });
  const to = el('input', { type: 'date', 'aria-label': 'To', value: iso(today) });
  const [teams, rooms] = await Promise.all([
    api('GET', '/teams').catch(() => []),
    can('rooms.read') ? api('GET', '/rooms').catch(() => []) : [],
  ]);
  const team = el('select', { 'aria-label': 'Team' }, el('option', { value: '', text: 'All my teams' }),
    ...teams.map((t) => el('option', { value: t.id, text: t.name })));
  const room = el('select', { 'aria-label': 'Room' }, el('option', { value: '', text: 'Every room' }),
    ...rooms.map((r) => el('option', { value: r.id, text: r.name })));
  const note = el('p', { class: 'muted', role: 'status' });
  const out = el('div', { class: 'analytics' });
  const load = async () => {
    const query = {};
    if (from.value) query.from = from.value;
    if (to.value) query.to = to.value;
    if (team.value) query.team = team.value;
    if (room.value) query.room = room.value;
    note.textContent = 'Counting…';
    try {
      const r = await api('GET', `/analytics?${new URLSearchParams({ ...query, charts: 'true' })}`);
      const spent = r.hours < 1 ? `${Math.round(r.hours * 60)} minute(s)` : `${r.hours.toFixed(1)} hours`;
      note.textContent = `${r.meetings} meeting(s), ${spent}, ${r.range.from} to ${r.range.to}.`;
      out.replaceChildren(...r.tables.map((t) => section(t, query)));
    } catch (e) {
      note.textContent = e.message;
    }
  };
  const f = el('form', { class: 'inline filters' }, from, to, team, room, el('button', { type: 'submit', text: 'Show' }));
  f.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  body.append(f, note, out);
  await load();
}
