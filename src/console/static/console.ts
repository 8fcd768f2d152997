// The web console in the browser: fills the page from the host's event stream (or polls) and keeps it current; builds DOM nodes, never HTML strings.
// It runs in a browser: the DOM's types come in through the reference below (visible to the whole program, which tsc compiles as one).
/// <reference lib="dom" />
import type { ConsoleAuthority, ConsoleCluster, ConsoleOverview } from '../snapshot.js';

const SVG = 'http://www.w3.org/2000/svg';
const PHASES = ['preparing', 'activating', 'moving', 'completing', 'done'];

type Child = Node | string | undefined | false;

function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) if (c !== undefined && c !== false) el.append(c);
  return el;
}

function s(tag: string, attrs: Record<string, string | number> = {}, text?: string): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function byId(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el;
}

/** "29 d 3 h", "5 h 2 min", "expired 3 h ago": what a person reads at a glance. */
function duration(seconds: number): string {
  const past = seconds < 0;
  let t = Math.abs(seconds);
  const d = Math.floor(t / 86_400);
  t -= d * 86_400;
  const hr = Math.floor(t / 3600);
  const min = Math.floor((t - hr * 3600) / 60);
  const text = d > 0 ? `${d} d ${hr} h` : hr > 0 ? `${hr} h ${min} min` : `${min} min`;
  return past ? `expired ${text} ago` : text;
}

const day = (iso: string | undefined) => (iso ? iso.slice(0, 10) : '—');
const stamp = (iso: string | undefined) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : '—');

function table(caption: string, head: string[], rows: Child[][], numeric: number[] = []): HTMLTableElement {
  return h(
    'table',
    {},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, ...head.map((t, i) => h('th', { scope: 'col', ...(numeric.includes(i) ? { class: 'num' } : {}) }, t)))),
    h('tbody', {}, ...rows.map((r) => h('tr', {}, ...r.map((c, i) => (i === 0 ? h('th', { scope: 'row' }, c) : h('td', numeric.includes(i) ? { class: 'num' } : {}, c)))))),
  );
}

/** Replaces the content of `el`, keeping the keyboard focus on the same item when it is rebuilt. */
function replace(el: HTMLElement, ...children: Child[]): void {
  const key = document.activeElement?.getAttribute('data-focus-key');
  el.replaceChildren(...children.filter((c): c is Node | string => c !== undefined && c !== false));
  if (key) (el.querySelector(`[data-focus-key="${CSS.escape(key)}"]`) as HTMLElement | null)?.focus();
}

function statusBadge(status: string): HTMLElement {
  return h('span', { class: `status status-${status}` }, status);
}

/** Live data: the event stream when the browser has it (it reconnects by itself); else a poll every 2 s. */
function live<T>(stream: string, data: string, render: (v: T) => void): void {
  const updated = byId('updated');
  const problem = (m: string) => {
    updated.textContent = m;
    updated.className = 'problem';
  };
  const show = (v: T) => {
    render(v);
    updated.className = 'muted';
    updated.textContent = `Live: updated ${new Date().toLocaleTimeString()}`;
  };
  if (typeof EventSource === 'function') {
    const es = new EventSource(stream);
    es.addEventListener('snapshot', (e) => show(JSON.parse((e as MessageEvent<string>).data) as T));
    es.addEventListener('problem', (e) => problem((JSON.parse((e as MessageEvent<string>).data) as { message: string }).message));
    // The browser retries by itself after a network error; a refusal (the session expired, the host restarted) closes the stream for good.
    es.onerror = () =>
      problem(es.readyState === EventSource.CLOSED ? 'The console lost its session or the host: reload the page to log in again.' : 'The connection to the host was lost; reconnecting…');
    return;
  }
  const poll = async () => {
    try {
      const r = await fetch(data, { credentials: 'same-origin' });
      if (r.ok) show((await r.json()) as T);
      else problem(((await r.json()) as { message: string }).message);
    } catch (e) {
      problem(`The host did not answer: ${(e as Error).message}`);
    }
    setTimeout(() => void poll(), 2000);
  };
  void poll();
}

// ---- the list of clusters ----

function renderOverview(v: ConsoleOverview): void {
  const el = byId('clusters');
  if (v.clusters.length === 0) return replace(el, h('p', {}, 'This fleet has no clusters yet. Create one with ', h('code', {}, 'trustplane clusters create NAME'), '.'));
  replace(
    el,
    table(
      `Clusters of this fleet (${v.clusters.length})`,
      ['Cluster', 'Status', 'Rotation', 'Cluster root CA expires', 'Nodes', 'Message'],
      v.clusters.map((c) => [
        h('a', { href: `/clusters/${encodeURIComponent(c.name)}`, 'data-focus-key': `cluster:${c.name}` }, c.name),
        statusBadge(c.status),
        c.rotationPhase ? `phase ${c.rotationPhase}` : 'none running',
        day(c.rootNotAfter),
        c.nodes === undefined ? '—' : String(c.nodes),
        c.statusMessage,
      ]),
      [4],
    ),
  );
}

// ---- one cluster ----

/**
 * One authority's generations as bars from not-before to not-after, with today and the thresholds before the active
 * one's expiry. `closeUp`: only the weeks before that expiry, where a 30-day and a 7-day line on a 10-year bar would touch.
 */
function timeline(a: ConsoleAuthority, nowIso: string, closeUp = false): SVGElement | undefined {
  const now = Date.parse(nowIso);
  const gens = a.generations.filter((g) => g.notBefore && g.notAfter);
  const active = gens.find((g) => g.state === 'active');
  const lines = active ? a.thresholds.map((t) => ({ ...t, at: Date.parse(active.notAfter!) - t.secondsBefore * 1000 })) : [];
  if (closeUp && (!active || lines.length === 0)) return undefined;
  const times = [now, ...gens.flatMap((g) => [Date.parse(g.notBefore!), Date.parse(g.notAfter!)]), ...lines.map((l) => l.at)];
  let from = Math.min(...times);
  let to = Math.max(...times);
  if (closeUp) {
    const end = Date.parse(active!.notAfter!);
    const span = Math.max(...a.thresholds.map((t) => t.secondsBefore)) * 1000 * 1.25;
    from = end - span;
    to = end + span * 0.08;
  }
  const pad = closeUp ? 0 : Math.max((to - from) * 0.03, 3600_000);
  from -= pad;
  to += pad;
  const W = 960;
  const left = 16;
  const right = W - 16;
  const top = 44;
  const row = 30;
  const H = top + Math.max(gens.length, 1) * row + 40;
  // Clamped: in the close-up, bars begin before its left edge.
  const x = (t: number) => Math.min(right, Math.max(left, left + ((t - from) / (to - from)) * (right - left)));
  const inside = (t: number) => t >= from && t <= to;
  const id = `tl-${a.kind}${closeUp ? '-close' : ''}`;
  const svg = s('svg', { class: `timeline${closeUp ? ' close-up' : ''}`, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${id}-title ${id}-desc`, 'data-authority': a.kind, ...(closeUp ? { 'data-close-up': 'true' } : {}) });
  svg.append(
    s('title', { id: `${id}-title` }, closeUp ? `The ${a.title}: the weeks before the active generation expires` : `Timeline of the ${a.title}`),
    s(
      'desc',
      { id: `${id}-desc` },
      `${gens.length} generation(s) from ${day(gens[0]?.notBefore)} to ${day(gens[gens.length - 1]?.notAfter)}; today is ${day(nowIso)}` +
        lines.map((l) => `; ${l.label} on ${day(new Date(l.at).toISOString())}`).join(''),
    ),
  );
  // Date ticks along the top.
  for (let i = 0; i <= 5; i++) {
    const t = from + ((to - from) * i) / 5;
    svg.append(s('line', { x1: x(t), x2: x(t), y1: top - 6, y2: H - 30, stroke: '#d0d7de' }), s('text', { x: x(t), y: 14, 'text-anchor': i === 0 ? 'start' : i === 5 ? 'end' : 'middle' }, day(new Date(t).toISOString())));
  }
  gens.forEach((g, i) => {
    const x1 = x(Date.parse(g.notBefore!));
    const x2 = x(Date.parse(g.notAfter!));
    const y = top + i * row;
    if (x2 <= left || x1 >= right) return;
    const bar = s('rect', { x: x1, y, width: Math.max(x2 - x1, 2), height: row - 8, rx: 3, class: `bar bar-${g.state}`, 'data-generation': g.generation, 'data-state': g.state });
    bar.append(s('title', {}, `generation ${g.generation} (${g.state}): ${stamp(g.notBefore)} to ${stamp(g.notAfter)}`));
    svg.append(bar, s('text', { x: x1 + 6, y: y + row / 2, fill: g.state === 'active' ? '#fff' : '#1b1f24' }, `generation ${g.generation} · ${g.state}`));
  });
  const bottom = H - 30;
  for (const [i, l] of lines.entries()) {
    if (!inside(l.at)) continue;
    svg.append(
      s('line', { x1: x(l.at), x2: x(l.at), y1: top - 6, y2: bottom, class: `threshold threshold-${l.kind}`, 'data-days': Math.round(l.secondsBefore / 86_400) }),
      s('text', { x: x(l.at), y: bottom + 14 + i * 12, 'text-anchor': 'end' }, l.label),
    );
  }
  if (inside(now)) svg.append(s('line', { x1: x(now), x2: x(now), y1: top - 14, y2: bottom + 4, class: 'today' }), s('text', { x: x(now) + 4, y: top - 16 }, `today (${day(nowIso)})`));
  return svg;
}

function renderAuthorities(c: ConsoleCluster): Child[] {
  return c.authorities.flatMap((a) => {
    const active = a.generations.find((g) => g.state === 'active');
    return [
      h('h3', {}, a.title),
      h('p', { class: 'muted' }, active?.secondsLeft !== undefined ? `Active generation ${active.generation} expires ${stamp(active.notAfter)} (in ${duration(active.secondsLeft)}). ` : '', a.next.action !== 'none' ? `Next: ${a.next.action} at ${stamp(a.next.at)}.` : ''),
      timeline(a, c.now),
      timeline(a, c.now, true),
      table(
        `Generations of the ${a.title}`,
        ['Generation', 'State', 'Not before', 'Not after', 'Time left'],
        a.generations.map((g) => [String(g.generation), g.state, stamp(g.notBefore), stamp(g.notAfter), g.secondsLeft === undefined ? '—' : duration(g.secondsLeft)]),
        [4],
      ),
    ];
  });
}

/** One sentence for the live region: read out by a screen reader whenever the rotation moves on. */
function rotationSentence(c: ConsoleCluster): string {
  const r = c.rotation;
  if (!r) return 'No credential rotation has run on this cluster.';
  const to = r.to ?? r.from + 1;
  const title = c.authorities.find((a) => a.kind === r.authority)?.title ?? `${r.authority} CA`;
  if (!r.running) return `The last rotation of the ${title} (generation ${r.from} to ${to}) is done${r.completedAt ? `, completed ${stamp(r.completedAt)}` : ''}.`;
  const moved = c.nodesByGeneration.filter((g) => g.generation >= to).reduce((n, g) => n + g.nodes, 0);
  const total = c.nodesByGeneration.reduce((n, g) => n + g.nodes, 0);
  const old = c.observedClients?.length ?? 0;
  const clients = c.observedClients ? `; ${old} client(s) still presenting an old generation` : '';
  return `Rotation of the ${title}, generation ${r.from} to ${to}: phase ${r.phase}; ${moved} of ${total} node(s) on generation ${to}${clients}.`;
}

function renderRotation(c: ConsoleCluster): Node[] {
  const r = c.rotation;
  const out: Node[] = [];
  if (r) {
    const at = PHASES.indexOf(r.phase);
    out.push(
      h('ol', { class: 'phases', 'aria-label': 'Rotation phases' }, ...PHASES.map((p, i) => h('li', { ...(i === at ? { 'aria-current': 'step' } : {}), ...(i < at ? { class: 'past' } : {}), 'data-phase': p }, p))),
      h('p', {}, `${r.trigger === 'manual' ? 'Started by hand' : 'Started automatically'} ${stamp(r.startedAt)}.`, r.forced?.length ? ` Completed with --force, leaving ${r.forced.join(', ')} behind.` : ''),
    );
    if (c.waitingFor?.length) out.push(h('p', {}, `Waiting for ${c.waitingFor.length}: ${c.waitingFor.join(', ')}.`));
  }
  out.push(
    c.nodesByGeneration.length
      ? table('Nodes per cluster root CA generation', ['Generation', 'Nodes'], c.nodesByGeneration.map((g) => [String(g.generation), String(g.nodes)]), [1])
      : h('p', { class: 'muted' }, 'No node holds a live client certificate.'),
  );
  return out;
}

function renderNodes(c: ConsoleCluster): Node {
  if (c.nodes.length === 0) return h('p', { class: 'muted' }, 'No nodes have joined this cluster.');
  return table(
    c.nodeCount > c.nodes.length
      ? `Nodes of cluster ${c.name} and their client certificates: the ${c.nodes.length} expiring first, of ${c.nodeCount}`
      : `Nodes of cluster ${c.name} and their client certificates (${c.nodes.length})`,
    ['Node', 'Root CA generation', 'Certificate expires', 'Time left', 'Pool', 'Address'],
    c.nodes.map((n) => [n.name, String(n.generation), stamp(n.notAfter), h('span', n.secondsLeft < 3600 ? { class: 'ttl-low' } : {}, duration(n.secondsLeft)), n.pool ?? '—', n.address ?? '—']),
    [1, 3],
  );
}

/** While a rotation runs: who still presents the old generation, per generation and one by one (nodes, admins, components, etcd clients). */
function renderClients(c: ConsoleCluster): Node[] {
  const list = c.observedClients ?? [];
  const window = c.observedWindowSeconds ? ` in the last ${duration(c.observedWindowSeconds)}` : '';
  if (list.length === 0) return [h('p', {}, `No client was seen presenting an old generation${window}.`)];
  const perGen = new Map<number, number>();
  for (const o of list) perGen.set(o.generation, (perGen.get(o.generation) ?? 0) + 1);
  return [
    table(
      'Clients still presenting an old generation, per generation',
      ['Generation', 'Clients'],
      [...perGen].sort(([a], [b]) => a - b).map(([g, n]) => [String(g), String(n)]),
      [1],
    ),
    table(
      `Clients seen presenting an old generation${window} (${list.length})`,
      ['User', 'Groups', 'Generation', 'Server', 'Last seen', 'Address'],
      list.map((o) => [o.user, o.groups.join(', ') || '—', String(o.generation), o.server, stamp(o.lastSeen), o.address]),
      [2],
    ),
  ];
}

function renderCluster(c: ConsoleCluster): void {
  document.title = `Cluster ${c.name} (${c.status}) · trustplane`;
  replace(byId('status'), h('p', {}, statusBadge(c.status), ' ', c.statusMessage), h('p', {}, 'API server: ', c.endpoint ? h('code', {}, c.endpoint) : 'not serving'));
  const live = byId('rotation-live');
  const sentence = rotationSentence(c);
  // Only a change is written: the live region speaks each time its text changes.
  if (live.textContent !== sentence) live.textContent = sentence;
  replace(byId('rotation'), ...renderRotation(c));
  replace(byId('timeline'), ...renderAuthorities(c));
  replace(byId('nodes'), renderNodes(c));
  // Shown while a rotation runs: that is when the fleet API reports them.
  const clients = byId('clients-section');
  clients.hidden = !c.rotation?.running || c.observedClients === undefined;
  if (!clients.hidden) replace(byId('clients'), ...renderClients(c));
}

function main(): void {
  const cluster = document.getElementById('cluster');
  if (cluster) {
    const name = cluster.dataset.cluster!;
    live<ConsoleCluster>(`/api/events?cluster=${encodeURIComponent(name)}`, `/api/clusters/${encodeURIComponent(name)}`, renderCluster);
  } else if (document.getElementById('clusters')) {
    live<ConsoleOverview>('/api/events', '/api/clusters', renderOverview);
  }
}

main();
