// The store's etcd v3 endpoint records its clients (observed clients), on this thread and from the store thread: the
// certificate's user and issuing CA key, server kind etcd, the source address; etcdctl is the client.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseCertificate } from '../../../src/pki/index.js';
import { startStoreServerThread } from '../../../src/store/server-thread.js';
import { etcdctl, makePki, removeDir, startTestStore, tempDir, type TestStore } from './helpers.js';

describe('store server: observed clients', () => {
  const dirs: string[] = [];
  const closers: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of closers) await c();
    for (const d of dirs) removeDir(d);
  });

  it('records the etcdctl client with the key id of the CA that issued its certificate', async () => {
    const s: TestStore = await startTestStore();
    dirs.push(s.dir);
    closers.push(() => s.close());
    const r = await s.etcdctl(['put', '/k', 'v']);
    assert.equal(r.code, 0, r.stderr);
    const seen = (await s.server.observedClients()).filter((c) => c.user === 'root');
    assert.equal(seen.length, 1, JSON.stringify(seen));
    const ski = parseCertificate(s.pki.ca.cert).subjectKeyId?.toString('hex');
    assert.ok(ski, 'the test CA has a subject key id');
    assert.deepEqual({ ...seen[0], lastSeenMs: 0 }, { user: 'root', groups: [], issuerKeyId: ski, server: 'etcd', lastSeenMs: 0, address: '127.0.0.1' });
  });

  it('from the store thread: the host asks and the thread answers its record', async () => {
    const pki = makePki();
    const dir = tempDir();
    dirs.push(dir);
    const server = await startStoreServerThread({ dbPath: join(dir, 'state.db'), tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert } });
    closers.push(() => server.close());
    assert.deepEqual(await server.observedClients(), []);
    const r = await etcdctl(server.endpoint, pki, ['get', '/k']);
    assert.equal(r.code, 0, r.stderr);
    const users = (await server.observedClients()).map((c) => `${c.user}/${c.server}`);
    assert.deepEqual(users, ['root/etcd']);
    await server.close();
    assert.deepEqual(await server.observedClients(), [], 'a closed thread answers an empty record rather than never');
  });
});
