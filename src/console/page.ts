// The web console's HTML pages and style sheet: a login form, and the shells the console script fills from the data endpoints.

const escapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => escapes[c]);

function layout(title: string, main: string, o: { script?: boolean } = {}): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · trustplane</title>
<link rel="stylesheet" href="/static/console.css">
${o.script ? '<script type="module" src="/static/console.js"></script>\n' : ''}</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header><p class="brand"><a href="/">trustplane</a> web console</p>${o.script ? '<form method="post" action="/logout"><button type="submit">Log out</button></form>' : ''}</header>
<main id="main" tabindex="-1">
${main}
</main>
</body>
</html>
`;
}

/** Shown, with status 401, for any page asked for without credentials: the form posts the host's token once, and a session cookie does the rest. */
export function loginPage(next: string, problem?: string): string {
  return layout(
    'Log in',
    `<h1>Log in to the web console</h1>
<p>The console is for fleet administrators. Paste the host's access token, from <code>&lt;data-dir&gt;/host/metrics-token</code>,
or open the console with the fleet administrator's client certificate.</p>
${problem ? `<p class="problem" role="alert">${escapeHtml(problem)}</p>\n` : ''}<form method="post" action="/login" class="login">
<input type="hidden" name="next" value="${escapeHtml(next)}">
<label for="token">Access token</label>
<input id="token" name="token" type="password" autocomplete="off" required autofocus>
<button type="submit">Log in</button>
</form>`,
  );
}

/** The list of clusters; the script fills the table and keeps it current. */
export function overviewPage(): string {
  return layout(
    'Clusters',
    `<h1>Clusters</h1>
<p id="updated" class="muted">Loading…</p>
<div id="clusters"></div>
<noscript><p>The console needs JavaScript; the same data is at <a href="/api/clusters">/api/clusters</a>.</p></noscript>`,
    { script: true },
  );
}

/** One cluster: its status, the authorities' timelines, the rotation and the nodes. */
export function clusterPage(name: string): string {
  const n = escapeHtml(name);
  return layout(
    `Cluster ${name}`,
    `<nav aria-label="Breadcrumb"><a href="/">All clusters</a></nav>
<h1>Cluster <span class="name">${n}</span></h1>
<div id="cluster" data-cluster="${n}">
<p id="updated" class="muted">Loading…</p>
<section aria-labelledby="h-status"><h2 id="h-status">Status</h2><div id="status"></div></section>
<section aria-labelledby="h-rotation"><h2 id="h-rotation">Credential rotation</h2>
<p id="rotation-live" role="status" aria-live="polite" aria-atomic="true"></p>
<div id="rotation"></div></section>
<section aria-labelledby="h-timeline"><h2 id="h-timeline">Authority generations</h2><div id="timeline"></div></section>
<section aria-labelledby="h-nodes"><h2 id="h-nodes">Nodes</h2><div id="nodes"></div></section>
<section aria-labelledby="h-clients" id="clients-section" hidden><h2 id="h-clients">Clients still on an old generation</h2><div id="clients"></div></section>
</div>
<noscript><p>The console needs JavaScript; the same data is at <a href="/api/clusters/${encodeURIComponent(name)}">/api/clusters/${n}</a>.</p></noscript>`,
    { script: true },
  );
}

export function messagePage(title: string, message: string): string {
  return layout(title, `<h1>${escapeHtml(title)}</h1>\n<p>${escapeHtml(message)}</p>\n<p><a href="/">All clusters</a></p>`);
}

/** Plain and legible: system fonts, high contrast, a focus ring that is always visible, colours that are not the only signal. */
export const CONSOLE_CSS = `
:root { color-scheme: light; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --accent: #0550ae; --bg: #ffffff; --panel: #f6f8fa;
  --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; justify-content: space-between; align-items: center; padding: .5rem 1.5rem; border-bottom: 1px solid var(--line); background: var(--panel); }
header form { margin: 0; }
.brand { margin: 0; font-weight: 600; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.25rem 0 .25rem; }
a { color: var(--accent); }
a:focus-visible, button:focus-visible, input:focus-visible, main:focus-visible, [tabindex]:focus-visible {
  outline: 3px solid #fb8c00; outline-offset: 2px; border-radius: 2px; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: .5rem; background: var(--bg); padding: .25rem .5rem; z-index: 1; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
caption { text-align: left; font-weight: 600; padding: .25rem 0; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { background: var(--panel); }
tbody th { font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); }
.problem { color: var(--bad); font-weight: 600; }
.status { font-weight: 700; }
.status-RUNNING { color: var(--ok); } .status-RECONCILING { color: var(--accent); } .status-DEGRADED, .status-ERROR { color: var(--bad); }
.status-PROVISIONING, .status-STOPPING { color: var(--warn); }
.phases { list-style: none; display: flex; flex-wrap: wrap; gap: .25rem; padding: 0; margin: .5rem 0; }
.phases li { padding: .15rem .6rem; border: 1px solid var(--line); border-radius: 1rem; }
.phases li[aria-current="step"] { background: var(--accent); color: #fff; border-color: var(--accent); font-weight: 600; }
.phases li.past { color: var(--muted); text-decoration: line-through; }
.login { display: grid; gap: .5rem; max-width: 28rem; }
input, button { font: inherit; padding: .4rem .6rem; border: 1px solid var(--muted); border-radius: 4px; }
button { background: var(--panel); cursor: pointer; }
svg.timeline { width: 100%; height: auto; display: block; background: var(--bg); border: 1px solid var(--line); }
svg.timeline text { font: 12px system-ui, sans-serif; fill: var(--fg); }
svg.timeline .bar-active { fill: #2f81f7; } svg.timeline .bar-prepared { fill: #8ec5ff; } svg.timeline .bar-previous { fill: #a8b3bf; }
svg.timeline .bar-retired { fill: #e3e7eb; stroke: #a8b3bf; }
svg.timeline .today { stroke: var(--bad); stroke-width: 2; }
svg.timeline .threshold-rotation { stroke: var(--warn); stroke-dasharray: 6 3; stroke-width: 2; }
svg.timeline .threshold-degraded { stroke: var(--bad); stroke-dasharray: 2 2; stroke-width: 2; }
.ttl-low { color: var(--bad); font-weight: 600; }
`;
