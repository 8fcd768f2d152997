// Path validation: the good paths (including cross-signed generations) and each reason a path is refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildCertificate, crossSign, issuerOf, parseCertificate, selfSignedCa, verifyChain } from '../../src/pki/index.js';
import type { CertificateTemplate, Name, ParsedCertificate } from '../../src/pki/types.js';
import { DAY, T0, caFrom, makeCa, openssl, pkcs8Pem, refuses, tempDir, testKey, testSigner, writeFile } from './helpers.js';

const P256 = { kind: 'ec', curve: 'P-256' } as const;
const leafKey = testSigner(P256, 9).publicKey;
const cn = (v: string): Name => [{ type: 'CN', value: v }];
const leafT = (subject: string, more: Partial<CertificateTemplate> = {}) => ({ subject: cn(subject), publicKey: leafKey, isCA: false, keyUsage: ['digitalSignature' as const], extKeyUsage: ['serverAuth' as const], ...more });
const caT = (subject: string, signerIndex: number, more: Partial<CertificateTemplate> = {}) => ({
  subject: cn(subject),
  publicKey: testSigner(P256, signerIndex).publicKey,
  isCA: true,
  keyUsage: ['keyCertSign' as const, 'cRLSign' as const],
  ...more,
});
const ids = (p: ParsedCertificate[]) => p.map((c) => c.sha256);

test('root → intermediate → leaf verifies; the path comes back leaf first', async () => {
  const root = await makeCa(cn('root'), testSigner(P256, 0), { pathLen: 1 });
  const int = caFrom(await root.issue(caT('intermediate', 1, { pathLen: 0 })), testSigner(P256, 1));
  const leaf = await int.issue(leafT('leaf'));
  const unrelated = (await makeCa(cn('other'), testSigner(P256, 2))).cert;
  assert.deepEqual(ids(verifyChain(leaf, [unrelated, int.cert], [unrelated, root.cert], { at: T0, purpose: 'serverAuth' })), ids([leaf, int.cert, root.cert]));
  // A leaf without EKU serves any purpose (RFC 5280 4.2.1.12).
  const anyPurpose = await int.issue(leafT('any', { extKeyUsage: undefined }));
  assert.equal(verifyChain(anyPurpose, [int.cert], [root.cert], { at: T0, purpose: 'clientAuth' }).length, 3);
  // A trusted certificate given as the leaf is its own path.
  assert.deepEqual(ids(verifyChain(root.cert, [], [root.cert], { at: T0 })), ids([root.cert]));
});

test('wrong root: no path, and the message says which issuer is missing', async () => {
  const root = await makeCa(cn('root'), testSigner(P256, 0));
  const other = await makeCa(cn('other root'), testSigner(P256, 2));
  const leaf = await root.issue(leafT('leaf'));
  refuses(() => verifyChain(leaf, [], [other.cert], { at: T0 }), /certificate "CN=leaf" does not chain to a trusted root: no issuer "CN=root" of "CN=leaf" is among the intermediates and roots/);
  // Same name, other key: the name matches but the signature does not.
  const impostor = await makeCa(cn('root'), testSigner(P256, 3));
  refuses(() => verifyChain(leaf, [], [{ ...impostor.cert, subjectKeyId: undefined }], { at: T0 }), /signature of "CN=leaf" does not verify with the key of "CN=root"/);
  refuses(() => verifyChain(leaf, [], [], { at: T0 }), /no trusted roots were given/);
});

test('a tampered certificate fails its signature check', async () => {
  const root = await makeCa(cn('root'), testSigner(P256, 0));
  const leaf = await root.issue(leafT('leaf'));
  const tbs = Buffer.from(leaf.tbs);
  tbs[tbs.length - 30] ^= 0x01;
  refuses(() => verifyChain({ ...leaf, tbs }, [], [root.cert], { at: T0 }), /signature of "CN=leaf" does not verify with the key of "CN=root"/);
});

test('validity: expired intermediate, not-yet-valid leaf, expired root, all at `at`', async () => {
  const root = await makeCa(cn('root'), testSigner(P256, 0), { notAfter: new Date(T0.getTime() + 1000 * DAY) });
  const int = caFrom(await root.issue({ ...caT('intermediate', 1), notBefore: new Date(T0.getTime() - 10 * DAY), notAfter: new Date(T0.getTime() + 10 * DAY) }), testSigner(P256, 1));
  const leaf = await int.issue({ ...leafT('leaf'), notAfter: new Date(T0.getTime() + 100 * DAY) });
  assert.equal(verifyChain(leaf, [int.cert], [root.cert], { at: T0 }).length, 3);
  const later = new Date(T0.getTime() + 20 * DAY);
  refuses(() => verifyChain(leaf, [int.cert], [root.cert], { at: later }), /"CN=intermediate" has expired at .* \(notAfter .*\)/);
  refuses(() => verifyChain(leaf, [int.cert], [root.cert], { at: new Date(T0.getTime() - 2 * DAY) }), /certificate "CN=leaf" is not yet valid at/);
  refuses(() => verifyChain(leaf, [int.cert], [root.cert], { at: new Date(T0.getTime() + 200 * DAY) }), /certificate "CN=leaf" has expired/);
  const shortRoot = await makeCa(cn('short root'), testSigner(P256, 0), { notAfter: new Date(T0.getTime() + 5 * DAY) });
  const leaf2 = await shortRoot.issue({ ...leafT('leaf2'), notAfter: new Date(T0.getTime() + 50 * DAY) });
  refuses(() => verifyChain(leaf2, [], [shortRoot.cert], { at: new Date(T0.getTime() + 6 * DAY) }), /"CN=short root" has expired/);
});

test('a leaf (CA:false) used as an issuer is refused', async () => {
  const root = await makeCa(cn('root'), testSigner(P256, 0));
  const fakeCa = await root.issue({ ...leafT('fake CA'), publicKey: testSigner(P256, 1).publicKey, extKeyUsage: undefined });
  assert.equal(fakeCa.isCA, false);
  // The builder signs with any key it is handed; it is the verifier's job to refuse the result.
  const victim = parseCertificate(await buildCertificate({ ...leafT('victim'), notBefore: new Date(T0.getTime() - DAY), notAfter: new Date(T0.getTime() + DAY) }, issuerOf(fakeCa, testSigner(P256, 1))));
  refuses(() => verifyChain(victim, [fakeCa], [root.cert], { at: T0 }), /"CN=fake CA" is not a CA \(basicConstraints cA is not true\) and cannot issue "CN=victim"/);
});

test('pathLen: exceeded below a root with pathLen 0; self-issued certificates do not count', async () => {
  const root = await makeCa(cn('root'), testSigner(P256, 0), { pathLen: 0 });
  const int = caFrom(await root.issue(caT('intermediate', 1)), testSigner(P256, 1));
  const leaf = await int.issue(leafT('leaf'));
  refuses(() => verifyChain(leaf, [int.cert], [root.cert], { at: T0 }), /"CN=root" allows 0 intermediate CA\(s\) below it \(pathLen\), the path has 1/);
  const direct = await root.issue(leafT('direct'));
  assert.equal(verifyChain(direct, [], [root.cert], { at: T0 }).length, 2);

  // Two intermediates under pathLen 1.
  const root1 = await makeCa(cn('root1'), testSigner(P256, 0), { pathLen: 1 });
  const i1 = caFrom(await root1.issue(caT('i1', 1)), testSigner(P256, 1));
  const i2 = caFrom(await i1.issue(caT('i2', 2)), testSigner(P256, 2));
  const deep = await i2.issue(leafT('deep'));
  refuses(() => verifyChain(deep, [i1.cert, i2.cert], [root1.cert], { at: T0 }), /"CN=root1" allows 1 intermediate CA\(s\) below it \(pathLen\), the path has 2/);
  // A pathLen on an intermediate binds too.
  const i1b = caFrom(await root.issue(caT('i1b', 1, { pathLen: 0 })), testSigner(P256, 1));
  const i2b = caFrom(await i1b.issue(caT('i2b', 2)), testSigner(P256, 2));
  const deep2 = await i2b.issue(leafT('deep2'));
  const unlimitedRoot = await makeCa(cn('root'), testSigner(P256, 0));
  refuses(() => verifyChain(deep2, [i1b.cert, i2b.cert], [unlimitedRoot.cert], { at: T0 }), /"CN=i1b" allows 0 intermediate CA\(s\)/);

  // A rollover certificate with the same name as its issuer (self-issued) is not counted (RFC 5280 6.1.4 (l)).
  const sameName = await makeCa(cn('stable name'), testSigner(P256, 0), { pathLen: 0 });
  const rolled = parseCertificate(await selfSignedCa({ subject: cn('stable name'), signer: testSigner(P256, 1), notBefore: new Date(T0.getTime() - DAY), notAfter: new Date(T0.getTime() + 100 * DAY) }));
  const rollover = parseCertificate(await crossSign(rolled, issuerOf(sameName.cert, sameName.signer)));
  const newLeaf = await caFrom(rolled, testSigner(P256, 1)).issue(leafT('after rollover'));
  assert.deepEqual(ids(verifyChain(newLeaf, [rollover], [sameName.cert], { at: T0 })), ids([newLeaf, rollover, sameName.cert]));
});

test('EKU: the wrong purpose is refused, on the leaf and on a CA that restricts EKU', async () => {
  const root = await makeCa(cn('root'), testSigner(P256, 0));
  const client = await root.issue(leafT('client', { extKeyUsage: ['clientAuth'] }));
  refuses(() => verifyChain(client, [], [root.cert], { at: T0, purpose: 'serverAuth' }), /certificate "CN=client" has extended key usage clientAuth, not serverAuth/);
  assert.equal(verifyChain(client, [], [root.cert], { at: T0, purpose: 'clientAuth' }).length, 2);
  const restricted = caFrom(await root.issue(caT('client-only CA', 1, { extKeyUsage: ['clientAuth'] })), testSigner(P256, 1));
  const server = await restricted.issue(leafT('server'));
  refuses(() => verifyChain(server, [restricted.cert], [root.cert], { at: T0, purpose: 'serverAuth' }), /"CN=client-only CA" has extended key usage clientAuth, not serverAuth/);
});

test('cross-signed generations: new leaf reaches either root; AKI picks among same-name CAs', async () => {
  // Rotation that keeps the CA name: two generations share a subject, and only key identifiers and signatures tell them apart.
  const g1 = await makeCa(cn('cluster CA'), testSigner(P256, 0));
  const g2cert = parseCertificate(await selfSignedCa({ subject: cn('cluster CA'), signer: testSigner(P256, 1), notBefore: new Date(T0.getTime() - DAY), notAfter: new Date(T0.getTime() + 400 * DAY) }));
  const g2 = caFrom(g2cert, testSigner(P256, 1));
  const cross = parseCertificate(await crossSign(g2cert, issuerOf(g1.cert, g1.signer)));
  const oldLeaf = await g1.issue(leafT('old'));
  const newLeaf = await g2.issue(leafT('new'));
  const all = [g2cert, cross, g1.cert];
  assert.deepEqual(ids(verifyChain(newLeaf, all, [g1.cert], { at: T0 })), ids([newLeaf, cross, g1.cert]));
  assert.deepEqual(ids(verifyChain(newLeaf, all, [g2cert], { at: T0 })), ids([newLeaf, g2cert]));
  assert.deepEqual(ids(verifyChain(oldLeaf, all, [g1.cert], { at: T0 })), ids([oldLeaf, g1.cert]));
  // An old leaf cannot reach the new root: there is no certificate for g1's key under g2.
  refuses(() => verifyChain(oldLeaf, all, [g2cert], { at: T0 }), /does not chain to a trusted root/);
  // Without key identifiers, signatures alone still find the right generation.
  const strip = (c: ParsedCertificate) => ({ ...c, subjectKeyId: undefined, authorityKeyId: undefined });
  assert.deepEqual(ids(verifyChain(strip(newLeaf), all.map(strip), [strip(g1.cert)], { at: T0 })), ids([newLeaf, cross, g1.cert]));
});

test('issuers without keyCertSign and certificates with unknown critical extensions are refused', async () => {
  const dir = tempDir();
  const caKey = writeFile(dir, 'ca.key', pkcs8Pem(testKey(P256, 0)));
  openssl(['req', '-x509', '-new', '-key', caKey, '-subj', '/CN=no certsign', '-days', '3650', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,digitalSignature', '-out', 'nocs.pem'], dir);
  const noCertSign = parseCertificate(openssl(['x509', '-in', 'nocs.pem'], dir));
  const leaf = await caFrom(noCertSign, testSigner(P256, 0)).issue({ ...leafT('leaf'), notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY) });
  refuses(() => verifyChain(leaf, [], [noCertSign], { at: new Date() }), /"CN=no certsign" lacks keyUsage keyCertSign/);

  openssl(['req', '-x509', '-new', '-key', caKey, '-subj', '/CN=odd CA', '-days', '3650', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-addext', '1.2.3.4=critical,ASN1:NULL', '-out', 'odd.pem'], dir);
  const odd = parseCertificate(openssl(['x509', '-in', 'odd.pem'], dir));
  const leaf2 = await caFrom(odd, testSigner(P256, 0)).issue({ ...leafT('leaf2'), notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY) });
  refuses(() => verifyChain(leaf2, [], [odd], { at: new Date() }), /"CN=odd CA" has critical extension 1\.2\.3\.4, which is not understood/);
});
