// The approver's policy as a decision table: every rule that approves and every reason a request is left pending.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CertificateSigningRequest, CsrCondition, Node, UserInfo } from '../../src/apiserver/index.js';
import { canonicalIp, decideApproval, type ApprovalFacts, type ApprovalVerdict, type NodeCredential, type ServingFacts } from '../../src/controllers/index.js';
import type { SubjectAltNames } from '../../src/pki/index.js';
import { ADMIN, APISERVER_CLIENT, bootstrapUser, CLIENT_USAGES, KUBELET_CLIENT, KUBELET_SERVING, nodeUser, SERVING_USAGES } from './helpers.js';

const NOW = new Date('2030-01-01T00:00:00Z');
const inHours = (h: number) => new Date(NOW.getTime() + h * 3600_000).toISOString();

const nodeSubject = (n: string) => [
  { type: 'O', value: 'system:nodes' },
  { type: 'CN', value: `system:node:${n}` },
];
const noSans = (): SubjectAltNames => ({ dns: [], ip: [], uri: [], email: [] });

interface Case {
  signer?: string;
  usages?: string[];
  user: UserInfo;
  subject?: Array<{ type: string; value: string }>;
  sans?: Partial<SubjectAltNames>;
  requestError?: string;
  conditions?: CsrCondition[];
  credential?: NodeCredential | null;
  node?: Node | null;
  otherGrants?: string[];
  /** The address the API server saw the request come from (spec.extra trustplane.io/source-address). */
  source?: string;
  serving?: ServingFacts;
}

function facts(c: Case): ApprovalFacts {
  const signer = c.signer ?? KUBELET_CLIENT;
  return {
    csr: {
      metadata: { name: 'csr-1' },
      spec: {
        request: 'unused',
        signerName: signer,
        usages: c.usages ?? (signer === KUBELET_SERVING ? SERVING_USAGES : CLIENT_USAGES),
        username: c.user.name,
        groups: c.user.groups,
        ...(c.user.extra || c.source ? { extra: { ...c.user.extra, ...(c.source ? { 'trustplane.io/source-address': [c.source] } : {}) } } : {}),
      },
      status: c.conditions ? { conditions: c.conditions } : {},
    } as CertificateSigningRequest,
    request: c.requestError ? { error: c.requestError } : { subject: c.subject ?? nodeSubject('n1'), sans: { ...noSans(), ...c.sans } },
    credential: c.credential ?? null,
    node: c.node ?? null,
    otherGrants: c.otherGrants ?? [],
    now: NOW,
    ...(c.serving ? { serving: c.serving } : {}),
  };
}

const credential = (o: Partial<NodeCredential> = {}): NodeCredential => ({
  node: 'n1',
  serial: '0a',
  notAfter: inHours(24),
  generation: 1,
  issuedAt: inHours(-1),
  csr: 'old',
  ...o,
});

const nodeObject = (addresses: Array<{ type: string; address: string }>): Node => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: 'n1' },
  status: { addresses },
});

const N1_ADDRESSES = nodeObject([
  { type: 'InternalIP', address: '10.0.0.5' },
  { type: 'InternalIP', address: 'fd00::5' },
  { type: 'Hostname', address: 'n1' },
  { type: 'InternalDNS', address: 'n1.cluster.internal' },
]);

function expectApprove(v: ApprovalVerdict, rule: string, message: RegExp) {
  assert.equal(v.verdict, 'approve', `expected approval, got ${JSON.stringify(v)}`);
  if (v.verdict !== 'approve') return;
  assert.equal(v.rule, rule);
  assert.equal(v.reason, 'AutoApproved');
  assert.match(v.message, message);
}

function expectPending(v: ApprovalVerdict, message: RegExp) {
  assert.equal(v.verdict, 'pending', `expected pending, got ${JSON.stringify(v)}`);
  assert.match(v.message, message);
  assert.match(v.message, /administrator/);
}

describe('approver policy: approvals', () => {
  test('bootstrap: a token asks for a fresh node, which holds no credential', () => {
    expectApprove(decideApproval(facts({ user: bootstrapUser('abcdef') })), 'bootstrap', /^bootstrap of node n1 by token abcdef$/);
  });
  test('bootstrap: key encipherment may be among the usages', () => {
    expectApprove(decideApproval(facts({ user: bootstrapUser('abcdef'), usages: ['key encipherment', 'client auth', 'digital signature'] })), 'bootstrap', /n1/);
  });
  test('bootstrap: a single-use token bound to the node asked for', () => {
    expectApprove(decideApproval(facts({ user: bootstrapUser('abcdef', { boundTo: 'n1' }) })), 'bootstrap', /single-use, bound to this node/);
  });
  test('bootstrap: the node held a credential that has expired (a node back after its credentials lapsed)', () => {
    expectApprove(decideApproval(facts({ user: bootstrapUser('abcdef'), credential: credential({ notAfter: inHours(-1) }) })), 'bootstrap', /n1/);
  });
  test('bootstrap: the node held a credential that has been revoked, and the token was made after the revocation', () => {
    expectApprove(decideApproval(facts({ user: bootstrapUser('abcdef', { createdAt: inHours(-0.5) }), credential: credential({ revokedAt: inHours(-1) }) })), 'bootstrap', /n1/);
  });
  test('renewal: the node asks for its own client certificate while holding a live one', () => {
    expectApprove(decideApproval(facts({ user: nodeUser('n1'), credential: credential() })), 'renewal', /^renewal by node n1 of its own client certificate$/);
  });
  test('renewal: with no record (a certificate issued out of band) as Kubernetes does', () => {
    expectApprove(decideApproval(facts({ user: nodeUser('n1') })), 'renewal', /n1/);
  });
  test('renewal: an older credential was revoked but the newest was not', () => {
    const rec = credential({ earlier: [{ serial: '09', notAfter: inHours(2), generation: 1, issuedAt: inHours(-5), csr: 'older', revokedAt: inHours(-1) }] });
    expectApprove(decideApproval(facts({ user: nodeUser('n1'), credential: rec })), 'renewal', /n1/);
  });
  test('serving: its own name and the address the API server saw it connect from', () => {
    const v = decideApproval(facts({ signer: KUBELET_SERVING, user: nodeUser('n1'), source: '10.0.0.5', sans: { dns: ['n1'], ip: ['10.0.0.5'] }, node: N1_ADDRESSES }));
    expectApprove(v, 'serving', /^serving certificate of node n1 for its own addresses DNS n1, IP 10\.0\.0\.5$/);
  });
  test('serving: the Node object is not needed (what it says is not looked at)', () => {
    expectApprove(decideApproval(facts({ signer: KUBELET_SERVING, user: nodeUser('n1'), source: '10.0.0.5', sans: { ip: ['10.0.0.5'] }, node: null })), 'serving', /IP 10\.0\.0\.5/);
  });
  test('serving: IPv6 in another textual form and DNS names in another case still match', () => {
    const v = decideApproval(facts({ signer: KUBELET_SERVING, user: nodeUser('n1'), source: 'fd00::5', sans: { dns: ['N1'], ip: ['fd00:0:0:0:0:0:0:5'] } }));
    expectApprove(v, 'serving', /n1/);
  });
  test('serving: an address recorded with its credentials, and the ranges and DNS suffixes of its pool', () => {
    const serving: ServingFacts = { pool: { name: 'workers', allowedCidrs: ['192.168.0.0/16', 'fd01::/64'], dnsSuffixes: ['cluster.internal'] }, otherNodes: [] };
    const v = decideApproval(
      facts({ signer: KUBELET_SERVING, user: nodeUser('n1'), credential: credential({ address: '10.0.0.7' }), sans: { dns: ['n1.cluster.internal'], ip: ['10.0.0.7', '192.168.3.4', 'fd01::9'] }, serving }),
    );
    expectApprove(v, 'serving', /DNS n1\.cluster\.internal, IP 10\.0\.0\.7, IP 192\.168\.3\.4, IP fd01::9/);
  });
  test('serving: key encipherment may be among the usages', () => {
    const v = decideApproval(facts({ signer: KUBELET_SERVING, usages: ['digital signature', 'key encipherment', 'server auth'], user: nodeUser('n1'), source: '10.0.0.5', sans: { ip: ['10.0.0.5'] } }));
    expectApprove(v, 'serving', /IP 10\.0\.0\.5/);
  });
});

describe('approver policy: left pending for an administrator', () => {
  test('bootstrap for a node that holds a live credential', () => {
    expectPending(decideApproval(facts({ user: bootstrapUser('abcdef'), credential: credential() })), /node "n1" already holds a live client credential \(valid until 2030-01-02/);
  });
  test('bootstrap while another request for the node is approved (not yet issued, or issued and unexpired)', () => {
    expectPending(decideApproval(facts({ user: bootstrapUser('abcdef'), otherGrants: ['csr-0'] })), /another request for node "n1" \(csr-0\) is already approved/);
  });
  test('bootstrap with a single-use token bound to another node', () => {
    expectPending(decideApproval(facts({ user: bootstrapUser('abcdef', { boundTo: 'n2' }) })), /bound to node "n2", not "n1"/);
  });
  test('bootstrap after a revocation with a token made before it (perhaps taken with the node), or of unknown age: pending', () => {
    const revoked = credential({ revokedAt: inHours(-1) });
    expectPending(decideApproval(facts({ user: bootstrapUser('abcdef', { createdAt: inHours(-2) }), credential: revoked })), /revoked at .*only with a bootstrap token made after that, and token abcdef is older/);
    expectPending(decideApproval(facts({ user: bootstrapUser('abcdef'), credential: revoked })), /only with a bootstrap token made after that/);
  });
  test('bootstrap with a bound-node extra that names several nodes', () => {
    const user = { ...bootstrapUser('abcdef'), extra: { 'trustplane.io/bound-node-name': ['n1', 'n2'] } };
    expectPending(decideApproval(facts({ user })), /bound to node/);
  });
  test('kubelet client request with subject alternative names', () => {
    expectPending(decideApproval(facts({ user: bootstrapUser('abcdef'), sans: { dns: ['n1'] } })), /no subject alternative names/);
    expectPending(decideApproval(facts({ user: nodeUser('n1'), sans: { email: ['a@b.c'] } })), /no subject alternative names/);
  });
  test('kubelet client request with other usages', () => {
    expectPending(decideApproval(facts({ user: bootstrapUser('abcdef'), usages: ['digital signature', 'client auth', 'server auth'] })), /usages .* are not those of a kubelet client/);
    expectPending(decideApproval(facts({ user: bootstrapUser('abcdef'), usages: ['client auth'] })), /usages/);
  });
  test('subject that is not exactly CN=system:node:<name>, O=system:nodes', () => {
    const u = bootstrapUser('abcdef');
    expectPending(decideApproval(facts({ user: u, subject: [{ type: 'CN', value: 'system:node:n1' }] })), /organization must be exactly \["system:nodes"\]/);
    expectPending(decideApproval(facts({ user: u, subject: [{ type: 'O', value: 'system:masters' }, { type: 'CN', value: 'system:node:n1' }] })), /organization/);
    expectPending(decideApproval(facts({ user: u, subject: [...nodeSubject('n1'), { type: 'OU', value: 'x' }] })), /only CN and O \(this one also holds OU\)/);
    expectPending(decideApproval(facts({ user: u, subject: [{ type: 'O', value: 'system:nodes' }, { type: 'CN', value: 'admin' }] })), /common name "admin" is not "system:node:<node name>"/);
    expectPending(decideApproval(facts({ user: u, subject: nodeSubject('Bad_Name') })), /node name "Bad_Name" is not a DNS-1123 subdomain/);
    expectPending(decideApproval(facts({ user: u, subject: [...nodeSubject('n1'), { type: 'CN', value: 'system:node:n2' }] })), /exactly one common name/);
  });
  test('a request that cannot be read', () => {
    expectPending(decideApproval(facts({ user: bootstrapUser('abcdef'), requestError: 'bad signature' })), /cannot be read \(bad signature\)/);
  });
  test('renewal asked by one node for another node', () => {
    expectPending(decideApproval(facts({ user: nodeUser('n2') })), /node "n2" asked for a certificate for node "n1"/);
  });
  test('renewal when the newest credential of the node was revoked', () => {
    expectPending(decideApproval(facts({ user: nodeUser('n1'), credential: credential({ revokedAt: inHours(-1) }) })), /was revoked at .*re-join the node/);
  });
  test('a "node" user outside the system:nodes group is no node', () => {
    expectPending(decideApproval(facts({ user: { name: 'system:node:n1', groups: ['system:authenticated'] } })), /only bootstrap tokens and the node itself/);
  });
  test('kubelet client request from an administrator or another user', () => {
    expectPending(decideApproval(facts({ user: ADMIN })), /only bootstrap tokens and the node itself/);
    expectPending(decideApproval(facts({ user: { name: 'alice', groups: ['devs'] } })), /only bootstrap tokens/);
  });
  test('serving request from a bootstrap token', () => {
    expectPending(decideApproval(facts({ signer: KUBELET_SERVING, user: bootstrapUser('abcdef'), sans: { ip: ['10.0.0.5'] }, node: N1_ADDRESSES })), /only the node itself gets serving/);
  });
  test('serving request by one node for another', () => {
    expectPending(decideApproval(facts({ signer: KUBELET_SERVING, user: nodeUser('n2'), sans: { ip: ['10.0.0.5'] }, node: N1_ADDRESSES })), /node "n2" asked for a serving certificate for node "n1"/);
  });
  test('serving request for addresses the node wrote on its own Node object: the node\'s word approves nothing', () => {
    // The attack: the node patched status.addresses with the names it wants, then asked for them.
    const patched = nodeObject([{ type: 'InternalIP', address: '10.0.0.5' }, { type: 'Hostname', address: 'evil.example' }, { type: 'InternalIP', address: '10.0.0.99' }]);
    const v = decideApproval(facts({ signer: KUBELET_SERVING, user: nodeUser('n1'), source: '10.0.0.5', sans: { dns: ['n1', 'evil.example'], ip: ['10.0.0.5', '10.0.0.99'] }, node: patched }));
    expectPending(v, /DNS evil\.example, IP 10\.0\.0\.99 are not known to the control plane as node "n1"'s: .*its name n1, the address it was seen connecting from \(10\.0\.0\.5\)/);
  });
  test('serving request for the API server\'s names, the service network or another node\'s name: never approved', () => {
    const patched = nodeObject([{ type: 'Hostname', address: 'kubernetes.default.svc' }, { type: 'Hostname', address: 'kubernetes' }, { type: 'InternalIP', address: '10.96.0.1' }, { type: 'Hostname', address: 'n2' }]);
    const ask = (sans: Partial<SubjectAltNames>, serving?: ServingFacts) =>
      decideApproval(facts({ signer: KUBELET_SERVING, user: nodeUser('n1'), source: '10.0.0.5', sans, node: patched, ...(serving ? { serving } : {}) }));
    expectPending(ask({ dns: ['kubernetes.default.svc'] }), /DNS kubernetes\.default\.svc is a name of the cluster's API server.*never approved/);
    expectPending(ask({ dns: ['kubernetes'] }), /DNS kubernetes is a name of the cluster's API server/);
    expectPending(ask({ dns: ['kubernetes.default.svc.cluster.local'] }), /is a name of the cluster's API server/);
    expectPending(ask({ ip: ['10.96.0.1'] }), /IP 10\.96\.0\.1 is in the service network \(10\.96\.0\.0\/12\)/);
    // Even with a pool suffix that would cover it, another node's name stays out.
    expectPending(ask({ dns: ['n1.example'] }, { pool: { name: 'p', dnsSuffixes: ['example'] }, otherNodes: ['n1.example'] }), /DNS n1\.example is the name of another node/);
    expectPending(ask({ dns: ['n2'] }), /DNS n2 is not known to the control plane/);
    // The API server's own addresses, even when the node connects from that host.
    const reservations = { dns: ['api.example.com'], ip: ['10.0.0.5'] };
    expectPending(ask({ ip: ['10.0.0.5'] }, { pool: null, otherNodes: [], reservations }), /IP 10\.0\.0\.5 is an address of the cluster's API server/);
  });
  test('serving request with no address seen for the node, or a DNS SAN that is an IP in disguise', () => {
    expectPending(decideApproval(facts({ signer: KUBELET_SERVING, user: nodeUser('n1'), sans: { ip: ['10.0.0.5'] } })), /seen connecting from \(none recorded\)/);
    // "10.0.0.8" as a DNS name is not the IP address 10.0.0.8.
    expectPending(decideApproval(facts({ signer: KUBELET_SERVING, user: nodeUser('n1'), source: '10.0.0.8', sans: { dns: ['10.0.0.8'] } })), /DNS 10\.0\.0\.8 is not known/);
  });
  test('serving request with e-mail or URI SANs, or none at all', () => {
    expectPending(decideApproval(facts({ signer: KUBELET_SERVING, user: nodeUser('n1'), sans: { ip: ['10.0.0.5'], email: ['a@b.c'] }, node: N1_ADDRESSES })), /only DNS names and IP/);
    expectPending(decideApproval(facts({ signer: KUBELET_SERVING, user: nodeUser('n1'), sans: { uri: ['spiffe://x/y'] }, node: N1_ADDRESSES })), /only DNS names and IP/);
    expectPending(decideApproval(facts({ signer: KUBELET_SERVING, user: nodeUser('n1'), node: N1_ADDRESSES })), /at least one DNS name or IP/);
  });
  test('serving request with client usages', () => {
    expectPending(decideApproval(facts({ signer: KUBELET_SERVING, usages: CLIENT_USAGES, user: nodeUser('n1'), sans: { ip: ['10.0.0.5'] }, node: N1_ADDRESSES })), /not those of a kubelet serving/);
  });
  test('serving request from a node whose newest credential was revoked', () => {
    const v = decideApproval(facts({ signer: KUBELET_SERVING, user: nodeUser('n1'), sans: { ip: ['10.0.0.5'] }, node: N1_ADDRESSES, credential: credential({ revokedAt: inHours(-1) }) }));
    expectPending(v, /revoked/);
  });
});

describe('approver policy: not its business', () => {
  test('other signers are ignored, whoever asks', () => {
    for (const signer of [APISERVER_CLIENT, 'example.com/custom']) {
      assert.equal(decideApproval(facts({ signer, user: bootstrapUser('abcdef') })).verdict, 'ignore');
    }
  });
  test('requests already approved, denied or failed are ignored', () => {
    const cond = (type: string): CsrCondition[] => [{ type, status: 'True' }];
    for (const type of ['Approved', 'Denied', 'Failed']) {
      assert.equal(decideApproval(facts({ user: bootstrapUser('abcdef'), conditions: cond(type) })).verdict, 'ignore', type);
    }
  });
  test('nothing is ever denied: over every case above, the verdicts are approve, pending or ignore', () => {
    const users = [bootstrapUser('abcdef'), bootstrapUser('abcdef', { boundTo: 'n2' }), nodeUser('n1'), nodeUser('n2'), ADMIN];
    const seen = new Set<string>();
    for (const signer of [KUBELET_CLIENT, KUBELET_SERVING, APISERVER_CLIENT])
      for (const user of users)
        for (const cred of [null, credential()]) {
          const v = decideApproval(facts({ signer, user, credential: cred, source: '10.0.0.5', sans: signer === KUBELET_SERVING ? { ip: ['10.0.0.5'] } : {}, node: N1_ADDRESSES }));
          seen.add(v.verdict);
        }
    assert.deepEqual([...seen].sort(), ['approve', 'ignore', 'pending']);
  });
});

test('canonicalIp: one form per address, undefined for non-addresses', () => {
  assert.equal(canonicalIp('0:0:0:0:0:0:0:1'), '::1');
  assert.equal(canonicalIp('FD00::5'), 'fd00::5');
  assert.equal(canonicalIp('10.0.0.5'), '10.0.0.5');
  assert.equal(canonicalIp('n1'), undefined);
});
