// Who still presents an old generation: the rule over plain sightings (the window; moved once seen on the new generation
// after the last old sighting; per authority and server kind), generations read off issuer key ids of a real CA's
// view, and the completion gate of the rotation state machine (refused naming the clients, unless forced).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AuthorityKind } from '../../src/ca/authority.js';
import { localCredential } from '../../src/ca/credential.js';
import type { ClusterView } from '../../src/ca/service.js';
import { stillPresentingOld, withGenerations, type GenerationSighting, type ObservedClient } from '../../src/fleet/observed-clients.js';
import { advance, beginRotation, completeRotation, type RotationDeps, type RotationRecord } from '../../src/fleet/rotation.js';
import { parseCertificates } from '../../src/pki/index.js';
import { clientIdentityOf, ObservedClients, type ObservingServer } from '../../src/tls/observed-clients.js';
import { ManualClock } from '../../src/util/clock.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { silentLogger } from '../../src/util/log.js';
import { startTestCa, type TestCa } from '../ca/helpers.js';

const MIN = 60_000;
const NOW = Date.parse('2030-01-01T12:00:00Z');

function seen(user: string, generation: number, agoMs: number, server: ObservingServer = 'apiserver', authority: AuthorityKind = 'root'): GenerationSighting {
  return { user, groups: ['g'], issuerKeyId: `k${generation}`, server, lastSeenMs: NOW - agoMs, address: '127.0.0.1', authority, generation };
}
const users = (l: ObservedClient[]) => l.map((c) => `${c.user}@${c.server}`);
const q = { authority: 'root' as const, to: 2, nowMs: NOW, windowMs: 10 * MIN };

describe('stillPresentingOld: the rule', () => {
  it('lists a client seen on an old generation within the window, most recently seen first, with the answer fields', () => {
    const out = stillPresentingOld([seen('a', 1, 9 * MIN), seen('b', 1, 1 * MIN)], q);
    assert.deepEqual(users(out), ['b@apiserver', 'a@apiserver']);
    assert.deepEqual(out[0], { user: 'b', groups: ['g'], generation: 1, server: 'apiserver', lastSeen: new Date(NOW - MIN).toISOString(), address: '127.0.0.1' });
  });

  it('does not list one last seen before the window', () => {
    assert.deepEqual(stillPresentingOld([seen('a', 1, 11 * MIN)], q), []);
  });

  it('a client seen on the new generation after its last old sighting has moved; one seen on the old one after the new has not', () => {
    const moved = [seen('node', 1, 5 * MIN), seen('node', 2, 4 * MIN)];
    assert.deepEqual(stillPresentingOld(moved, q), []);
    const back = [seen('admin', 2, 5 * MIN), seen('admin', 1, 4 * MIN)];
    assert.deepEqual(users(stillPresentingOld(back, q)), ['admin@apiserver']);
    // Seen on both at the same moment (an old tunnel closing as its replacement is seen again): moved.
    assert.deepEqual(stillPresentingOld([seen('node', 1, MIN, 'tunnel'), seen('node', 2, MIN, 'tunnel')], q), []);
  });

  it('judges each server kind and each authority apart', () => {
    // Moved on the API server, not on the tunnel; an etcd client on an old etcd API CA does not count for the root CA.
    const s = [seen('n', 1, 5 * MIN, 'apiserver'), seen('n', 2, 4 * MIN, 'apiserver'), seen('n', 1, 3 * MIN, 'tunnel'), seen('etcdctl', 1, MIN, 'etcd', 'etcd-api')];
    assert.deepEqual(users(stillPresentingOld(s, q)), ['n@tunnel']);
    assert.deepEqual(users(stillPresentingOld(s, { ...q, authority: 'etcd-api' })), ['etcdctl@etcd']);
  });

  it('a generation newer than the rotation replaces is not old', () => {
    assert.deepEqual(stillPresentingOld([seen('a', 2, MIN), seen('b', 3, MIN)], q), []);
  });
});

describe('observed clients over a real CA: generations from issuer key ids, and the completion gate', () => {
  let ca: TestCa;
  const clock = new ManualClock(new Date(NOW));
  before(async () => {
    ca = await startTestCa();
  });
  after(async () => ca?.stop());

  const adminLeaf = async (cluster: string, user: string) => {
    const c = await localCredential([{ type: 'O', value: 'system:masters' }, { type: 'CN', value: user }], (csr) => ca.fleet.sign(cluster, { signer: 'kubernetes.io/kube-apiserver-client', csr, admin: true }));
    return parseCertificates(c.cert)[0];
  };

  function deps(cluster: string, observed: ObservedClients, gate = true) {
    const saved: RotationRecord[] = [];
    let view: ClusterView | undefined;
    const d: RotationDeps = {
      cluster,
      ca: ca.fleet,
      save: (r) => saved.push(structuredClone(r)),
      applyTrust: async (_k, v) => {
        view = v;
      },
      laggards: async () => [],
      observedOld: async (kind, to) =>
        gate ? { clients: stillPresentingOld(withGenerations(observed.list(), view ?? (await ca.fleet.describeCluster(cluster))), { authority: kind, to, nowMs: clock.now().getTime(), windowMs: 10 * MIN }), windowMs: 10 * MIN } : undefined,
      clock,
      log: silentLogger,
    };
    return d;
  }

  it('refuses completion naming the user still on the old generation; completes once it moved', async () => {
    await ca.fleet.createCluster({ name: 'gate' });
    const observed = new ObservedClients();
    const oldAdmin = await adminLeaf('gate', 'old-admin');
    observed.see(clientIdentityOf(oldAdmin)!, 'apiserver', '127.0.0.1', NOW - MIN);
    const d = deps('gate', observed);
    const r = await beginRotation(d, [], 'root', 'manual');
    await advance(d, r);
    assert.equal(r.phase, 'moving');

    // Generations come from the issuer key ids: g1 for the certificate issued before the rotation.
    const view = await ca.fleet.describeCluster('gate');
    assert.deepEqual(withGenerations(observed.list(), view).map((s) => [s.user, s.authority, s.generation]), [['old-admin', 'root', 1]]);

    await assert.rejects(completeRotation(d, r, false), (e: TrustplaneError) => {
      assert.equal(e.reason, 'Conflict');
      assert.match(e.message, /1 client\(s\) presented generation 1 of the cluster root CA in the last 10m0s/);
      assert.match(e.message, /old-admin \(groups system:masters\) on the apiserver from 127\.0\.0\.1/);
      assert.match(e.hint ?? '', /--force/);
      return true;
    });
    assert.equal(r.phase, 'moving', 'nothing was retired');

    // The same user with a certificate of the new generation, seen after its last old sighting: it has moved.
    observed.see(clientIdentityOf(await adminLeaf('gate', 'old-admin'))!, 'apiserver', '127.0.0.1', NOW);
    await completeRotation(d, r, false);
    assert.equal(r.phase, 'done');
    assert.equal(r.forcedClients, undefined);
  });

  it('--force completes although a client is seen, and the record says whom it went past', async () => {
    await ca.fleet.createCluster({ name: 'forced' });
    const observed = new ObservedClients();
    observed.see(clientIdentityOf(await adminLeaf('forced', 'poller'))!, 'apiserver', '127.0.0.1', NOW);
    const d = deps('forced', observed);
    const r = await beginRotation(d, [], 'root', 'manual');
    await advance(d, r);
    await assert.rejects(completeRotation(d, r, false), /poller/);
    await completeRotation(d, r, true);
    assert.equal(r.phase, 'done');
    assert.deepEqual(r.forcedClients, ['poller (apiserver)']);
    assert.equal(r.forced, undefined, 'no node was cut off');
  });

  it('without a gate for the authority (the managed etcd CAs), completion does not look at observed clients', async () => {
    await ca.fleet.createCluster({ name: 'nogate' });
    const observed = new ObservedClients();
    observed.see(clientIdentityOf(await adminLeaf('nogate', 'poller'))!, 'apiserver', '127.0.0.1', NOW);
    const d = deps('nogate', observed, false);
    const r = await beginRotation(d, [], 'root', 'manual');
    await advance(d, r);
    await completeRotation(d, r, false);
    assert.equal(r.phase, 'done');
  });
});
