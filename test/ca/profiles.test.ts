// The signer policy as a pure function: what each profile allows and refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, PROFILES, type Caller } from '../../src/ca/profiles.js';
import type { Name, ParsedCsr } from '../../src/pki/types.js';

const now = new Date('2026-01-01T00:00:00Z');
const issuerNotAfter = new Date('2030-01-01T00:00:00Z');
const fleet: Caller = { role: 'fleet', name: 'fleet:admin' };
const clusterA: Caller = { role: 'cluster', name: 'cluster:a', cluster: 'a' };

function csr(subject: Name, extra: Partial<ParsedCsr> = {}): ParsedCsr {
  return {
    der: Buffer.alloc(0),
    subject,
    publicKey: Buffer.from('spki'),
    keyAlgorithm: { kind: 'ec', curve: 'P-256' },
    extensions: [],
    sans: { dns: [], ip: [], uri: [], email: [] },
    ...extra,
  };
}
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
  assert.match(reason(decide(clusterA, 'a', { signer: KUBELET, csr: csr([{ type: 'CN', value: 'system:node:n1' }]) }, issuerNotAfter, now)), /O must be exactly/);
  assert.match(
    reason(decide(clusterA, 'a', { signer: KUBELET, csr: csr([{ type: 'CN', value: 'system:node:n1' }, { type: 'O', value: 'system:nodes' }, { type: 'O', value: 'system:masters' }]) }, issuerNotAfter, now)),
    /O must be exactly/,
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
