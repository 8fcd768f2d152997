// Fault: the CA service is unreachable (killed, then started again; stopped with SIGSTOP, then continued) while a node
// joins and while a node renews: the CSR waits, says why on itself and in the logs, and is issued once the CA is back.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { CertificateSigningRequest } from '../../src/apiserver/index.js';
import { joinNode, type NodeAgent } from '../../src/node/agent.js';
import { ManualClock } from '../../src/util/clock.js';
import { waitFor } from '../../src/util/wait.js';
import { startCaChild } from '../ca/helpers.js';
import { ClusterWithNodes } from '../helpers/cluster-nodes.js';

const CSRS = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
const NOTE = 'trustplane.io/signing-note';
const KUBELET_CLIENT = 'kubernetes.io/kube-apiserver-client-kubelet';

const requester = (c: CertificateSigningRequest) => c.spec.username ?? '';

describe('fault: the CA service is unreachable during a join and a renewal', { timeout: 170_000 }, () => {
  const env = new ClusterWithNodes('tp-fault-ca-');
  let agent: NodeAgent | undefined;
  let stopped: number | undefined;
  after(async () => {
    // A process this test stopped is continued before it is stopped for good.
    if (stopped) process.kill(stopped, 'SIGCONT');
    await agent?.stop();
    await env.cleanup();
  });

  let started: Promise<unknown> | undefined;
  /** The control plane with a live CA service, whatever an earlier test left behind. */
  const plane = async () => {
    await (started ??= env.start());
    const cp = env.cp;
    if (cp.ca.child.exitCode !== null || cp.ca.child.signalCode !== null) cp.ca = await startCaChild(env.dataDir);
    return cp;
  };

  it('a join waits while the CA service is down, names it on the CSR and in the logs, and completes once it is back', { timeout: 80_000 }, async () => {
    const cp = await plane();
    await cp.fleet().create({ name: 'f1' });
    const caUrl = (JSON.parse(readFileSync(cp.ca.paths.endpoint, 'utf8')) as { url: string }).url;
    const { client: admin } = await env.admin('f1');
    await cp.ca.stop('SIGKILL');

    const joining = await env.join('f1', 'f1-a', { args: ['-v'] });
    const csr = await waitFor('the join CSR to say why it waits', async () => {
      const list = await admin.get<{ items: CertificateSigningRequest[] }>(CSRS);
      return list.items.find((c) => c.spec.signerName === KUBELET_CLIENT && c.metadata.annotations?.[NOTE]);
    }, 30_000, 200);
    const note = csr.metadata.annotations![NOTE];
    assert.match(note, new RegExp(`^waiting for the CA service: CA service at ${caUrl.replace(/[.]/g, '\\.')} is unreachable: .*connect ECONNREFUSED`));
    assert.match(note, /the signer tries again every 5 s and issues the certificate once the CA answers$/);
    assert.equal(csr.status?.certificate, undefined);
    assert.ok(csr.status?.conditions?.some((c) => c.type === 'Approved'));
    // The host's log names the CA; the agent's says what the signer said.
    await waitFor('the host to log the unreachable CA', () => cp.host.output().includes('CA service did not sign; trying again later') || undefined, 10_000, 100);
    assert.match(cp.host.output(), /"err":"CA service at https:\/\/127\.0\.0\.1:\d+ is unreachable: [^"]*ECONNREFUSED[^"]*","msg":"CA service did not sign; trying again later"/);
    await waitFor('the agent to report the note', () => joining.output().includes('is approved but not issued yet: waiting for the CA service') || undefined, 10_000, 100);

    // The CA comes back (on its recorded port): the same CSR is issued and the node joins, with no action from anyone.
    cp.ca = await startCaChild(env.dataDir);
    await waitFor('the join to complete', () => /node agent running/.test(joining.output()) || undefined, 30_000, 100);
    const issued = (await admin.get<CertificateSigningRequest>(`${CSRS}/${csr.metadata.name}`));
    assert.ok(issued.status?.certificate, 'the waiting CSR was issued');
    const joins = (await admin.get<{ items: CertificateSigningRequest[] }>(CSRS)).items.filter((c) => c.spec.signerName === KUBELET_CLIENT);
    assert.equal(joins.length, 1, 'one CSR, retried; not one per attempt');
    assert.equal(joining.child.exitCode, null, 'the agent kept running');
  });

  it('a renewal waits while the CA service is stopped (SIGSTOP), says why, and completes once it continues', { timeout: 85_000 }, async () => {
    const cp = await plane();
    await cp.fleet().create({ name: 'f2' });
    const clock = new ManualClock(Date.now());
    const t = await cp.fleet().bootstrapToken('f2', 'default-pool', { nodeName: 'f2-r', ttlSeconds: 600 });
    const dataDir = join(env.tmp.path, 'f2-r');
    agent = await joinNode({
      dataDir,
      server: t.server,
      caCertHash: t.caCertHash,
      token: t.token,
      nodeName: 'f2-r',
      clock,
      waitTimeoutMs: 70_000,
      clientCertExpirationSeconds: 600,
      rotationPollMs: 50,
      tunnel: { enabled: false },
    });
    const first = agent.status().clientCertificate;
    const { client: admin } = await env.admin('f2');
    const caPid = cp.ca.child.pid!;
    process.kill(caPid, 'SIGSTOP');
    stopped = caPid;

    // Past the renewal point: the agent asks; the signer's call to the stopped CA times out and it says so.
    clock.set(Date.parse(first.renewAt) + 1000);
    const renewal = await waitFor('the renewal CSR to say why it waits', async () => {
      const list = await admin.get<{ items: CertificateSigningRequest[] }>(CSRS);
      return list.items.find((c) => requester(c) === 'system:node:f2-r' && c.spec.signerName === KUBELET_CLIENT && c.metadata.annotations?.[NOTE]);
    }, 60_000, 250);
    assert.match(renewal.metadata.annotations![NOTE], /^waiting for the CA service: CA service at https:\/\/127\.0\.0\.1:\d+ gave no answer \(connection refused, timed out or credentials rejected\)/);
    assert.equal(agent.status().clientCertificate.serial, first.serial, 'still on the old certificate');

    process.kill(caPid, 'SIGCONT');
    stopped = undefined;
    const renewed = await waitFor('the renewal to complete', () => (agent!.status().clientCertificate.serial !== first.serial ? agent!.status().clientCertificate : undefined), 30_000, 100);
    assert.equal(renewed.renewals, 1);
    assert.match(readFileSync(join(dataDir, 'agent.log'), 'utf8'), /client certificate is approved but not issued yet: waiting for the CA service/);
  });
});
