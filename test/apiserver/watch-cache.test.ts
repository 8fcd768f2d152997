// The shared watch cache (one store watch per resource for every watcher of a registry), the bootstrap token cache, and
// controller writes that start from the object they last read.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createBootstrapToken, CsrRegistry, deleteBootstrapToken, type CertificateSigningRequest, type ObjectEvent } from '../../src/apiserver/index.js';
import { BootstrapTokenCache } from '../../src/apiserver/auth/bootstrap-token-cache.js';
import { authenticateBootstrapToken } from '../../src/apiserver/auth/bootstrap-tokens.js';
import type { Store } from '../../src/store/client.js';
import { waitFor } from '../../src/util/wait.js';
import { opensslCsr } from '../helpers/openssl.js';
import { csrManifest, startTestCluster, type TestCluster } from './harness.js';

const ADMIN = { name: 'admin', groups: ['system:masters'] };

/** The store, counting the watches opened through it. */
function counting(store: Store): { store: Store; watches: () => number } {
  let n = 0;
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'watchPrefix') return (...a: Parameters<Store['watchPrefix']>) => (n++, target.watchPrefix(...a));
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { store: proxy, watches: () => n };
}

describe('watch cache', () => {
  let c: TestCluster;
  let pem: string;

  before(async () => {
    c = await startTestCluster();
    pem = opensslCsr(c.dir, 'wc', { subj: '/CN=system:node:wc/O=system:nodes' });
  });
  after(() => c?.stop());

  const manifest = (name: string) => csrManifest(name, pem) as unknown as CertificateSigningRequest;

  it('watchers from recent revisions share one store watch and each sees exactly the changes after its revision, in order', async () => {
    const s = counting(c.store);
    const csrs = new CsrRegistry(s.store);
    const first = await csrs.create(manifest('wc-0'), ADMIN);
    const seen: Array<{ from: bigint; events: ObjectEvent<CertificateSigningRequest>[] }> = [];
    const watches = [];
    const start = BigInt(first.metadata.resourceVersion!);
    watches.push(await csrs.watch(start - 1n, (ev) => seen[0].events.push(ev)));
    seen.push({ from: start - 1n, events: [] });
    for (let i = 1; i <= 5; i++) {
      const created = await csrs.create(manifest(`wc-${i}`), ADMIN);
      const from = BigInt(created.metadata.resourceVersion!) - (i % 2 === 0 ? 1n : 0n);
      const entry = { from, events: [] as ObjectEvent<CertificateSigningRequest>[] };
      seen.push(entry);
      watches.push(await csrs.watch(from, (ev) => entry.events.push(ev)));
    }
    const approved = await csrs.decide('wc-3', 'Approved', 'AutoApproved', 'test');
    const last = BigInt(approved.metadata.resourceVersion!);
    try {
      await waitFor('every watcher to reach the approval', () => seen.every((e) => e.events.at(-1)?.revision === last) || undefined, 10_000);
      assert.equal(s.watches(), 1, 'one store watch for all of them');
      for (const { from, events } of seen) {
        const revs = events.map((e) => e.revision);
        assert.ok(revs.every((r) => r > from), `only changes after ${from}`);
        assert.deepEqual(revs, [...revs].sort((a, b) => (a < b ? -1 : 1)), 'in store order');
        assert.equal(new Set(revs).size, revs.length, 'each change once');
      }
      assert.deepEqual(seen[0].events.map((e) => `${e.type} ${e.object.metadata.name}`), [
        'ADDED wc-0', 'ADDED wc-1', 'ADDED wc-2', 'ADDED wc-3', 'ADDED wc-4', 'ADDED wc-5', 'MODIFIED wc-3',
      ]);
    } finally {
      for (const w of watches) await w.cancel();
    }
  });

  it('a watch from before what the cache holds goes to the store and still gets every change', async () => {
    const csrs = new CsrRegistry(c.store);
    const a = await csrs.create(manifest('old-a'), ADMIN);
    const live = await csrs.watch(BigInt(a.metadata.resourceVersion!), () => {});
    try {
      const b = await csrs.create(manifest('old-b'), ADMIN);
      const events: ObjectEvent<CertificateSigningRequest>[] = [];
      const w = await csrs.watch(BigInt(a.metadata.resourceVersion!) - 1n, (ev) => events.push(ev));
      await waitFor('both creations', () => events.length >= 2 || undefined, 10_000);
      assert.deepEqual(events.map((e) => e.object.metadata.name).slice(0, 2), ['old-a', 'old-b']);
      assert.equal(events[1].revision.toString(), b.metadata.resourceVersion);
      await w.cancel();
    } finally {
      await live.cancel();
    }
  });

  it('a watcher whose handler throws ends alone; the others go on', async () => {
    const csrs = new CsrRegistry(c.store);
    const a = await csrs.create(manifest('thr-a'), ADMIN);
    const from = BigInt(a.metadata.resourceVersion!);
    const bad = await csrs.watch(from, () => {
      throw new Error('boom');
    });
    const names: string[] = [];
    const good = await csrs.watch(from, (ev) => names.push(ev.object.metadata.name));
    try {
      await csrs.create(manifest('thr-b'), ADMIN);
      const why = await bad.ended;
      assert.match(String(why?.message), /handler failed: boom/);
      await csrs.create(manifest('thr-c'), ADMIN);
      await waitFor('the good watcher to see both', () => names.length >= 2 || undefined, 10_000);
      assert.deepEqual(names, ['thr-b', 'thr-c']);
    } finally {
      await good.cancel();
    }
  });

  it('a write from a stale object the caller read reads it again instead of failing', async () => {
    const csrs = new CsrRegistry(c.store);
    const created = await csrs.create(manifest('stale'), ADMIN);
    const labelled = await csrs.update({ ...created, metadata: { ...created.metadata, labels: { a: '1' } } });
    // No resourceVersion precondition: the approval goes onto the newer object.
    const approved = await csrs.decide('stale', 'Approved', 'AutoApproved', 'test', {}, created);
    assert.equal(approved.metadata.labels?.a, '1');
    assert.ok(BigInt(approved.metadata.resourceVersion!) > BigInt(labelled.metadata.resourceVersion!));
    // With one, the stale object is a conflict, as it always was.
    await assert.rejects(csrs.fail('stale', 'X', 'y', { resourceVersion: created.metadata.resourceVersion }, created), /the object has been modified/);
  });
});

describe('bootstrap token cache', () => {
  let c: TestCluster;
  before(async () => {
    c = await startTestCluster();
  });
  after(() => c?.stop());

  it('a new token works at once, a deleted one stops working, without a store read per request once synced', async () => {
    const cache = new BootstrapTokenCache(c.store);
    try {
      const t1 = await createBootstrapToken(c.store, { pool: 'p', ttlSeconds: 600 });
      assert.ok(await authenticateBootstrapToken(cache, t1.token));
      const t2 = await createBootstrapToken(c.store, { pool: 'p', ttlSeconds: 600 });
      assert.ok(await authenticateBootstrapToken(cache, t2.token), 'created after the cache started');
      assert.equal(await authenticateBootstrapToken(cache, `${t2.id}.${'a'.repeat(16)}`), null);
      await deleteBootstrapToken(c.store, t1.id);
      await waitFor('the deleted token to be refused', async () => ((await authenticateBootstrapToken(cache, t1.token)) === null ? true : undefined), 10_000);
    } finally {
      cache.stop();
    }
  });
});
