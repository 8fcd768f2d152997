// Who may do what, over HTTPS with real credentials: admin, node, bootstrap token (pool and single-use), anyone else, nobody.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createBootstrapToken, deleteBootstrapToken, getBootstrapToken } from '../../src/apiserver/index.js';
import { ManualClock } from '../../src/util/clock.js';
import { opensslCsr } from '../helpers/openssl.js';
import type { PemPair } from '../helpers/openssl-certs.js';
import { call, csrManifest, startTestCluster, writeIn, type Credentials, type TestCluster } from './harness.js';

const CSRS = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
const NODES = '/api/v1/nodes';
const LEASES = '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases';

// Each test makes the objects and tokens it uses (the before hook only what every test may rely on), so that any one of
// them passes alone (--test-name-pattern) and none depends on what another left behind.
describe('authorization', () => {
  let c: TestCluster;
  // An hour ahead: certificates openssl issues during the test (notBefore = now) are already valid by this clock.
  const clock = new ManualClock(Date.now() + 3600_000);
  let admin: Credentials;
  let n1: PemPair;
  let alice: PemPair;
  let token: { token: string; id: string };
  const pem: Record<string, string> = {};

  before(async () => {
    c = await startTestCluster({ clock });
    admin = c.admin;
    n1 = c.node('n1');
    alice = c.user('alice', 'devs');
    token = await createBootstrapToken(c.store, { pool: 'pool-a', ttlSeconds: 3600 }, clock);
    for (const [k, subj] of Object.entries({
      n1: '/CN=system:node:n1/O=system:nodes',
      n2: '/CN=system:node:n2/O=system:nodes',
      n3: '/CN=system:node:n3/O=system:nodes',
      n4: '/CN=system:node:n4/O=system:nodes',
      n9: '/CN=system:node:n9/O=system:nodes',
      masters: '/CN=admin/O=system:masters',
    })) {
      pem[k] = opensslCsr(c.dir, `csr-${k}`, { subj });
    }
    assert.equal((await call(c, admin, 'POST', CSRS, { body: csrManifest('admin-csr', pem.n9) })).status, 201);
  });
  after(() => c?.stop());

  /** A reusable pool token of its own for one test: what a token may see is then exactly what that test made with it. */
  const ownToken = async () => {
    const t = await createBootstrapToken(c.store, { pool: 'pool-a', ttlSeconds: 3600 }, clock);
    return { token: t.token, id: t.id };
  };
  /** A kubelet-client CSR that node n1 makes for itself. */
  const n1Csr = async (name: string) => {
    const r = await call(c, n1, 'POST', CSRS, { body: csrManifest(name, pem.n1) });
    assert.equal(r.status, 201, r.text);
    return r.json;
  };

  it('no credentials, a wrong token or a malformed one: 401 Status, and kubectl says to log in', async () => {
    for (const creds of [{}, { token: `${token.id}.0000000000000000` }, { token: 'nonsense' }, { token: 'abcdef.ghijklmnopqrstuv' }]) {
      const r = await call(c, creds, 'GET', CSRS);
      assert.equal(r.status, 401);
      assert.deepEqual({ kind: r.json.kind, reason: r.json.reason, code: r.json.code }, { kind: 'Status', reason: 'Unauthorized', code: 401 });
    }
    const k = await c.kubectl(c.kubeconfig({ token: 'abcdef.0123456789abcdef' }), ['get', 'csr']);
    assert.notEqual(k.status, 0);
    assert.match(k.stderr, /You must be logged in to the server/);
  });

  it('bootstrap token: creates kubelet-client CSRs as itself, reads only its own', async () => {
    const tok = await ownToken();
    const body = csrManifest('boot-1', pem.n9, { extraSpec: { username: 'admin', groups: ['system:masters'] } });
    const r = await call(c, tok, 'POST', CSRS, { body });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.spec.username, `system:bootstrap:${tok.id}`, 'spec.username comes from authentication, never the body');
    assert.deepEqual(r.json.spec.groups, ['system:bootstrappers', 'system:bootstrappers:pool-a', 'system:authenticated']);

    assert.equal((await call(c, tok, 'GET', `${CSRS}/boot-1`)).status, 200);
    const other = await call(c, tok, 'GET', `${CSRS}/admin-csr`);
    assert.equal(other.status, 403);
    assert.equal((await call(c, tok, 'GET', `${CSRS}/does-not-exist`)).status, 403, 'missing and foreign look the same');
    const list = await call(c, tok, 'GET', CSRS);
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.items.map((i: { metadata: { name: string } }) => i.metadata.name), ['boot-1']);
  });

  it('bootstrap token: refused other signers, other subjects, approval, delete, nodes', async () => {
    const tok = await ownToken();
    assert.equal((await call(c, tok, 'POST', CSRS, { body: csrManifest('boot-2', pem.n9) })).status, 201);
    const wrongSigner = await call(c, tok, 'POST', CSRS, { body: csrManifest('boot-x', pem.n9, { signerName: 'kubernetes.io/kube-apiserver-client' }) });
    assert.equal(wrongSigner.status, 403);
    assert.match(wrongSigner.json.message, /may only request certificates from signer "kubernetes.io\/kube-apiserver-client-kubelet"/);
    const masters = await call(c, tok, 'POST', CSRS, { body: csrManifest('boot-y', pem.masters) });
    assert.equal(masters.status, 403);
    assert.match(masters.json.message, /CN=system:node:<node name>, O=system:nodes/);

    const csr = (await call(c, tok, 'GET', `${CSRS}/boot-2`)).json;
    csr.status = { conditions: [{ type: 'Approved', status: 'True', reason: 'self', message: 'self' }] };
    const approve = await call(c, tok, 'PUT', `${CSRS}/boot-2/approval`, { body: csr });
    assert.equal(approve.status, 403);
    assert.equal(approve.json.message, `certificatesigningrequests.certificates.k8s.io "boot-2" is forbidden: User "system:bootstrap:${tok.id}" cannot update resource "certificatesigningrequests/approval" in API group "certificates.k8s.io" at the cluster scope: only administrators may change the approval or status of a certificate signing request`);
    assert.equal((await call(c, tok, 'DELETE', `${CSRS}/boot-2`)).status, 403);
    assert.equal((await call(c, tok, 'GET', NODES)).status, 403);
    assert.ok(await c.store.get('/registry/certificatesigningrequests/boot-2'));
    assert.equal(await c.store.get('/registry/certificatesigningrequests/boot-x'), null);
  });

  it('node: renews its own client and serving credentials; another node\'s name is 403 (via kubectl too)', async () => {
    const client = await call(c, n1, 'POST', CSRS, { body: csrManifest('n1-client', pem.n1) });
    assert.equal(client.status, 201, client.text);
    assert.equal(client.json.spec.username, 'system:node:n1');
    const serving = await call(c, n1, 'POST', CSRS, { body: csrManifest('n1-serving', pem.n1, { signerName: 'kubernetes.io/kubelet-serving', usages: ['digital signature', 'server auth'] }) });
    assert.equal(serving.status, 201, serving.text);

    const foreign = await call(c, n1, 'POST', CSRS, { body: csrManifest('n1-for-n2', pem.n2) });
    assert.equal(foreign.status, 403);
    const kc = c.kubeconfig(n1);
    const k = await c.kubectl(kc, ['create', '-f', writeIn(c, 'n2.json', csrManifest('n1-for-n2', pem.n2))]);
    assert.notEqual(k.status, 0);
    assert.match(k.stderr, /Error from server \(Forbidden\): error when creating ".*n2.json": certificatesigningrequests.certificates.k8s.io is forbidden: User "system:node:n1" cannot create resource "certificatesigningrequests" in API group "certificates.k8s.io" at the cluster scope: node "n1" may only request certificates for "CN=system:node:n1, O=system:nodes", not for "CN=system:node:n2, O=system:nodes"/);
    assert.equal(await c.store.get('/registry/certificatesigningrequests/n1-for-n2'), null);

    const otherSigner = await call(c, n1, 'POST', CSRS, { body: csrManifest('n1-any', pem.n1, { signerName: 'example.com/anything' }) });
    assert.equal(otherSigner.status, 403);

    // The node lists its own requests only (other tests may have made more of them), never the admin's.
    const list = await call(c, n1, 'GET', CSRS);
    const names = list.json.items.map((i: { metadata: { name: string } }) => i.metadata.name);
    assert.ok(names.includes('n1-client') && names.includes('n1-serving'), names.join());
    assert.deepEqual(list.json.items.filter((i: { spec: { username: string } }) => i.spec.username !== 'system:node:n1'), []);
    assert.equal((await call(c, n1, 'GET', `${CSRS}/admin-csr`)).status, 403);
  });

  it('node: its own Node and Lease, nobody else\'s', async () => {
    const node = (name: string) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: '10.1.1.1' }] } });
    assert.equal((await call(c, n1, 'POST', NODES, { body: node('n1') })).status, 201);
    const n2 = await call(c, n1, 'POST', NODES, { body: node('n2') });
    assert.equal(n2.status, 403);
    assert.match(n2.json.message, /node "n1" may only create its own Node object/);
    assert.equal((await call(c, admin, 'POST', NODES, { body: node('n2') })).status, 201);
    assert.equal((await call(c, n1, 'GET', `${NODES}/n2`)).status, 403);
    assert.deepEqual((await call(c, n1, 'GET', NODES)).json.items.map((i: { metadata: { name: string } }) => i.metadata.name), ['n1']);

    const own = (await call(c, n1, 'GET', `${NODES}/n1`)).json;
    own.status.conditions = [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'ok' }];
    const st = await call(c, n1, 'PUT', `${NODES}/n1/status`, { body: own });
    assert.equal(st.status, 200, st.text);
    assert.equal(st.json.status.conditions[0].type, 'Ready');
    const patched = await call(c, n1, 'PATCH', `${NODES}/n1`, { body: { metadata: { labels: { zone: 'a' } } }, contentType: 'application/merge-patch+json' });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.json.metadata.labels.zone, 'a');
    assert.equal(patched.json.status.conditions[0].type, 'Ready', 'the main resource keeps status');
    assert.equal((await call(c, n1, 'PATCH', `${NODES}/n2`, { body: { metadata: { labels: { x: 'y' } } }, contentType: 'application/merge-patch+json' })).status, 403);
    assert.equal((await call(c, n1, 'DELETE', `${NODES}/n1`)).status, 403);

    const lease = (name: string) => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: 'kube-node-lease' }, spec: { holderIdentity: name, leaseDurationSeconds: 40 } });
    assert.equal((await call(c, n1, 'POST', LEASES, { body: lease('n1') })).status, 201);
    assert.equal((await call(c, n1, 'POST', LEASES, { body: lease('n2') })).status, 403);
    const l = (await call(c, n1, 'GET', `${LEASES}/n1`)).json;
    l.spec.renewTime = '2025-01-01T00:00:00.000000Z';
    assert.equal((await call(c, n1, 'PUT', `${LEASES}/n1`, { body: l })).status, 200);
    assert.ok(await c.store.get('/registry/leases/kube-node-lease/n1'));
    assert.ok(await c.store.get('/registry/minions/n1'));
  });

  it('node: may not give itself a role label; an admin may', async () => {
    const merge = 'application/merge-patch+json';
    const role = { metadata: { labels: { 'node-role.kubernetes.io/control-plane': '' } } };
    const n6 = c.node('n6');
    assert.equal((await call(c, n6, 'POST', NODES, { body: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n6' } } })).status, 201);
    const refused = await call(c, n6, 'PATCH', `${NODES}/n6`, { body: role, contentType: merge });
    assert.equal(refused.status, 403);
    assert.match(refused.json.message, /nodes may not set or change the labels node-role.kubernetes.io\/control-plane/);
    const createWithRole = await call(c, c.node('n5'), 'POST', NODES, { body: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n5', labels: { 'node-role.kubernetes.io/master': '' } } } });
    assert.equal(createWithRole.status, 403);
    assert.equal((await call(c, admin, 'PATCH', `${NODES}/n6`, { body: role, contentType: merge })).status, 200);
    const keep = await call(c, n6, 'PATCH', `${NODES}/n6`, { body: { metadata: { labels: { zone: 'b' } } }, contentType: merge });
    assert.equal(keep.status, 200, 'other labels stay the node\'s own, with the admin\'s role label untouched');
    assert.equal(keep.json.metadata.labels['node-role.kubernetes.io/control-plane'], '');
  });

  it('node and token may not approve; anyone else is refused everything with a 403 naming verb, resource and user', async () => {
    const csr = await n1Csr('n1-self-approve');
    csr.status = { conditions: [{ type: 'Approved', status: 'True', reason: 'r', message: 'm' }] };
    assert.equal((await call(c, n1, 'PUT', `${CSRS}/n1-self-approve/approval`, { body: csr })).status, 403);
    const byToken = await call(c, await ownToken(), 'PUT', `${CSRS}/n1-self-approve/approval`, { body: csr });
    assert.equal(byToken.status, 403);
    assert.equal((await call(c, admin, 'GET', `${CSRS}/n1-self-approve`)).json.status?.conditions, undefined, 'still unapproved');

    const list = await call(c, alice, 'GET', CSRS);
    assert.equal(list.status, 403);
    assert.equal(list.json.message, 'certificatesigningrequests.certificates.k8s.io is forbidden: User "alice" cannot list resource "certificatesigningrequests" in API group "certificates.k8s.io" at the cluster scope');
    assert.deepEqual(list.json.details, { group: 'certificates.k8s.io', kind: 'certificatesigningrequests' });
    assert.equal((await call(c, alice, 'POST', CSRS, { body: csrManifest('alice-1', pem.n9) })).status, 403);
    assert.equal((await call(c, alice, 'GET', `${NODES}/n1`)).status, 403);
    const k = await c.kubectl(c.kubeconfig(alice), ['get', 'nodes']);
    assert.match(k.stderr, /Error from server \(Forbidden\): nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope/);
  });

  it('admin: approval (409 on a stale resourceVersion), status with a certificate only once approved', async () => {
    await n1Csr('n1-admin-flow');
    const csr = (await call(c, admin, 'GET', `${CSRS}/n1-admin-flow`)).json;
    const cert = c.ca.issue('issued-n1', { cn: 'system:node:n1', o: 'system:nodes', eku: ['clientAuth'] }).cert;
    const early = await call(c, admin, 'PUT', `${CSRS}/n1-admin-flow/status`, { body: { ...csr, status: { certificate: Buffer.from(cert).toString('base64') } } });
    assert.equal(early.status, 422);
    assert.match(early.json.message, /certificate may only be set when the request is approved/);

    const approved = await call(c, admin, 'PUT', `${CSRS}/n1-admin-flow/approval`, {
      body: { ...csr, status: { conditions: [{ type: 'Approved', status: 'True', reason: 'AdminApproved', message: 'ok' }] } },
    });
    assert.equal(approved.status, 200, approved.text);
    const stale = await call(c, admin, 'PUT', `${CSRS}/n1-admin-flow/approval`, {
      body: { ...csr, status: { conditions: [{ type: 'Denied', status: 'True', reason: 'x', message: 'y' }] } },
    });
    assert.equal(stale.status, 409);
    assert.equal(stale.json.reason, 'Conflict');

    const issued = await call(c, admin, 'PUT', `${CSRS}/n1-admin-flow/status`, { body: { ...approved.json, status: { ...approved.json.status, certificate: Buffer.from(cert).toString('base64') } } });
    assert.equal(issued.status, 200, issued.text);
    assert.equal(issued.json.status.conditions[0].type, 'Approved', 'the status subresource keeps approval conditions');
    const n1Sees = await call(c, n1, 'GET', `${CSRS}/n1-admin-flow`);
    assert.equal(Buffer.from(n1Sees.json.status.certificate, 'base64').toString(), cert);
  });

  it('single-use token bound to a node name: one CSR, for that name only', async () => {
    const bound = await createBootstrapToken(c.store, { pool: 'pool-a', ttlSeconds: 600, nodeName: 'n3' }, clock);
    const creds = { token: bound.token };
    const wrong = await call(c, creds, 'POST', CSRS, { body: csrManifest('bound-n4', pem.n4) });
    assert.equal(wrong.status, 403);
    assert.match(wrong.json.message, /bound to node "n3"/);
    const first = await call(c, creds, 'POST', CSRS, { body: csrManifest('bound-n3', pem.n3) });
    assert.equal(first.status, 201, first.text);
    assert.deepEqual(first.json.spec.extra['trustplane.io/bound-node-name'], ['n3']);
    // When the token was made goes along too, for the approver's rule after a revocation.
    assert.ok(Date.parse(first.json.spec.extra['trustplane.io/token-created-at'][0]) > Date.now() - 600_000);
    const second = await call(c, creds, 'POST', CSRS, { body: csrManifest('bound-n3-again', pem.n3) });
    assert.equal(second.status, 403);
    assert.match(second.json.message, /already been used/);
    assert.equal((await call(c, creds, 'GET', `${CSRS}/bound-n3`)).status, 200, 'the spent token still reads its CSR');
    assert.equal((await getBootstrapToken(c.store, bound.id))?.usedBy, 'bound-n3');
  });

  it('tokens expire by the clock and stop working when deleted', async () => {
    const short = await createBootstrapToken(c.store, { pool: 'pool-a', ttlSeconds: 60 }, clock);
    assert.equal((await call(c, { token: short.token }, 'GET', CSRS)).status, 200);
    clock.advance(61_000);
    assert.equal((await call(c, { token: short.token }, 'GET', CSRS)).status, 401);
    const k = await c.kubectl(c.kubeconfig({ token: short.token }), ['get', 'csr']);
    assert.match(k.stderr, /You must be logged in to the server/);
    const kept = await createBootstrapToken(c.store, { pool: 'pool-a', ttlSeconds: 3600 }, clock);
    assert.equal((await call(c, { token: kept.token }, 'GET', CSRS)).status, 200);
    assert.equal(await deleteBootstrapToken(c.store, kept.id), true);
    assert.equal((await call(c, { token: kept.token }, 'GET', CSRS)).status, 401);
  });
});
