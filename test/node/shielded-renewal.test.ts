// A shielded node's renewals on a moved clock: each client certificate at 70-90 % of its life is got by a new TPM
// attestation (a CSR filed by the attestation endpoint), never by a plain renewal; once the PCRs change, the renewal
// is refused naming them, and the agent says so in its status.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CertificateSigningRequest } from '../../src/apiserver/index.js';
import { createNodePool, enrollNode } from '../../src/fleet/node-pools.js';
import { startNodeAgent, type NodeAgent } from '../../src/node/agent.js';
import { TpmDriver } from '../../src/tpm/driver.js';
import { TPM_ATTESTOR_USER } from '../../src/tpm/protocol.js';
import { ManualClock } from '../../src/util/clock.js';
import { waitFor } from '../../src/util/wait.js';
import { startSwtpm, type SoftTpm } from '../helpers/swtpm.js';
import { tempDir } from '../helpers/tmp.js';
import { CLUSTER, startNodeTestCluster, type NodeTestCluster } from './cluster.js';

describe('shielded node renewal against a real cluster and swtpm, on a moved clock', () => {
  const clock = new ManualClock(Date.now());
  let c: NodeTestCluster;
  let tpm: SoftTpm;
  let agent: NodeAgent | undefined;
  const tmp = tempDir('tp-node-shielded-');
  const clientCsrs = async () => (await c.csrs()).filter((x: CertificateSigningRequest) => x.spec.signerName === 'kubernetes.io/kube-apiserver-client-kubelet');

  before(async () => {
    tpm = await startSwtpm();
    c = await startNodeTestCluster({ clock });
    await createNodePool(c.base.store, CLUSTER, 'secure', clock, false, {}, { pcrs: [0, 7] });
    const d = new TpmDriver(tpm.tcti);
    try {
      await enrollNode(c.base.store, CLUSTER, 'secure', { nodeName: 'sn', ekPublic: await d.ekPublicPem() }, clock);
    } finally {
      d.close();
    }
  });
  after(async () => {
    await agent?.stop();
    await c?.stop();
    await tpm?.stop();
    tmp.remove();
  });

  it('every renewal is a new attestation; after a PCR change the renewal is refused naming the PCR', async () => {
    agent = await startNodeAgent({
      dataDir: join(tmp.path, 'node'),
      server: c.api.url,
      caCertHash: c.caCertHash,
      nodeName: 'sn',
      shielded: { tcti: tpm.tcti },
      clock,
      waitTimeoutMs: 30_000,
      leaseIntervalMs: 100,
      rotationPollMs: 50,
      clientCertExpirationSeconds: 600,
      servingCertExpirationSeconds: 3600,
      endpoint: { listen: {} },
    });
    const first = agent.status().clientCertificate;
    assert.equal((await clientCsrs()).filter((x) => x.spec.username === TPM_ATTESTOR_USER).length, 1);

    clock.set(Date.parse(first.renewAt) + 1000);
    const renewed = await waitFor('the client certificate to be renewed', () => {
      const s = agent!.status().clientCertificate;
      return s.serial !== first.serial ? s : undefined;
    }, 30_000);
    assert.equal(renewed.renewals, 1);
    const csrs = await clientCsrs();
    assert.equal(csrs.filter((x) => x.spec.username === TPM_ATTESTOR_USER).length, 2, 'the renewal was a second attestation');
    assert.equal(csrs.filter((x) => x.spec.username === 'system:node:sn').length, 0, 'no plain renewal CSR');

    tpm.tool('tpm2_pcrextend', [`7:sha256=${'cd'.repeat(32)}`]);
    clock.set(Date.parse(renewed.renewAt) + 1000);
    const failed = await waitFor('the next renewal to fail', () => agent!.status().clientCertificate.lastError, 30_000);
    assert.match(failed, /measured boot state of node "sn" differs from what its enrollment allows: PCR 7 is [0-9a-f]{64}, expected [0-9a-f]{64} \(PCRs 7 changed\)/);
    assert.equal(agent.status().clientCertificate.serial, renewed.serial);
  });

  it('PCR values given at enrollment are what the quote must show; an enrollment lacking a policy PCR is refused', async () => {
    const d = new TpmDriver(tpm.tcti);
    let values: Record<string, string>;
    let ekPublic: string;
    try {
      values = await d.readPcrs([0, 7]);
      ekPublic = await d.ekPublicPem();
    } finally {
      d.close();
    }
    await assert.rejects(enrollNode(c.base.store, CLUSTER, 'secure', { nodeName: 'sn3', ekPublic, pcrValues: { '0': values['0'] } }, clock), /lack a SHA-256 value for PCR 7 of the pool's policy \(0,7\)/);
    const expected7 = 'ee'.repeat(32);
    await enrollNode(c.base.store, CLUSTER, 'secure', { nodeName: 'sn2', ekPublic, pcrValues: { '0': values['0'], '7': expected7 } }, clock);
    await assert.rejects(
      startNodeAgent({ dataDir: join(tmp.path, 'node2'), server: c.api.url, caCertHash: c.caCertHash, nodeName: 'sn2', shielded: { tcti: tpm.tcti }, clock, waitTimeoutMs: 10_000 }),
      new RegExp(`PCR 7 is ${values['7']}, expected ${expected7} \\(PCRs 7 changed\\)`),
    );
    // With the values the TPM has, the same node joins.
    await enrollNode(c.base.store, CLUSTER, 'secure', { nodeName: 'sn2', ekPublic, pcrValues: values, replace: true }, clock);
    const a2 = await startNodeAgent({ dataDir: join(tmp.path, 'node2'), server: c.api.url, caCertHash: c.caCertHash, nodeName: 'sn2', shielded: { tcti: tpm.tcti }, clock, waitTimeoutMs: 10_000, tunnel: { enabled: false } });
    try {
      assert.equal(a2.status().phase, 'running');
    } finally {
      await a2.stop();
    }
  });
});
