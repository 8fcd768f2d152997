// Certificate renewal: when (70-90 % of the lifetime, as a pure function), a real renewal on a moved clock and the new
// certificate in use afterwards, and a client certificate that lapsed while the node was off.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CertificateSigningRequest, Lease } from '../../src/apiserver/index.js';
import { joinNode, startNodeAgent, type NodeAgent, type NodeAgentOptions } from '../../src/node/agent.js';
import { renewalTime, retryDelayMs } from '../../src/node/rotation.js';
import { parseCertificate } from '../../src/pki/index.js';
import { ManualClock, type Clock } from '../../src/util/clock.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { waitFor } from '../../src/util/wait.js';
import { tempDir } from '../helpers/tmp.js';
import { NodeState } from '../../src/node/state.js';
import { endpointGet, startNodeTestCluster, type NodeTestCluster } from './cluster.js';

const LEASES = '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases';

describe('renewal schedule', () => {
  it('is a random point between 70 % and 90 % of the lifetime', () => {
    const nb = new Date('2030-01-01T00:00:00Z');
    const na = new Date(nb.getTime() + 1000_000);
    assert.equal(renewalTime(nb, na, 0).getTime(), nb.getTime() + 700_000);
    assert.equal(renewalTime(nb, na, 0.5).getTime(), nb.getTime() + 800_000);
    assert.ok(Math.abs(renewalTime(nb, na, 0.999999).getTime() - (nb.getTime() + 899_999.8)) <= 1);
    for (let i = 0; i < 1000; i++) {
      const t = renewalTime(nb, na).getTime() - nb.getTime();
      assert.ok(t >= 700_000 && t < 900_000);
    }
  });

  it('retries failed renewals with growing delays, never sleeping past a quarter of the time left', () => {
    assert.equal(retryDelayMs(1, 3600_000), 2000);
    assert.equal(retryDelayMs(3, 3600_000), 8000);
    assert.equal(retryDelayMs(30, 3600_000), 300_000);
    assert.equal(retryDelayMs(30, 60_000), 15_000);
    assert.equal(retryDelayMs(30, 0), 300_000);
  });
});

describe('renewal against a real cluster on a moved clock', () => {
  const clock = new ManualClock(Date.now());
  // The agent's own view of the test's clock, counting its reads: its rotation loops read it on every poll (50 ms), so
  // many reads after a move mean the loops have seen the moved clock.
  let agentReads = 0;
  const agentClock: Clock = { now: () => (agentReads++, clock.now()) };
  const t0 = clock.now().getTime();
  let c: NodeTestCluster;
  let tmp: { path: string; remove(): void };
  let dir: string;
  let agent: NodeAgent | undefined;
  let token: { token: string; id: string };
  const opts = (o: Partial<NodeAgentOptions> = {}): NodeAgentOptions => ({
    dataDir: dir,
    server: c.api.url,
    caCertHash: c.caCertHash,
    nodeName: 'rot',
    clock: agentClock,
    waitTimeoutMs: 30_000,
    leaseIntervalMs: 100,
    rotationPollMs: 50,
    clientCertExpirationSeconds: 600,
    servingCertExpirationSeconds: 600,
    endpoint: { listen: {} },
    ...o,
  });
  const lease = async () => ((await c.call(c.admin, 'GET', `${LEASES}/rot`)).json as Lease).spec?.renewTime;
  const clientCsrs = async () => (await c.csrs()).filter((x: CertificateSigningRequest) => x.spec.signerName === 'kubernetes.io/kube-apiserver-client-kubelet' && x.spec.request && x.metadata.name.startsWith('node-csr-'));

  before(async () => {
    c = await startNodeTestCluster({ clock });
    tmp = tempDir('tp-node-rot-');
    dir = join(tmp.path, 'node');
    token = await c.token({ ttlSeconds: 3000 });
  });
  after(async () => {
    await agent?.stop();
    await c?.stop();
    tmp?.remove();
  });

  it('renews both certificates at 70-90 % of their lifetime, and the new ones are used afterwards', async () => {
    agent = await joinNode(opts({ token: token.token }));
    const first = agent.status();
    const lifeMs = Date.parse(first.clientCertificate.notAfter) - Date.parse(first.clientCertificate.notBefore);
    // 600 s asked for, backdated 5 min by the signer.
    assert.equal(lifeMs, 900_000);
    const oldServing = first.servingCertificate!.serial;

    // Just before the earliest renewal point nothing happens; at the latest, both have been renewed.
    clock.set(Date.parse(first.clientCertificate.notBefore) + 0.7 * lifeMs - 5000);
    const readsBefore = agentReads;
    await waitFor('the agent to read the moved clock 30 times', () => agentReads - readsBefore >= 30, 10_000, 10);
    const early = agent.status();
    assert.deepEqual(
      [early.clientCertificate.serial, early.clientCertificate.renewals, early.servingCertificate?.serial],
      [first.clientCertificate.serial, 0, oldServing],
      'nothing renewed before 70 % of the lifetime',
    );
    assert.equal((await clientCsrs()).filter((x) => x.spec.username === 'system:node:rot').length, 0, 'no renewal CSR before 70 % of the lifetime');
    clock.set(Math.max(Date.parse(first.clientCertificate.renewAt), Date.parse(first.servingCertificate!.renewAt)) + 1000);
    const renewed = await waitFor('both certificates to be renewed', () => {
      const s = agent!.status();
      return s.clientCertificate.serial !== first.clientCertificate.serial && s.servingCertificate?.serial !== oldServing ? s : undefined;
    }, 20_000);
    assert.equal(renewed.clientCertificate.renewals, 1);
    assert.equal(renewed.phase, 'running');

    // The renewal CSR was made with the client certificate (the approver's renewal rule), not the token.
    const renewal = (await clientCsrs()).find((x) => x.spec.username === 'system:node:rot');
    assert.ok(renewal, 'a renewal CSR by the node itself');
    assert.ok(renewal.status?.conditions?.some((x) => x.type === 'Approved' && /renewal/.test(x.message ?? '')));
    assert.equal(parseCertificate(Buffer.from(renewal.status!.certificate!, 'base64').toString('utf8')).serialHex, renewed.clientCertificate.serial);

    // Past the old certificate's expiry the API server (same clock) would refuse it: the Lease keeps being renewed.
    clock.set(Date.parse(first.clientCertificate.notAfter) + 1000);
    const after = await lease();
    await waitFor('the Lease to be renewed with the new client certificate', async () => ((await lease()) !== after ? true : undefined), 10_000);
    assert.equal(agent.status().heartbeat.lastError, undefined);
    assert.equal(agent.clientCertificate().includes('BEGIN CERTIFICATE'), true);
    // The endpoint serves the new serving certificate to new connections.
    const got = await endpointGet(agent.status().endpoint!, '/healthz', c.admin, c.bundle, clock.now());
    assert.equal(got.text, 'ok');
    assert.equal(got.serial?.replace(/^0+/, ''), renewed.servingCertificate!.serial.replace(/^0+/, ''));
    await agent.stop();
    agent = undefined;
  });

  it('joins again with the token it holds when the client certificate lapsed while the node was off', async () => {
    await agent?.stop();
    const before = new Set((await clientCsrs()).map((x) => x.metadata.name));
    const lapsedAt = new NodeState(dir).readCredential('client')!.leaf.notAfter;
    clock.set(lapsedAt.getTime() + 60_000);
    agent = await startNodeAgent(opts());
    const fresh = (await clientCsrs()).filter((x) => !before.has(x.metadata.name));
    assert.equal(fresh.length, 1);
    assert.equal(fresh[0].spec.username, `system:bootstrap:${token.id}`, 'a new bootstrap CSR with the token held');
    assert.ok(fresh[0].status?.conditions?.some((x) => x.type === 'Approved'), 'approved: the old credential has expired');
    assert.ok(Date.parse(agent.status().clientCertificate.notAfter) > clock.now().getTime());
    await agent.stop();
    agent = undefined;
  });

  it('without a valid token held, says exactly what the operator must do', async () => {
    const state = new NodeState(dir);
    const lapsedAt = state.readCredential('client')!.leaf.notAfter;
    clock.set(lapsedAt.getTime() + 60_000);
    rmSync(state.paths.token);
    let e: unknown;
    try {
      agent = await startNodeAgent(opts());
    } catch (err) {
      e = err;
    }
    assert.ok(e instanceof TrustplaneError, String(e));
    assert.equal(e.reason, 'Unauthorized');
    assert.match(e.message, /^node rot cannot authenticate: its client certificate expired at .*, and no bootstrap token is held to join again$/);
    assert.match(e.hint ?? '', /`trustplane node-pools bootstrap-token POOL --cluster CLUSTER`/);
    assert.match(e.hint ?? '', new RegExp(`\`trustplane node join --server ${c.api.url} --token TOKEN --ca-cert-hash ${c.caCertHash} --name rot --node-data-dir ${dir}\``));

    // An expired token held is no better, and says so.
    state.writeToken(token.token);
    clock.set(Date.parse((await c.tokenInfo(token.id))!.expiresAt.toISOString()) + 1000);
    try {
      agent = await startNodeAgent(opts());
      assert.fail('expected a refusal');
    } catch (err) {
      assert.ok(err instanceof TrustplaneError);
      assert.match(err.message, new RegExp(`refused bootstrap token ${token.id}: it is unknown, expired or deleted`));
      assert.match(err.hint ?? '', /trustplane node join/);
    }
    agent = undefined;
  });
});
