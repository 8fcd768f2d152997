// parseCsr refuses every malformed, truncated, oversized, weak or forged request with a message naming what was wrong.
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { test } from 'node:test';
import { DER_NULL, Tag, derBitString, derOid, derSmallInt, derUtf8, encode, node, primitive, seq } from '../../src/pki/der.js';
import { encodeBasicConstraints, encodeKeyUsage } from '../../src/pki/extensions.js';
import { MAX_CSR_BYTES, OID, buildCsr, encodeName, parseCertificate, parseCsr, parseCsrAsync, pemEncode } from '../../src/pki/index.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { makeCa, refuses, refusesAsync, testKey, testSigner } from './helpers.js';
import { type TlvNode, at, mutate, parseTlv, serializeTlv } from './tlv.js';

const P256 = { kind: 'ec', curve: 'P-256' } as const;
const signer = testSigner(P256, 1);
const SUBJECT = [{ type: 'CN', value: 'strict' }];
const base = await buildCsr({ subject: SUBJECT, sans: { dns: ['a.example'] }, signer });
// CSR paths: [0] info: [0,0] version, [0,1] subject, [0,2] spki, [0,3] attributes; [1] signatureAlgorithm; [2] signature.
// Attribute path: [0,3,0] Attribute, [0,3,0,1] its values SET, [0,3,0,1,0] Extensions, [0,3,0,1,0,i] extension i.

/** A CSR whose info is `info` (DER), correctly signed by the P-256 test key, so only the content can be at fault. */
function signInfo(info: Buffer, key = testKey(P256, 1), sigAlgOid: string = OID.ecdsaWithSHA256, hash = 'sha256'): Buffer {
  const algId = sigAlgOid === OID.ecdsaWithSHA256 || sigAlgOid === OID.ecdsaWithSHA384 ? seq(derOid(sigAlgOid)) : seq(derOid(sigAlgOid), DER_NULL);
  return encode(seq(info, algId, derBitString(sign(hash, info, key))));
}

/** Re-signs a CSR after changing its info at `path` (relative to the info). */
function resigned(path: number[], change: (n: TlvNode) => void, der = base): Buffer {
  const info = serializeTlv(at(parseTlv(der), 0));
  return signInfo(mutate(info, path, change));
}

test('the unmodified request and its re-signed copy parse (control for the cases below)', () => {
  assert.deepEqual(parseCsr(base).subject, SUBJECT);
  assert.deepEqual(parseCsr(resigned([], () => undefined)).subject, SUBJECT);
});

test('garbage and wrong input types are refused', () => {
  refuses(() => parseCsr(Buffer.from('hello world')), /certificate request: CertificationRequest: expected SEQUENCE \(0x30\)/);
  refuses(() => parseCsr(Buffer.alloc(0)), /certificate request is empty/);
  refuses(() => parseCsr('not pem at all'), /no PEM block found/);
  refuses(() => parseCsr(42 as unknown as Buffer), /must be PEM text or DER bytes/);
  refuses(() => parseCsr(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00])), /certificationRequestInfo: expected SEQUENCE/);
});

test('truncated at every byte offset: always a TrustplaneError, never accepted', () => {
  for (let i = 0; i < base.length; i++) {
    assert.throws(() => parseCsr(base.subarray(0, i)), (e: unknown) => e instanceof TrustplaneError && /truncated|missing|empty|expected/.test(e.message), `prefix of ${i} bytes`);
  }
  const pem = pemEncode('CERTIFICATE REQUEST', base);
  for (let i = 0; i < pem.length - 1; i += 7) {
    assert.throws(() => parseCsr(pem.slice(0, i)), TrustplaneError, `PEM prefix of ${i} characters`);
  }
});

test('DER violations in a request are refused, naming the field', () => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ['trailing byte', Buffer.concat([base, Buffer.from([0])]), /CertificationRequest: unexpected data \(1 bytes\)/],
    ['indefinite length', mutate(base, [], (n) => (n.lengthBytes = Buffer.from([0x80]))), /CertificationRequest: indefinite length at byte 1/],
    ['non-minimal length', mutate(base, [0, 1], (n) => (n.lengthBytes = Buffer.from([0x81, serializeTlv(n).length - 2]))), /subject: non-minimal length encoding/],
    ['non-minimal INTEGER version', resigned([0], (n) => (n.content = Buffer.from([0, 0]))), /version: non-minimal INTEGER encoding/],
    ['version 1', resigned([0], (n) => (n.content = Buffer.from([1]))), /version must be 0 \(v1\), is 1/],
    ['subject as SET', resigned([1], (n) => (n.tag = Tag.SET)), /subject: expected SEQUENCE \(0x30\) but found SET \(0x31\)/],
    ['attributes with a high tag number', resigned([3], (n) => (n.tag = 0xbf)), /attributes: high-tag-number form \(0xbf\) at byte \d+ is not supported/],
    ['signature with 8 unused bits', mutate(base, [2], (n) => (n.content = Buffer.concat([Buffer.from([8]), n.content.subarray(1)]))), /signature: BIT STRING .* claims 8 unused bits/],
    ['signature with padding bits', mutate(base, [2], (n) => (n.content = Buffer.concat([Buffer.from([1]), n.content.subarray(1, -1), Buffer.from([1])]))), /signature: BIT STRING .* non-zero padding bits/],
    ['key BIT STRING with unused bits', resigned([2, 1], (n) => (n.content = Buffer.concat([Buffer.from([1]), n.content.subarray(1, -1), Buffer.from([0])]))), /subjectPKInfo subjectPublicKey: BIT STRING must have no unused bits/],
    ['truncated extension list', mutate(base, [0, 3, 0, 1, 0], (n) => (n.lengthBytes = Buffer.from([serializeTlv(n).length]))), /truncated|runs past/],
  ];
  for (const [, der, re] of cases) refuses(() => parseCsr(der), re);
});

test('signature algorithms: unknown, SHA-1, RSA-PSS, mismatched with the key, wrong parameters', () => {
  const withAlg = (algId: Buffer) => mutate(base, [1], (n) => Object.assign(n, parseTlv(algId)));
  refuses(() => parseCsr(withAlg(encode(seq(derOid('1.2.3.4'))))), /signatureAlgorithm: signature algorithm 1\.2\.3\.4 is not supported/);
  refuses(() => parseCsr(withAlg(encode(seq(derOid(OID.ecdsaWithSHA1))))), /ecdsa-with-SHA1 .* SHA-1 signatures are refused/);
  refuses(() => parseCsr(withAlg(encode(seq(derOid(OID.rsassaPss), seq())))), /RSASSA-PSS .* is not supported/);
  refuses(() => parseCsr(withAlg(encode(seq(derOid(OID.sha256WithRSAEncryption), DER_NULL)))), /signature algorithm sha256WithRSAEncryption cannot be made by a EC P-256 key/);
  refuses(() => parseCsr(withAlg(encode(seq(derOid(OID.ecdsaWithSHA256), DER_NULL)))), /signatureAlgorithm \(ecdsa-with-SHA256 takes no parameters\): unexpected data/);
  refuses(() => parseCsr(withAlg(encode(seq(derOid(OID.sha256WithRSAEncryption))))), /signatureAlgorithm parameters is missing/);
});

test('RSA-1024 (validly signed) is refused; so are keys with other curves', async () => {
  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const spki = weak.publicKey.export({ type: 'spki', format: 'der' });
  const info = encode(seq(derSmallInt(0), encodeName(SUBJECT), spki, Buffer.from([0xa0, 0x00])));
  refuses(() => parseCsr(signInfo(info, weak.privateKey, OID.sha256WithRSAEncryption)), /subjectPKInfo: RSA key of 1024 bits is refused \(2048 to 4096 bits accepted\)/);
  const k521 = generateKeyPairSync('ec', { namedCurve: 'P-521' });
  const info521 = encode(seq(derSmallInt(0), encodeName(SUBJECT), k521.publicKey.export({ type: 'spki', format: 'der' }), Buffer.from([0xa0, 0x00])));
  refuses(() => parseCsr(signInfo(info521, k521.privateKey, OID.ecdsaWithSHA256)), /EC curve P-521 .* is not supported/);
});

test('a bad signature is refused, sync and async', async () => {
  const flipSig = Buffer.from(base);
  flipSig[flipSig.length - 5] ^= 0x01;
  refuses(() => parseCsr(flipSig), /certificate request: signature does not verify with the request's own public key/);
  await refusesAsync(() => parseCsrAsync(flipSig), /signature does not verify/);
  // Changing the subject after signing.
  const other = mutate(base, [0, 1], (n) => Object.assign(n, parseTlv(encodeName([{ type: 'CN', value: 'strucT' }]))));
  refuses(() => parseCsr(other), /signature does not verify/);
  await refusesAsync(() => parseCsrAsync(other), /signature does not verify/);
  // A signature by another key of the same kind.
  const info = serializeTlv(at(parseTlv(base), 0));
  refuses(() => parseCsr(signInfo(info, testKey(P256, 2))), /signature does not verify/);
});

test('PEM framing and size limits', () => {
  const pem = pemEncode('CERTIFICATE REQUEST', base);
  assert.deepEqual(parseCsr(pemEncode('NEW CERTIFICATE REQUEST', base)).subject, SUBJECT);
  refuses(() => parseCsr(pem + pem), /found 2 PEM blocks/);
  refuses(() => parseCsr(pemEncode('CERTIFICATE', base)), /PEM block is labelled "CERTIFICATE", expected "CERTIFICATE REQUEST" or "NEW CERTIFICATE REQUEST"/);
  refuses(() => parseCsr(Buffer.from(pem + pem)), /found 2 PEM blocks/);
  // Over the limit as PEM: the size reported is the DER's (65537), not the PEM text's (about 89,000 characters).
  const overDer = pemEncode('CERTIFICATE REQUEST', Buffer.alloc(MAX_CSR_BYTES + 1, 0x30));
  assert.ok(overDer.length > 88_000);
  refuses(() => parseCsr(overDer), /^certificate request of 65537 bytes \(DER\) is too large \(at most 65536 bytes\)$/, 'RequestEntityTooLarge');
  refuses(() => parseCsr(Buffer.from(overDer)), /certificate request of 65537 bytes \(DER\) is too large/, 'RequestEntityTooLarge');
  refuses(() => parseCsr(Buffer.alloc(MAX_CSR_BYTES + 1, 0x30)), /certificate request of 65537 bytes \(DER\) is too large/, 'RequestEntityTooLarge');
  // PEM text that could not hold a CSR within the limit is refused before it is decoded, its length named as such.
  refuses(() => parseCsr('x'.repeat(2 * MAX_CSR_BYTES - pem.length + 1) + pem), /PEM text of 131073 characters is too large/, 'RequestEntityTooLarge');
  // A CSR within the limit whose PEM text exceeds 64 KiB (explanatory text before the block) is read.
  assert.deepEqual(parseCsr('x'.repeat(MAX_CSR_BYTES) + '\n' + pem).subject, SUBJECT);
  // Exactly at the limit it is read (and then refused for what it is, not for its size).
  refuses(() => parseCsr(Buffer.alloc(MAX_CSR_BYTES, 0x30)), /CertificationRequest/);
  assert.deepEqual(parseCsr(' \n' + pem).subject, SUBJECT);
});

test('extension requests: duplicates, unsupported SAN kinds, DEFAULT values written out, bad key usage, attribute order', async () => {
  const ext = (oid: string, critical: boolean, value: Buffer) => ({ oid, critical, value });
  const csrWith = (exts: ReturnType<typeof ext>[]) => buildCsr({ subject: SUBJECT, signer, extensions: exts });
  const refusesWith = async (exts: ReturnType<typeof ext>[], re: RegExp) => {
    const der = await csrWith(exts);
    refuses(() => parseCsr(der), re);
  };

  const upn = encode(seq(node(0xa0, derOid('1.3.6.1.4.1.311.20.2.3'), node(0xa0, derUtf8('user@corp')))));
  await refusesWith([ext(OID.subjectAltName, false, upn)], /subjectAltName: GeneralName 1: otherName names are not supported/);
  await refusesWith([ext(OID.subjectAltName, false, Buffer.from([0x30, 0x00]))], /GeneralNames must hold at least one name/);
  await refusesWith([ext(OID.subjectAltName, false, encode(seq(primitive(0x87, Buffer.from([1, 2, 3])))))], /iPAddress must be 4 or 16 bytes, has 3/);
  await refusesWith([ext(OID.basicConstraints, false, encode(seq(Buffer.from([0x01, 0x01, 0x00]))))], /basicConstraints: cA FALSE must be omitted in DER/);
  await refusesWith([ext(OID.basicConstraints, false, encode(seq(derSmallInt(1))))], /pathLenConstraint is only allowed with cA TRUE/);
  await refusesWith([ext(OID.keyUsage, true, Buffer.from([0x03, 0x02, 0x00, 0x80]))], /KeyUsage has trailing zero bits/);
  await refusesWith([ext(OID.keyUsage, true, Buffer.from([0x03, 0x01, 0x00]))], /KeyUsage must assert at least one usage/);
  await refusesWith([ext(OID.extKeyUsage, false, Buffer.from([0x30, 0x00]))], /ExtKeyUsageSyntax must hold at least one usage/);

  // critical FALSE spelled out (DER omits a DEFAULT value): build the request, then insert the BOOLEAN and re-sign.
  const plain = await csrWith([ext('1.2.3.4', false, DER_NULL)]);
  const falseCritical = resigned([3, 0, 1, 0, 0], (n) => n.children!.splice(1, 0, { tag: Tag.BOOLEAN, content: Buffer.from([0x00]) }), plain);
  refuses(() => parseCsr(falseCritical), /extension 1\.2\.3\.4: critical FALSE must be omitted in DER/);
  const oneCritical = resigned([3, 0, 1, 0, 0], (n) => n.children!.splice(1, 0, { tag: Tag.BOOLEAN, content: Buffer.from([0x01]) }), plain);
  refuses(() => parseCsr(oneCritical), /critical: BOOLEAN value 0x1 .* must be 0x00 or 0xff in DER/);

  const dup = resigned([3, 0, 1, 0], (n) => n.children!.push(n.children![0]), plain);
  refuses(() => parseCsr(dup), /extension 1\.2\.3\.4 appears twice/);
  const dupAttr = resigned([3], (n) => n.children!.push(n.children![0]), plain);
  refuses(() => parseCsr(dupAttr), /extensionRequest attribute appears twice/);
  // A challengePassword attribute sorts before extensionRequest (…9.7 < …9.14 by encoding); the reverse order is refused.
  const challenge = parseTlv(encode(seq(derOid(OID.challengePassword), node(Tag.SET, derUtf8('sesame')))));
  const ordered = resigned([3], (n) => n.children!.unshift(challenge), plain);
  assert.deepEqual(parseCsr(ordered).extensions.map((e) => e.oid), ['1.2.3.4']);
  const unordered = resigned([3], (n) => n.children!.push(challenge), plain);
  refuses(() => parseCsr(unordered), /attributes are not in DER SET OF order/);
  const twoValues = resigned([3, 0, 1], (n) => n.children!.push(n.children![0]), plain);
  refuses(() => parseCsr(twoValues), /extensionRequest \(exactly one value\): unexpected data/);

  // Requested key usage, EKU and basic constraints come back parsed.
  const rich = parseCsr(
    await csrWith([
      ext(OID.keyUsage, true, encodeKeyUsage(['digitalSignature', 'keyEncipherment'])),
      ext(OID.basicConstraints, true, encodeBasicConstraints(true, 3)),
    ]),
  );
  assert.deepEqual(rich.requestedKeyUsage, ['digitalSignature', 'keyEncipherment']);
  assert.deepEqual(rich.requestedBasicConstraints, { isCA: true, pathLen: 3 });
});

test('certificates: the same strictness applies', async () => {
  const ca = await makeCa([{ type: 'CN', value: 'strict CA' }], testSigner(P256, 0));
  const der = ca.cert.der;
  assert.equal(parseCertificate(der).sha256, ca.cert.sha256);
  for (let i = 0; i < der.length; i += 3) assert.throws(() => parseCertificate(der.subarray(0, i)), TrustplaneError);
  refuses(() => parseCertificate(Buffer.concat([der, Buffer.from([0])])), /certificate: Certificate: unexpected data/);
  // Outer and inner signature algorithms must agree.
  const mismatch = mutate(der, [1], (n) => Object.assign(n, parseTlv(encode(seq(derOid(OID.ecdsaWithSHA384))))));
  refuses(() => parseCertificate(mismatch), /tbsCertificate signature \(ecdsa-with-SHA256\) differs from signatureAlgorithm \(ecdsa-with-SHA384\)/);
  refuses(() => parseCertificate(mutate(der, [0, 0, 0], (n) => (n.content = Buffer.from([0])))), /version v1 must be omitted in DER/);
  refuses(() => parseCertificate(mutate(der, [0, 0, 0], (n) => (n.content = Buffer.from([1])))), /version 2 is not supported/);
  refuses(() => parseCertificate(mutate(der, [0, 1], (n) => (n.content = Buffer.from([0x80, 1])))), /serialNumber must be positive/);
  refuses(() => parseCertificate(mutate(der, [0, 1], (n) => (n.content = Buffer.concat([Buffer.from([0x01]), Buffer.alloc(20, 1)])))), /serialNumber of 21 bytes is longer than 20 bytes/);
  refuses(() => parseCertificate(mutate(der, [0, 4, 0], (n) => (n.content = Buffer.from('2602301200Z')))), /validity notBefore: UTCTime .* must be YYMMDDHHMMSSZ/);
  refuses(() => parseCertificate(mutate(der, [0, 7, 0], (n) => n.children!.push(n.children![0]))), /extension 2\.5\.29\.19 appears twice/);
  refuses(() => parseCertificate(mutate(der, [0, 7], (n) => (n.children = [{ tag: Tag.SEQUENCE, content: Buffer.alloc(0), children: [] }]))), /extensions: must hold at least one extension/);
});
