// Which etcd members hold back the completion of an etcd CA rotation: those behind on the new generation (their
// certificate or the trust their running etcd loaded), those no `trustplane store member` reports for, and those that
// do not answer.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { MEMBER_REPORTS, memberLaggards, type MemberReport } from '../../src/fleet/etcd-members.js';
import { openStore, type Store } from '../../src/store/client.js';
import { startEmbeddedTarget, type StoreTarget } from '../store/conformance/targets.js';

let target: StoreTarget;
let store: Store;
let withDead: Store;
before(async () => {
  target = await startEmbeddedTarget();
  store = await openStore({ endpoints: target.endpoints, tls: target.tls });
  withDead = await openStore({ endpoints: [...target.endpoints, 'https://127.0.0.1:1'], tls: target.tls, timeoutMs: 1000 });
});
after(async () => {
  await store?.close();
  await withDead?.close();
  await target?.stop();
});

const report = (memberId: string, cert: number, trusts: number[]): MemberReport => ({
  member: 'm0',
  memberId,
  clientUrl: target.endpoints[0],
  pid: 1,
  startedAt: new Date().toISOString(),
  certificates: { 'etcd-api': cert, 'etcd-peer': 1 },
  trusts: { 'etcd-api': trusts, 'etcd-peer': [1] },
});

test('members behind, unreported or not answering hold the rotation back; moved ones do not', async () => {
  const [own] = await store.status();
  assert.ok(own.memberId, 'the store reports a member id');
  assert.deepEqual(await memberLaggards(store, 'etcd-api', 2), [`${target.endpoints[0]} (no report: not run by \`trustplane store member\`)`]);

  await store.put(MEMBER_REPORTS + 'm0', JSON.stringify(report(own.memberId!, 2, [1])));
  assert.deepEqual(await memberLaggards(store, 'etcd-api', 2), ['m0'], 'a new certificate, but the running etcd does not trust generation 2 yet');
  await store.put(MEMBER_REPORTS + 'm0', JSON.stringify(report(own.memberId!, 1, [1, 2])));
  assert.deepEqual(await memberLaggards(store, 'etcd-api', 2), ['m0'], 'trusts generation 2, but still serves a generation 1 certificate');
  await store.put(MEMBER_REPORTS + 'm0', JSON.stringify(report(own.memberId!, 2, [1, 2])));
  assert.deepEqual(await memberLaggards(store, 'etcd-api', 2), [], 'moved');
  assert.deepEqual(await memberLaggards(store, 'etcd-peer', 2), ['m0'], 'each authority on its own');
  assert.deepEqual(await memberLaggards(withDead, 'etcd-api', 2), ['https://127.0.0.1:1 (not answering)']);
});
