// Shared pieces of the benchmarks: the result line format and anchors measured in the same run.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

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
    process.stderr.write(`bench: ${count} nodes need about ${need} file descriptors per process; the limit is ${soft} and could not be raised\n`);
    return `nofile ${soft} (needed ${need}; not raised)`;
  }
}
