// The CA service records its callers per cluster (observed clients, server kind "ca"): a cluster's own caller, and a
// fleet caller acting on that cluster; only fleet callers may read the record.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TrustplaneError } from '../../src/util/errors.js';
import { startTestCa, type TestCa } from './helpers.js';

describe('CA service: observed callers per cluster', () => {
  let ca: TestCa;
  before(async () => {
    ca = await startTestCa();
    await ca.fleet.createCluster({ name: 'seen-a' });
    await ca.fleet.createCluster({ name: 'seen-b' });
  });
  after(async () => ca?.stop());

  it("lists the cluster's caller and the fleet caller that acted on it, not those of another cluster", async () => {
    const t0 = Date.now();
    const a = await ca.clusterCaller('seen-a');
    await a.describeCluster('seen-a');
    await ca.fleet.describeCluster('seen-a');
    const b = await ca.clusterCaller('seen-b');
    await b.describeCluster('seen-b');

    const seenA = await ca.fleet.observedClients('seen-a');
    const users = seenA.map((s) => s.user).sort();
    assert.ok(users.includes('cluster:seen-a'), JSON.stringify(seenA));
    assert.ok(users.some((u) => u.startsWith('fleet:')), JSON.stringify(seenA));
    assert.ok(!users.includes('cluster:seen-b'), 'another cluster caller is recorded under its own cluster');
    for (const s of seenA) {
      assert.equal(s.server, 'ca');
      assert.equal(s.address, '127.0.0.1');
      assert.match(s.issuerKeyId, /^[0-9a-f]{40}$/);
      assert.ok(s.lastSeenMs >= t0 - 1000);
    }
    assert.deepEqual((await ca.fleet.observedClients('seen-b')).map((s) => s.user).filter((u) => u.startsWith('cluster:')), ['cluster:seen-b']);
  });

  it('is for fleet callers only', async () => {
    const a = await ca.clusterCaller('seen-a');
    await assert.rejects(a.observedClients('seen-a'), (e: TrustplaneError) => e.reason === 'Forbidden');
  });
});
