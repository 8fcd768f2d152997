// The signer policy as a pure function: what each profile allows and refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, PROFILES, type Caller } from '../../src/ca/profiles.js';
import { encodeExtKeyUsage } from '../../src/pki/extensions.js';
import { OID } from '../../src/pki/oids.js';
import type { Name, ParsedCsr } from '../../src/pki/types.js';
import { parsedCsrOf } from '../pki/helpers.js';

const now = new Date('2026-01-01T00:00:00Z');
const issuerNotAfter = new Date('2030-01-01T00:00:00Z');
const fleet: Caller = { role: 'fleet', name: 'fleet:admin' };
const clusterA: Caller = { role: 'cluster', name: 'cluster:a', cluster: 'a' };

const csr = parsedCsrOf;
const node = (n: string) => csr([{ type: 'CN', value: `system:node:${n}` }, { type: 'O', value: 'system:nodes' }]);
const KUBELET = 'kubernetes.io/kube-apiserver-client-kubelet';
const SERVING = 'kubernetes.io/kubelet-serving';
const CLIENT = 'kubernetes.io/kube-apiserver-client';

function reason(d: ReturnType<typeof decide>): string {
  assert.equal(d.allow, false, 'expected a refusal');
  return (d as { reason: string }).reason;
}

test('kubelet client: node subject → client-auth-only template without SANs, lifetime one year', () => {
  const d = decide(clusterA, 'a', { signer: KUBELET, csr: node('n1') }, issuerNotAfter, now);
  assert.ok(d.allow);
  assert.deepEqual(d.template.extKeyUsage, ['clientAuth']);
  assert.equal(d.template.isCA, false);
  assert.equal(d.template.sans, undefined);
  assert.equal(d.template.notAfter.getTime() - now.getTime(), 365 * 86400_000);
  assert.ok(d.template.notBefore.getTime() < now.getTime(), 'backdated');
});

test('kubelet client: wrong CN, extra or missing O, extra attributes, bad node names are refused', () => {
  assert.match(reason(decide(clusterA, 'a', { signer: KUBELET, csr: csr([{ type: 'CN', value: 'bob' }, { type: 'O', value: 'system:nodes' }]) }, issuerNotAfter, now)), /system:node:<node name>/);
  assert.match(reason(decide(clusterA, 'a', { signer: KUBELET, csr: csr([{ type: 'CN', value: 'system:node:n1' }]) }, issuerNotAfter, now)), /organization must be exactly \["system:nodes"\]/);
  assert.match(
    reason(decide(clusterA, 'a', { signer: KUBELET, csr: csr([{ type: 'CN', value: 'system:node:n1' }, { type: 'O', value: 'system:nodes' }, { type: 'O', value: 'system:masters' }]) }, issuerNotAfter, now)),
    /organization must be exactly \["system:nodes"\]/,
  );
  assert.match(reason(decide(clusterA, 'a', { signer: KUBELET, csr: csr([...node('n1').subject, { type: 'OU', value: 'x' }]) }, issuerNotAfter, now)), /only CN and O/);
  assert.match(reason(decide(clusterA, 'a', { signer: KUBELET, csr: node('Bad_Name') }, issuerNotAfter, now)), /DNS-1123/);
  assert.match(reason(decide(clusterA, 'a', { signer: KUBELET, csr: csr([{ type: 'CN', value: 'a' }, { type: 'CN', value: 'b' }]) }, issuerNotAfter, now)), /exactly one non-empty CN/);
});

test('client signers refuse SANs; serving signers need DNS/IP SANs only', () => {
  const withSan = csr(node('n1').subject, { sans: { dns: ['n1.example'], ip: [], uri: [], email: [] } });
  assert.match(reason(decide(clusterA, 'a', { signer: KUBELET, csr: withSan }, issuerNotAfter, now)), /must not request subject alternative names/);
  assert.match(reason(decide(clusterA, 'a', { signer: SERVING, csr: node('n1') }, issuerNotAfter, now)), /at least one DNS or IP/);
  const uri = csr(node('n1').subject, { sans: { dns: [], ip: [], uri: ['spiffe://x'], email: [] } });
  assert.match(reason(decide(clusterA, 'a', { signer: SERVING, csr: uri }, issuerNotAfter, now)), /only DNS names and IP/);
  const wild = csr(node('n1').subject, { sans: { dns: ['*.example.com'], ip: [], uri: [], email: [] } });
  assert.match(reason(decide(clusterA, 'a', { signer: SERVING, csr: wild }, issuerNotAfter, now)), /not a valid host name/);
  const ok = csr(node('n1').subject, { sans: { dns: ['n1.local'], ip: ['10.0.0.7'], uri: [], email: [] } });
  const d = decide(clusterA, 'a', { signer: SERVING, csr: ok }, issuerNotAfter, now);
  assert.ok(d.allow);
  assert.deepEqual(d.template.sans, { dns: ['n1.local'], ip: ['10.0.0.7'] });
  assert.deepEqual(d.template.extKeyUsage, ['serverAuth']);
});

test('CA:true, a path length and unknown critical extensions are refused', () => {
  assert.match(reason(decide(clusterA, 'a', { signer: KUBELET, csr: csr(node('n1').subject, { requestedBasicConstraints: { isCA: true } }) }, issuerNotAfter, now)), /CA:true/);
  assert.match(reason(decide(clusterA, 'a', { signer: KUBELET, csr: csr(node('n1').subject, { requestedBasicConstraints: { isCA: false, pathLen: 0 } }) }, issuerNotAfter, now)), /path length/);
  const ext = csr(node('n1').subject, { extensions: [{ oid: '1.2.3.4.5', critical: true, value: Buffer.from([5, 0]) }] });
  assert.match(reason(decide(clusterA, 'a', { signer: KUBELET, csr: ext }, issuerNotAfter, now)), /unknown critical extension 1\.2\.3\.4\.5/);
  const nonCritical = csr(node('n1').subject, { extensions: [{ oid: '1.2.3.4.5', critical: false, value: Buffer.from([5, 0]) }] });
  assert.ok(decide(clusterA, 'a', { signer: KUBELET, csr: nonCritical }, issuerNotAfter, now).allow, 'non-critical unknown extensions are ignored, not copied');
});

test('lifetime: explicit beyond the issuer refused, default clamped to the issuer, minimum 600 s', () => {
  const soon = new Date(now.getTime() + 3600_000);
  assert.match(reason(decide(clusterA, 'a', { signer: KUBELET, csr: node('n1'), expirationSeconds: 7200 }, soon, now)), /after the issuing CA expires/);
  const d = decide(clusterA, 'a', { signer: KUBELET, csr: node('n1') }, soon, now);
  assert.ok(d.allow);
  assert.equal(d.template.notAfter.getTime(), soon.getTime());
  assert.match(reason(decide(clusterA, 'a', { signer: KUBELET, csr: node('n1'), expirationSeconds: 599 }, issuerNotAfter, now)), /at least 600/);
  assert.match(reason(decide(clusterA, 'a', { signer: KUBELET, csr: node('n1') }, new Date(now.getTime() - 1), now)), /has expired/);
});

test('system:masters only through the fleet admin operation; component and server signers only for the fleet', () => {
  const admin = csr([{ type: 'CN', value: 'alice' }, { type: 'O', value: 'system:masters' }]);
  assert.match(reason(decide(clusterA, 'a', { signer: CLIENT, csr: admin }, issuerNotAfter, now)), /system:masters/);
  const f = decide(clusterA, 'a', { signer: CLIENT, csr: admin, admin: true }, issuerNotAfter, now);
  assert.equal(f.allow, false);
  assert.equal((f as { code: string }).code, 'Forbidden');
  assert.ok(decide(fleet, 'a', { signer: CLIENT, csr: admin, admin: true }, issuerNotAfter, now).allow);
  assert.match(reason(decide(fleet, 'a', { signer: KUBELET, csr: node('n1'), admin: true }, issuerNotAfter, now)), /admin operation applies only/);
  assert.match(reason(decide(fleet, 'a', { signer: CLIENT, csr: node('n1') }, issuerNotAfter, now)), /must use signer kubernetes.io\/kube-apiserver-client-kubelet/);
  const component = csr([{ type: 'CN', value: 'system:trustplane:tunnel-server' }]);
  assert.match(reason(decide(clusterA, 'a', { signer: 'trustplane.io/control-plane-component', csr: component }, issuerNotAfter, now)), /may not be used by cluster callers/);
  assert.ok(decide(fleet, 'a', { signer: 'trustplane.io/control-plane-component', csr: component }, issuerNotAfter, now).allow);
  assert.match(reason(decide(fleet, 'a', { signer: 'trustplane.io/control-plane-component', csr: csr([{ type: 'CN', value: 'system:trustplane:evil' }]) }, issuerNotAfter, now)), /component one of/);
});

test('a cluster caller may not sign for another cluster; unknown signers are refused and named', () => {
  const d = decide(clusterA, 'b', { signer: KUBELET, csr: node('n1') }, issuerNotAfter, now);
  assert.match(reason(d), /bound to cluster "a"/);
  assert.equal((d as { code: string }).code, 'Forbidden');
  assert.match(reason(decide(fleet, 'a', { signer: 'example.com/anything', csr: node('n1') }, issuerNotAfter, now)), /unknown signer "example.com\/anything"/);
});

test('every profile: never CA, always names its extended key usages, client profiles carry no SANs', () => {
  for (const p of PROFILES) {
    assert.ok(p.extKeyUsage.length > 0, p.name);
    assert.ok(!p.keyUsage.includes('keyCertSign'), p.name);
  }
});

// ---- issue 11: usages (item 3), requested extensions (item 4), kubelet-serving names (item 2), messages (item 16) ----

test('usages: each signer requires and allows its own; anything else is refused with the usage named; the certificate carries exactly what was asked', () => {
  const alice = csr([{ type: 'CN', value: 'alice' }]);
  const client = [
    { signer: CLIENT, req: alice },
    { signer: KUBELET, req: node('n1') },
  ];
  for (const { signer, req } of client) {
    assert.match(reason(decide(fleet, 'a', { signer, csr: req, usages: ['server auth'] }, issuerNotAfter, now)), new RegExp(`usage "server auth" not allowed for signer ${signer.replace(/[./]/g, '\\$&')}`));
    assert.match(reason(decide(fleet, 'a', { signer, csr: req, usages: ['digital signature'] }, issuerNotAfter, now)), /missing required usage "client auth"/);
    assert.match(reason(decide(fleet, 'a', { signer, csr: req, usages: ['client auth', 'cert sign'] }, issuerNotAfter, now)), /usage "cert sign" not allowed/);
    assert.match(reason(decide(fleet, 'a', { signer, csr: req, usages: [] }, issuerNotAfter, now)), /missing required usage "client auth"/);
    const only = decide(fleet, 'a', { signer, csr: req, usages: ['client auth'] }, issuerNotAfter, now);
    assert.ok(only.allow, signer);
    assert.deepEqual(only.template.extKeyUsage, ['clientAuth']);
    assert.deepEqual(only.template.keyUsage, ['digitalSignature'], 'no usage asked: the narrowest TLS needs, never an unrestricted key');
    const all = decide(fleet, 'a', { signer, csr: req, usages: ['digital signature', 'key encipherment', 'client auth'] }, issuerNotAfter, now);
    assert.ok(all.allow);
    assert.deepEqual(all.template.keyUsage, ['digitalSignature', 'keyEncipherment']);
  }
  const serving = csr(node('n1').subject, { sans: { dns: ['n1'], ip: [], uri: [], email: [] } });
  assert.match(reason(decide(fleet, 'a', { signer: SERVING, csr: serving, usages: ['digital signature', 'client auth'] }, issuerNotAfter, now)), /usage "client auth" not allowed for signer kubernetes\.io\/kubelet-serving/);
  const ok = decide(fleet, 'a', { signer: SERVING, csr: serving, usages: ['digital signature', 'server auth'] }, issuerNotAfter, now);
  assert.ok(ok.allow);
  assert.deepEqual(ok.template.extKeyUsage, ['serverAuth']);
  // An RSA serving key gets keyEncipherment only when asked for it.
  const rsa = csr(node('n1').subject, { sans: serving.sans, keyAlgorithm: { kind: 'rsa', bits: 2048 } });
  const asked = decide(fleet, 'a', { signer: SERVING, csr: rsa, usages: ['digital signature', 'server auth'] }, issuerNotAfter, now);
  assert.ok(asked.allow);
  assert.deepEqual(asked.template.keyUsage, ['digitalSignature']);
});

test("requested extensions: keyCertSign, serverAuth or anyExtendedKeyUsage on a client signer, or any usage beyond the certificate's, are refused by name", () => {
  const eku = (...u: Array<'serverAuth' | 'clientAuth'>) => ({ oid: OID.extKeyUsage, critical: false, value: encodeExtKeyUsage(u) });
  // SEQUENCE { OID 2.5.29.37.0 (anyExtendedKeyUsage) }
  const anyEku = { oid: OID.extKeyUsage, critical: false, value: Buffer.from([0x30, 0x06, 0x06, 0x04, 0x55, 0x1d, 0x25, 0x00]) };
  assert.match(reason(decide(clusterA, 'a', { signer: KUBELET, csr: csr(node('n1').subject, { requestedKeyUsage: ['digitalSignature', 'keyCertSign'] }), usages: ['digital signature', 'client auth'] }, issuerNotAfter, now)), /CSR requests key usage keyCertSign; no signer issues CA certificates/);
  assert.match(reason(decide(clusterA, 'a', { signer: KUBELET, csr: csr(node('n1').subject, { requestedKeyUsage: ['cRLSign'] }) }, issuerNotAfter, now)), /key usage cRLSign/);
  assert.match(
    reason(decide(clusterA, 'a', { signer: KUBELET, csr: csr(node('n1').subject, { requestedKeyUsage: ['keyEncipherment'] }), usages: ['digital signature', 'client auth'] }, issuerNotAfter, now)),
    /CSR requests key usage keyEncipherment, which a certificate of kubernetes\.io\/kube-apiserver-client-kubelet with these usages does not carry/,
  );
  assert.match(reason(decide(clusterA, 'a', { signer: CLIENT, csr: csr([{ type: 'CN', value: 'alice' }], { extensions: [eku('clientAuth', 'serverAuth')] }), usages: ['client auth'] }, issuerNotAfter, now)), /CSR requests extended key usage serverAuth/);
  assert.match(reason(decide(clusterA, 'a', { signer: CLIENT, csr: csr([{ type: 'CN', value: 'alice' }], { extensions: [anyEku] }), usages: ['client auth'] }, issuerNotAfter, now)), /anyExtendedKeyUsage/);
  // Asking in the CSR for exactly what the certificate carries is fine.
  assert.ok(decide(clusterA, 'a', { signer: CLIENT, csr: csr([{ type: 'CN', value: 'alice' }], { extensions: [eku('clientAuth')], requestedKeyUsage: ['digitalSignature'] }), usages: ['digital signature', 'client auth'] }, issuerNotAfter, now).allow);
});

test("kubelet-serving: never the API server's names and addresses, the service network, or another node's name, even approved", () => {
  const serving = (n: string, dns: string[], ip: string[] = []) => csr(node(n).subject, { sans: { dns, ip, uri: [], email: [] } });
  const reservations = { dns: ['localhost', 'kubernetes', 'api.example.com'], ip: ['127.0.0.1', '10.0.0.1'] };
  const ask = (c: ParsedCsr) => decide(clusterA, 'a', { signer: SERVING, csr: c, usages: ['digital signature', 'server auth'], reservations }, issuerNotAfter, now);
  for (const name of ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', 'Kubernetes.Default.Svc', 'localhost', 'api.example.com']) {
    assert.match(reason(ask(serving('n1', ['n1', name]))), /is a name of the cluster's API server; a node's serving certificate may not carry it/, name);
  }
  // A node named like the API server gets no certificate for that name either.
  assert.match(reason(ask(serving('kubernetes', ['kubernetes']))), /DNS kubernetes is a name of the cluster's API server/);
  assert.match(reason(ask(serving('n1', ['n1'], ['10.96.0.1']))), /IP 10\.96\.0\.1 is in the service network \(10\.96\.0\.0\/12\)/);
  assert.match(reason(ask(serving('n1', ['n1'], ['10.0.0.1']))), /IP 10\.0\.0\.1 is an address of the cluster's API server/);
  assert.match(reason(ask(serving('n1', ['n1'], ['::ffff:10.0.0.1']))), /is an address of the cluster's API server/);
  assert.match(reason(ask(serving('n1', ['n2']))), /DNS n2 is not node n1's name nor a name below it/);
  assert.match(reason(ask(serving('n1', ['n10']))), /DNS n10 is not node n1's name/);
  // The service network is the cluster's when the CA knows it.
  assert.match(reason(decide(clusterA, 'a', { signer: SERVING, csr: serving('n1', ['n1'], ['172.20.0.10']), reservations: { dns: [], ip: [], serviceCidrs: ['172.20.0.0/16'] } }, issuerNotAfter, now)), /in the service network \(172\.20\.0\.0\/16\)/);
  // Loopback names the client's own host: the node agent serves there, and it is not the API server across the network.
  const own = ask(serving('n1', ['n1', 'n1.nodes.example.com'], ['127.0.0.1', '10.0.0.5']));
  assert.ok(own.allow, JSON.stringify(own));
  assert.deepEqual(own.template.sans, { dns: ['n1', 'n1.nodes.example.com'], ip: ['127.0.0.1', '10.0.0.5'] });
});

test('messages: an empty signer name reads as a sentence', () => {
  assert.match(reason(decide(fleet, 'a', { signer: '', csr: node('n1') }, issuerNotAfter, now)), /^the request names no signer; name one of the known signers: kubernetes\.io\//);
});
