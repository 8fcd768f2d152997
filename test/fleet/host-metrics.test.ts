// The host's new metrics for alerting, computed from what the fleet says: since when the running rotation is in its
// phase, nodes on a retired generation, nodes near the end of their certificate's life; a store that does not answer
// leaves the cluster's node series out instead of reporting zeros.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FleetCluster } from '../../src/fleet/api.js';
import type { Fleet } from '../../src/fleet/fleet.js';
import { createHostMetrics } from '../../src/fleet/metrics.js';
import type { NodeCredentialSummary } from '../../src/fleet/node-credential-summary.js';

const gen = (generation: number, state: string, notAfter = '2036-01-01T00:00:00.000Z') => ({ generation, state, notAfter });
function cluster(name: string, rootGenerations: ReturnType<typeof gen>[], rotation?: FleetCluster['rotation']): FleetCluster {
  return {
    name,
    status: rotation && rotation.phase !== 'done' ? 'RECONCILING' : 'RUNNING',
    authorities: [{ kind: 'root', generations: rootGenerations }, { kind: 'etcd-api', generations: [gen(1, 'active')] }],
    ...(rotation ? { rotation } : {}),
  } as unknown as FleetCluster;
}

function fakeFleet(clusters: FleetCluster[], summaries: Record<string, NodeCredentialSummary | Error>): () => Fleet {
  const f = {
    list: async () => clusters,
    nodeCredentialSummary: async (name: string) => {
      const s = summaries[name];
      if (s instanceof Error) throw s;
      return s;
    },
  };
  return () => f as unknown as Fleet;
}

const value = (text: string, name: string, labels: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
};

describe('host metrics for the alert rules', () => {
  test('phase start, nodes on a retired generation, nodes near expiry; none of them when there is nothing to say', async () => {
    const movingSince = '2026-06-01T10:00:00.000Z';
    const rotating = cluster('rot', [gen(1, 'previous'), gen(2, 'active')], {
      authority: 'root', phase: 'moving', trigger: 'manual', startedAt: '2026-06-01T09:59:00.000Z', from: 1, to: 2,
      history: [{ phase: 'preparing', at: '2026-06-01T09:59:00.000Z' }, { phase: 'activating', at: '2026-06-01T09:59:30.000Z' }, { phase: 'moving', at: movingSince }],
    });
    const forced = cluster('forced', [gen(1, 'retired'), gen(2, 'active')], {
      authority: 'root', phase: 'done', trigger: 'manual', startedAt: movingSince, from: 1, to: 2, forced: ['n1', 'n2'], completedAt: movingSince,
      history: [{ phase: 'done', at: movingSince }],
    });
    const down = cluster('down', [gen(1, 'active')]);
    const m = createHostMetrics(
      fakeFleet([rotating, forced, down], {
        rot: { byGeneration: new Map([[1, 3], [2, 7]]), nearExpiry: 0 },
        forced: { byGeneration: new Map([[1, 2], [2, 8]]), nearExpiry: 4 },
        down: new Error('the store does not answer'),
      }),
    );
    const text = await m.registry.metrics();

    assert.equal(value(text, 'trustplane_rotation_phase_started_timestamp_seconds', 'cluster="rot",authority="root",phase="moving"'), Date.parse(movingSince) / 1000);
    // Only the phase it is in now, and nothing for a finished rotation or a cluster without one.
    assert.equal(text.split('\n').filter((l) => l.startsWith('trustplane_rotation_phase_started_timestamp_seconds{')).length, 1);

    // Generation 1 of "rot" is still trusted (previous): its nodes are not on a retired generation; those of "forced" are.
    assert.equal(value(text, 'trustplane_nodes_on_retired_generation', 'cluster="rot"'), 0);
    assert.equal(value(text, 'trustplane_nodes_on_retired_generation', 'cluster="forced"'), 2);
    assert.equal(value(text, 'trustplane_nodes_near_certificate_expiry', 'cluster="forced"'), 4);
    assert.equal(value(text, 'trustplane_nodes_near_certificate_expiry', 'cluster="rot"'), 0);
    assert.equal(value(text, 'trustplane_nodes_by_credential_generation', 'cluster="forced",generation="1"'), 2);
    // A store that does not answer: no node series (a zero would look healthy), its CA series are there.
    assert.equal(value(text, 'trustplane_nodes_on_retired_generation', 'cluster="down"'), undefined);
    assert.equal(value(text, 'trustplane_nodes_near_certificate_expiry', 'cluster="down"'), undefined);
    assert.equal(value(text, 'trustplane_ca_active_generation', 'cluster="down",authority="root"'), 1);
  });
});
