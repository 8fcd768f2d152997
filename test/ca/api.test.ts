// The CA service end to end over its mTLS API: issuance verified by openssl and node, every bad input refused and audited.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { CaClient } from '../../src/ca/client.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { opensslCsr, opensslVerify, openssl } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';
import { startTestCa, type TestCa } from './helpers.js';

const KUBELET = 'kubernetes.io/kube-apiserver-client-kubelet';
const SERVING = 'kubernetes.io/kubelet-serving';
const CLIENT = 'kubernetes.io/kube-apiserver-client';

async function refused(p: Promise<unknown>, reason: string, message: RegExp): Promise<TrustplaneError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof TrustplaneError, `expected TrustplaneError, got ${String(e)}`);
    assert.equal(e.reason, reason, e.message);
    assert.match(e.message, message);
    return e;
  }
  assert.fail('expected a refusal');
}

describe('CA service API', () => {
  let ca: TestCa;
  let a: CaClient;
  const tmp = tempDir('tp-ca-api-');
  let rootA = '';
  let etcdApiA = '';
  let etcdPeerA = '';

  before(async () => {
    ca = await startTestCa();
    await ca.fleet.createCluster({ name: 'alpha' });
    await ca.fleet.createCluster({ name: 'beta' });
    a = await ca.clusterCaller('alpha');
    const d = await ca.fleet.describeCluster('alpha');
    rootA = d.authorities.find((x) => x.kind === 'root')!.bundle;
    etcdApiA = d.authorities.find((x) => x.kind === 'etcd-api')!.bundle;
    etcdPeerA = d.authorities.find((x) => x.kind === 'etcd-peer')!.bundle;
  });
  after(async () => {
    await ca.stop();
    tmp.remove();
  });

  test('a cluster has three distinct authorities, each self-signed CA:true, etcd CAs for 5 years', async () => {
    const d = await ca.fleet.describeCluster('alpha');
    assert.deepEqual(d.authorities.map((x) => x.kind), ['root', 'etcd-api', 'etcd-peer']);
    const fps = new Set(d.authorities.map((x) => x.generations[0].sha256));
    assert.equal(fps.size, 3);
    for (const auth of d.authorities) {
      const x = new X509Certificate(auth.bundle);
      assert.ok(x.ca, `${auth.kind} is a CA`);
      assert.ok(x.verify(x.publicKey), `${auth.kind} is self-signed`);
      assert.equal(auth.generations[0].state, 'active');
      const years = (new Date(x.validTo).getTime() - Date.now()) / (365 * 86400_000);
      if (auth.kind !== 'root') assert.ok(years > 4.99 && years <= 5.01, `${auth.kind} lives 5 years (${years})`);
    }
    const other = await ca.fleet.describeCluster('beta');
    assert.notEqual(other.authorities[0].generations[0].sha256, d.authorities[0].generations[0].sha256);
  });

  for (const key of ['p256', 'p384', 'rsa2048', 'ed25519'] as const) {
    test(`kubelet client certificate from an openssl ${key} CSR passes openssl verify -x509_strict -purpose sslclient and node's verify`, async () => {
      const csr = opensslCsr(tmp.path, `kc-${key}`, { key, subj: '/O=system:nodes/CN=system:node:worker-1' });
      const r = await a.sign('alpha', { signer: KUBELET, csr });
      const v = opensslVerify(tmp.path, { roots: rootA, leaf: r.certificate, purpose: 'sslclient' });
      assert.ok(v.ok, v.output);
      assert.equal(opensslVerify(tmp.path, { roots: rootA, leaf: r.certificate, purpose: 'sslserver' }).ok, false, 'not a server certificate');
      const leaf = new X509Certificate(r.certificate);
      assert.ok(leaf.verify(new X509Certificate(rootA).publicKey));
      assert.ok(leaf.checkIssued(new X509Certificate(rootA)));
      assert.equal(leaf.ca, false);
      assert.equal(leaf.subjectAltName, undefined);
      assert.match(leaf.subject, /CN=system:node:worker-1/);
      // Only the extensions the profile names.
      const text = openssl(['x509', '-noout', '-text'], { input: r.certificate }).stdout;
      assert.match(text, /TLS Web Client Authentication/);
      assert.doesNotMatch(text, /TLS Web Server Authentication/);
      assert.equal(r.serial.length >= 30, true, `128-bit serial (${r.serial})`);
    });
  }

  test('kubelet serving certificate carries the DNS/IP SANs and passes -purpose sslserver', async () => {
    const csr = opensslCsr(tmp.path, 'ks', { subj: '/O=system:nodes/CN=system:node:worker-1', addext: ['subjectAltName=DNS:worker-1,IP:127.0.0.1'] });
    const r = await a.sign('alpha', { signer: SERVING, csr });
    assert.ok(opensslVerify(tmp.path, { roots: rootA, leaf: r.certificate, purpose: 'sslserver' }).ok);
    const leaf = new X509Certificate(r.certificate);
    assert.equal(leaf.subjectAltName, 'DNS:worker-1, IP Address:127.0.0.1');
  });

  test('etcd server, client and peer certificates come from the etcd CAs, not the cluster root', async () => {
    const server = await ca.fleet.sign('alpha', { signer: 'trustplane.io/etcd-server', csr: opensslCsr(tmp.path, 'es', { subj: '/CN=etcd-0', addext: ['subjectAltName=IP:127.0.0.1'] }) });
    assert.ok(opensslVerify(tmp.path, { roots: etcdApiA, leaf: server.certificate, purpose: 'sslserver' }).ok);
    assert.ok(opensslVerify(tmp.path, { roots: etcdApiA, leaf: server.certificate, purpose: 'sslclient' }).ok, 'etcd server certs need clientAuth too');
    assert.equal(opensslVerify(tmp.path, { roots: rootA, leaf: server.certificate }).ok, false);
    const client = await ca.fleet.sign('alpha', { signer: 'trustplane.io/etcd-client', csr: opensslCsr(tmp.path, 'ec', { subj: '/CN=apiserver' }) });
    assert.ok(opensslVerify(tmp.path, { roots: etcdApiA, leaf: client.certificate, purpose: 'sslclient' }).ok);
    const peer = await ca.fleet.sign('alpha', { signer: 'trustplane.io/etcd-peer', csr: opensslCsr(tmp.path, 'ep', { subj: '/CN=etcd-0', addext: ['subjectAltName=IP:127.0.0.1'] }) });
    assert.ok(opensslVerify(tmp.path, { roots: etcdPeerA, leaf: peer.certificate, purpose: 'sslserver' }).ok);
    assert.equal(opensslVerify(tmp.path, { roots: etcdApiA, leaf: peer.certificate }).ok, false, 'peer CA is separate from the API CA');
  });

  test('admin client certificates with system:masters only through the fleet admin operation', async () => {
    const csr = opensslCsr(tmp.path, 'adm', { subj: '/O=system:masters/CN=alice' });
    await refused(a.sign('alpha', { signer: CLIENT, csr }), 'Invalid', /system:masters is granted only by the explicit admin operation/);
    await refused(a.sign('alpha', { signer: CLIENT, csr, admin: true }), 'Forbidden', /admin operation is reserved/);
    const r = await ca.fleet.sign('alpha', { signer: CLIENT, csr, admin: true });
    assert.match(new X509Certificate(r.certificate).subject, /O=system:masters/);
  });

  describe('bad input is refused, named and audit-logged', () => {
    const cases: Array<{ name: string; make: () => Promise<{ client?: CaClient; cluster?: string; signer?: string; csr: string; expirationSeconds?: number }>; reason: string; message: RegExp; audit?: RegExp }> = [
      {
        name: 'a CSR with a bad signature',
        make: async () => {
          const pem = opensslCsr(tmp.path, 'badsig', { subj: '/O=system:nodes/CN=system:node:n1' });
          const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
          der[der.length - 5] ^= 0x55;
          return { csr: `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n` };
        },
        reason: 'Invalid',
        message: /signature/i,
      },
      {
        name: 'garbage DER',
        make: async () => ({ csr: `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.from('this is not DER at all, not even close').toString('base64')}\n-----END CERTIFICATE REQUEST-----\n` }),
        reason: 'Invalid',
        message: /^certificate request: .*expected SEQUENCE \(0x30\) but found tag 0x74 at byte 0/,
      },
      {
        name: 'truncated DER',
        make: async () => {
          const pem = opensslCsr(tmp.path, 'trunc', { subj: '/O=system:nodes/CN=system:node:n1' });
          const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
          return { csr: `-----BEGIN CERTIFICATE REQUEST-----\n${der.subarray(0, der.length - 20).toString('base64')}\n-----END CERTIFICATE REQUEST-----\n` };
        },
        reason: 'Invalid',
        message: /^certificate request: .*truncated: length \d+ at byte 1 runs past the end/,
      },
      {
        name: 'PEM with several blocks',
        make: async () => {
          const one = opensslCsr(tmp.path, 'multi1', { subj: '/O=system:nodes/CN=system:node:n1' });
          return { csr: one + one };
        },
        reason: 'Invalid',
        message: /(several|multiple|more than one|2) .*block|block/i,
      },
      {
        name: 'a CSR over 64 KiB',
        make: async () => {
          // ~82 KB of SANs: over the 64 KiB limit, under the 128 KiB a single command-line argument may hold.
          const sans = Array.from({ length: 1200 }, (_, i) => `DNS:host-${i}.very-long-domain-name-to-make-the-request-large.example`).join(',');
          return { csr: opensslCsr(tmp.path, 'big', { subj: '/O=system:nodes/CN=system:node:n1', addext: [`subjectAltName=${sans}`] }) };
        },
        reason: 'RequestEntityTooLarge',
        message: /too large \(at most 65536 bytes\)/,
      },
      { name: 'a request for CA:true', make: async () => ({ csr: opensslCsr(tmp.path, 'ca', { subj: '/O=system:nodes/CN=system:node:n1', addext: ['basicConstraints=critical,CA:TRUE'] }) }), reason: 'Invalid', message: /CA:true/ },
      { name: 'a path length', make: async () => ({ csr: opensslCsr(tmp.path, 'pl', { subj: '/O=system:nodes/CN=system:node:n1', addext: ['basicConstraints=critical,CA:TRUE,pathlen:2'] }) }), reason: 'Invalid', message: /path length|CA:true/ },
      { name: 'CN not matching the signer', make: async () => ({ csr: opensslCsr(tmp.path, 'cn', { subj: '/O=system:nodes/CN=bob' }) }), reason: 'Invalid', message: /system:node:<node name>/ },
      { name: 'O not matching the signer', make: async () => ({ csr: opensslCsr(tmp.path, 'o', { subj: '/O=system:masters/CN=system:node:n1' }) }), reason: 'Invalid', message: /organization must be exactly \["system:nodes"\]/ },
      { name: 'SANs on a client signer', make: async () => ({ csr: opensslCsr(tmp.path, 'san', { subj: '/O=system:nodes/CN=system:node:n1', addext: ['subjectAltName=DNS:n1'] }) }), reason: 'Invalid', message: /must not request subject alternative names/ },
      { name: 'RSA-1024', make: async () => ({ csr: opensslCsr(tmp.path, 'rsa1024', { key: 'rsa1024', subj: '/O=system:nodes/CN=system:node:n1' }) }), reason: 'Invalid', message: /1024/ },
      { name: 'an unknown critical extension', make: async () => ({ csr: opensslCsr(tmp.path, 'crit', { subj: '/O=system:nodes/CN=system:node:n1', addext: ['1.2.3.4.5.6=critical,ASN1:NULL'] }) }), reason: 'Invalid', message: /unknown critical extension 1\.2\.3\.4\.5\.6/ },
      { name: 'a lifetime beyond the issuer', make: async () => ({ csr: opensslCsr(tmp.path, 'life', { subj: '/O=system:nodes/CN=system:node:n1' }), expirationSeconds: 30 * 365 * 86400 }), reason: 'Invalid', message: /after the issuing CA expires/ },
      { name: 'an unknown signer', make: async () => ({ signer: 'example.com/magic', csr: opensslCsr(tmp.path, 'us', { subj: '/O=system:nodes/CN=system:node:n1' }) }), reason: 'Invalid', message: /unknown signer "example.com\/magic"/ },
      { name: 'an unknown cluster', make: async () => ({ client: ca.fleet, cluster: 'nope', csr: opensslCsr(tmp.path, 'uc', { subj: '/O=system:nodes/CN=system:node:n1' }) }), reason: 'NotFound', message: /cluster "nope" not found/, audit: /^unknown cluster$/ },
      { name: 'a caller bound to another cluster', make: async () => ({ cluster: 'beta', csr: opensslCsr(tmp.path, 'other', { subj: '/O=system:nodes/CN=system:node:n1' }) }), reason: 'Forbidden', message: /bound to cluster "alpha"/ },
    ];
    for (const c of cases) {
      test(c.name, async () => {
        const r = await c.make();
        const before = ca.auditLines().length;
        const cluster = r.cluster ?? 'alpha';
        const signer = r.signer ?? KUBELET;
        const e = await refused((r.client ?? a).sign(cluster, { signer, csr: r.csr, expirationSeconds: r.expirationSeconds }), c.reason, c.message);
        const added = ca.auditLines().slice(before);
        const entry = added.find((l) => l.decision === 'deny');
        assert.ok(entry, `a deny entry was audit-logged for ${c.name}`);
        assert.equal(entry.cluster, cluster);
        assert.equal(typeof entry.reason, 'string');
        if (c.audit) {
          assert.match(String(entry.reason), c.audit, `the audit reason for ${c.name}`);
        } else {
          // The audit log records what the caller was told: the same reason, matching the case's own expectation.
          assert.match(String(entry.reason), c.message, `the audit reason for ${c.name}`);
          assert.ok(e.message.includes(String(entry.reason)), `the refusal "${e.message}" does not carry the audit reason "${String(entry.reason)}"`);
        }
      });
    }
  });

  test('every decision is audit-logged with requester, cluster, signer, subject, serial and SHA-256', async () => {
    const csr = opensslCsr(tmp.path, 'audit', { subj: '/O=system:nodes/CN=system:node:audited' });
    const r = await a.sign('alpha', { signer: KUBELET, csr });
    const entry = ca.auditLines().find((l) => l.serial === r.serial);
    assert.ok(entry);
    assert.equal(entry.decision, 'allow');
    assert.equal(entry.requester, 'cluster:alpha');
    assert.equal(entry.cluster, 'alpha');
    assert.equal(entry.signer, KUBELET);
    assert.match(String(entry.subject), /system:node:audited/);
    assert.equal(entry.sha256, r.sha256);
    assert.equal(entry.sha256, new X509Certificate(r.certificate).fingerprint256.replace(/:/g, '').toLowerCase());
  });

  test('a cluster caller cannot create, delete, list clusters or change generations; it reads only its own cluster', async () => {
    await refused(a.createCluster({ name: 'gamma' }), 'Forbidden', /reserved to the fleet/);
    await refused(a.deleteCluster('beta'), 'Forbidden', /reserved to the fleet/);
    await refused(a.listClusters(), 'Forbidden', /reserved to the fleet/);
    await refused(a.prepareGeneration('alpha', 'root'), 'Forbidden', /reserved to the fleet/);
    await refused(a.describeCluster('beta'), 'Forbidden', /bound to cluster "alpha"/);
    assert.equal((await a.describeCluster('alpha')).name, 'alpha');
  });

  test('a caller of a deleted and re-created cluster of the same name is refused (bound to the cluster uid)', async () => {
    await ca.fleet.createCluster({ name: 'delta' });
    const d = await ca.clusterCaller('delta');
    await ca.fleet.deleteCluster('delta');
    await ca.fleet.createCluster({ name: 'delta' });
    await refused(d.sign('delta', { signer: KUBELET, csr: opensslCsr(tmp.path, 'delta', { subj: '/O=system:nodes/CN=system:node:n1' }) }), 'Forbidden', /bound to cluster/);
  });

  test('bad cluster names and duplicate clusters are refused', async () => {
    await refused(ca.fleet.createCluster({ name: 'Bad_Name' }), 'Invalid', /not valid/);
    await refused(ca.fleet.createCluster({ name: 'alpha' }), 'AlreadyExists', /already exists/);
  });
});
