// The signer's record of node credentials, written from what it last stored: one store call per write while nobody
// else writes the record, and a write by someone else (a revocation) is read and kept, never overwritten.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { getNodeCredential, NodeCredentialCache, putNodeCredential, recordNodeCredential } from '../../src/controllers/node-credentials.js';
import { openStore, type Store } from '../../src/store/client.js';
import { startEmbeddedTarget, type StoreTarget } from '../store/conformance/targets.js';

let target: StoreTarget;
let store: Store;
before(async () => {
  target = await startEmbeddedTarget();
  store = await openStore({ endpoints: target.endpoints, tls: target.tls });
});
after(async () => {
  await store?.close();
  await target?.stop();
});

/** The store, counting reads and compare-and-swaps. */
function counting(s: Store) {
  const calls = { get: 0, cas: 0 };
  const wrapped = Object.create(s) as Store;
  wrapped.get = (k) => (calls.get++, s.get(k));
  wrapped.updateIfModRevision = (k, v, r, o) => (calls.cas++, s.updateIfModRevision(k, v, r, o));
  return { store: wrapped, calls };
}

const now = new Date('2026-11-29T00:00:00Z');
const entry = (serial: string, days: number) => ({ serial, notAfter: new Date(now.getTime() + days * 86400_000).toISOString(), generation: 1, issuedAt: now.toISOString(), csr: `csr-${serial}` });

test('one compare-and-swap per write while the signer is the only writer; a revocation by another is kept', async () => {
  const cache = new NodeCredentialCache();
  const { store: s, calls } = counting(store);
  await recordNodeCredential(s, 'n1', entry('01', 30), now, cache);
  assert.deepEqual(calls, { get: 0, cas: 1 }, "a node's first record: no read");
  await recordNodeCredential(s, 'n1', entry('02', 60), now, cache);
  assert.deepEqual(calls, { get: 0, cas: 2 }, 'a renewal: no read');

  // Someone else (revocation) changes the record: the signer's swap conflicts, it reads, and keeps the revocation.
  const cur = (await getNodeCredential(store, 'n1'))!;
  await putNodeCredential(store, { ...cur.record, revokedAt: now.toISOString() }, cur.modRevision);
  await recordNodeCredential(s, 'n1', entry('03', 90), now, cache);
  assert.deepEqual(calls, { get: 1, cas: 4 });
  const rec = (await getNodeCredential(store, 'n1'))!.record;
  assert.equal(rec.serial, '03');
  assert.deepEqual(rec.earlier?.map((e) => [e.serial, !!e.revokedAt]), [['02', true], ['01', false]]);

  // A record this signer never wrote (written before a restart): the guess of no record conflicts, then read and merged.
  await putNodeCredential(store, { node: 'n2', ...entry('10', 30) });
  const fresh = new NodeCredentialCache();
  await recordNodeCredential(s, 'n2', entry('11', 60), now, fresh);
  assert.deepEqual((await getNodeCredential(store, 'n2'))!.record.earlier?.map((e) => e.serial), ['10']);
});
