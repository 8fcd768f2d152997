// Durability: every acknowledged write survives kill -9 of the store process, with the revision it was given.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { b, makePki, rawClient, removeDir, tempDir, type Pki, type RawClient } from './helpers.js';

const fixture = join(fileURLToPath(new URL('.', import.meta.url)), 'fixtures', 'store-process.js');

interface StoreProcess {
  child: ChildProcess;
  endpoint: string;
  exited: Promise<NodeJS.Signals | number | null>;
}

function startProcess(dbPath: string, pki: Pki): Promise<StoreProcess> {
  const child = spawn(process.execPath, [fixture, dbPath, pki.server.certFile, pki.server.keyFile, pki.ca.certFile, 'FULL'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<NodeJS.Signals | number | null>((r) => child.on('exit', (code, signal) => r(signal ?? code)));
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`store process did not start: ${err}`)), 15000);
    child.stderr!.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /ready (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, endpoint: m[1], exited });
      }
    });
    child.on('exit', () => reject(new Error(`store process exited: ${err}`)));
  });
}

describe('store server durability', () => {
  const pki = makePki();
  const dir = tempDir();
  const dbPath = join(dir, 'state.db');
  const started: StoreProcess[] = [];
  const clients: RawClient[] = [];
  after(async () => {
    for (const c of clients) c.close();
    for (const p of started) {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        p.child.kill('SIGKILL');
        await p.exited;
      }
    }
    removeDir(dir);
  });

  it('acknowledged writes and their revisions survive kill -9 in the middle of a write storm', async () => {
    const first = await startProcess(dbPath, pki);
    started.push(first);
    const c1 = rawClient(first.endpoint, { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key });
    clients.push(c1);
    const acked = new Map<string, number>();
    const target = 1500;
    let next = 0;
    let killed = false;
    // 64 writers; the process is killed once 1000 writes are acknowledged, with others still in flight.
    const writer = async () => {
      while (!killed && next < target) {
        const key = `dur/${next++}`;
        try {
          const r = await c1.put({ key: b(key), value: b(`value of ${key}`) });
          acked.set(key, Number(r.header.revision));
          if (acked.size >= 1000 && !killed) {
            killed = true;
            first.child.kill('SIGKILL');
          }
        } catch {
          return;
        }
      }
    };
    await Promise.all(Array.from({ length: 64 }, writer));
    assert.equal(await first.exited, 'SIGKILL');
    assert.ok(acked.size >= 1000);
    c1.close();

    const second = await startProcess(dbPath, pki);
    started.push(second);
    const c2 = rawClient(second.endpoint, { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key });
    clients.push(c2);
    const all = await c2.range({ key: b('dur/'), range_end: b('dur0') });
    const found = new Map<string, number>(all.kvs.map((kv: { key: Buffer; mod_revision: string }) => [kv.key.toString(), Number(kv.mod_revision)]));
    const missing = [...acked.keys()].filter((k) => !found.has(k));
    assert.deepEqual(missing, [], 'acknowledged writes lost');
    for (const [k, rev] of acked) assert.equal(found.get(k), rev, `revision of ${k}`);
    // Revisions go on from where the store was: never reused.
    const maxAcked = Math.max(...acked.values());
    const after = await c2.put({ key: b('dur-after'), value: b('x') });
    assert.ok(Number(after.header.revision) > maxAcked);
    assert.ok(Number(after.header.revision) > Math.max(...found.values()));
    second.child.kill('SIGTERM');
    await second.exited;
  });
});
