// The store client's API against real etcd and the embedded store, and its failover across the members of a 3-member etcd.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { openStore, StoreCompactedError, type Store, type WatchEvent } from '../../../src/store/client.js';
import { TrustplaneError } from '../../../src/util/errors.js';
import { waitFor } from '../../../src/util/wait.js';
import { startEtcdCluster, withDeadline, type EtcdCluster } from '../../helpers/etcd-cluster.js';
import { rawClient } from '../conformance/raw.js';
import { startEmbeddedTarget, startEtcdTarget, type StoreTarget } from '../conformance/targets.js';

async function rejectsWith(p: Promise<unknown>, reason: string, message?: RegExp): Promise<TrustplaneError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof TrustplaneError, `expected a TrustplaneError, got ${e}`);
    assert.equal(e.reason, reason, e.message);
    if (message) assert.match(e.message, message);
    return e;
  }
  assert.fail(`expected a ${reason} error`);
}

function clientSuite(name: string, start: () => Promise<StoreTarget>) {
  describe(`store client: ${name}`, { concurrency: 1 }, () => {
    let target: StoreTarget;
    let store: Store;
    const p = `/client-test/${randomBytes(3).toString('hex')}/`;

    before(async () => {
      target = await start();
      store = await openStore({ endpoints: target.endpoints, tls: target.tls, timeoutMs: 5000 });
    });
    after(async () => {
      await store?.close();
      await target?.stop();
    });

    test('put, get, getPrefix, delete, deletePrefix: revisions as bigint, values as bytes', async () => {
      const w1 = await store.put(p + 'kv/a', 'one');
      assert.equal(typeof w1.revision, 'bigint');
      const a = await store.get(p + 'kv/a');
      assert.ok(a);
      assert.deepEqual({ ...a, value: a.value.toString() }, { key: p + 'kv/a', value: 'one', createRevision: w1.revision, modRevision: w1.revision, version: 1n, lease: '0' });
      const w2 = await store.put(p + 'kv/a', Buffer.from([0, 1, 2]), { prevKv: true });
      assert.equal(w2.revision, w1.revision + 1n);
      assert.equal(w2.prevKv?.value.toString(), 'one');
      assert.deepEqual((await store.get(p + 'kv/a'))?.value, Buffer.from([0, 1, 2]));
      assert.equal(await store.get(p + 'kv/missing'), null);

      for (const k of ['b', 'c', 'd']) await store.put(p + 'kv/' + k, k);
      const page = await store.getPrefix(p + 'kv/', { limit: 2 });
      assert.deepEqual({ keys: page.kvs.map((kv) => kv.key), more: page.more, count: page.count }, { keys: [p + 'kv/a', p + 'kv/b'], more: true, count: 4 });
      const old = await store.getPrefix(p + 'kv/', { revision: w1.revision });
      assert.deepEqual(old.kvs.map((kv) => kv.value.toString()), ['one']);

      const d = await store.delete(p + 'kv/a');
      assert.deepEqual(d, { deleted: 1, revision: d.revision });
      assert.equal((await store.delete(p + 'kv/a')).deleted, 0);
      const dp = await store.deletePrefix(p + 'kv/');
      assert.equal(dp.deleted, 3);
      assert.equal((await store.getPrefix(p + 'kv/')).count, 0);
    });

    test('compare-and-swap: createIfAbsent, updateIfModRevision, deleteIfModRevision', async () => {
      const k = p + 'cas/k';
      assert.equal(await store.createIfAbsent(k, 'first'), true);
      assert.equal(await store.createIfAbsent(k, 'second'), false);
      const cur = (await store.get(k))!;
      assert.equal(cur.value.toString(), 'first');

      const stale = await store.updateIfModRevision(k, 'x', cur.modRevision - 1n);
      assert.deepEqual(stale, { ok: false, modRevision: cur.modRevision });
      const ok = await store.updateIfModRevision(k, 'updated', cur.modRevision);
      assert.equal(ok.ok, true);
      assert.ok(ok.modRevision > cur.modRevision);
      assert.equal((await store.get(k))?.modRevision, ok.modRevision);

      assert.deepEqual(await store.deleteIfModRevision(k, cur.modRevision), { ok: false, modRevision: ok.modRevision });
      assert.equal((await store.deleteIfModRevision(k, ok.modRevision)).ok, true);
      assert.equal(await store.get(k), null);
      assert.deepEqual(await store.updateIfModRevision(k, 'y', 5n), { ok: false, modRevision: 0n }, 'a conflict on a missing key reports 0n');
      assert.equal((await store.updateIfModRevision(k, 'created', 0n)).ok, true, 'mod revision 0n means "only if absent"');

      // Concurrent increments: every one lands exactly once.
      const counter = p + 'cas/counter';
      await store.put(counter, '0');
      const increment = async () => {
        for (;;) {
          const kv = (await store.get(counter))!;
          const r = await store.updateIfModRevision(counter, String(Number(kv.value.toString()) + 1), kv.modRevision);
          if (r.ok) return;
        }
      };
      await Promise.all(Array.from({ length: 20 }, increment));
      assert.equal((await store.get(counter))?.value.toString(), '20');
    });

    test('watchPrefix: order, types, prevKv, start revision, cancel', async () => {
      const wp = p + 'watch/';
      const start = (await store.put(wp + 'a', '1')).revision;
      await store.put(wp + 'a', '2');
      const seen: WatchEvent[] = [];
      const w = await store.watchPrefix(wp, { startRevision: start, prevKv: true }, (ev) => seen.push(ev));
      await store.delete(wp + 'a');
      await store.put(wp + 'b', '3');
      await store.put(p + 'elsewhere', 'x');
      await waitFor('four watch events', () => seen.length >= 4 || undefined, 5000);
      assert.deepEqual(
        seen.map((e) => ({ type: e.type, key: e.key, value: e.value.toString(), rev: e.revision - start, prev: e.prevKv?.value.toString() ?? null })),
        [
          { type: 'put', key: wp + 'a', value: '1', rev: 0n, prev: null },
          { type: 'put', key: wp + 'a', value: '2', rev: 1n, prev: '1' },
          { type: 'delete', key: wp + 'a', value: '', rev: 2n, prev: '2' },
          { type: 'put', key: wp + 'b', value: '3', rev: 3n, prev: null },
        ],
      );
      assert.equal(w.nextRevision(), start + 4n);
      await w.cancel();
      assert.equal(await w.ended, null);
      await store.put(wp + 'c', 'after cancel');
      // A second watch sees the put, so the first had its chance to (wrongly) see it too.
      const later: WatchEvent[] = [];
      const w2 = await store.watchPrefix(wp, { startRevision: start + 4n }, (ev) => later.push(ev));
      await waitFor('the replayed put', () => later.length >= 1 || undefined, 5000);
      await w2.cancel();
      assert.equal(seen.length, 4, 'no event after cancel');
    });

    test('watchPrefix from a compacted revision ends with StoreCompactedError', async () => {
      const k = p + 'compact/k';
      const r1 = (await store.put(k, '1')).revision;
      const r2 = (await store.put(k, '2')).revision;
      const raw = rawClient(target.endpoints[0], target.tls);
      try {
        await raw.compact({ revision: r2.toString(), physical: true });
      } finally {
        raw.close();
      }
      const w = await store.watchPrefix(p + 'compact/', { startRevision: r1 }, () => assert.fail('no event expected'));
      const err = await w.ended;
      assert.ok(err instanceof StoreCompactedError, String(err));
      assert.equal(err.reason, 'Conflict');
      assert.equal(err.compactRevision, r2);
      assert.match(err.message, new RegExp(target.endpoints[0].replace(/[.:/]/g, '\\$&')));
      await rejectsWith(store.getPrefix(p + 'compact/', { revision: r1 }), 'Conflict', /compacted/);
    });

    test('leases: grant, attach, keepAlive holds past the TTL, stop lets it expire, revoke', async () => {
      const lease = await store.grantLease(2);
      assert.match(lease.id, /^[1-9]\d*$/);
      assert.equal(lease.ttl, 2);
      await store.put(p + 'lease/k', 'v', { lease: lease.id });
      assert.equal((await store.get(p + 'lease/k'))?.lease, lease.id);
      const ttl = await store.leaseTimeToLive(lease.id);
      assert.deepEqual({ granted: ttl?.grantedTtl, keys: ttl?.keys }, { granted: 2, keys: [p + 'lease/k'] });

      const deletes: WatchEvent[] = [];
      const w = await store.watchPrefix(p + 'lease/', {}, (ev) => ev.type === 'delete' && deletes.push(ev));
      const keeper = await store.keepAlive(lease.id);
      const heldSince = Date.now();
      // Held for well past the 2 s TTL: the key must still be there.
      await waitFor('3 s of renewals', () => Date.now() - heldSince > 3000 || undefined, 10_000, 100);
      assert.ok(await store.get(p + 'lease/k'), 'a kept-alive lease keeps its key');
      assert.equal(deletes.length, 0);
      keeper.stop();
      assert.equal(await keeper.lost, null);
      await waitFor('the lease to expire and delete its key', () => deletes.length >= 1 || undefined, 10_000);
      assert.equal(deletes[0].key, p + 'lease/k');
      assert.equal(await store.leaseTimeToLive(lease.id), null);
      await rejectsWith(store.keepAliveOnce(lease.id), 'NotFound', /expired or was revoked/);
      await w.cancel();

      // A short TTL, so that the keeper's next renewal (every TTL/3) comes soon after the revoke.
      const l2 = await store.grantLease(2);
      await store.put(p + 'lease/r', 'v', { lease: l2.id });
      const k2 = await store.keepAlive(l2.id);
      await store.revokeLease(l2.id);
      await store.revokeLease(l2.id); // already gone: not an error
      assert.equal(await store.get(p + 'lease/r'), null);
      const lost = await k2.lost;
      assert.ok(lost instanceof TrustplaneError && lost.reason === 'NotFound', `keeper of a revoked lease reports it lost: ${lost}`);
      await rejectsWith(store.put(p + 'lease/x', 'v', { lease: l2.id }), 'NotFound', /requested lease not found/);
    });

    test('errors name the endpoint and map to a reason', async () => {
      await rejectsWith(store.put('', 'v'), 'BadRequest', /empty/);
      const big = await rejectsWith(store.put(p + 'big', Buffer.alloc(1.5 * 1024 * 1024 + 10)), 'RequestEntityTooLarge');
      assert.ok(big.message.includes(target.endpoints[0]), big.message);
      await rejectsWith(store.grantLease(0), 'BadRequest');
      const st = await store.status();
      assert.equal(st.length, 1);
      assert.equal(st[0].endpoint, target.endpoints[0]);
      assert.match(st[0].version ?? '', /^3\.\d+\.\d+/);
      assert.equal(typeof st[0].revision, 'bigint');
    });
  });
}

clientSuite('etcd 3.4', startEtcdTarget);
clientSuite('embedded store', startEmbeddedTarget);

describe('store client: failover', { concurrency: 1 }, () => {
  let cluster: EtcdCluster;
  before(async () => {
    cluster = await startEtcdCluster({ members: 3 });
  });
  after(async () => {
    await cluster?.stop();
  });

  test('no endpoint answers: Unavailable naming every endpoint, within the timeout', async () => {
    const dead = ['https://127.0.0.1:1', 'https://127.0.0.1:2'];
    const s = await openStore({ endpoints: dead, tls: cluster.tls, timeoutMs: 1500 });
    try {
      // Bounded, not measured: a client that never gave up would miss this deadline (ten times its timeout).
      const e = await withDeadline(rejectsWith(s.get('/x'), 'Unavailable'), 15_000, 'the client did not give up on the dead endpoints');
      for (const d of dead) assert.ok(e.message.includes(d), e.message);
      assert.ok(e.hint);
      const st = await s.status();
      assert.ok(st.every((x) => x.error), 'status reports each dead endpoint');
    } finally {
      await s.close();
    }
  });

  test('a dead endpoint first in the list is passed over', async () => {
    const s = await openStore({ endpoints: ['https://127.0.0.1:1', ...cluster.endpoints], tls: cluster.tls, timeoutMs: 5000 });
    try {
      await s.put('/failover/first-dead', 'ok');
      assert.equal((await s.get('/failover/first-dead'))?.value.toString(), 'ok');
    } finally {
      await s.close();
    }
  });

  test('a member dies: calls, the watch and the lease keeper go on through the others', async () => {
    const s = await openStore({ endpoints: cluster.endpoints, tls: cluster.tls, timeoutMs: 10_000 });
    try {
      const p = '/failover/live/';
      const seen: WatchEvent[] = [];
      // The client prefers the first endpoint, so the watch stream and the keeper run on member 0.
      const w = await s.watchPrefix(p, {}, (ev) => seen.push(ev));
      // 5 s: a 2 s TTL can run out under load while the client fails over and the cluster elects a new leader.
      const lease = await s.grantLease(5);
      const keeper = await s.keepAlive(lease.id);
      await s.put(p + 'leased', 'v', { lease: lease.id });
      for (let i = 0; i < 20; i++) await s.put(`${p}${String(i).padStart(3, '0')}`, 'before');
      await cluster.killMember(0);
      for (let i = 20; i < 40; i++) await s.put(`${p}${String(i).padStart(3, '0')}`, 'after');
      await waitFor('41 watch events after the failover', () => seen.length >= 41 || undefined, 15_000);
      const revs = seen.map((e) => e.revision);
      assert.deepEqual(revs, [...revs].sort((a, b) => (a < b ? -1 : 1)), 'events in revision order');
      assert.equal(new Set(revs).size, revs.length, 'no event delivered twice');
      assert.equal(seen.length, 41);
      assert.ok(w.nextRevision()! > revs[revs.length - 1]);
      // The lease outlives more than a TTL's worth of renewals through the surviving members.
      const t0 = Date.now();
      await waitFor('renewals past the TTL', () => Date.now() - t0 > 6000 || undefined, 15_000, 100);
      assert.ok(await s.get(p + 'leased'), 'the kept-alive key survives the failover');
      const st = await s.status();
      assert.ok(st[0].error, 'the dead member shows in status');
      assert.ok(st[1].version && st[2].version);
      keeper.stop();
      await w.cancel();
      // Member 0 stays down: this is the last use of the cluster, and after() stops what is left.
    } finally {
      await s.close();
    }
  });
});
