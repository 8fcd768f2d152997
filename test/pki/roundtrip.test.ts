// Every algorithm end to end: CSR built → parsed → verified, certificate built → parsed, and the fields come back equal.
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { test } from 'node:test';
import { DER_NULL, derBitString, derOid, derUnsigned, encode, seq } from '../../src/pki/der.js';
import {
  OID,
  buildCertificate,
  buildCsr,
  crossSign,
  generateKeyPair,
  issuerOf,
  keyAlgorithmOf,
  keyIdOf,
  parseCertificate,
  parseCsr,
  parseCsrAsync,
  pemEncode,
  signatureAlgorithmFor,
  softSigner,
  spkiPin,
  sha256Fingerprint,
  verifyChain,
  verifySignature,
} from '../../src/pki/index.js';
import type { CertificateTemplate, KeyAlgorithm } from '../../src/pki/types.js';
import { ALGORITHMS, DAY, T0, algName, makeCa, refuses, refusesAsync, testSigner } from './helpers.js';

const SUBJECT = [
  { type: 'O', value: 'system:nodes' },
  { type: 'OU', value: 'Ünits & ops' },
  { type: 'CN', value: 'system:node:worker-1' },
];
const SANS = { dns: ['worker-1', 'worker-1.cluster.local'], ip: ['10.0.0.7', '2001:db8::7'], uri: ['spiffe://cluster.local/ns/a/sa/b'], email: ['ops@example.com'] };

const EXPECTED_SIG: Record<string, string> = {
  'P-256': OID.ecdsaWithSHA256,
  'P-384': OID.ecdsaWithSHA384,
  'RSA-2048': OID.sha256WithRSAEncryption,
  'RSA-3072': OID.sha256WithRSAEncryption,
  'RSA-4096': OID.sha256WithRSAEncryption,
  Ed25519: OID.ed25519,
};

for (const alg of ALGORITHMS) {
  test(`${algName(alg)}: CSR and certificate round trip`, async () => {
    const node = testSigner(alg, 1);
    const csrDer = await buildCsr({ subject: SUBJECT, sans: SANS, signer: node });
    for (const input of [csrDer, pemEncode('CERTIFICATE REQUEST', csrDer), Buffer.from(pemEncode('CERTIFICATE REQUEST', csrDer))]) {
      const csr = parseCsr(input);
      assert.deepEqual(csr.der, csrDer);
      assert.deepEqual(csr.subject, SUBJECT);
      assert.deepEqual(csr.sans, SANS);
      assert.deepEqual(csr.publicKey, node.publicKey);
      assert.deepEqual(csr.keyAlgorithm, alg);
      assert.equal(csr.signatureAlgorithmOid, EXPECTED_SIG[algName(alg)]);
      assert.deepEqual(csr.extensions.map((e) => e.oid), [OID.subjectAltName]);
      assert.equal(csr.requestedBasicConstraints, undefined);
    }
    const viaAsync = await parseCsrAsync(csrDer);
    assert.deepEqual(viaAsync.subject, SUBJECT);
    assert.deepEqual(viaAsync.publicKey, node.publicKey);

    const ca = await makeCa([{ type: 'CN', value: `${algName(alg)} root` }], testSigner(alg, 0));
    assert.equal(ca.cert.signatureAlgorithmOid, EXPECTED_SIG[algName(alg)]);
    assert.equal(ca.cert.isCA, true);
    assert.deepEqual(ca.cert.keyUsage, ['digitalSignature', 'keyCertSign', 'cRLSign']);
    assert.deepEqual(ca.cert.subjectKeyId, ca.cert.authorityKeyId);

    const csr = parseCsr(csrDer);
    const template: CertificateTemplate = {
      serial: Buffer.from('00c0ffee01', 'hex'),
      subject: csr.subject,
      notBefore: new Date('2026-02-28T12:34:56.789Z'),
      notAfter: new Date('2051-01-01T00:00:00Z'),
      publicKey: csr.publicKey,
      isCA: false,
      keyUsage: ['keyEncipherment', 'digitalSignature'],
      extKeyUsage: ['serverAuth', 'clientAuth'],
      sans: csr.sans,
    };
    const der = await buildCertificate(template, issuerOf(ca.cert, ca.signer));
    const cert = parseCertificate(pemEncode('CERTIFICATE', der));
    assert.deepEqual(cert.der, der);
    assert.equal(cert.version, 3);
    assert.deepEqual(cert.serial, Buffer.from('c0ffee01', 'hex'));
    assert.equal(cert.serialHex, 'c0ffee01');
    assert.deepEqual(cert.subject, SUBJECT);
    assert.deepEqual(cert.issuer, ca.cert.subject);
    assert.deepEqual(cert.issuerDer, ca.cert.subjectDer);
    assert.equal(cert.notBefore.toISOString(), '2026-02-28T12:34:56.000Z');
    assert.equal(cert.notAfter.toISOString(), '2051-01-01T00:00:00.000Z');
    assert.deepEqual(cert.publicKey, node.publicKey);
    assert.deepEqual(cert.keyAlgorithm, alg);
    assert.equal(cert.isCA, false);
    assert.equal(cert.pathLen, undefined);
    assert.deepEqual(cert.keyUsage, ['digitalSignature', 'keyEncipherment']);
    assert.deepEqual(cert.extKeyUsage, ['serverAuth', 'clientAuth']);
    assert.deepEqual(cert.sans, SANS);
    assert.deepEqual(cert.subjectKeyId, createHash('sha1').update(subjectKeyBits(node.publicKey)).digest());
    assert.deepEqual(cert.subjectKeyId, keyIdOf(node.publicKey));
    assert.deepEqual(cert.authorityKeyId, ca.cert.subjectKeyId);
    assert.equal(cert.signatureAlgorithmOid, EXPECTED_SIG[algName(ca.signer.algorithm)]);
    assert.equal(cert.sha256, createHash('sha256').update(der).digest('hex'));
    assert.deepEqual(
      cert.extensions.map((e) => [e.oid, e.critical]),
      [
        [OID.basicConstraints, true],
        [OID.keyUsage, true],
        [OID.extKeyUsage, false],
        [OID.subjectAltName, false],
        [OID.subjectKeyIdentifier, false],
        [OID.authorityKeyIdentifier, false],
      ],
    );
    assert.ok(verifySignature(ca.cert.publicKey, cert.signatureAlgorithmOid, cert.tbs, cert.signature));
    assert.equal(verifySignature(node.publicKey, cert.signatureAlgorithmOid, cert.tbs, cert.signature), false);
    assert.deepEqual(verifyChain(cert, [], [ca.cert], { at: T0, purpose: 'serverAuth' }).map((c) => c.sha256), [cert.sha256, ca.cert.sha256]);
  });
}

/** The subjectPublicKey BIT STRING's contents, worked out by node:crypto rather than by our DER reader (RFC 5280 SKI method 1 input). */
function subjectKeyBits(spki: Buffer): Buffer {
  const k = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  if (k.asymmetricKeyType === 'rsa') return k.export({ type: 'pkcs1', format: 'der' });
  const jwk = k.export({ format: 'jwk' });
  if (k.asymmetricKeyType === 'ed25519') return Buffer.from(jwk.x!, 'base64url');
  return Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
}

test('random serials are positive, 128-bit and distinct; a CA certificate keeps its pathLen', async () => {
  const ca = await makeCa([{ type: 'CN', value: 'serials' }], testSigner({ kind: 'ec', curve: 'P-256' }), { pathLen: 2 });
  assert.equal(ca.cert.pathLen, 2);
  const leafKey = testSigner({ kind: 'ec', curve: 'P-256' }, 1).publicKey;
  const serials = new Set<string>();
  let highBitSeen = false;
  for (let i = 0; i < 64; i++) {
    const c = await ca.issue({ subject: [{ type: 'CN', value: `n${i}` }], publicKey: leafKey, isCA: false, keyUsage: ['digitalSignature'] });
    assert.ok(c.serial.length <= 16 && c.serial.length >= 1);
    if (c.serial.length === 16 && c.serial[0] & 0x80) highBitSeen = true;
    serials.add(c.serialHex);
    assert.equal(c.extensions.some((e) => e.oid === OID.extKeyUsage || e.oid === OID.subjectAltName), false, 'no EKU or SAN unless the template names them');
  }
  assert.equal(serials.size, 64);
  assert.ok(highBitSeen, 'in 64 serials, some have the top bit set (encoded with a leading zero byte)');
});

test('empty subject: SAN required, and then critical', async () => {
  const ca = await makeCa([{ type: 'CN', value: 'empty' }], testSigner({ kind: 'ec', curve: 'P-256' }));
  const publicKey = testSigner({ kind: 'ec', curve: 'P-256' }, 1).publicKey;
  await refusesAsync(() => ca.issue({ subject: [], publicKey, isCA: false, keyUsage: ['digitalSignature'] }), /empty subject needs at least one subjectAltName/);
  const c = await ca.issue({ subject: [], publicKey, isCA: false, keyUsage: ['digitalSignature'], sans: { uri: ['spiffe://x/y'] } });
  assert.deepEqual(c.subject, []);
  assert.equal(c.extensions.find((e) => e.oid === OID.subjectAltName)?.critical, true);
});

test('buildCertificate refuses inconsistent templates, naming the problem', async () => {
  const caSigner = testSigner({ kind: 'ec', curve: 'P-256' });
  const ca = await makeCa([{ type: 'CN', value: 'checks' }], caSigner);
  const issuer = issuerOf(ca.cert, caSigner);
  const base: CertificateTemplate = { subject: [{ type: 'CN', value: 'x' }], notBefore: T0, notAfter: new Date(T0.getTime() + DAY), publicKey: testSigner({ kind: 'ec', curve: 'P-256' }, 1).publicKey, isCA: false, keyUsage: ['digitalSignature'] };
  const cases: Array<[Partial<CertificateTemplate>, RegExp]> = [
    [{ notAfter: T0 }, /notAfter .* is not after notBefore/],
    [{ notBefore: new Date(NaN) }, /notBefore is not a valid date/],
    [{ pathLen: 1 }, /pathLen is only allowed on a CA certificate/],
    [{ isCA: true, keyUsage: ['digitalSignature'] }, /a CA certificate must have keyUsage keyCertSign/],
    [{ keyUsage: ['keyCertSign'] }, /keyCertSign requires isCA/],
    [{ keyUsage: [] }, /keyUsage must name at least one usage/],
    [{ keyUsage: ['digitalSignature', 'digitalSignature'] }, /key usage "digitalSignature" is named twice/],
    [{ extKeyUsage: [] }, /extKeyUsage, when given, must name at least one usage/],
    [{ extKeyUsage: ['serverAuth', 'serverAuth'] }, /extended key usage "serverAuth" is named twice/],
    [{ serial: Buffer.from([0, 0]) }, /serial must be positive/],
    [{ serial: Buffer.alloc(21, 1) }, /serial of 21 bytes is longer than 20 bytes/],
    [{ sans: { ip: ['10.0.0.256'] } }, /"10.0.0.256" is not an IP address/],
    [{ sans: { dns: ['a b'] } }, /DNS SAN "a b" must be non-empty ASCII without spaces/],
    [{ sans: { uri: ['no-scheme'] } }, /URI SAN "no-scheme" has no scheme/],
    [{ sans: { email: ['nobody'] } }, /email SAN "nobody" has no "@"/],
    [{ publicKey: Buffer.from('30020500', 'hex') }, /SubjectPublicKeyInfo algorithm: expected SEQUENCE/],
  ];
  for (const [change, re] of cases) await refusesAsync(() => buildCertificate({ ...base, ...change }, issuer), re);
  // The issuer's signer must hold the issuer's key.
  await refusesAsync(() => buildCertificate(base, { ...issuer, signer: testSigner({ kind: 'ec', curve: 'P-256' }, 1) }), /the issuer's signer holds another key/);
  // A Signer that returns raw r||s instead of DER is caught rather than producing a certificate nobody can verify.
  const rawSigner = { ...caSigner, sign: async () => Buffer.alloc(64, 1) };
  await assert.rejects(buildCertificate(base, { ...issuer, signer: rawSigner }), /not DER \(ECDSA-Sig-Value\)/);
});

test('IPv6 SANs are written as bytes and read back in RFC 5952 form', async () => {
  const ca = await makeCa([{ type: 'CN', value: 'ip' }], testSigner({ kind: 'ec', curve: 'P-256' }));
  const publicKey = testSigner({ kind: 'ec', curve: 'P-256' }, 1).publicKey;
  const given = ['::1', '::', '2001:DB8:0:0:1:0:0:1', 'fe80::1:2', '::ffff:10.1.2.3', '1:0:0:2:0:0:0:3', '1.2.3.4'];
  const want = ['::1', '::', '2001:db8::1:0:0:1', 'fe80::1:2', '::ffff:10.1.2.3', '1:0:0:2::3', '1.2.3.4'];
  const c = await ca.issue({ subject: [{ type: 'CN', value: 'ip' }], publicKey, isCA: false, keyUsage: ['digitalSignature'], sans: { ip: given } });
  assert.deepEqual(c.sans.ip, want);
});

test('keyAlgorithmOf refuses RSA outside 2048–4096 bits, other curves and other algorithms, naming them', () => {
  const spki = (k: ReturnType<typeof generateKeyPairSync>['publicKey']) => k.export({ type: 'spki', format: 'der' });
  refuses(() => keyAlgorithmOf(spki(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey)), /RSA key of 1024 bits is refused \(2048 to 4096 bits accepted\)/);
  // A 4104-bit modulus, synthesised: too slow to generate, and the size check comes before any use of the key.
  const bigN = Buffer.concat([Buffer.from([0x00, 0xff]), Buffer.alloc(512, 0xab)]);
  const rsaKey = encode(seq(derUnsigned(bigN), derUnsigned(Buffer.from([1, 0, 1]))));
  const bigSpki = encode(seq(seq(derOid(OID.rsaEncryption), DER_NULL), derBitString(rsaKey)));
  refuses(() => keyAlgorithmOf(bigSpki), /RSA key of 4104 bits is refused/);
  refuses(() => keyAlgorithmOf(spki(generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey)), /EC curve P-521 \(1\.3\.132\.0\.35\) is not supported/);
  refuses(() => keyAlgorithmOf(spki(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey)), /EC curve secp256k1 .* is not supported/);
  refuses(() => keyAlgorithmOf(spki(generateKeyPairSync('ed448').publicKey)), /key algorithm Ed448 \(1\.3\.101\.113\) is not supported/);
  refuses(() => keyAlgorithmOf(spki(generateKeyPairSync('x25519').publicKey)), /key algorithm X25519 .* is not supported/);
  refuses(() => keyAlgorithmOf(spki(generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 }).publicKey)), /key algorithm DSA .* is not supported/);
  for (const a of ALGORITHMS) assert.deepEqual(keyAlgorithmOf(testSigner(a).publicKey), a);
});

test('signatureAlgorithmFor and verifySignature', () => {
  const oids = ALGORITHMS.map((a) => signatureAlgorithmFor(a).oid);
  assert.deepEqual(oids, ALGORITHMS.map((a) => EXPECTED_SIG[algName(a)]));
  const data = Buffer.from('to be signed');
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = ec.publicKey.export({ type: 'spki', format: 'der' });
  const sig = sign('sha256', data, ec.privateKey);
  assert.equal(verifySignature(spki, OID.ecdsaWithSHA256, data, sig), true);
  assert.equal(verifySignature(spki, OID.ecdsaWithSHA256, Buffer.from('other'), sig), false);
  assert.equal(verifySignature(spki, OID.ecdsaWithSHA384, data, sig), false);
  refuses(() => verifySignature(spki, OID.sha256WithRSAEncryption, data, sig), /sha256WithRSAEncryption cannot be made by a EC P-256 key/);
  refuses(() => verifySignature(spki, OID.ecdsaWithSHA1, data, sig), /ecdsa-with-SHA1 .* is not supported: SHA-1 signatures are refused/);
  refuses(() => verifySignature(spki, '1.2.3.4', data, sig), /signature algorithm 1\.2\.3\.4 is not supported/);
  // A point that is not on the curve cannot be imported.
  const bad = Buffer.from(spki);
  bad[bad.length - 1] ^= 1;
  refuses(() => verifySignature(bad, OID.ecdsaWithSHA256, data, sig), /EC P-256 public key is not valid/);
});

test('generateKeyPair and softSigner: PKCS#8 PEM, matching public key, refusals', async () => {
  for (const alg of [{ kind: 'ec', curve: 'P-384' }, { kind: 'ed25519' }, { kind: 'rsa', bits: 2048 }] as KeyAlgorithm[]) {
    const kp = await generateKeyPair(alg);
    assert.match(kp.privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.deepEqual(kp.signer.algorithm, alg);
    assert.deepEqual(createPublicKey(kp.privateKeyPem).export({ type: 'spki', format: 'der' }), kp.signer.publicKey);
    const sig = await kp.signer.sign(Buffer.from('x'));
    assert.ok(verifySignature(kp.signer.publicKey, signatureAlgorithmFor(alg).oid, Buffer.from('x'), sig));
  }
  await refusesAsync(() => generateKeyPair({ kind: 'rsa', bits: 1024 }), /RSA key of 1024 bits is refused/);
  await refusesAsync(() => generateKeyPair({ kind: 'ec', curve: 'P-521' as 'P-256' }), /is not supported/);
  refuses(() => softSigner(generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey), /EC curve secp521r1 is not supported/);
  refuses(() => softSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey), /softSigner needs a private key, got a public key/);
});

test('crossSign keeps the new CA\'s name, key, SKI and constraints and clamps validity to the old CA', async () => {
  const oldCa = await makeCa([{ type: 'CN', value: 'gen 1' }], testSigner({ kind: 'ec', curve: 'P-256' }), { notAfter: new Date(T0.getTime() + 100 * DAY) });
  const newCa = await makeCa([{ type: 'CN', value: 'gen 2' }], testSigner({ kind: 'ec', curve: 'P-384' }), { notAfter: new Date(T0.getTime() + 400 * DAY), pathLen: 0 });
  const cross = parseCertificate(await crossSign(newCa.cert, issuerOf(oldCa.cert, oldCa.signer)));
  assert.deepEqual(cross.subjectDer, newCa.cert.subjectDer);
  assert.deepEqual(cross.issuerDer, oldCa.cert.subjectDer);
  assert.deepEqual(cross.publicKey, newCa.cert.publicKey);
  assert.deepEqual(cross.subjectKeyId, newCa.cert.subjectKeyId);
  assert.deepEqual(cross.authorityKeyId, oldCa.cert.subjectKeyId);
  assert.equal(cross.pathLen, 0);
  assert.equal(cross.isCA, true);
  assert.deepEqual(cross.keyUsage, newCa.cert.keyUsage);
  assert.equal(cross.notBefore.getTime(), newCa.cert.notBefore.getTime());
  assert.equal(cross.notAfter.getTime(), oldCa.cert.notAfter.getTime());
  assert.equal(cross.signatureAlgorithmOid, OID.ecdsaWithSHA256);
  assert.notEqual(cross.serialHex, newCa.cert.serialHex);
  const leaf = await makeCa([{ type: 'CN', value: 'leafy' }], testSigner({ kind: 'ec', curve: 'P-256' }, 1));
  await refusesAsync(() => crossSign({ ...leaf.cert, isCA: false }, issuerOf(oldCa.cert, oldCa.signer)), /only a CA certificate can be cross-signed/);
  const expired = { ...issuerOf(oldCa.cert, oldCa.signer), notAfter: new Date(newCa.cert.notBefore.getTime() - 1) };
  await refusesAsync(() => crossSign(newCa.cert, expired), /the old CA expires .* before the new CA starts/);
});

test('sha256Fingerprint and spkiPin', async () => {
  const s = testSigner({ kind: 'ec', curve: 'P-256' });
  assert.equal(spkiPin(s.publicKey), `sha256:${createHash('sha256').update(s.publicKey).digest('hex')}`);
  assert.match(spkiPin(s.publicKey), /^sha256:[0-9a-f]{64}$/);
  const ca = await makeCa([{ type: 'CN', value: 'fp' }], s);
  assert.equal(sha256Fingerprint(ca.cert.der), ca.cert.sha256);
  refuses(() => spkiPin(ca.cert.der), /SubjectPublicKeyInfo/);
});
