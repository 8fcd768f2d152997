// Starts the embedded store in its own Node process (bench/store-server-child.ts) on openssl-made certificates, with
// client certificates required: the same footing as the etcd member the benchmark compares it with.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeOpensslCa } from '../test/helpers/openssl-certs.js';
import { tempDir } from '../test/helpers/tmp.js';
import type { StoreTarget } from '../test/store/conformance/targets.js';

export interface ChildStoreOptions {
  synchronous?: 'FULL' | 'NORMAL';
  /** Extra node flags for the server process, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] (env STORE_BENCH_NODE_ARGS). */
  nodeArgs?: string[];
  startTimeoutMs?: number;
}

export async function startEmbeddedChild(o: ChildStoreOptions = {}): Promise<StoreTarget & { pid: number }> {
  const dir = tempDir('tp-store-bench-');
  const ca = makeOpensslCa('store bench CA', dir.path);
  const server = ca.issue('store-server', { cn: 'trustplane-store', sans: ['IP:127.0.0.1', 'DNS:localhost'], eku: ['serverAuth'] });
  const client = ca.issue('store-client', { cn: 'trustplane-bench', eku: ['clientAuth'] });
  const config = { dbPath: join(dir.path, 'store.db'), certFile: server.certFile, keyFile: server.keyFile, caFile: ca.certFile, synchronous: o.synchronous ?? 'FULL' };
  const script = join(dirname(fileURLToPath(import.meta.url)), 'store-server-child.js');
  const nodeArgs = o.nodeArgs ?? (process.env.STORE_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, script, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    dir.remove();
  };
  try {
    const endpoint = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('embedded store child did not start within the deadline')), o.startTimeoutMs ?? 30_000);
      child.once('exit', (code, signal) => (clearTimeout(t), reject(new Error(`embedded store child exited (${code ?? signal}) before listening`))));
      createInterface({ input: child.stdout! }).once('line', (line) => {
        clearTimeout(t);
        try {
          resolve((JSON.parse(line) as { endpoint: string }).endpoint);
        } catch (e) {
          reject(e as Error);
        }
      });
    });
    return { name: 'embedded (own process)', endpoints: [endpoint], tls: { cert: client.cert, key: client.key, ca: ca.cert }, pid: child.pid!, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
