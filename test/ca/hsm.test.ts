// The CA service with its keys in a real SoftHSM2 token: issuance, rotation and deletion, keys never leave the token.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { openKeyStore } from '../../src/keystore/registry.js';
import { makeSoftHsmToken, removeSoftHsmTokens, type SoftHsmToken } from '../keystore/softhsm.js';
import { tp } from '../helpers/cli.js';
import { opensslCsr, opensslVerify } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';
import { startCaChild, startTestCa, type TestCa } from './helpers.js';

let token: SoftHsmToken;
let ca: TestCa | undefined;
const tmp = tempDir('tp-hsm-ca-');

before(async () => {
  token = makeSoftHsmToken();
  process.env.TRUSTPLANE_PKCS11_PIN = token.pin;
  ca = await startTestCa({ keystore: { type: 'pkcs11', module: token.module, tokenLabel: token.tokenLabel } });
});
after(async () => {
  await ca?.stop();
  delete process.env.TRUSTPLANE_PKCS11_PIN;
  removeSoftHsmTokens();
  tmp.remove();
});

test('with the HSM key store: issue, verify with openssl, rotate, and the retired key is gone from the token', async () => {
  if (!ca) throw new Error('CA not started');
  assert.equal(ca.running.keys.type, 'pkcs11');
  const view = await ca.fleet.createCluster({ name: 'hsm' });
  const root = view.authorities.find((a) => a.kind === 'root')!;
  const csr = opensslCsr(tmp.path, 'n', { subj: '/O=system:nodes/CN=system:node:n1' });
  const leaf = await ca.fleet.sign('hsm', { signer: 'kubernetes.io/kube-apiserver-client-kubelet', csr });
  assert.ok(opensslVerify(tmp.path, { roots: root.bundle, leaf: leaf.certificate, purpose: 'sslclient' }).ok);

  await ca.fleet.prepareGeneration('hsm', 'root');
  await ca.fleet.activateGeneration('hsm', 'root', 2);
  const leaf2 = await ca.fleet.sign('hsm', { signer: 'kubernetes.io/kube-apiserver-client-kubelet', csr });
  assert.ok(opensslVerify(tmp.path, { roots: root.bundle, leaf: leaf2.certificate, untrusted: leaf2.chain[0], purpose: 'sslclient' }).ok, 'cross-signed on the token');
  const g1Label = root.generations[0].keyLabel;
  assert.ok((await ca.running.keys.list()).some((k) => k.label === g1Label));
  await ca.fleet.retireGeneration('hsm', 'root', 1);
  assert.ok(!(await ca.running.keys.list()).some((k) => k.label === g1Label), 'retired key destroyed on the token');

  await ca.fleet.deleteCluster('hsm');
  const left = (await ca.running.keys.list()).filter((k) => k.label.startsWith('cluster/hsm/'));
  assert.deepEqual(left, [], 'deleting the cluster destroys its keys on the token');
  // Close the module in this process, so that a store opened later sees tokens made after this one.
  await ca.stop();
  ca = undefined;
});

test('trustplane ca serve --keystore pkcs11 as a real process, PIN from a file; the choice is remembered', async () => {
  const t2 = makeSoftHsmToken();
  const dataDir = join(tmp.path, 'proc');
  const pinFile = join(tmp.path, 'pin');
  writeFileSync(pinFile, t2.pin + '\n', { mode: 0o600 });
  const start = async (args: string[]) => {
    // The PIN comes from --pkcs11-pin-file on the first start; the second start gets it from the environment.
    return startCaChild(dataDir, args, args.length ? { ...t2.env, TRUSTPLANE_PKCS11_PIN: undefined } : { ...t2.env, TRUSTPLANE_PKCS11_PIN: t2.pin });
  };
  let proc = await start(['--keystore', 'pkcs11', '--pkcs11-module', t2.module, '--pkcs11-token', t2.tokenLabel, '--pkcs11-pin-file', pinFile]);
  try {
    const created = await proc.fleet().createCluster({ name: 'p' });
    assert.equal(created.state, 'ready');
    const status = JSON.parse(tp(['ca', 'status', '-o', 'json', '--data-dir', dataDir]).stdout);
    assert.equal(status.keystore, 'pkcs11');
    await proc.stop('SIGTERM');
    proc = await start([]); // remembered: no flags needed
    assert.equal(JSON.parse(tp(['ca', 'status', '-o', 'json', '--data-dir', dataDir]).stdout).keystore, 'pkcs11');
    assert.equal((await proc.fleet().describeCluster('p')).name, 'p');
  } finally {
    await proc.stop('SIGTERM');
  }
  // The keys are on the token: a store opened directly on it lists them.
  const direct = await openKeyStore({ type: 'pkcs11', module: t2.module, tokenLabel: t2.tokenLabel, pin: t2.pin });
  try {
    const labels = (await direct.list()).map((k) => k.label);
    assert.ok(labels.some((l) => l.startsWith('cluster/p/')), `cluster keys on the token: ${labels.join(', ')}`);
  } finally {
    await direct.close();
  }
});
