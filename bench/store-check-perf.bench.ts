// etcd's own load generator, `etcdctl check perf`, against the embedded store and a 1-member etcd 3.4 in the same run:
// the npm etcd3 client saturates before either server, so bench/store.bench.ts cannot load them; etcdctl (Go, many
// clients) can. Each store is its own process with mutual TLS and certificates required.
//
// STORE_CHECK_PERF_LOAD=s|m|l|xl (default l: 500 clients, as in the issue that asked for it); each run lasts 60 s.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEtcdTarget, type StoreTarget } from '../test/store/conformance/targets.js';
import { tempDir } from '../test/helpers/tmp.js';
import { result, type Benchmark, type BenchResult } from './lib.js';
import { startEmbeddedChild } from './store-process.js';

export interface CheckPerf {
  writesPerSecond: number;
  slowestSeconds: number;
  stddevSeconds: number;
  passed: boolean;
  output: string;
}

/**
 * What `etcdctl check perf` printed, in its PASS and its FAIL wording: "Throughput is N writes/s" or "Throughput too
 * low: N writes/s", "Slowest request took Xs" or "Slowest request took too long: Xs", "Stddev is Ys" or "Stddev too high: Ys".
 */
export function parseCheckPerf(output: string): Omit<CheckPerf, 'output'> {
  const num = (re: RegExp) => {
    const m = re.exec(output);
    if (!m) throw new Error(`etcdctl check perf printed no line matching ${re}:\n${output.slice(-2000)}`);
    return Number(m[1]);
  };
  return {
    writesPerSecond: num(/Throughput (?:is|too low:) (\d+(?:\.\d+)?) writes\/s/),
    slowestSeconds: num(/Slowest request took (?:too long: )?(\d+(?:\.\d+)?)s/),
    stddevSeconds: num(/Stddev (?:is|too high:) (\d+(?:\.\d+)?)s/),
    passed: /^PASS\s*$/m.test(output),
  };
}

/** Runs `etcdctl check perf` against one store; etcdctl is killed by PID if it runs past its minute by far. */
export async function checkPerf(target: StoreTarget, load: string): Promise<CheckPerf> {
  const dir = tempDir('tp-check-perf-');
  try {
    const files = { cacert: join(dir.path, 'ca.crt'), cert: join(dir.path, 'client.crt'), key: join(dir.path, 'client.key') };
    writeFileSync(files.cacert, target.tls.ca);
    writeFileSync(files.cert, target.tls.cert);
    writeFileSync(files.key, target.tls.key, { mode: 0o600 });
    const endpoints = target.endpoints.map((e) => e.replace(/^https:\/\//, '')).join(',');
    const child = spawn(
      'etcdctl',
      ['--endpoints', endpoints, '--cacert', files.cacert, '--cert', files.cert, '--key', files.key, 'check', 'perf', `--load=${load}`, '--auto-compact', '--auto-defrag'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ETCDCTL_API: '3' } },
    );
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    const status = await new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    clearTimeout(timer);
    // A FAIL verdict (etcd's own thresholds for the load) exits 1 but still prints every figure.
    if (!/Throughput (?:is|too low:)/.test(output)) throw new Error(`etcdctl check perf against ${target.name} exited ${status}:\n${output.slice(-2000)}`);
    return { ...parseCheckPerf(output), output };
  } finally {
    dir.remove();
  }
}

async function on(start: () => Promise<StoreTarget>, load: string): Promise<CheckPerf> {
  const target = await start();
  try {
    return await checkPerf(target, load);
  } finally {
    await target.stop();
  }
}

const bench: Benchmark = {
  names: ['store.check_perf.writes', 'store.check_perf.slowest_s'],
  async run(): Promise<BenchResult[]> {
    const load = process.env.STORE_CHECK_PERF_LOAD ?? 'l';
    if (!['s', 'm', 'l', 'xl'].includes(load)) throw new Error(`STORE_CHECK_PERF_LOAD=${load}: use s, m, l or xl`);
    process.stderr.write(`bench: etcdctl check perf --load=${load} against etcd 3.4, then the embedded store (about 60 s each)\n`);
    const etcd = await on(startEtcdTarget, load);
    const embedded = await on(() => startEmbeddedChild({ synchronous: 'FULL' }), load);
    const anchor = 'etcd 3.4 single member, same load';
    const conf = {
      load,
      generator: 'etcdctl check perf (etcd 3.4, Go client); the load tool is not ours',
      embedded: 'own process, mTLS, SQLite WAL synchronous=FULL',
      embedded_verdict: embedded.passed ? 'PASS' : 'FAIL',
      anchor_verdict: etcd.passed ? 'PASS' : 'FAIL',
    };
    return [
      result('store.check_perf.writes', embedded.writesPerSecond, 'writes/s', anchor, etcd.writesPerSecond, conf),
      result('store.check_perf.slowest_s', embedded.slowestSeconds, 's', anchor, etcd.slowestSeconds, {
        ...conf,
        stddev_s: embedded.stddevSeconds,
        anchor_stddev_s: etcd.stddevSeconds,
      }),
    ];
  },
};

export default bench;
