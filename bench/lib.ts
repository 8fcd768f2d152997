// Shared pieces of the benchmarks: the result line format and anchors measured in the same run.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import { clusterPaths } from '../src/util/datadir.js';
import type { ControlPlane } from '../test/helpers/control-plane.js';

export interface BenchResult {
  bench: string;
  value: number;
  unit: string;
  anchor: string;
  anchor_value: number;
  ratio: number;
  [extra: string]: unknown;
}

export interface Benchmark {
  /** Names of the figures it prints; `npm run bench -- PREFIX` selects by these. */
  names: string[];
  run(): Promise<BenchResult[]>;
}

export function result(bench: string, value: number, unit: string, anchor: string, anchorValue: number, extra: Record<string, unknown> = {}): BenchResult {
  const round = (x: number) => (Math.abs(x) >= 100 ? Math.round(x) : Math.round(x * 1000) / 1000);
  return {
    bench,
    value: round(value),
    unit,
    anchor,
    anchor_value: round(anchorValue),
    ratio: anchorValue === 0 ? 0 : Math.round((value / anchorValue) * 1000) / 1000,
    ...extra,
  };
}

/** OpenSSL's own ECDSA P-256 sign and verify rates on one core (`openssl speed`), measured now. */
export function opensslP256(seconds = 2): { sign: number; verify: number; bound: number } {
  const out = execFileSync('openssl', ['speed', '-seconds', String(seconds), '-mr', 'ecdsap256'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  // -mr output: "+F4:<n>:<bits>:<sign>:<verify>". OpenSSL 3 prints operations per second; 1.1 printed seconds per
  // operation. A value below 1 can only be the latter.
  const line = out.split('\n').find((l) => l.startsWith('+F4:'));
  if (!line) throw new Error(`cannot read openssl speed output:\n${out}`);
  const parts = line.split(':');
  const rate = (v: string) => (Number(v) < 1 ? 1 / Number(v) : Number(v));
  const sign = rate(parts[3]);
  const verify = rate(parts[4]);
  return { sign, verify, bound: 1 / (1 / sign + 1 / verify) };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU milliseconds a process has used so far, from /proc/PID/stat. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ": field 3 is state, so utime (14) and stime (15) are at 11 and 12.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** File descriptors N nodes need in this process and in the host (an API connection and a tunnel each, plus slack). */
export function ensureFileLimit(count: number): string {
  const need = 2 * count + 2048;
  const soft = Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
  if (soft >= need) return `nofile ${soft}`;
  try {
    // Raised on this process before the control plane starts, so its children inherit it (needs CAP_SYS_RESOURCE).
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${need}:${need}`], { stdio: 'ignore' });
    return `nofile raised from ${soft} to ${need} with prlimit`;
  } catch {
    const msg = `${count} nodes need about ${need} file descriptors in the control plane host (2 sockets per node); the limit is ${soft} and could not be raised (prlimit needs CAP_SYS_RESOURCE)`;
    // Joins would fail once descriptors run out, minutes in: say so now, unless asked to see how far it gets.
    if (process.env.BENCH_PAST_FD_LIMIT !== '1') throw new Error(`${msg}; run fewer nodes, raise \`ulimit -n\` first, or set BENCH_PAST_FD_LIMIT=1 to run until they run out`);
    process.stderr.write(`bench: ${msg}\n`);
    return `nofile ${soft} (needed ${need}; not raised)`;
  }
}

/** One GET with a client certificate on a connection of its own. */
export function httpsGet(url: string, creds: { ca: string; cert: string; key: string }): Promise<{ status: number; text: string; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: creds.ca, cert: creds.cert, key: creds.key, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * The control plane's processes (host, CA, and the cluster's store when it has a process of its own) and their CPU:
 * `cpu()` reads each one's milliseconds now, `spent(a, b)` adds up what they used between two readings.
 */
export function controlPlaneCpu(cp: ControlPlane, cluster: string) {
  const storeEp = clusterPaths(cp.dataDir, cluster).storeEndpoint;
  const storePid = existsSync(storeEp) ? (JSON.parse(readFileSync(storeEp, 'utf8')) as { pid: number }).pid : undefined;
  const pids = { host: cp.host.child.pid!, ca: cp.ca.child.pid!, ...(storePid && storePid !== cp.host.child.pid ? { store: storePid } : {}) };
  return {
    pids,
    cpu: () => Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid)])) as Record<string, number>,
    spent: (a: Record<string, number>, b: Record<string, number>) => Object.keys(a).reduce((sum, k) => sum + (b[k] - a[k]), 0),
  };
}
