// The search page (#/search?q=…): results across the meetings the user may read,
// each a link to that moment of its meeting. Snippets are built from text nodes;
// the matched words are <mark> elements around character ranges the server gives.

import { $, api, el, when } from './core.js';

const clock = (s) => {
  const m = Math.floor(s / 60);
  return `${String(m).padStart(2, '0')}:${String(Math.floor(s - m * 60)).padStart(2, '0')}`;
};

// The snippet with its highlights, as nodes (character offsets, not UTF-16 units).
function snippetNode(text, highlights) {
  const chars = Array.from(text);
  const p = el('p', { class: 'snippet' });
  let at = 0;
  for (const [from, to] of highlights || []) {
    if (from > at) p.append(chars.slice(at, from).join(''));
    p.append(el('mark', { text: chars.slice(from, to).join('') }));
    at = to;
  }
  if (at < chars.length) p.append(chars.slice(at).join(''));
  return p;
}

function hitNode(h) {
  const href = `#/meetings/${encodeURIComponent(h.meeting_id)}/s/${h.segment}`;
  return el('li', { class: 'hit' },
    el('a', { href, class: 'hit-title' }, el('strong', { text: h.meeting_title || 'Untitled meeting' }),
      ` at ${clock(h.start)}`),
    el('span', { class: 'muted hit-meta', text: `${h.room_name} · ${when(h.meeting_started_at_ms)}${h.speaker ? ' · ' + h.speaker : ''}` }),
    snippetNode(h.snippet, h.highlights));
}

export function queryFromHash() {
  const i = location.hash.indexOf('?');
  return new URLSearchParams(i < 0 ? '' : location.hash.slice(i + 1));
}

export async function renderSearch(body) {
  const params = queryFromHash();
  $('search-q').value = params.get('q') || '';
  const field = (name, label, attrs = {}) =>
    el('label', {}, label, el('input', { name, value: params.get(name) || '', ...attrs }));
  const sort = el('select', { name: 'sort' },
    el('option', { value: 'newest', text: 'Newest first' }),
    el('option', { value: 'relevance', text: 'Most relevant' }));
  sort.value = params.get('sort') || 'newest';
  const filters = el('form', { class: 'search-filters', role: 'search' },
    field('q', 'Words', { type: 'search', required: true }),
    field('speaker', 'Speaker'),
    field('from', 'From', { type: 'date' }),
    field('to', 'To', { type: 'date' }),
    el('label', {}, 'Order', sort),
    el('button', { type: 'submit', text: 'Search' }));
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(filters)) if (v) next.set(k, v);
    location.hash = '#/search?' + next.toString();
  });
  const help = el('p', { class: 'muted small', text: 'Words must all occur; "exact phrase", revi* for a prefix, OR, NOT or -word, parentheses. Korean, Japanese and Chinese: any part of a word.' });
  const summary = el('p', { class: 'search-summary', role: 'status' });
  const list = el('ol', { class: 'hits plain' });
  const more = el('button', { class: 'more', type: 'button', hidden: true, text: 'More results' });
  body.replaceChildren(filters, help, summary, list, more);
  if (!params.get('q')) {
    summary.textContent = 'Type words to find in every transcript you may read.';
    return;
  }
  const ask = new URLSearchParams();
  for (const k of ['q', 'speaker', 'from', 'to', 'sort']) if (params.get(k)) ask.set(k, params.get(k));
  const load = async (cursor) => {
    if (cursor) ask.set('cursor', cursor);
    const r = await api('GET', '/search?' + ask.toString());
    list.append(...r.hits.map(hitNode));
    const shown = list.children.length;
    summary.textContent = r.total === 0
      ? 'No segment matches.'
      : `${r.total} matching segment${r.total === 1 ? '' : 's'}${shown < r.total ? `, ${shown} shown` : ''}.` +
        (r.indexing_percent != null ? ` The index is still being built (${r.indexing_percent}%).` : '');
    more.hidden = !r.next_cursor;
    more.onclick = () => load(r.next_cursor).catch((e) => { summary.textContent = e.message; });
  };
  try {
    await load(null);
  } catch (e) {
    summary.textContent = e.message;
    summary.classList.add('error');
  }
}
