// A compare-and-swap whose answer is lost (the member applied it, then its connection went silent) is in doubt. The
// client sends it once more to another member, and a conflict with exactly what it wrote means the first one applied:
// the call succeeds instead of failing or reporting a conflict with itself. A conflict with someone else's write is
// still a conflict.
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { openStore, type Store } from '../../../src/store/client.js';
import { startEmbeddedTarget, type StoreTarget } from '../conformance/targets.js';

/** A TCP relay to the store that, once armed, still forwards requests but drops every answer (TLS stays end to end). */
async function silentRelay(target: string): Promise<{ url: string; arm(): void; close(): Promise<void> }> {
  const u = new URL(target);
  let armed = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(u.port), u.hostname);
    sockets.add(client).add(upstream);
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d) => !armed && client.write(d));
    const end = () => (client.destroy(), upstream.destroy());
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `https://127.0.0.1:${port}`,
    arm: () => (armed = true),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

describe('store client: a compare-and-swap in doubt is resolved, not failed', { concurrency: 1 }, () => {
  let target: StoreTarget;
  before(async () => {
    target = await startEmbeddedTarget();
  });
  after(() => target?.stop());

  /** A client whose preferred endpoint is a relay that goes silent when armed; the store itself is second. */
  const withRelay = async (fn: (s: Store, arm: () => void, direct: Store) => Promise<void>) => {
    const relay = await silentRelay(target.endpoints[0]);
    const s = await openStore({ endpoints: [relay.url, target.endpoints[0]], tls: target.tls, timeoutMs: 3000 });
    const direct = await openStore({ endpoints: target.endpoints, tls: target.tls });
    try {
      await s.get('/warm-up'); // the connection through the relay is up before it goes silent
      await fn(s, relay.arm, direct);
    } finally {
      await Promise.all([s.close(), direct.close()]);
      await relay.close();
    }
  };

  test('a create applied but unanswered succeeds, with the key holding what it wrote', async () => {
    await withRelay(async (s, arm, direct) => {
      arm();
      assert.equal(await s.createIfAbsent('/in-doubt/create', 'mine'), true);
      const kv = await direct.get('/in-doubt/create');
      assert.equal(kv?.value.toString(), 'mine');
      assert.equal(kv?.version, 1n, 'written once');
    });
  });

  test('an update and a delete applied but unanswered succeed; the new mod revision is the write', async () => {
    let mod = 0n;
    await withRelay(async (s, arm, direct) => {
      const { revision } = await direct.put('/in-doubt/update', 'v1');
      arm();
      const u = await s.updateIfModRevision('/in-doubt/update', 'v2', revision);
      assert.equal(u.ok, true);
      const kv = await direct.get('/in-doubt/update');
      assert.equal(kv?.value.toString(), 'v2');
      assert.equal(kv?.modRevision, u.modRevision);
      mod = u.modRevision;
    });
    await withRelay(async (s, arm, direct) => {
      arm();
      const d = await s.deleteIfModRevision('/in-doubt/update', mod);
      assert.equal(d.ok, true);
      assert.equal(await direct.get('/in-doubt/update'), null);
    });
  });

  test('a conflict with a different value is still a conflict', async () => {
    await withRelay(async (s, arm, direct) => {
      await direct.put('/in-doubt/taken', 'theirs');
      arm();
      const r = await s.updateIfModRevision('/in-doubt/taken', 'mine', 0n);
      assert.equal(r.ok, false);
      assert.equal((await direct.get('/in-doubt/taken'))?.value.toString(), 'theirs');
    });
  });
});
