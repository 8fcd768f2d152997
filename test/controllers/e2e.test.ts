// End to end: a real API server whose client CA and serving certificate come from the real CA service, the controllers
// on its store, bootstrap tokens, kubectl and node credentials issued through the certificates.k8s.io/v1 API.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createBootstrapToken, startApiServer, type CertificateSigningRequest, type RunningApiServer } from '../../src/apiserver/index.js';
import { localCredential, type LocalCredential } from '../../src/ca/credential.js';
import { APPROVAL_NOTE_ANNOTATION, SIGNING_NOTE_ANNOTATION, credentialEntries, getNodeCredential, startControllers, type RunningControllers } from '../../src/controllers/index.js';
import { createNodePool } from '../../src/fleet/node-pools.js';
import { encodeExtKeyUsage } from '../../src/pki/extensions.js';
import { OID, buildCsr, generateKeyPair, parseCertificates, pemEncode, verifyChain } from '../../src/pki/index.js';
import { systemClock } from '../../src/util/clock.js';
import { waitFor } from '../../src/util/wait.js';
import type { OpensslCa } from '../helpers/openssl-certs.js';
import { call, runKubectl, startTestCluster, type Credentials, type TestCluster } from '../apiserver/harness.js';
import { APISERVER_CLIENT, csrManifest, KUBELET_SERVING, nodeCsr, startSigningCa, type SigningCa } from './helpers.js';

const CSRS = '/apis/certificates.k8s.io/v1/certificatesigningrequests';

describe('CSR controllers end to end', () => {
  let c: TestCluster;
  let sca: SigningCa;
  let api: RunningApiServer;
  let controllers: RunningControllers;
  let bundle: string;
  let admin: LocalCredential;
  let token: { token: string; id: string };
  /** The credential n1 got by bootstrapping. */
  let n1: Credentials;
  const target = () => ({ api, ca: { cert: bundle } as OpensslCa });

  before(async () => {
    [c, sca] = await Promise.all([startTestCluster(), startSigningCa('e2e')]);
    bundle = await sca.bundle();
    const fleet = sca.ca.fleet;
    const serving = await localCredential([{ type: 'CN', value: 'kube-apiserver' }], (csr) => fleet.sign('e2e', { signer: 'trustplane.io/kube-apiserver-serving', csr }), {
      sans: { dns: ['localhost'], ip: ['127.0.0.1'] },
    });
    admin = await localCredential(
      [{ type: 'O', value: 'system:masters' }, { type: 'CN', value: 'admin' }],
      (csr) => fleet.sign('e2e', { signer: 'kubernetes.io/kube-apiserver-client', csr, admin: true }),
    );
    api = await startApiServer({ cluster: 'e2e', tls: serving, clientCa: bundle, store: c.store });
    controllers = await startControllers({ cluster: 'e2e', store: c.store, ca: sca.backend, tuning: { retryBaseMs: 50, retryMaxMs: 500 } });
    await controllers.synced();
    token = await createBootstrapToken(c.store, { pool: 'default', ttlSeconds: 3600 });
  });
  after(async () => {
    await controllers?.stop();
    await api?.close();
    await c?.stop();
    await sca?.stop();
  });

  const asAdmin = (method: string, path: string, body?: unknown) => call(target(), { cert: admin.cert, key: admin.key }, method, path, body === undefined ? {} : { body });
  const get = async (name: string) => (await asAdmin('GET', `${CSRS}/${name}`)).json as CertificateSigningRequest;
  const issued = (name: string) =>
    waitFor(`${name} to be issued`, async () => {
      const x = await get(name);
      return x.status?.certificate ? x : undefined;
    });
  const noted = (name: string) =>
    waitFor(`the approver's note on ${name}`, async () => {
      const x = await get(name);
      return x.metadata.annotations?.[APPROVAL_NOTE_ANNOTATION] ? x : undefined;
    });
  const condition = (x: CertificateSigningRequest, type: string) => x.status?.conditions?.find((k) => k.type === type);
  const chainOf = (x: CertificateSigningRequest) => parseCertificates(Buffer.from(x.status!.certificate!, 'base64').toString('utf8'));

  function kubeconfig(user: Record<string, string>): string {
    const dir = mkdtempSync(join(c.dir, 'kc-'));
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const path = join(dir, 'config.json');
    writeFileSync(
      path,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'e2e', cluster: { server: api.url, 'certificate-authority-data': b64(bundle) } }],
        users: [{ name: 'u', user }],
        contexts: [{ name: 'e2e', context: { cluster: 'e2e', user: 'u' } }],
        'current-context': 'e2e',
      }),
    );
    return path;
  }
  const kubectl = (kc: string, args: string[]) => runKubectl(kc, args, { cacheDir: mkdtempSync(join(c.dir, 'kcache-')) });

  test('a CSR created with a bootstrap token (kubectl) for a fresh node is approved and issued; the certificate authenticates the node', async () => {
    const { pem, key } = await nodeCsr('n1');
    const manifest = join(c.dir, 'boot-n1.json');
    writeFileSync(manifest, JSON.stringify(csrManifest('boot-n1', pem)));
    const created = await kubectl(kubeconfig({ token: token.token }), ['create', '-f', manifest]);
    assert.equal(created.status, 0, created.stderr);

    const done = await issued('boot-n1');
    const approvedCond = condition(done, 'Approved')!;
    assert.equal(approvedCond.reason, 'AutoApproved');
    assert.equal(approvedCond.message, `bootstrap of node n1 by token ${token.id}`);
    const [leaf, ...rest] = chainOf(done);
    verifyChain(leaf, rest, parseCertificates(bundle), { at: new Date(), purpose: 'clientAuth' });
    const rec = await waitFor('n1 credential record', async () => (await getNodeCredential(c.store, 'n1'))?.record);
    assert.equal(rec.serial, leaf.serialHex);

    // The token that asked may read its own CSR back, as a kubelet polls for its certificate.
    const mine = await call(target(), { token: token.token }, 'GET', `${CSRS}/boot-n1`);
    assert.equal(mine.status, 200);
    assert.equal(mine.json.status.certificate, done.status!.certificate);

    // The issued certificate is a node identity: n1 registers its Node object (used by the serving test below).
    n1 = { cert: Buffer.from(done.status!.certificate!, 'base64').toString('utf8'), key };
    const node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'n1' },
      status: { addresses: [{ type: 'InternalIP', address: '10.0.0.5' }, { type: 'Hostname', address: 'n1.internal' }] },
    };
    const reg = await call(target(), n1, 'POST', '/api/v1/nodes', { body: node });
    assert.equal(reg.status, 201, reg.text);

    const listed = await kubectl(kubeconfig({ 'client-certificate-data': Buffer.from(admin.cert).toString('base64'), 'client-key-data': Buffer.from(admin.key).toString('base64') }), ['get', 'csr', 'boot-n1']);
    assert.equal(listed.status, 0, listed.stderr);
    assert.match(listed.stdout, /boot-n1\s.*Approved,Issued/);
  });

  test('a second token CSR for the same node name, which now holds a live credential, is not approved', async () => {
    const { pem } = await nodeCsr('n1');
    const r = await call(target(), { token: token.token }, 'POST', CSRS, { body: csrManifest('boot-n1-again', pem) });
    assert.equal(r.status, 201, r.text);
    const x = await noted('boot-n1-again');
    assert.match(x.metadata.annotations![APPROVAL_NOTE_ANNOTATION], /node "n1" already holds a live client credential/);
    assert.equal(condition(x, 'Approved'), undefined);
    assert.equal(condition(x, 'Denied'), undefined);
    assert.equal(x.status?.certificate, undefined);
  });

  test('the node renewing its own client certificate is approved and issued', async () => {
    const before = (await getNodeCredential(c.store, 'n1'))!.record;
    const { pem } = await nodeCsr('n1');
    const r = await call(target(), n1, 'POST', CSRS, { body: csrManifest('renew-n1', pem, { expirationSeconds: 7200 }) });
    assert.equal(r.status, 201, r.text);
    const done = await issued('renew-n1');
    assert.equal(condition(done, 'Approved')!.message, 'renewal by node n1 of its own client certificate');
    const [leaf] = chainOf(done);
    const rec = await waitFor('the renewal recorded', async () => {
      const x = (await getNodeCredential(c.store, 'n1'))?.record;
      return x && x.serial === leaf.serialHex ? x : undefined;
    });
    assert.deepEqual(credentialEntries(rec).map((e) => e.serial), [leaf.serialHex, before.serial]);
  });

  test('a node asking for another node\'s name is refused at admission; a bound token for another node is refused too', async () => {
    const other = await nodeCsr('n2');
    const r = await call(target(), n1, 'POST', CSRS, { body: csrManifest('n1-as-n2', other.pem) });
    assert.equal(r.status, 403, r.text);
    assert.match(r.json.message, /node "n1" may only request certificates for "CN=system:node:n1, O=system:nodes"/);
    assert.equal((await asAdmin('GET', `${CSRS}/n1-as-n2`)).status, 404);

    const bound = await createBootstrapToken(c.store, { pool: 'default', ttlSeconds: 3600, nodeName: 'n3' });
    const wrong = await call(target(), { token: bound.token }, 'POST', CSRS, { body: csrManifest('n3-as-n4', (await nodeCsr('n4')).pem) });
    assert.equal(wrong.status, 403, wrong.text);
    assert.match(wrong.json.message, /bound to node "n3"/);
    // The same token, used for its own node, is approved by the bootstrap rule.
    const right = await call(target(), { token: bound.token }, 'POST', CSRS, { body: csrManifest('boot-n3', (await nodeCsr('n3')).pem) });
    assert.equal(right.status, 201, right.text);
    assert.equal(condition(await issued('boot-n3'), 'Approved')!.message, `bootstrap of node n3 by token ${bound.id} (single-use, bound to this node)`);
  });

  /** An administrator's approval, as `kubectl certificate approve` sends it. */
  const approveAsAdmin = async (name: string) => {
    const x = await get(name);
    const conditions = [...(x.status?.conditions ?? []), { type: 'Approved', status: 'True', reason: 'KubectlApprove', message: 'approved by an administrator' }];
    const r = await asAdmin('PUT', `${CSRS}/${name}/approval`, { ...x, status: { ...x.status, conditions } });
    assert.equal(r.status, 200, r.text);
  };
  const failed = (name: string) =>
    waitFor(`${name} to fail`, async () => {
      const x = await get(name);
      return condition(x, 'Failed') ? x : undefined;
    });

  test('a serving CSR for addresses the control plane has not seen the node at stays pending; its name and the address it connects from are issued', async () => {
    const bad = await nodeCsr('n1', { sans: { dns: ['n1.internal'], ip: ['127.0.0.1', '10.0.0.66'] } });
    const r1 = await call(target(), n1, 'POST', CSRS, { body: csrManifest('serving-bad', bad.pem, { signerName: KUBELET_SERVING }) });
    assert.equal(r1.status, 201, r1.text);
    // The API server recorded where the request came from; the client could not have set it.
    assert.deepEqual(r1.json.spec.extra['trustplane.io/source-address'], ['127.0.0.1']);
    const pending = await noted('serving-bad');
    assert.match(pending.metadata.annotations![APPROVAL_NOTE_ANNOTATION], /DNS n1\.internal, IP 10\.0\.0\.66 are not known to the control plane as node "n1"'s/);
    assert.equal(condition(pending, 'Approved'), undefined);

    const good = await nodeCsr('n1', { sans: { dns: ['n1'], ip: ['127.0.0.1'] } });
    const r2 = await call(target(), n1, 'POST', CSRS, { body: csrManifest('serving-good', good.pem, { signerName: KUBELET_SERVING }) });
    assert.equal(r2.status, 201, r2.text);
    const done = await issued('serving-good');
    const [leaf, ...rest] = chainOf(done);
    verifyChain(leaf, rest, parseCertificates(bundle), { at: new Date(), purpose: 'serverAuth' });
    assert.deepEqual(leaf.sans.ip, ['127.0.0.1']);
    // Still pending: nothing about it changed, and nothing approves it behind the administrator's back.
    const still = await get('serving-bad');
    assert.equal(condition(still, 'Approved'), undefined);
    assert.equal(still.status?.certificate, undefined);
  });

  test("a serving CSR within the node pool's DNS suffixes and address ranges is issued", async () => {
    // n1 joined with a token of pool "default" (recorded with its credential); the pool now allows more.
    await createNodePool(c.store, 'e2e', 'default', systemClock, true, { allowedCidrs: ['10.0.0.0/24'], dnsSuffixes: ['internal'] });
    const csr = await nodeCsr('n1', { sans: { dns: ['n1.internal'], ip: ['10.0.0.5'] } });
    assert.equal((await call(target(), n1, 'POST', CSRS, { body: csrManifest('serving-pool', csr.pem, { signerName: KUBELET_SERVING }) })).status, 201);
    const done = await issued('serving-pool');
    assert.match(condition(done, 'Approved')!.message!, /serving certificate of node n1 for its own addresses DNS n1\.internal, IP 10\.0\.0\.5/);
  });

  test("the attack: a node writes the API server's names, a service IP and another node's name on its Node, asks for them: not approved; approved by an administrator, the CA refuses and the CSR fails", async () => {
    const patch = {
      status: {
        addresses: [
          { type: 'InternalIP', address: '127.0.0.1' },
          { type: 'Hostname', address: 'kubernetes.default.svc' },
          { type: 'Hostname', address: 'kubernetes' },
          { type: 'Hostname', address: 'n3' },
          { type: 'InternalIP', address: '10.96.0.1' },
        ],
      },
    };
    const patched = await call(target(), n1, 'PATCH', '/api/v1/nodes/n1/status', { body: patch, contentType: 'application/merge-patch+json' });
    assert.equal(patched.status, 200, patched.text);

    const asked = await nodeCsr('n1', { sans: { dns: ['kubernetes.default.svc', 'kubernetes'], ip: ['10.96.0.1'] } });
    assert.equal((await call(target(), n1, 'POST', CSRS, { body: csrManifest('serving-as-apiserver', asked.pem, { signerName: KUBELET_SERVING }) })).status, 201);
    const note = (await noted('serving-as-apiserver')).metadata.annotations![APPROVAL_NOTE_ANNOTATION];
    assert.match(note, /DNS kubernetes\.default\.svc is a name of the cluster's API server; DNS kubernetes is a name of the cluster's API server; IP 10\.96\.0\.1 is in the service network/);
    assert.match(note, /never approved for a node/);
    assert.equal(condition(await get('serving-as-apiserver'), 'Approved'), undefined);

    // An administrator approves it anyway: the CA's kubelet-serving profile refuses, and the CSR ends Failed with the reason.
    await approveAsAdmin('serving-as-apiserver');
    const f = await failed('serving-as-apiserver');
    assert.equal(condition(f, 'Failed')!.reason, 'SignerValidationFailure');
    assert.match(condition(f, 'Failed')!.message!, /DNS kubernetes\.default\.svc is a name of the cluster's API server; a node's serving certificate may not carry it/);
    assert.equal(f.status?.certificate, undefined);

    // Another node's name (n3 holds a credential): pending, and refused by the CA after an administrator's approval.
    const other = await nodeCsr('n1', { sans: { dns: ['n3'] } });
    assert.equal((await call(target(), n1, 'POST', CSRS, { body: csrManifest('serving-as-n3', other.pem, { signerName: KUBELET_SERVING }) })).status, 201);
    assert.match((await noted('serving-as-n3')).metadata.annotations![APPROVAL_NOTE_ANNOTATION], /DNS n3 is the name of another node/);
    await approveAsAdmin('serving-as-n3');
    assert.match(condition(await failed('serving-as-n3'), 'Failed')!.message!, /DNS n3 is not node n1's name nor a name below it/);
  });

  test('usages are enforced: a client signer asked for server auth, or a CSR whose own extensions ask for more, ends Failed with the usage named', async () => {
    const alice = [{ type: 'CN', value: 'alice' }];
    const serverAuth = await nodeCsr('x', { subject: alice });
    assert.equal((await asAdmin('POST', CSRS, csrManifest('alice-server-auth', serverAuth.pem, { signerName: APISERVER_CLIENT, usages: ['server auth'] }))).status, 201);
    await approveAsAdmin('alice-server-auth');
    const f1 = await failed('alice-server-auth');
    assert.equal(condition(f1, 'Failed')!.reason, 'SignerValidationFailure');
    assert.match(condition(f1, 'Failed')!.message!, /usage "server auth" not allowed for signer kubernetes\.io\/kube-apiserver-client/);
    assert.equal(f1.status?.certificate, undefined);

    // Asked exactly [client auth]: issued with exactly that extended usage, not more.
    const plain = await nodeCsr('x', { subject: alice });
    assert.equal((await asAdmin('POST', CSRS, csrManifest('alice-client', plain.pem, { signerName: APISERVER_CLIENT, usages: ['client auth'] }))).status, 201);
    await approveAsAdmin('alice-client');
    const [leaf] = chainOf(await issued('alice-client'));
    assert.deepEqual(leaf.extKeyUsage, ['clientAuth']);

    // The PKCS#10 itself asks for serverAuth and keyCertSign: refused by name, never trimmed.
    const kp = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
    const extensions = [
      { oid: OID.extKeyUsage, critical: false, value: encodeExtKeyUsage(['clientAuth', 'serverAuth']) },
    ];
    const asking = pemEncode('CERTIFICATE REQUEST', await buildCsr({ subject: alice, extensions, signer: kp.signer }));
    assert.equal((await asAdmin('POST', CSRS, csrManifest('alice-asks-server', asking, { signerName: APISERVER_CLIENT, usages: ['digital signature', 'client auth'] }))).status, 201);
    await approveAsAdmin('alice-asks-server');
    assert.match(condition(await failed('alice-asks-server'), 'Failed')!.message!, /CSR requests extended key usage serverAuth/);
  });

  test('an approved CSR for a signer nobody here serves says so on the CSR', async () => {
    const { pem } = await nodeCsr('x', { subject: [{ type: 'CN', value: 'bob' }] });
    assert.equal((await asAdmin('POST', CSRS, csrManifest('custom-signer', pem, { signerName: 'example.com/custom', usages: ['client auth'] }))).status, 201);
    await approveAsAdmin('custom-signer');
    const x = await waitFor('the signing note', async () => {
      const y = await get('custom-signer');
      return y.metadata.annotations?.[SIGNING_NOTE_ANNOTATION] ? y : undefined;
    });
    assert.match(x.metadata.annotations![SIGNING_NOTE_ANNOTATION], /^no signer in this cluster serves signer "example\.com\/custom"/);
    assert.equal(condition(x, 'Failed'), undefined);
  });
});
