// ClusterTrustBundles (certificates.k8s.io/v1beta1) on a real API server: the real kubectl (1.33 and the dispatcher) lists
// them with upstream's columns; anyone authenticated reads them; only administrators write them, and a signer-linked one
// only with `attest` on its signer; names, PEM and signer as kube-apiserver validates them; the control plane's publish.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createBootstrapToken } from '../../src/apiserver/index.js';
import { authorizedForSigner, clusterTrustBundleRefusal } from '../../src/apiserver/auth/authorize.js';
import { ClusterTrustBundleRegistry, publishedBundleName, type ClusterTrustBundle } from '../../src/apiserver/registry/cluster-trust-bundle.js';
import { makeOpensslCa } from '../helpers/openssl-certs.js';
import { call, runKubectl, startTestCluster, writeIn, type Credentials, type TestCluster } from './harness.js';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';

const PATH = '/apis/certificates.k8s.io/v1beta1/clustertrustbundles';
const KUBECTL_133 = '/usr/lib/google-cloud-sdk/bin/kubectl.1.33';
const SIGNER = 'example.com/issuer';

const bundle = (name: string, trustBundle: string, signerName?: string): ClusterTrustBundle => ({
  apiVersion: 'certificates.k8s.io/v1beta1',
  kind: 'ClusterTrustBundle',
  metadata: { name },
  spec: { ...(signerName !== undefined ? { signerName } : {}), trustBundle },
});

describe('ClusterTrustBundles', () => {
  let c: TestCluster;
  let adminKc: string;
  let node: Credentials;
  let alice: Credentials;
  let token: Credentials;
  const otherCa = makeOpensslCa('another CA');

  before(async () => {
    c = await startTestCluster();
    adminKc = c.kubeconfig(c.admin, 'admin');
    node = c.node('n1');
    alice = c.user('alice', 'devs');
    token = { token: (await createBootstrapToken(c.store, { pool: 'p', ttlSeconds: 3600 })).token };
  });
  after(() => c?.stop());

  const kubectl = (binary: string, kc: string, args: string[]) => runKubectl(kc, args, { cacheDir: mkdtempSync(join(c.dir, 'kc-')), binary });

  it('discovery lists the resource in certificates.k8s.io/v1beta1, cluster-scoped, without short names', async () => {
    const r = await call(c, c.admin, 'GET', '/apis/certificates.k8s.io/v1beta1');
    assert.equal(r.status, 200, r.text);
    const res = r.json.resources.find((x: { name: string }) => x.name === 'clustertrustbundles');
    assert.deepEqual({ ...res, verbs: [...res.verbs].sort() }, {
      name: 'clustertrustbundles', singularName: 'clustertrustbundle', namespaced: false, kind: 'ClusterTrustBundle',
      verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
    });
    const group = await call(c, c.admin, 'GET', '/apis/certificates.k8s.io');
    assert.equal(group.json.preferredVersion.version, 'v1', 'CSRs stay at v1, the preferred version');
    const v3 = await call(c, c.admin, 'GET', '/openapi/v3');
    assert.ok(JSON.parse(v3.text).paths['apis/certificates.k8s.io/v1beta1'], 'OpenAPI v3 has the group-version document');
    const v2 = await call(c, c.admin, 'GET', '/openapi/v2');
    assert.ok(v2.json.paths[`${PATH}/{name}`].patch, 'OpenAPI v2 has its paths');
  });

  it('an administrator creates one with kubectl; kubectl 1.33 and the dispatcher print NAME and SIGNERNAME', async () => {
    const f = writeIn(c, 'ctb.json', bundle('example.com:issuer:one', c.ca.cert, SIGNER));
    const created = await kubectl(KUBECTL_133, adminKc, ['create', '-f', f]);
    assert.equal(created.status, 0, created.stderr);
    assert.match(created.stdout, /clustertrustbundle.certificates.k8s.io\/example.com:issuer:one created/);
    const f2 = writeIn(c, 'ctb-plain.json', bundle('plain-roots', otherCa.cert));
    const applied = await kubectl(KUBECTL_133, adminKc, ['apply', '-f', f2]);
    assert.equal(applied.status, 0, applied.stderr);
    for (const binary of [KUBECTL_133, '/usr/bin/kubectl']) {
      const r = await kubectl(binary, adminKc, ['get', 'clustertrustbundles']);
      assert.equal(r.status, 0, `${binary}: ${r.stderr}`);
      const [header, ...rows] = r.stdout.trim().split('\n');
      assert.deepEqual(header.split(/\s+/), ['NAME', 'SIGNERNAME'], binary);
      assert.deepEqual(rows.map((l) => l.split(/\s+/)).sort(), [['example.com:issuer:one', SIGNER], ['plain-roots', '<none>']], binary);
    }
    const sel = await kubectl(KUBECTL_133, adminKc, ['get', 'clustertrustbundles', '--field-selector', `spec.signerName=${SIGNER}`, '-o', 'jsonpath={.items[*].metadata.name}']);
    assert.equal(sel.status, 0, sel.stderr);
    assert.equal(sel.stdout, 'example.com:issuer:one');
    const pem = await kubectl(KUBECTL_133, adminKc, ['get', 'clustertrustbundle', 'example.com:issuer:one', '-o', 'jsonpath={.spec.trustBundle}']);
    assert.equal(pem.stdout.trim(), c.ca.cert.trim());
  });

  it('nodes, users and bootstrap tokens read them; none of them may create, change or delete one (403)', async () => {
    for (const [who, creds] of Object.entries({ node, alice, token })) {
      const list = await call(c, creds, 'GET', PATH);
      assert.equal(list.status, 200, `${who} lists: ${list.text}`);
      assert.equal(list.json.items.length, 2, who);
      const get = await call(c, creds, 'GET', `${PATH}/example.com:issuer:one`);
      assert.equal(get.status, 200, `${who} gets: ${get.text}`);
      const create = await call(c, creds, 'POST', PATH, { body: bundle(`example.com:issuer:${who.toLowerCase()}`, otherCa.cert, SIGNER) });
      assert.equal(create.status, 403, `${who} creates: ${create.text}`);
      assert.match(create.json.message, /only administrators may create, change or delete cluster trust bundles/);
      const cur = get.json as ClusterTrustBundle;
      const put = await call(c, creds, 'PUT', `${PATH}/example.com:issuer:one`, { body: { ...cur, spec: { ...cur.spec, trustBundle: otherCa.cert } } });
      assert.equal(put.status, 403, `${who} updates: ${put.text}`);
      const patch = await call(c, creds, 'PATCH', `${PATH}/example.com:issuer:one`, { body: { spec: { trustBundle: otherCa.cert } }, contentType: 'application/merge-patch+json' });
      assert.equal(patch.status, 403, `${who} patches: ${patch.text}`);
      const del = await call(c, creds, 'DELETE', `${PATH}/example.com:issuer:one`);
      assert.equal(del.status, 403, `${who} deletes: ${del.text}`);
    }
    const nodeKc = c.kubeconfig(node, 'node');
    const r = await kubectl(KUBECTL_133, nodeKc, ['create', '-f', writeIn(c, 'ctb-node.json', bundle('example.com:issuer:node', otherCa.cert, SIGNER))]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Error from server \(Forbidden\).*cannot create resource "clustertrustbundles"/);
    const seen = await kubectl(KUBECTL_133, nodeKc, ['get', 'clustertrustbundles']);
    assert.equal(seen.status, 0, seen.stderr);
    assert.match(seen.stdout, /example.com:issuer:one/);
    const still = await call(c, c.admin, 'GET', `${PATH}/example.com:issuer:one`);
    assert.equal(still.json.spec.trustBundle, c.ca.cert, 'nothing a non-administrator sent was written');
  });

  it('is validated as kube-apiserver validates it: name prefix, CA certificates only, no duplicates, immutable signer', async () => {
    const refused = async (b: unknown, pattern: RegExp, method = 'POST', path = PATH) => {
      const r = await call(c, c.admin, method, path, { body: b });
      assert.equal(r.status, 422, r.text);
      assert.match(r.json.message, pattern);
    };
    await refused(bundle('wrong-name', c.ca.cert, SIGNER), /ClusterTrustBundle for signerName example.com\/issuer must be named with prefix example.com:issuer:/);
    await refused(bundle('has:colon', c.ca.cert), /without signer name must not have ":" in its name/);
    await refused(bundle('leaf', c.admin.cert), /entry 0 does not have the CA bit set/);
    await refused(bundle('dup', c.ca.cert + c.ca.cert), /duplicate trust anchor \(indices \[0 1\]\)/);
    await refused(bundle('empty', ''), /at least one trust anchor must be provided/);
    await refused(bundle('example.com:issuer:Upper', c.ca.cert, SIGNER), /must be a lowercase RFC 1123 subdomain/);
    const cur = (await call(c, c.admin, 'GET', `${PATH}/plain-roots`)).json as ClusterTrustBundle;
    await refused({ ...cur, metadata: { ...cur.metadata, name: 'plain-roots' }, spec: { ...cur.spec, signerName: SIGNER } }, /spec.signerName: Invalid value: "example.com\/issuer": field is immutable/, 'PUT', `${PATH}/plain-roots`);
    // An administrator may change the anchors of a signer-linked bundle (administrators may attest for every signer).
    const one = (await call(c, c.admin, 'GET', `${PATH}/example.com:issuer:one`)).json as ClusterTrustBundle;
    const put = await call(c, c.admin, 'PUT', `${PATH}/example.com:issuer:one`, { body: { ...one, spec: { ...one.spec, trustBundle: c.ca.cert + otherCa.cert } } });
    assert.equal(put.status, 200, put.text);
  });

  it('the attest rule: only who may attest for the signer (or its domain "/*") writes a signer-linked bundle', () => {
    const admin = { name: 'admin', groups: ['system:masters'] };
    const user = { name: 'alice', groups: ['devs'] };
    const nodeUser = { name: 'system:node:n1', groups: ['system:nodes'] };
    const b = bundle('example.com:issuer:x', 'PEM', SIGNER);
    assert.equal(clusterTrustBundleRefusal(admin, b, undefined), undefined);
    assert.equal(clusterTrustBundleRefusal(user, b, undefined), 'user not permitted to attest for signerName "example.com/issuer"');
    assert.equal(clusterTrustBundleRefusal(nodeUser, b, undefined), 'user not permitted to attest for signerName "example.com/issuer"');
    assert.equal(clusterTrustBundleRefusal(user, bundle('plain', 'PEM'), undefined), undefined, 'no signer, no attest check');
    const changed = { ...b, spec: { ...b.spec, trustBundle: 'OTHER' } };
    assert.match(clusterTrustBundleRefusal(user, changed, b) ?? '', /not permitted to attest/);
    const gcOnly = { ...b, metadata: { ...b.metadata, finalizers: ['example.com/keep'] } };
    assert.equal(clusterTrustBundleRefusal(user, gcOnly, b), undefined, 'a finalizer-only change needs no attest');
    const relabelled = { ...b, metadata: { ...b.metadata, labels: { a: 'b' } } };
    assert.match(clusterTrustBundleRefusal(user, relabelled, b) ?? '', /not permitted to attest/, 'labels are not garbage-collection fields');
    assert.equal(clusterTrustBundleRefusal(admin, { ...b, spec: { trustBundle: 'PEM' } }, b), 'changing signerName is forbidden');
    assert.equal(authorizedForSigner(admin, 'attest', SIGNER), true);
    assert.equal(authorizedForSigner(user, 'attest', SIGNER), false);
  });

  it('publish: one object per signer named for its content; the old one goes once the new one is there', async () => {
    const reg = new ClusterTrustBundleRegistry(c.store);
    const signer = 'kubernetes.io/kubelet-serving';
    const first = await reg.publish(signer, c.ca.cert);
    assert.equal(first.name, publishedBundleName(signer, c.ca.cert));
    assert.match(first.name, /^kubernetes.io:kubelet-serving:[0-9a-f]{24}$/);
    assert.equal(first.changed, true);
    assert.deepEqual(await reg.publish(signer, c.ca.cert), { name: first.name, changed: false, deleted: [] }, 'idempotent');
    const both = c.ca.cert + otherCa.cert;
    const second = await reg.publish(signer, both);
    assert.deepEqual(second.deleted, [first.name]);
    assert.deepEqual((await reg.forSigner(signer)).map((b) => [b.metadata.name, b.spec.trustBundle]), [[second.name, both]]);
    // Someone changed the published object: publishing puts it back.
    await reg.objects.update(second.name, (b) => ({ ...b, spec: { ...b.spec, trustBundle: c.ca.cert } }));
    assert.equal((await reg.publish(signer, both)).changed, true);
    assert.equal((await reg.get(second.name)).spec.trustBundle, both);
    // Other signers' bundles are not touched.
    assert.equal((await reg.forSigner(SIGNER)).length, 1);
  });

  it('kubectl 1.27 (OpenAPI v2 protobuf) applies one client-side, and applies a change', async () => {
    const m = bundle('old-kubectl', otherCa.cert);
    const first = await kubectl('/usr/lib/google-cloud-sdk/bin/kubectl.1.27', adminKc, ['apply', '-f', writeIn(c, 'ctb-127.json', m)]);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /clustertrustbundle.certificates.k8s.io\/old-kubectl created/);
    const labelled = { ...m, metadata: { ...m.metadata, labels: { team: 'blue' } } };
    const second = await kubectl('/usr/lib/google-cloud-sdk/bin/kubectl.1.27', adminKc, ['apply', '-f', writeIn(c, 'ctb-127b.json', labelled)]);
    assert.equal(second.status, 0, second.stderr);
    assert.match(second.stdout, /old-kubectl configured/);
    assert.equal((await call(c, c.admin, 'GET', `${PATH}/old-kubectl`)).json.metadata.labels.team, 'blue');
  });
});
