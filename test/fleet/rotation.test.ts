// The rotation state machine against the real CA service (in process): the phases in order, refusals, and a crash at
// every point (before and after each side effect) resumed from the saved record to the same end.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AuthorityKind } from '../../src/ca/authority.js';
import type { ClusterView } from '../../src/ca/service.js';
import { lifetimesOf, degradation, ROOT_DEGRADED_BEFORE_S, ROOT_ROTATE_BEFORE_S } from '../../src/fleet/lifetime.js';
import { advance, beginRotation, completeRotation, type RotationDeps, type RotationRecord } from '../../src/fleet/rotation.js';
import { ManualClock } from '../../src/util/clock.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { silentLogger } from '../../src/util/log.js';
import { localCredential } from '../../src/ca/credential.js';
import { generationOf } from '../../src/fleet/cluster-runtime.js';
import { parseCertificates } from '../../src/pki/index.js';
import { startTestCa, type TestCa } from '../ca/helpers.js';

const rootOf = (v: ClusterView) => v.authorities.find((a) => a.kind === 'root')!;
const states = (v: ClusterView) => rootOf(v).generations.map((g) => `g${g.generation}:${g.state}`).join(' ');

class Crash extends Error {}

describe('credential rotation state machine (real CA service)', () => {
  let ca: TestCa;
  const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
  before(async () => {
    ca = await startTestCa();
  });
  after(async () => ca?.stop());

  /** Deps whose side effects can be made to fail once at a given call ("applyTrust#2" = the second trust change). */
  function deps(cluster: string, o: { crashAt?: string; laggards?: string[] } = {}) {
    const saved: RotationRecord[] = [];
    const applied: string[] = [];
    let calls = 0;
    const maybeCrash = (what: string) => {
      if (o.crashAt === what) {
        o.crashAt = undefined;
        throw new Crash(what);
      }
    };
    const d: RotationDeps = {
      cluster,
      ca: {
        describeCluster: (n) => ca.fleet.describeCluster(n),
        prepareGeneration: async (n, k) => (maybeCrash('prepare:before'), await ca.fleet.prepareGeneration(n, k).finally(() => maybeCrash('prepare:after'))),
        activateGeneration: async (n, k, g) => (maybeCrash('activate:before'), await ca.fleet.activateGeneration(n, k, g).finally(() => maybeCrash('activate:after'))),
        retireGeneration: async (n, k, g) => (maybeCrash('retire:before'), await ca.fleet.retireGeneration(n, k, g).finally(() => maybeCrash('retire:after'))),
      },
      save: (r) => saved.push(structuredClone(r)),
      applyTrust: async (_k: AuthorityKind, v: ClusterView) => {
        calls++;
        maybeCrash(`applyTrust#${calls}`);
        applied.push(states(v));
      },
      laggards: async () => o.laggards ?? [],
      clock,
      log: silentLogger,
    };
    return { d, saved, applied, last: () => structuredClone(saved[saved.length - 1]) };
  }

  it('start: prepares g2 cross-signed by g1 and activates it; complete: retires g1 and destroys its key', async () => {
    await ca.fleet.createCluster({ name: 'rot1' });
    const { d, applied } = deps('rot1');
    const r = await beginRotation(d, [], 'root', 'manual');
    await advance(d, r);
    assert.equal(r.phase, 'moving');
    assert.equal(r.from, 1);
    assert.equal(r.to, 2);
    assert.deepEqual(applied, ['g1:active g2:prepared', 'g1:previous g2:active']);
    const mid = rootOf(await ca.fleet.describeCluster('rot1'));
    assert.ok(mid.generations[1].crossCertificate, 'the new generation is certified by the old one');
    assert.equal((mid.bundle.match(/BEGIN CERTIFICATE/g) ?? []).length, 2, 'both generations trusted while nodes move');

    await assert.rejects(beginRotation(d, [r], 'root', 'manual'), (e: TrustplaneError) => e.reason === 'Conflict' && /in progress \(phase moving/.test(e.message));
    // Which generation issued a certificate is read off its authority key id (what the signer records after a crash).
    const view = await ca.fleet.describeCluster('rot1');
    const leafOf = async () => {
      const c = await localCredential([{ type: 'CN', value: 'probe' }], (csr) => ca.fleet.sign('rot1', { signer: 'kubernetes.io/kube-apiserver-client', csr }));
      return parseCertificates(c.cert)[0];
    };
    assert.equal(generationOf(view, await leafOf()), 2);
    assert.equal(generationOf(view, parseCertificates(rootOf(view).generations[1].crossCertificate!)[0]), 1, 'the cross-certificate was issued by g1');
    await completeRotation(d, r, false);
    assert.equal(r.phase, 'done');
    assert.deepEqual(r.history.map((h) => h.phase), ['preparing', 'activating', 'moving', 'completing', 'done']);
    const end = rootOf(await ca.fleet.describeCluster('rot1'));
    assert.equal(states(await ca.fleet.describeCluster('rot1')), 'g1:retired g2:active');
    assert.equal(end.generations[0].hasKey, false, 'the old key is destroyed');
    assert.equal((end.bundle.match(/BEGIN CERTIFICATE/g) ?? []).length, 1);
  });

  it('complete is refused while nodes still hold old credentials, with their names; --force completes and records them', async () => {
    await ca.fleet.createCluster({ name: 'rot2' });
    const { d } = deps('rot2', { laggards: ['n1', 'n2'] });
    const r = await beginRotation(d, [], 'root', 'manual');
    await advance(d, r);
    await assert.rejects(completeRotation(d, r, false), (e: TrustplaneError) => e.reason === 'Conflict' && /2 node\(s\) still hold only credentials of generation 1.*n1, n2/.test(e.message) && /--force/.test(e.hint ?? ''));
    assert.equal(r.phase, 'moving');
    assert.equal(states(await ca.fleet.describeCluster('rot2')), 'g1:previous g2:active', 'nothing retired');
    await completeRotation(d, r, true);
    assert.deepEqual(r.forced, ['n1', 'n2']);
    assert.equal(states(await ca.fleet.describeCluster('rot2')), 'g1:retired g2:active');
  });

  const crashPoints = ['prepare:before', 'prepare:after', 'applyTrust#1', 'activate:before', 'activate:after', 'applyTrust#2', 'retire:before', 'retire:after', 'applyTrust#3'];
  for (const [i, at] of crashPoints.entries()) {
    it(`a crash at ${at}: resuming from the saved record finishes the same rotation, with one new generation`, async () => {
      const name = `crash${i}`;
      await ca.fleet.createCluster({ name });
      const first = deps(name, { crashAt: at });
      let r = await beginRotation(first.d, [], 'root', 'manual');
      let crashed = false;
      try {
        await advance(first.d, r);
        await completeRotation(first.d, r, false);
      } catch (e) {
        assert.ok(e instanceof Crash, String(e));
        crashed = true;
      }
      assert.ok(crashed, 'the crash happened');
      // A new host: only what was saved survives.
      const second = deps(name);
      r = first.last();
      await advance(second.d, r);
      if (r.phase === 'moving') await completeRotation(second.d, r, false);
      assert.equal(r.phase, 'done');
      assert.equal(states(await ca.fleet.describeCluster(name)), 'g1:retired g2:active', 'exactly one new generation, the old one retired');
      assert.equal(r.to, 2);
    });
  }

  it('lifetime: next action 30 days before expiry; DEGRADED within 7 days, with what to do', async () => {
    await ca.fleet.createCluster({ name: 'life', lifetimes: { root: 40 * 86400 } });
    const view = await ca.fleet.describeCluster('life');
    const notAfter = Date.parse(rootOf(view).generations[0].notAfter!);
    const now = new Date(notAfter - 35 * 86400 * 1000);
    const root = lifetimesOf(view, now).find((l) => l.kind === 'root')!;
    assert.equal(root.next.action, 'start-rotation');
    assert.equal(Date.parse(root.next.at), notAfter - ROOT_ROTATE_BEFORE_S * 1000);
    assert.equal(root.secondsLeft, 35 * 86400);
    assert.equal(degradation(view, now), undefined);
    const late = new Date(notAfter - ROOT_DEGRADED_BEFORE_S * 1000 + 1000);
    assert.match(degradation(view, late) ?? '', /cluster root CA expires at .*in 167 hours.*--complete-credential-rotation/);
    assert.match(degradation(view, new Date(notAfter + 1000)) ?? '', /expired at/);
  });
});
