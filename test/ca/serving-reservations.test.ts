// The CA learns the API server's names from the serving certificates it issues it, and from then on signs no kubelet
// serving certificate for them, whoever asks and whoever approved; the reservation outlives a CA restart.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CaClient } from '../../src/ca/client.js';
import { buildCsr, generateKeyPair, pemEncode, SIGNER_APISERVER_SERVING, SIGNER_KUBELET_SERVING, type Name, type SubjectAltNames } from '../../src/pki/index.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { tempDir } from '../helpers/tmp.js';
import { startTestCa, type TestCa } from './helpers.js';

async function csr(subject: Name, sans: Partial<SubjectAltNames>): Promise<string> {
  const kp = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
  return pemEncode('CERTIFICATE REQUEST', await buildCsr({ subject, sans, signer: kp.signer }));
}
const node = (n: string): Name => [{ type: 'O', value: 'system:nodes' }, { type: 'CN', value: `system:node:${n}` }];
const SERVING_USAGES = ['digital signature', 'server auth'];

async function refusal(p: Promise<unknown>): Promise<TrustplaneError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof TrustplaneError, String(e));
    return e;
  }
  assert.fail('expected a refusal');
}

describe('kubelet-serving reservations learnt from the API server certificates', () => {
  const dir = tempDir('tp-ca-reserve-');
  let ca: TestCa;
  let caller: CaClient;

  before(async () => {
    ca = await startTestCa({ dataDir: dir.path });
    await ca.fleet.createCluster({ name: 'r1' });
    caller = await ca.clusterCaller('r1');
  });
  after(async () => {
    await ca?.stop();
    dir.remove();
  });

  test("before the API server's certificate, its address is a node's like any other; after it, refused with the reason", async () => {
    const first = await caller.sign('r1', { signer: SIGNER_KUBELET_SERVING, csr: await csr(node('n1'), { dns: ['n1'], ip: ['10.20.0.1'] }), usages: SERVING_USAGES });
    assert.ok(first.certificate);
    // The fleet gets the API server its serving certificate: the CA records its SANs.
    await ca.fleet.sign('r1', { signer: SIGNER_APISERVER_SERVING, csr: await csr([{ type: 'CN', value: 'kube-apiserver' }], { dns: ['api.r1.example.com', 'kubernetes'], ip: ['10.20.0.1', '127.0.0.1'] }) });
    const e = await refusal(caller.sign('r1', { signer: SIGNER_KUBELET_SERVING, csr: await csr(node('n1'), { dns: ['n1'], ip: ['10.20.0.1'] }), usages: SERVING_USAGES }));
    assert.equal(e.reason, 'Invalid');
    assert.match(e.message, /IP 10\.20\.0\.1 is an address of the cluster's API server; a node's serving certificate may not carry it/);
    // Its DNS name, below the node's own name or not, is refused too; loopback stays the node's.
    const dnsNode = await refusal(caller.sign('r1', { signer: SIGNER_KUBELET_SERVING, csr: await csr(node('api.r1.example.com'), { dns: ['api.r1.example.com'] }), usages: SERVING_USAGES }));
    assert.match(dnsNode.message, /DNS api\.r1\.example\.com is a name of the cluster's API server/);
    assert.ok((await caller.sign('r1', { signer: SIGNER_KUBELET_SERVING, csr: await csr(node('n1'), { dns: ['n1'], ip: ['127.0.0.1'] }), usages: SERVING_USAGES })).certificate);
  });

  test('the reservation is kept across a CA restart', async () => {
    await ca.stop(); // the data dir is the test's: it stays
    ca = await startTestCa({ dataDir: dir.path });
    caller = await ca.clusterCaller('r1');
    const e = await refusal(caller.sign('r1', { signer: SIGNER_KUBELET_SERVING, csr: await csr(node('n1'), { ip: ['10.20.0.1'] }), usages: SERVING_USAGES }));
    assert.match(e.message, /is an address of the cluster's API server/);
  });

  test('usages travel to the CA: a serving certificate asked for client auth is refused naming it', async () => {
    const e = await refusal(caller.sign('r1', { signer: SIGNER_KUBELET_SERVING, csr: await csr(node('n1'), { dns: ['n1'] }), usages: ['digital signature', 'client auth'] }));
    assert.match(e.message, /usage "client auth" not allowed for signer kubernetes\.io\/kubelet-serving/);
    const bad = await refusal(caller.sign('r1', { signer: SIGNER_KUBELET_SERVING, csr: await csr(node('n1'), { dns: ['n1'] }), usages: 'server auth' as unknown as string[] }));
    assert.match(bad.message, /"usages" must be an array of strings/);
  });
});
