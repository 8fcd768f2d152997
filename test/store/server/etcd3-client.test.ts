// The npm etcd3 client against the store server: KV, leases with keep-alive, locks, elections, watches.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { ManualClock, type Clock } from '../../../src/util/clock.js';
import { waitFor } from '../../../src/util/wait.js';
import { removeDir, startTestStore, type TestStore } from './helpers.js';

describe('store server with the etcd3 npm client', () => {
  // The store runs on a clock the test moves; its reads are counted: the lease expiry check reads it every 20 ms.
  const clock = new ManualClock(Date.now());
  let serverReads = 0;
  const serverClock: Clock = { now: () => (serverReads++, clock.now()) };
  let t: TestStore;
  let client: Etcd3;
  before(async () => {
    t = await startTestStore({ clock: serverClock });
    client = new Etcd3({
      hosts: t.server.endpoint,
      credentials: { rootCertificate: Buffer.from(t.pki.ca.cert), certChain: Buffer.from(t.pki.client.cert), privateKey: Buffer.from(t.pki.client.key) },
    });
  });
  after(async () => {
    client.close();
    await t.close();
    removeDir(t.dir);
  });

  it('puts, gets, lists by prefix and deletes', async () => {
    await client.put('n/a').value('1');
    await client.put('n/b').value('2');
    assert.equal(await client.get('n/a').string(), '1');
    assert.deepEqual(await client.getAll().prefix('n/').strings(), { 'n/a': '1', 'n/b': '2' });
    assert.equal(await client.getAll().prefix('n/').count(), 2);
    await client.delete().prefix('n/');
    assert.equal(await client.get('n/a').string(), null);
  });

  it('a lease keeps its key while kept alive and drops it when revoked', async () => {
    const lease = client.lease(2);
    let renewals = 0;
    lease.on('keepaliveSucceeded', () => renewals++);
    await lease.put('n/leased').value('v');
    // etcd3 renews by itself (every TTL/3). After each renewal the store's clock moves 1.5 s: three of them take it
    // 4.5 s past the grant, more than twice the TTL, so only the renewals can have kept the key.
    for (let i = 1; i <= 3; i++) {
      await waitFor(`etcd3's renewal ${i}`, () => renewals >= i, 10_000, 10);
      clock.advance(1500);
    }
    const readsBefore = serverReads;
    await waitFor('the expiry check to look at the moved clock', () => serverReads - readsBefore >= 10, 5000, 10);
    assert.equal(await client.get('n/leased').string(), 'v');
    await lease.revoke();
    assert.equal(await client.get('n/leased').string(), null);
  });

  it('a held lock refuses a second holder until released (etcd3 locks do not wait)', async () => {
    const first = client.lock('n/lock');
    await first.acquire();
    await assert.rejects(client.lock('n/lock').acquire(), /Failed to acquire a lock/);
    await first.release();
    const second = client.lock('n/lock');
    await second.acquire();
    await second.release();
  });

  it('elections pick the first campaigner and hand over on resign', async () => {
    const election = client.election('n/election');
    const first = election.campaign('node-1');
    await new Promise<void>((resolve, reject) => {
      first.on('elected', () => resolve());
      first.on('error', reject);
    });
    assert.equal(await election.leader(), 'node-1');
    const second = election.campaign('node-2');
    const secondElected = new Promise<void>((resolve) => second.on('elected', () => resolve()));
    await first.resign();
    await secondElected;
    assert.equal(await election.leader(), 'node-2');
    await second.resign();
  });

  it('watches see puts and deletes', async () => {
    const watcher = await client.watch().prefix('n/w/').create();
    const seen: string[] = [];
    const done = new Promise<void>((resolve) => {
      watcher.on('put', (kv) => seen.push(`put ${kv.key.toString()}`));
      watcher.on('delete', (kv) => {
        seen.push(`delete ${kv.key.toString()}`);
        resolve();
      });
    });
    await client.put('n/w/x').value('1');
    await client.delete().key('n/w/x');
    await done;
    assert.deepEqual(seen, ['put n/w/x', 'delete n/w/x']);
    await watcher.cancel();
  });
});
