// The shipped Prometheus rules and Grafana dashboard (deploy/monitoring/) as tests read them: their PromQL expressions,
// the metric names those name, and a real Debian `prometheus` server started on loopback with a given config.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { stablePort } from '../../src/util/ports.js';
import { waitFor } from '../../src/util/wait.js';
import { killChild } from './cli.js';

export const MONITORING_DIR = fileURLToPath(new URL('../../../deploy/monitoring/', import.meta.url));
export const ALERTS_FILE = join(MONITORING_DIR, 'trustplane-alerts.yaml');
export const ALERTS_TEST_FILE = join(MONITORING_DIR, 'trustplane-alerts.test.yaml');
export const DASHBOARD_FILE = join(MONITORING_DIR, 'trustplane-dashboard.json');

interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function alertRules(file = ALERTS_FILE): AlertRule[] {
  const doc = parse(readFileSync(file, 'utf8')) as { groups: Array<{ name: string; rules: AlertRule[] }> };
  return doc.groups.flatMap((g) => g.rules);
}

/** Every PromQL expression of the dashboard's panels (rows hold none; collapsed rows keep theirs in `panels`). */
export function dashboardExprs(file = DASHBOARD_FILE): Array<{ panel: string; expr: string }> {
  type Panel = { title: string; targets?: Array<{ expr?: string }>; panels?: Panel[] };
  const walk = (ps: Panel[]): Array<{ panel: string; expr: string }> =>
    ps.flatMap((p) => [...(p.targets ?? []).filter((t) => t.expr).map((t) => ({ panel: p.title, expr: t.expr! })), ...walk(p.panels ?? [])]);
  const d = JSON.parse(readFileSync(file, 'utf8')) as { panels: Panel[]; templating?: { list: Array<{ query?: string | { query: string } }> } };
  const variables = (d.templating?.list ?? []).map((v) => (typeof v.query === 'string' ? v.query : v.query?.query)).filter((q): q is string => !!q);
  // Grafana's label_values(metric, label) names a metric, then a label.
  return [...walk(d.panels), ...variables.map((q) => ({ panel: 'template variable', expr: q.replace(/^label_values\(\s*([^,]+),[^)]*\)$/, '$1') }))];
}

const NOT_METRICS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'atan2']);

/**
 * The metric names a PromQL expression selects. Label matchers, ranges, strings, grouping clauses and Grafana variables
 * are removed first; what is left that is a name and not called as a function or aggregation is a metric.
 */
export function metricNamesOf(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\$\{?\w+\}?/g, '')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    if (m[2] || NOT_METRICS.has(m[1].toLowerCase())) continue;
    names.add(m[1]);
  }
  return [...names].sort();
}

/** The metric families a Prometheus text exposition declares (`# TYPE name kind`), with whether any sample was exposed. */
export function exposedMetrics(text: string): Map<string, { type: string; samples: number }> {
  const out = new Map<string, { type: string; samples: number }>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)/.exec(line);
    if (t) out.set(t[1], { type: t[2], samples: 0 });
    else if (line && !line.startsWith('#')) {
      const name = /^[a-zA-Z_:][\w:]*/.exec(line)?.[0] ?? '';
      const family = out.get(name) ?? out.get(name.replace(/_(bucket|sum|count)$/, ''));
      if (family) family.samples++;
    }
  }
  return out;
}

export interface PrometheusServer {
  url: string;
  child: ChildProcess;
  output(): string;
  /** GET /api/v1/<path> (JSON `data`). */
  api<T>(path: string): Promise<T>;
  stop(): Promise<void>;
}

/** Debian's prometheus on 127.0.0.1 with `configFile`, its TSDB under `dir`; resolves once it answers /-/ready. */
export async function startPrometheus(configFile: string, dir: string): Promise<PrometheusServer> {
  const port = await stablePort('127.0.0.1');
  const url = `http://127.0.0.1:${port}`;
  let out = '';
  const child = spawn('prometheus', [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const server: PrometheusServer = {
    url,
    child,
    output: () => out,
    async api<T>(path: string) {
      const r = await fetch(`${url}/api/v1/${path}`);
      if (!r.ok) throw new Error(`prometheus ${path}: ${r.status} ${await r.text()}`);
      return ((await r.json()) as { data: T }).data;
    },
    stop: () => killChild(child, 'SIGTERM').catch(() => killChild(child)),
  };
  try {
    const state = await waitFor('prometheus to be ready', async () => {
      if (child.exitCode !== null) return 'exited';
      return (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok ? 'ready' : undefined;
    }, 60000, 250);
    if (state === 'exited') throw new Error(`prometheus exited (${child.exitCode}): ${out.slice(-2000)}`);
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}
