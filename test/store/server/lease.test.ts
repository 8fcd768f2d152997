// Leases on the store server: grant, attach, keep-alive, time-to-live, revoke, expiry by the injected clock, restart.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { ManualClock, type Clock } from '../../../src/util/clock.js';
import { waitFor } from '../../../src/util/wait.js';
import { b, prefixEnd, removeDir, startTestStore, str, type Msg, type TestStore } from './helpers.js';

describe('store server Lease', () => {
  const clock = new ManualClock(Date.parse('2030-01-01T00:00:00Z'));
  // The server's view of the test's clock, counting its reads: the expiry check reads it every 20 ms (leaseCheckMs), so
  // many reads after a move mean the check has looked at the moved clock.
  let serverReads = 0;
  const serverClock: Clock = { now: () => (serverReads++, clock.now()) };
  let t: TestStore;
  before(async () => {
    t = await startTestStore({ clock: serverClock });
  });
  after(async () => {
    await t.close();
    removeDir(t.dir);
  });

  const grant = (req: Msg) => t.client.call('Lease', 'LeaseGrant', req);
  const ttl = (ID: string, keys = false) => t.client.call('Lease', 'LeaseTimeToLive', { ID, keys });

  it('grants with a chosen or given ID, a minimum TTL, and refuses duplicates and huge TTLs', async () => {
    const g = await grant({ TTL: 30 });
    assert.ok(BigInt(g.ID) > 0n);
    assert.equal(g.TTL, '30');
    const given = await grant({ ID: '7205759403792793600', TTL: 1 });
    assert.equal(given.ID, '7205759403792793600');
    assert.equal(given.TTL, '2', 'TTLs below the minimum are raised to it');
    assert.deepEqual(await t.client.error(grant({ ID: '7205759403792793600', TTL: 10 })), {
      code: status.FAILED_PRECONDITION,
      details: 'etcdserver: lease already exists',
    });
    assert.deepEqual(await t.client.error(grant({ TTL: 9_000_000_001 })), { code: status.OUT_OF_RANGE, details: 'etcdserver: too large lease TTL' });
    const list = await t.client.call('Lease', 'LeaseLeases', {});
    const ids = list.leases.map((l: Msg) => l.ID);
    assert.ok(ids.includes(g.ID) && ids.includes(given.ID));
  });

  it('time-to-live reports remaining and granted TTL and the attached keys; unknown leases answer -1', async () => {
    const g = await grant({ TTL: 60 });
    await t.client.put({ key: b('tl/b'), value: b('1'), lease: g.ID });
    await t.client.put({ key: b('tl/a'), value: b('2'), lease: g.ID });
    clock.advance(10_500);
    const r = await ttl(g.ID, true);
    assert.equal(r.TTL, '49');
    assert.equal(r.grantedTTL, '60');
    assert.deepEqual(r.keys.map(str), ['tl/a', 'tl/b']);
    // Moving a key to no lease detaches it.
    await t.client.put({ key: b('tl/b'), value: b('3') });
    assert.deepEqual((await ttl(g.ID, true)).keys.map(str), ['tl/a']);
    const unknown = await ttl('12345');
    assert.equal(unknown.TTL, '-1');
  });

  it('keep-alive renews to the full TTL; unknown leases get TTL 0', async () => {
    const g = await grant({ TTL: 20 });
    clock.advance(15_000);
    const ka = t.client.keepAlive();
    ka.send({ ID: g.ID });
    const r = await ka.next();
    assert.equal(r.ID, g.ID);
    assert.equal(r.TTL, '20');
    assert.equal((await ttl(g.ID)).TTL, '20');
    ka.send({ ID: '999' });
    const none = await ka.next();
    assert.equal(none.TTL, '0');
    ka.close();
  });

  it('revoke deletes every attached key in one revision; unknown leases are NotFound', async () => {
    const g = await grant({ TTL: 60 });
    for (const k of ['rv/1', 'rv/2', 'rv/3']) await t.client.put({ key: b(k), value: b(k), lease: g.ID });
    const w = t.client.watch();
    w.send({ create_request: { key: b('rv/'), range_end: prefixEnd('rv/') } });
    await w.next();
    const before = Number((await t.client.range({ key: b('rv/1') })).header.revision);
    const r = await t.client.call('Lease', 'LeaseRevoke', { ID: g.ID });
    assert.equal(r.header.revision, String(before + 1));
    const ev = await w.next();
    assert.deepEqual(ev.events.map((e: Msg) => `${e.type} ${str(e.kv.key)} ${e.kv.mod_revision}`), [
      `DELETE rv/1 ${before + 1}`,
      `DELETE rv/2 ${before + 1}`,
      `DELETE rv/3 ${before + 1}`,
    ]);
    assert.equal((await t.client.range({ key: b('rv/'), range_end: prefixEnd('rv/'), count_only: true })).count, '0');
    assert.equal((await ttl(g.ID)).TTL, '-1');
    assert.deepEqual(await t.client.error(t.client.call('Lease', 'LeaseRevoke', { ID: g.ID })), {
      code: status.NOT_FOUND,
      details: 'etcdserver: requested lease not found',
    });
    w.close();
  });

  it('expiry by the clock deletes the keys; a lease without keys expires without a revision', async () => {
    const g = await grant({ TTL: 5 });
    const empty = await grant({ TTL: 5 });
    await t.client.put({ key: b('ex/k'), value: b('v'), lease: g.ID });
    const rev = Number((await t.client.range({ key: b('ex/k') })).header.revision);
    clock.advance(4_000);
    const readsBefore = serverReads;
    await waitFor('the expiry check to look at the moved clock', () => serverReads - readsBefore >= 10, 5000, 10);
    const still = await t.client.range({ key: b('ex/k') });
    assert.equal(still.kvs.length, 1, 'not expired before its TTL');
    assert.equal(still.header.revision, String(rev), 'no revoke happened');
    assert.equal((await ttl(empty.ID)).TTL, '1', 'the empty lease is still there too');
    clock.advance(1_500);
    await waitFor('lease expiry', async () => (await t.client.range({ key: b('ex/k') })).kvs.length === 0, 5000, 20);
    await waitFor('empty lease expiry', async () => (await ttl(empty.ID)).TTL === '-1', 5000, 20);
    assert.equal((await ttl(g.ID)).TTL, '-1');
    assert.equal((await t.client.range({ key: b('ex/k') })).header.revision, String(rev + 1));
  });
});

describe('store server Lease across a restart', () => {
  it('leases and their keys survive; each lease gets a full TTL from the restart', async () => {
    const clock = new ManualClock(Date.parse('2030-01-01T00:00:00Z'));
    const first = await startTestStore({ clock });
    const g = await first.client.call('Lease', 'LeaseGrant', { TTL: 10 });
    await first.client.put({ key: b('rs/k'), value: b('v'), lease: g.ID });
    clock.advance(8_000);
    await first.close();
    // Down far longer than the TTL: etcd's promotion semantics give the holder one TTL to come back.
    clock.advance(60_000);
    const second = await startTestStore({ clock, pki: first.pki, dir: first.dir });
    try {
      const r = await second.client.call('Lease', 'LeaseTimeToLive', { ID: g.ID, keys: true });
      assert.equal(r.TTL, '10');
      assert.deepEqual(r.keys.map(str), ['rs/k']);
      clock.advance(10_500);
      await waitFor('expiry after restart', async () => (await second.client.range({ key: b('rs/k') })).kvs.length === 0, 5000, 20);
    } finally {
      await second.close();
      removeDir(first.dir);
    }
  });
});
