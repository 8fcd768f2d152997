// The CSR signer against the real CA service in-process and a real store: issues what is approved, fails what the CA
// refuses, leaves other signers alone, retries an unavailable CA, and never issues twice across a restart.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CsrRegistry, isFailed, isIssued, type CertificateSigningRequest } from '../../src/apiserver/index.js';
import type { IssuedCertificate, SignInput } from '../../src/ca/api.js';
import { CsrSigner, getNodeCredential, NODE_CREDENTIAL_PREFIX, SIGNING_NOTE_ANNOTATION, type CsrSigningBackend } from '../../src/controllers/index.js';
import { parseCertificates, verifyChain } from '../../src/pki/index.js';
import { systemClock } from '../../src/util/clock.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { silentLogger } from '../../src/util/log.js';
import { waitFor } from '../../src/util/wait.js';
import { opensslVerify } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';
import { startTestCluster, type TestCluster } from '../apiserver/harness.js';
import { ADMIN, APISERVER_CLIENT, bootstrapUser, csrManifest, KUBELET_SERVING, nodeCsr, nodeUser, startSigningCa, type SigningCa } from './helpers.js';

/** Counts calls and can fail the first few with Unavailable, as a CA service that is restarting does. */
function counting(inner: CsrSigningBackend, failFirst = 0) {
  const calls: SignInput[] = [];
  const backend: CsrSigningBackend = {
    async sign(input) {
      calls.push(input);
      if (calls.length <= failFirst) throw new TrustplaneError('Unavailable', 'CA service at https://127.0.0.1:1 is unreachable: ECONNREFUSED');
      return inner.sign(input);
    },
  };
  return { backend, calls };
}

/** A registry whose first certificate write fails as if the store were briefly unreachable. */
class FlakyWrites extends CsrRegistry {
  writes = 0;
  override async setCertificate(...args: Parameters<CsrRegistry['setCertificate']>) {
    if (this.writes++ === 0) throw new TrustplaneError('Unavailable', 'store unreachable');
    return super.setCertificate(...args);
  }
}

function startSigner(c: TestCluster, ca: CsrSigningBackend, csrs: CsrRegistry = new CsrRegistry(c.store)): CsrSigner {
  const s = new CsrSigner({ csrs, store: c.store, ca, clock: systemClock, log: silentLogger, concurrency: 4, retryBaseMs: 20, retryMaxMs: 200 });
  s.start();
  return s;
}

const chainOf = (csr: CertificateSigningRequest) => parseCertificates(Buffer.from(csr.status!.certificate!, 'base64').toString('utf8'));

describe('CSR signer', () => {
  let c: TestCluster;
  let ca: SigningCa;
  let csrs: CsrRegistry;
  let bundle: string;
  const tmp = tempDir('tp-signer-');

  before(async () => {
    [c, ca] = await Promise.all([startTestCluster(), startSigningCa('c1')]);
    csrs = new CsrRegistry(c.store);
    bundle = await ca.bundle();
  });
  after(async () => {
    await c?.stop();
    await ca?.stop();
    tmp.remove();
  });

  async function approved(name: string, pem: string, user = bootstrapUser('abcdef'), o: Parameters<typeof csrManifest>[2] = {}) {
    await csrs.create(csrManifest(name, pem, o), user);
    return csrs.decide(name, 'Approved', 'Test', 'approved by the test');
  }
  const issued = (name: string) => waitFor(`${name} to be issued`, async () => {
    const x = await csrs.get(name);
    return isIssued(x) ? x : undefined;
  });

  test('an approved kubelet client CSR is issued: the chain verifies against the cluster bundle and the node credential is recorded', async () => {
    const signer = startSigner(c, ca.backend);
    try {
      const { pem } = await nodeCsr('n1');
      await approved('client-1', pem, bootstrapUser('abcdef'), { expirationSeconds: 3600 });
      const done = await issued('client-1');
      const [leaf, ...rest] = chainOf(done);
      const roots = parseCertificates(bundle);
      const path = verifyChain(leaf, rest, roots, { at: new Date(), purpose: 'clientAuth' });
      assert.equal(path[path.length - 1].sha256, roots[0].sha256);
      assert.deepEqual(leaf.subject.map((a) => `${a.type}=${a.value}`).sort(), ['CN=system:node:n1', 'O=system:nodes']);
      // spec.expirationSeconds reached the CA.
      const lifetime = leaf.notAfter.getTime() - Date.now();
      assert.ok(lifetime > 3500_000 && lifetime <= 3600_000, `lifetime ${lifetime} ms`);
      const v = opensslVerify(tmp.path, { roots: bundle, leaf: Buffer.from(done.status!.certificate!, 'base64').toString('utf8'), purpose: 'sslclient' });
      assert.ok(v.ok, v.output);
      const rec = await waitFor('the node credential record', async () => (await getNodeCredential(c.store, 'n1'))?.record);
      assert.equal(rec.serial, leaf.serialHex);
      assert.equal(rec.csr, 'client-1');
      assert.equal(rec.notAfter, leaf.notAfter.toISOString());
      assert.equal(rec.generation, 1);
      // The CA audited it as done for the bootstrap user.
      assert.ok(ca.ca.auditLines().some((l) => l.decision === 'allow' && l.op === 'sign' && String(l.requester).includes('system:bootstrap:abcdef')));
    } finally {
      await signer.stop();
    }
  });

  test('a serving CSR is issued for server auth with its SANs; no node credential is recorded for it', async () => {
    const signer = startSigner(c, ca.backend);
    try {
      const { pem } = await nodeCsr('n2', { sans: { dns: ['n2.internal'], ip: ['10.0.0.2'] } });
      await approved('serving-1', pem, nodeUser('n2'), { signerName: KUBELET_SERVING });
      const [leaf, ...rest] = chainOf(await issued('serving-1'));
      verifyChain(leaf, rest, parseCertificates(bundle), { at: new Date(), purpose: 'serverAuth' });
      assert.deepEqual(leaf.sans.dns, ['n2.internal']);
      assert.deepEqual(leaf.sans.ip, ['10.0.0.2']);
      assert.equal(await getNodeCredential(c.store, 'n2'), null);
    } finally {
      await signer.stop();
    }
  });

  test('a CA refusal becomes a Failed condition with the CA message; nothing is issued', async () => {
    const signer = startSigner(c, ca.backend);
    try {
      const masters = await nodeCsr('x', { subject: [{ type: 'O', value: 'system:masters' }, { type: 'CN', value: 'mallory' }] });
      await approved('masters-1', masters.pem, ADMIN, { signerName: APISERVER_CLIENT });
      const withSan = await nodeCsr('n3', { sans: { dns: ['n3'] } });
      await approved('san-1', withSan.pem, ADMIN);
      for (const [name, message] of [
        ['masters-1', /system:masters is granted only by the explicit admin operation/],
        ['san-1', /must not request subject alternative names/],
      ] as const) {
        const failed = await waitFor(`${name} to fail`, async () => {
          const x = await csrs.get(name);
          return isFailed(x) ? x : undefined;
        });
        const cond = failed.status!.conditions!.find((k) => k.type === 'Failed')!;
        assert.equal(cond.reason, 'SignerValidationFailure');
        assert.match(cond.message!, message);
        assert.match(cond.message!, /refused the CSR for cluster "c1"/);
        assert.equal(failed.status?.certificate, undefined);
      }
    } finally {
      await signer.stop();
    }
  });

  test('CSRs for other signers are not signed; an approved one gets a note saying nobody here serves its signer', async () => {
    const signer = startSigner(c, ca.backend);
    try {
      const other = await nodeCsr('n4');
      const before = await approved('other-1', other.pem, ADMIN, { signerName: 'example.com/custom' });
      await csrs.create(csrManifest('other-pending', (await nodeCsr('n4')).pem, { signerName: 'example.com/custom' }), ADMIN);
      const pendingBefore = await csrs.get('other-pending');
      // A CSR handled after it: once it is issued, the signer has seen every earlier event.
      const barrier = await nodeCsr('n4');
      await approved('barrier-1', barrier.pem);
      await issued('barrier-1');
      const after = await waitFor('the signing note on other-1', async () => {
        const x = await csrs.get('other-1');
        return x.metadata.annotations?.[SIGNING_NOTE_ANNOTATION] ? x : undefined;
      });
      assert.match(after.metadata.annotations![SIGNING_NOTE_ANNOTATION], /^no signer in this cluster serves signer "example\.com\/custom"/);
      assert.deepEqual(after.status, before.status);
      assert.equal(after.status?.certificate, undefined);
      assert.equal(isFailed(after), false);
      // Not approved: nobody has asked for a certificate yet, so nothing is said.
      assert.equal((await csrs.get('other-pending')).metadata.resourceVersion, pendingBefore.metadata.resourceVersion);
    } finally {
      await signer.stop();
    }
  });

  test('an unavailable CA is retried with backoff, not failed', async () => {
    const flaky = counting(ca.backend, 2);
    const signer = startSigner(c, flaky.backend);
    try {
      const { pem } = await nodeCsr('n5');
      await approved('retry-1', pem);
      const done = await issued('retry-1');
      assert.equal(isFailed(done), false);
      assert.equal(flaky.calls.filter((i) => i.onBehalfOf === 'system:bootstrap:abcdef' && String(i.csr) === pem).length, 3);
    } finally {
      await signer.stop();
    }
  });

  test('a certificate the CA issued but that could not be written is written on the next try, not signed again', async () => {
    const flaky = new FlakyWrites(c.store);
    const cnt = counting(ca.backend);
    const signer = startSigner(c, cnt.backend, flaky);
    try {
      const { pem } = await nodeCsr('n9');
      await approved('write-retry-1', pem);
      const done = await issued('write-retry-1');
      assert.equal(flaky.writes, 2);
      assert.equal(cnt.calls.length, 1);
      const serial = chainOf(done)[0].serialHex;
      assert.equal((await waitFor('n9 record', async () => (await getNodeCredential(c.store, 'n9'))?.record)).serial, serial);
    } finally {
      await signer.stop();
    }
  });

  test('after a restart nothing is issued twice, what was approved meanwhile is issued once, and a lost record is rebuilt', async () => {
    const first = counting(ca.backend);
    let signer = startSigner(c, first.backend);
    const { pem } = await nodeCsr('n6');
    await approved('restart-1', pem);
    const issuedBefore = await issued('restart-1');
    await waitFor('the n6 record', () => getNodeCredential(c.store, 'n6'));
    await signer.stop();

    const { pem: pem2 } = await nodeCsr('n7');
    await approved('restart-2', pem2);
    // As if the host died between writing the certificate and the record.
    await c.store.delete(`${NODE_CREDENTIAL_PREFIX}n6`);

    const second = counting(ca.backend);
    signer = startSigner(c, second.backend);
    try {
      await issued('restart-2');
      const rebuilt = await waitFor('the n6 record to be rebuilt', async () => (await getNodeCredential(c.store, 'n6'))?.record);
      assert.equal(rebuilt.serial, chainOf(issuedBefore)[0].serialHex);
      await signer.synced();
      const again = await csrs.get('restart-1');
      assert.equal(again.status?.certificate, issuedBefore.status?.certificate);
      // The second signer asked the CA for restart-2 only, never again for restart-1 (or anything issued before it).
      assert.deepEqual(second.calls.map((i) => i.csr), [pem2]);
    } finally {
      await signer.stop();
    }
  });

  test('a second different certificate is refused by the registry, so a racing writer cannot replace one', async () => {
    const signer = startSigner(c, ca.backend);
    try {
      const { pem } = await nodeCsr('n8');
      await approved('race-1', pem);
      const done = await issued('race-1');
      const other: IssuedCertificate = await ca.backend.sign({ signer: 'kubernetes.io/kube-apiserver-client-kubelet', csr: pem });
      await assert.rejects(csrs.setCertificate('race-1', other.certificate), (e: TrustplaneError) => e.reason === 'Invalid' && /may not modify existing certificate/.test(e.message));
      assert.equal((await csrs.get('race-1')).status?.certificate, done.status?.certificate);
    } finally {
      await signer.stop();
    }
  });
});
