// X.509 certificates read strictly into ParsedCertificate (the signature is checked by chain verification, not here).
import { hash } from 'node:crypto';
import { invalid } from '../util/errors.js';
import { DerReader, Tag } from './der.js';
import {
  decodeAuthorityKeyId,
  decodeBasicConstraints,
  decodeExtKeyUsage,
  decodeKeyUsage,
  decodeSubjectAltNames,
  decodeSubjectKeyId,
  emptySans,
  readExtensions,
} from './extensions.js';
import { readPublicKeyInfo, readSignatureAlgorithm } from './keys.js';
import { readName } from './name.js';
import { OID } from './oids.js';
import { looksLikePem, pemDecode, pemDecodeAll } from './pem.js';
import type { Extension, ParsedCertificate } from './types.js';

const CONTEXT = 'certificate';

function certDer(input: Buffer | string): Buffer {
  if (typeof input === 'string') return pemDecode(input, 'CERTIFICATE');
  if (!Buffer.isBuffer(input)) throw invalid('a certificate must be PEM text or DER bytes');
  if (input.length === 0) throw invalid('certificate is empty');
  if (looksLikePem(input)) return pemDecode(input.toString('latin1'), 'CERTIFICATE');
  return Buffer.from(input);
}

/** PEM or DER → ParsedCertificate. */
export function parseCertificate(input: Buffer | string): ParsedCertificate {
  const der = certDer(input);
  const r = DerReader.over(der, CONTEXT);
  const outer = r.sequence('Certificate');
  r.finish('Certificate');
  const tbsT = outer.read(Tag.SEQUENCE, 'tbsCertificate');
  const sigAlg = readSignatureAlgorithm(outer, 'signatureAlgorithm');
  const signature = outer.octetAlignedBits('signatureValue');
  outer.finish('Certificate');

  const tbs = outer.inside(tbsT);
  let version: 1 | 3 = 1;
  if (tbs.peekTag() === 0xa0) {
    const v = tbs.inside(tbs.any('version'));
    const n = v.smallInt('version', 0xff);
    v.finish('version');
    if (n === 0) throw tbs.fail('version v1 must be omitted in DER (it is the default)');
    if (n !== 2) throw tbs.fail(`version ${n + 1} is not supported (v1 or v3 only)`);
    version = 3;
  }
  const serialBytes = tbs.integer('serialNumber');
  if (serialBytes[0] & 0x80) throw tbs.fail('serialNumber must be positive');
  const serial = serialBytes[0] === 0 && serialBytes.length > 1 ? serialBytes.subarray(1) : serialBytes;
  if (serial.length > 20) throw tbs.fail(`serialNumber of ${serial.length} bytes is longer than 20 bytes (RFC 5280 4.1.2.2)`);
  const innerAlg = readSignatureAlgorithm(tbs, 'tbsCertificate signature');
  if (innerAlg.oid !== sigAlg.oid) {
    throw tbs.fail(`tbsCertificate signature (${innerAlg.name}) differs from signatureAlgorithm (${sigAlg.name})`);
  }
  const { name: issuer, der: issuerDer } = readName(tbs, 'issuer');
  const validity = tbs.sequence('validity');
  const notBefore = validity.time('validity notBefore');
  const notAfter = validity.time('validity notAfter');
  validity.finish('validity');
  const { name: subject, der: subjectDer } = readName(tbs, 'subject');
  const spki = readPublicKeyInfo(tbs, 'subjectPublicKeyInfo');
  const tag = tbs.peekTag();
  if (tag === 0x81 || tag === 0xa1 || tag === 0x82 || tag === 0xa2) throw tbs.fail('issuerUniqueID and subjectUniqueID are not supported');
  let extensions: Extension[] = [];
  if (tag === 0xa3) {
    if (version !== 3) throw tbs.fail('extensions are only allowed in v3 certificates');
    const e = tbs.inside(tbs.any('extensions'));
    extensions = readExtensions(e, 'extensions');
    e.finish('extensions');
  }
  tbs.finish('tbsCertificate');

  const cert: ParsedCertificate = {
    der,
    serial,
    serialHex: serial.toString('hex'),
    issuer,
    subject,
    notBefore,
    notAfter,
    publicKey: spki.der,
    keyAlgorithm: spki.algorithm,
    extensions,
    isCA: false,
    keyUsage: [],
    extKeyUsage: [],
    sans: emptySans(),
    tbs: outer.bytes(tbsT),
    signatureAlgorithmOid: sigAlg.oid,
    signature,
    sha256: hash('sha256', der),
    version,
    subjectDer,
    issuerDer,
    extKeyUsageOids: [],
  };
  for (const x of extensions) {
    switch (x.oid) {
      case OID.basicConstraints: {
        const bc = decodeBasicConstraints(x.value, CONTEXT);
        cert.isCA = bc.isCA;
        if (bc.pathLen !== undefined) cert.pathLen = bc.pathLen;
        break;
      }
      case OID.keyUsage:
        cert.keyUsage = decodeKeyUsage(x.value, CONTEXT);
        break;
      case OID.extKeyUsage: {
        const eku = decodeExtKeyUsage(x.value, CONTEXT);
        cert.extKeyUsage = eku.usages;
        cert.extKeyUsageOids = eku.oids;
        break;
      }
      case OID.subjectAltName:
        cert.sans = decodeSubjectAltNames(x.value, CONTEXT, 'skip');
        break;
      case OID.subjectKeyIdentifier:
        cert.subjectKeyId = decodeSubjectKeyId(x.value, CONTEXT);
        break;
      case OID.authorityKeyIdentifier: {
        const id = decodeAuthorityKeyId(x.value, CONTEXT);
        if (id) cert.authorityKeyId = id;
        break;
      }
    }
  }
  return cert;
}

/** Every certificate of a PEM bundle, in order. */
export function parseCertificates(pem: string): ParsedCertificate[] {
  return pemDecodeAll(pem, 'CERTIFICATE').map((der) => parseCertificate(der));
}
