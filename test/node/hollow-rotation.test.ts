// Hollow nodes follow a rotation of the cluster root CA as real agents do (real CA and host processes): 20 nodes under a
// steady load of their own Lease renewals, an old-admin loop and proxied /healthz; start → every node re-issues both
// certificates by itself → completion accepted; no request with valid credentials failed; every certificate is the new
// generation's, and the nodes answer through their tunnels with the new bundle only.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Node } from '../../src/apiserver/registry/node.js';
import { trustBundleDigest } from '../../src/apiserver/api/cluster-info.js';
import { adminKubeconfigEntry } from '../../src/cli/clusters.js';
import type { FleetClient } from '../../src/fleet/client.js';
import { ApiClient } from '../../src/node/api-client.js';
import { startHollowNodes, type HollowNodes } from '../../src/node/hollow.js';
import { TrustFollower, trustFollowUp } from '../../src/node/trust-follower.js';
import { parseCertificates, verifyChain, type ParsedCertificate } from '../../src/pki/index.js';
import { silentLogger } from '../../src/util/log.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { waitFor } from '../../src/util/wait.js';
import { proxiedHealthz } from '../helpers/cluster-nodes.js';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.js';
import { withDeadline } from '../helpers/etcd-cluster.js';
import { tempDir } from '../helpers/tmp.js';

const CLUSTER = 'hrot';
const COUNT = 20;
const SAMPLE = ['hr-00', 'hr-07', 'hr-13', 'hr-19'];

describe('hollow nodes follow a credential rotation (real CA and host processes)', () => {
  const tmp = tempDir('tp-hollow-rotation-');
  let cp: ControlPlane;
  let fleet: FleetClient;
  let h: HollowNodes | undefined;
  const clients: ApiClient[] = [];
  const admin = async () => {
    const e = await adminKubeconfigEntry(fleet, CLUSTER);
    const c = new ApiClient(e.server, { cert: e.clientCert, key: e.clientKey, ca: e.caBundle });
    clients.push(c);
    return { client: c, caBundle: e.caBundle };
  };

  before(async () => {
    cp = await startControlPlane(`${tmp.path}/data`);
    fleet = cp.fleet();
    await fleet.create({ name: CLUSTER });
  });
  after(async () => {
    for (const c of clients) c.close();
    await h?.close();
    await cp?.stop();
    tmp.remove();
  });

  it('start, 20 hollow nodes re-issue both certificates by themselves, complete: zero failed requests; new generation only after', async (tc) => {
    const t = await fleet.bootstrapToken(CLUSTER, 'default-pool', { ttlSeconds: 3600 });
    // Leases every 500 ms: each node hears of the rotation within half a second, and the load is steady (40 requests/s).
    const hollow = await startHollowNodes({ server: t.server, token: t.token, caCertHash: t.caCertHash, count: COUNT, namePrefix: 'hr-', concurrency: 8, leaseIntervalMs: 500, rotationJitterMs: 2000, maxReissuesInFlight: 8 });
    h = hollow;
    const joined = await hollow.joined;
    assert.equal(joined.ready, COUNT, joined.errors.join('\n'));
    const g1Bundle = hollow.caBundle;

    const old = await admin();
    await waitFor('every sampled node reachable through its tunnel', async () => {
      for (const n of SAMPLE) if ((await proxiedHealthz(old.client, n)) !== 'ok') return undefined;
      return true;
    }, 20_000, 200);

    // The steady load besides the Leases: the old admin (until completion) listing nodes and reaching sampled nodes.
    // Its requests are valid until completion: one refused for its retired generation once completion began is not a failure.
    const failures: Array<{ at: number; what: string }> = [];
    let requests = 0;
    let oldValid = true;
    let running = true;
    const loop = async (name: string, fn: (i: number) => Promise<unknown>) => {
      for (let i = 0; running; i++) {
        if (oldValid) {
          try {
            await fn(i);
            requests++;
          } catch (e) {
            if (oldValid) failures.push({ at: performance.now(), what: `${name}: ${(e as Error).message}` });
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const loops = [
      loop('old admin GET nodes', () => old.client.get('/api/v1/nodes')),
      loop('old admin healthz through the tunnel', async (i) => {
        const b = await proxiedHealthz(old.client, SAMPLE[i % SAMPLE.length]);
        if (b !== 'ok') throw new Error(`${SAMPLE[i % SAMPLE.length]} healthz answered ${b}`);
      }),
    ];
    const leases0 = hollow.leaseStats();

    const t0 = performance.now();
    const started = await fleet.update(CLUSTER, { startCredentialRotation: true });
    assert.equal(started.status, 'RECONCILING');
    assert.equal(started.rotation?.phase, 'moving');

    // Completion is refused while a node still holds only a generation-1 client certificate; the nodes move by themselves.
    // Once they have, the old admin holds it (observed clients: seen on generation 1 lately): it stops then, and before
    // each later attempt the admin user is seen on new credentials, after its last old request, as an admin who moved.
    const moved = await admin();
    let completing = 0;
    const done = await waitFor('completion to be accepted once every hollow node re-issued its client certificate', async () => {
      completing = performance.now();
      try {
        if (!oldValid) await moved.client.get('/api/v1/nodes');
        return await fleet.update(CLUSTER, { completeCredentialRotation: true });
      } catch (e) {
        if (!(e instanceof TrustplaneError) || e.reason !== 'Conflict') throw e;
        if (/presented generation 1/.test(e.message)) oldValid = false;
        return undefined;
      }
    }, 45_000, 250);
    oldValid = false;
    const rotationMs = performance.now() - t0;
    assert.equal(done.rotation?.phase, 'done');
    assert.equal(done.rotation?.forced, undefined, 'no node was cut off');

    // Lease renewals go on after completion, on the new certificates and the new bundle.
    const renewedAtCompletion = hollow.leaseStats().renewals;
    await waitFor('another round of Lease renewals after completion', () => (hollow.leaseStats().renewals >= renewedAtCompletion + 2 * COUNT ? true : undefined), 10_000);
    running = false;
    await Promise.all(loops);

    const leases = hollow.leaseStats();
    const leaseErrors = hollow.names.flatMap((n) => (hollow.node(n)?.lastLeaseError ? [`${n}: ${hollow.node(n)!.lastLeaseError}`] : []));
    const failed = failures.filter((f) => !(f.at >= completing && /retired generation/.test(f.what))).map((f) => f.what);
    assert.deepEqual(failed, [], 'no admin request with valid credentials failed');
    tc.diagnostic(`rotation ${Math.round(rotationMs)} ms; ${requests} admin requests, ${failures.length - failed.length} refused for the retired generation once completion began; ${leases.renewals - leases0.renewals} Lease renewals`);
    assert.equal(leases.failures - leases0.failures, 0, `no Lease renewal failed: ${leaseErrors.join('; ')}`);
    assert.ok(requests > 20, `a steady stream of admin requests ran (${requests})`);
    assert.ok(leases.renewals - leases0.renewals > 4 * COUNT, `Lease renewals ran throughout (${leases.renewals - leases0.renewals})`);

    // Every node's certificates are the new generation's and chain to the new bundle alone.
    const root = (await fleet.describe(CLUSTER)).authorities.find((a) => a.kind === 'root')!;
    assert.deepEqual(root.generations.map((g) => [g.generation, g.state]), [[1, 'retired'], [2, 'active']]);
    const g2 = parseCertificates(root.bundle);
    assert.equal(g2.length, 1);
    const g2Id = g2[0].subjectKeyId!.toString('hex');
    await waitFor('every node to trust the new bundle alone', () => (hollow.trustStats().nodesOnBundle === COUNT && hollow.caBundle === root.bundle ? true : undefined), 10_000);
    assert.notEqual(trustBundleDigest(g1Bundle), trustBundleDigest(root.bundle));
    const trust = hollow.trustStats(g2Id);
    assert.equal(trust.nodesOnSigner, COUNT, JSON.stringify(trust));
    assert.equal(trust.reissued, 2 * COUNT, 'each node re-issued its client and serving certificate once');
    assert.equal(trust.failures, 0, trust.errors.join('\n'));
    assert.ok(trust.bundleReads <= 4, `cluster-info read once per bundle change for the whole process, not per node (${trust.bundleReads})`);
    for (const name of hollow.names) {
      const s = hollow.node(name)!;
      assert.deepEqual([s.phase, s.tunnelConnected, s.clientIssuer, s.servingIssuer], ['ready', true, g2Id, g2Id], name);
      const c = hollow.certificates(name)!;
      for (const [pem, purpose] of [[c.client!, 'clientAuth'], [c.serving!, 'serverAuth']] as const) {
        const [leaf, ...chain] = parseCertificates(pem);
        assert.equal(leaf.authorityKeyId?.toString('hex'), g2Id);
        verifyChain(leaf, chain, g2, { at: new Date(), purpose });
      }
    }

    // With the new bundle only: a fresh admin lists the nodes Ready and reaches each of them through its tunnel.
    const fresh = await admin();
    assert.equal(fresh.caBundle, root.bundle);
    const nodes = await fresh.client.get<{ items: Node[] }>('/api/v1/nodes');
    assert.equal(nodes.items.filter((n) => n.metadata.name.startsWith('hr-') && n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length, COUNT);
    for (const name of hollow.names) assert.equal(await proxiedHealthz(fresh.client, name), 'ok', name);
    // The old admin certificate is refused now.
    await assert.rejects(old.client.get('/api/v1/nodes'));
  });
});

describe('TrustFollower: what a trust header asks of a node, and one follow-up at a time', () => {
  const D1 = `sha256:${'1'.repeat(64)}`;
  const D2 = `sha256:${'2'.repeat(64)}`;
  const leaf = (aki: string) => ({ authorityKeyId: Buffer.from(aki, 'hex'), serialHex: aki }) as unknown as ParsedCertificate;

  it('trustFollowUp: a new bundle is read; a new signer re-issues what another CA issued, once per signer tried', () => {
    const node = { bundleDigest: D1, authorityKeyIds: ['aa', 'aa'], triedSigner: '' };
    assert.equal(trustFollowUp({ digest: D1, signer: 'aa' }, node), undefined);
    assert.equal(trustFollowUp({ digest: D1, signer: '' }, node), undefined);
    assert.deepEqual(trustFollowUp({ digest: D2, signer: 'aa' }, node), { refreshBundle: true, reissue: false });
    assert.deepEqual(trustFollowUp({ digest: D1, signer: 'bb' }, node), { refreshBundle: false, reissue: true });
    assert.deepEqual(trustFollowUp({ digest: D1, signer: 'bb' }, { ...node, authorityKeyIds: ['bb', 'aa'] }), { refreshBundle: false, reissue: true });
    assert.equal(trustFollowUp({ digest: D1, signer: 'bb' }, { ...node, triedSigner: 'bb' }), undefined);
    assert.equal(trustFollowUp({ digest: D1, signer: 'bb' }, { ...node, authorityKeyIds: [] }), undefined);
  });

  it('reads the bundle once while following, re-issues after its jitter, tries a failed generation again, and stops at once', async () => {
    let digest = D1;
    let reads = 0;
    let release!: () => void;
    const certs = { client: leaf('aa'), serving: leaf('aa') };
    let failNext = true;
    const issued: string[] = [];
    const f = new TrustFollower({
      bundleDigest: () => digest,
      refreshBundle: async (t) => {
        reads++;
        await new Promise<void>((r) => (release = r));
        digest = t.digest;
      },
      certificates: (['client', 'serving'] as const).map((k) => ({
        what: `${k} certificate`,
        leaf: () => certs[k],
        reissue: async () => {
          if (k === 'client' && failNext) {
            failNext = false;
            throw new Error('the CSR timed out');
          }
          certs[k] = leaf('bb');
          issued.push(k);
        },
      })),
      jitterMs: 200,
      random: () => 0.5,
      log: silentLogger,
    });
    f.observe(`${D1};signer=aa`);
    assert.equal(f.following, false, 'nothing to do');
    f.observe(`${D2};signer=aa`);
    f.observe(`${D2};signer=aa`);
    f.observe(`${D2};signer=bb`);
    assert.deepEqual([f.following, reads], [true, 1], 'one follow-up at a time');
    release();
    await f.idle();
    assert.equal(digest, D2);

    // A new signer: the re-issue waits its jitter (random() * jitterMs = 100 ms); a failure lets a later answer try that
    // signer again. Without the wait the first attempt (the client's, which fails) would have run by the next turn.
    f.observe(`${D2};signer=bb`);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([f.following, f.stats.failures, issued], [true, 0, []], 'waiting out the jitter, nothing re-issued yet');
    await f.idle();
    assert.deepEqual([f.stats.failures, issued], [1, []]);
    f.observe(`${D2};signer=bb`);
    await f.idle();
    assert.deepEqual(issued, ['client', 'serving']);
    assert.deepEqual([f.stats.followUps, f.stats.reissued, f.stats.lastError], [3, 2, 'the CSR timed out']);
    f.observe(`${D2};signer=bb`);
    assert.equal(f.following, false, 'settled: nothing left to do');

    // A certificate that arrives after the follow-up (requested just before the rotation, issued by the old
    // generation) is seen on the next answer, though the header did not change, and re-issued.
    certs.serving = { ...leaf('aa'), serialHex: 'late' } as ParsedCertificate;
    f.observe(`${D2};signer=bb`);
    assert.equal(f.following, true, 'the late certificate is looked at');
    await f.idle();
    assert.deepEqual(issued, ['client', 'serving', 'serving']);
    f.observe(`${D2};signer=bb`);
    assert.equal(f.following, false, 'settled again');

    // stop() ends a jitter wait at once, and nothing is re-issued.
    const g = new TrustFollower({ bundleDigest: () => D2, refreshBundle: async () => undefined, certificates: [{ what: 'client certificate', leaf: () => leaf('aa'), reissue: async () => assert.fail('re-issued after stop') }], jitterMs: 60_000, random: () => 1, log: silentLogger });
    g.observe(`${D2};signer=bb`);
    assert.equal(g.following, true);
    g.stop();
    // The jitter is 60 s: only a wait that stop() ended settles within the deadline.
    await withDeadline(g.idle(), 10_000, 'stop() did not end the 60 s jitter wait');
    assert.equal(g.following, false);
    assert.equal(g.stats.reissued, 0);
  });
});
