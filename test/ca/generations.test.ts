// CA generations: a new key cross-signed by the old, activation, and retirement that destroys the old key.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { opensslCsr, opensslVerify } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';
import { startTestCa, type TestCa } from './helpers.js';

const KUBELET = 'kubernetes.io/kube-apiserver-client-kubelet';
let ca: TestCa;
const tmp = tempDir('tp-gen-');

before(async () => {
  ca = await startTestCa();
  await ca.fleet.createCluster({ name: 'rot' });
});
after(async () => {
  await ca.stop();
  tmp.remove();
});

const rootOf = async () => (await ca.fleet.describeCluster('rot')).authorities.find((a) => a.kind === 'root')!;

test('prepare → activate → retire: old-bundle and new-bundle peers both verify new leaves until retirement', async () => {
  const g1 = (await rootOf()).generations[0];
  const oldBundle = (await rootOf()).bundle;
  const csr = opensslCsr(tmp.path, 'n', { subj: '/O=system:nodes/CN=system:node:n1' });
  const beforeLeaf = await ca.fleet.sign('rot', { signer: KUBELET, csr });
  assert.deepEqual(beforeLeaf.chain, []);

  // prepare: trusted, not yet signing; idempotent
  await ca.fleet.prepareGeneration('rot', 'root');
  const prepared = await ca.fleet.prepareGeneration('rot', 'root');
  const root = prepared.authorities.find((a) => a.kind === 'root')!;
  assert.deepEqual(root.generations.map((g) => [g.generation, g.state]), [[1, 'active'], [2, 'prepared']]);
  const g2 = root.generations[1];
  assert.ok(g2.crossCertificate, 'generation 2 is cross-signed by generation 1');
  const cross = new X509Certificate(g2.crossCertificate!);
  assert.ok(cross.verify(new X509Certificate(g1.certificate!).publicKey), 'cross cert signed by the g1 key');
  assert.equal(cross.subject, new X509Certificate(g2.certificate!).subject);
  assert.equal(cross.publicKey.export({ format: 'der', type: 'spki' }).toString('hex'), new X509Certificate(g2.certificate!).publicKey.export({ format: 'der', type: 'spki' }).toString('hex'));
  assert.equal((await ca.fleet.sign('rot', { signer: KUBELET, csr })).generation, 1, 'the active generation still signs');
  const bundle = root.bundle;
  assert.equal((bundle.match(/BEGIN CERTIFICATE/g) ?? []).length, 2, 'bundle holds both generations');

  // activate: g2 signs; leaves carry the cross cert for old-bundle peers
  await ca.fleet.activateGeneration('rot', 'root', 2);
  const leaf = await ca.fleet.sign('rot', { signer: KUBELET, csr });
  assert.equal(leaf.generation, 2);
  assert.equal(leaf.chain.length, 1);
  assert.ok(opensslVerify(tmp.path, { roots: oldBundle, leaf: leaf.certificate, untrusted: leaf.chain[0], purpose: 'sslclient' }).ok, 'old-bundle peer verifies through the cross cert');
  assert.ok(opensslVerify(tmp.path, { roots: g2.certificate!, leaf: leaf.certificate, purpose: 'sslclient' }).ok, 'new-bundle peer verifies directly');
  assert.equal(opensslVerify(tmp.path, { roots: oldBundle, leaf: leaf.certificate, purpose: 'sslclient' }).ok, false, 'without the cross cert the old bundle does not');
  assert.ok(opensslVerify(tmp.path, { roots: bundle, leaf: beforeLeaf.certificate, purpose: 'sslclient' }).ok, 'old leaves still verify against the two-generation bundle');

  await assert.rejects(ca.fleet.retireGeneration('rot', 'root', 2), /only a previous generation can be retired/);
  const keysBefore = (await ca.running.keys.list()).map((k) => k.label);
  assert.ok(keysBefore.includes(g1.keyLabel));

  // retire: g1 leaves the bundle and its key is destroyed
  const retired = await ca.fleet.retireGeneration('rot', 'root', 1);
  const r = retired.authorities.find((a) => a.kind === 'root')!;
  assert.deepEqual(r.generations.map((g) => [g.generation, g.state, g.hasKey]), [[1, 'retired', false], [2, 'active', true]]);
  assert.equal((r.bundle.match(/BEGIN CERTIFICATE/g) ?? []).length, 1);
  assert.ok(!(await ca.running.keys.list()).some((k) => k.label === g1.keyLabel), 'g1 key destroyed in the key store');
  const after = await ca.fleet.sign('rot', { signer: KUBELET, csr });
  assert.deepEqual(after.chain, [], 'no cross cert once the old generation is gone');
  assert.equal(opensslVerify(tmp.path, { roots: r.bundle, leaf: beforeLeaf.certificate }).ok, false, 'g1 leaves no longer verify');
});

test('deleting a cluster destroys all of its keys', async () => {
  await ca.fleet.createCluster({ name: 'gone' });
  const labels = (await ca.fleet.describeCluster('gone')).authorities.flatMap((a) => a.generations.map((g) => g.keyLabel));
  const present = new Set((await ca.running.keys.list()).map((k) => k.label));
  for (const l of labels) assert.ok(present.has(l));
  await ca.fleet.deleteCluster('gone');
  const left = new Set((await ca.running.keys.list()).map((k) => k.label));
  for (const l of labels) assert.ok(!left.has(l), `${l} destroyed`);
});
