// Issuing certificates: a template and an issuer in, signed DER out, with exactly the extensions the template names.
import { hash, randomFillSync } from 'node:crypto';
import { TrustplaneError, invalid } from '../util/errors.js';
import { type Der, DerNode, derBitString, derOid, derTime, derUnsigned, encode, seq } from './der.js';
import {
  encodeAuthorityKeyId,
  encodeBasicConstraints,
  encodeExtKeyUsage,
  encodeExtension,
  encodeKeyUsage,
  encodeSubjectAltNames,
  encodeSubjectKeyId,
} from './extensions.js';
import { type SignatureAlgorithm, describeAlgorithm, parsePublicKeyInfo, signatureAlgorithmFor } from './keys.js';
import { encodeName, snapshotOf, unchanged } from './name.js';
import { OID } from './oids.js';
import type { CertificateTemplate, KeyUsage, Name, ParsedCertificate, Signer } from './types.js';

/** Who signs: the issuing CA's name and key, and a Signer over that key. */
export interface Issuer {
  subject: Name;
  /** The issuer certificate's subject exactly as DER; encoded from `subject` when absent. */
  subjectDer?: Buffer;
  /** The issuer's SubjectPublicKeyInfo, DER. */
  publicKey: Buffer;
  /** The issuer certificate's SKI, written as the AKI; SHA-1 of its key (RFC 5280 method 1) when absent. */
  subjectKeyId?: Buffer;
  signer: Signer;
}

/** What is the same for every certificate an issuer signs, worked out once per issuer object. */
interface IssuerContext {
  source: { subject: Name; subjectDer?: Buffer; publicKey: Buffer; subjectKeyId?: Buffer; signer: Signer; snapshot: string[] };
  nameDer: Buffer;
  akiExtension: Buffer;
  signatureAlgorithm: SignatureAlgorithm;
  signer: Signer;
}

const CONTEXTS = new WeakMap<object, IssuerContext>();

const V3 = Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]);
const BC_OID = derOid(OID.basicConstraints);
const KU_OID = derOid(OID.keyUsage);
const EKU_OID = derOid(OID.extKeyUsage);
const SAN_OID = derOid(OID.subjectAltName);
const SKI_OID = derOid(OID.subjectKeyIdentifier);
const AKI_OID = derOid(OID.authorityKeyIdentifier);
const LEAF_BASIC_CONSTRAINTS = encode(encodeExtension(BC_OID, true, encodeBasicConstraints(false)));

export function keyIdOf(spkiDer: Buffer): Buffer {
  return hash('sha1', parsePublicKeyInfo(spkiDer).keyBits, 'buffer');
}

function issuerContext(issuer: Issuer): IssuerContext {
  const hit = CONTEXTS.get(issuer);
  const s = hit?.source;
  if (
    hit &&
    s!.signer === issuer.signer &&
    s!.publicKey === issuer.publicKey &&
    s!.subject === issuer.subject &&
    s!.subjectDer === issuer.subjectDer &&
    s!.subjectKeyId === issuer.subjectKeyId &&
    unchanged(issuer.subject, s!.snapshot)
  ) {
    return hit;
  }
  const { signer } = issuer;
  if (!signer || typeof signer.sign !== 'function' || !Buffer.isBuffer(signer.publicKey)) throw invalid('issuer has no signer');
  const key = parsePublicKeyInfo(issuer.publicKey);
  if (!signer.publicKey.equals(key.der)) {
    throw invalid("the issuer's signer holds another key than the issuer's public key", 'pass the signer of the CA key that the issuer certificate certifies');
  }
  const ctx: IssuerContext = {
    source: { ...issuer, snapshot: snapshotOf(issuer.subject) },
    nameDer: issuer.subjectDer ?? encodeName(issuer.subject),
    akiExtension: encode(encodeExtension(AKI_OID, false, encodeAuthorityKeyId(issuer.subjectKeyId ?? hash('sha1', key.keyBits, 'buffer')))),
    signatureAlgorithm: signatureAlgorithmFor(key.algorithm),
    signer,
  };
  CONTEXTS.set(issuer, ctx);
  return ctx;
}

const KNOWN_USAGES: ReadonlySet<KeyUsage> = new Set(['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement', 'keyCertSign', 'cRLSign']);

function checkTime(what: string, d: Date): void {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw invalid(`${what} is not a valid date`);
  const y = d.getUTCFullYear();
  if (y < 1950 || y > 9999) throw invalid(`${what} ${d.toISOString()} is outside 1950–9999`);
}

function checkTemplate(t: CertificateTemplate): void {
  checkTime('notBefore', t.notBefore);
  checkTime('notAfter', t.notAfter);
  if (t.notAfter.getTime() <= t.notBefore.getTime()) {
    throw invalid(`notAfter ${t.notAfter.toISOString()} is not after notBefore ${t.notBefore.toISOString()}`);
  }
  if (typeof t.isCA !== 'boolean') throw invalid('isCA must be true or false');
  if (t.pathLen !== undefined) {
    if (!t.isCA) throw invalid('pathLen is only allowed on a CA certificate');
    if (!Number.isInteger(t.pathLen) || t.pathLen < 0 || t.pathLen > 0x7fffffff) throw invalid(`pathLen ${t.pathLen} must be a non-negative integer`);
  }
  if (!Array.isArray(t.keyUsage) || t.keyUsage.length === 0) throw invalid('keyUsage must name at least one usage');
  for (const u of t.keyUsage) if (!KNOWN_USAGES.has(u)) throw invalid(`key usage "${u}" is not known`);
  const certSign = t.keyUsage.includes('keyCertSign');
  if (certSign && !t.isCA) throw invalid('keyUsage keyCertSign requires isCA (RFC 5280 4.2.1.3)');
  if (t.isCA && !certSign) throw invalid('a CA certificate must have keyUsage keyCertSign (RFC 5280 4.2.1.9)');
  if (!Array.isArray(t.subject)) throw invalid('subject must be a name (a list of attributes)');
}

// randomBytes(16) costs about as much as building the rest of the TBS; serials are drawn from a refilled CSPRNG pool instead.
const SERIAL_BYTES = 16;
let serialPool: Buffer | undefined;
let serialAt = 0;

function randomSerial(): Buffer {
  if (!serialPool || serialAt + SERIAL_BYTES > serialPool.length) {
    serialPool = randomFillSync(Buffer.alloc(SERIAL_BYTES * 256));
    serialAt = 0;
  }
  // A copy, so no caller ever holds bytes that a later refill overwrites.
  const s = Buffer.from(serialPool.subarray(serialAt, (serialAt += SERIAL_BYTES)));
  if (s.every((b) => b === 0)) s[SERIAL_BYTES - 1] = 1;
  return s;
}

function serialOf(t: CertificateTemplate): Buffer {
  // 128 random bits; derUnsigned adds the zero byte that keeps the INTEGER positive.
  if (t.serial === undefined) return randomSerial();
  if (!Buffer.isBuffer(t.serial)) throw invalid('serial must be bytes');
  let i = 0;
  while (i < t.serial.length && t.serial[i] === 0) i++;
  const m = t.serial.subarray(i);
  if (m.length === 0) throw invalid('serial must be positive (it is zero or empty)');
  if (m.length > 20) throw invalid(`serial of ${m.length} bytes is longer than 20 bytes (RFC 5280 4.1.2.2)`);
  return m;
}

/** Signs a certificate for `template` as `issuer`. v3; basicConstraints, keyUsage, [extKeyUsage], [subjectAltName], SKI, AKI. */
export async function buildCertificate(template: CertificateTemplate, issuer: Issuer): Promise<Buffer> {
  const ctx = issuerContext(issuer);
  checkTemplate(template);
  const key = parsePublicKeyInfo(template.publicKey);
  const subjectDer = template.subjectDer ?? encodeName(template.subject);
  const san = encodeSubjectAltNames(template.sans);
  const subjectEmpty = subjectDer.length === 2;
  // RFC 5280 4.1.2.6: with an empty subject the identity lives in the SAN, which is then critical.
  if (subjectEmpty && !san) throw invalid('a certificate with an empty subject needs at least one subjectAltName');

  const exts: Der[] = [
    template.isCA ? encodeExtension(BC_OID, true, encodeBasicConstraints(true, template.pathLen)) : LEAF_BASIC_CONSTRAINTS,
    encodeExtension(KU_OID, true, encodeKeyUsage(template.keyUsage)),
  ];
  if (template.extKeyUsage !== undefined) exts.push(encodeExtension(EKU_OID, false, encodeExtKeyUsage(template.extKeyUsage)));
  if (san) exts.push(encodeExtension(SAN_OID, subjectEmpty, san));
  const ski = template.subjectKeyId ?? hash('sha1', key.keyBits, 'buffer');
  exts.push(encodeExtension(SKI_OID, false, encodeSubjectKeyId(ski)));
  exts.push(ctx.akiExtension);

  const sigAlg = ctx.signatureAlgorithm;
  const tbs = encode(
    seq(
      V3,
      derUnsigned(serialOf(template)),
      sigAlg.der,
      ctx.nameDer,
      seq(derTime(template.notBefore), derTime(template.notAfter)),
      subjectDer,
      key.der,
      new DerNode(0xa3, [seq(...exts)]),
    ),
  );
  const signature = await ctx.signer.sign(tbs);
  if (sigAlg.keyKind === 'ec' && signature[0] !== 0x30) {
    throw new TrustplaneError('Internal', `the ${describeAlgorithm(ctx.signer.algorithm)} signer returned a signature that is not DER (ECDSA-Sig-Value)`);
  }
  return encode(seq(tbs, sigAlg.der, derBitString(signature)));
}

export interface SelfSignedCaRequest {
  subject: Name;
  notBefore: Date;
  notAfter: Date;
  pathLen?: number;
  signer: Signer;
}

/** A root for a CA generation: self-signed, CA:true, keyUsage digitalSignature, keyCertSign, cRLSign. */
export async function selfSignedCa(req: SelfSignedCaRequest): Promise<Buffer> {
  const subjectDer = encodeName(req.subject);
  return buildCertificate(
    {
      subject: req.subject,
      subjectDer,
      notBefore: req.notBefore,
      notAfter: req.notAfter,
      publicKey: req.signer.publicKey,
      isCA: true,
      pathLen: req.pathLen,
      keyUsage: ['digitalSignature', 'keyCertSign', 'cRLSign'],
    },
    { subject: req.subject, subjectDer, publicKey: req.signer.publicKey, signer: req.signer },
  );
}

/** An Issuer for a CA certificate and the signer of its key, repeating the certificate's name and SKI exactly. */
export function issuerOf(cert: ParsedCertificate, signer: Signer): Issuer & { notAfter: Date } {
  return { subject: cert.subject, subjectDer: cert.subjectDer, publicKey: cert.publicKey, subjectKeyId: cert.subjectKeyId, signer, notAfter: cert.notAfter };
}

/**
 * Certifies a new CA generation's name and key with the old generation's key, so peers that trust only the old root accept
 * leaves of the new one. Same validity, clamped to the old CA's notAfter; same constraints and key usage.
 */
export async function crossSign(newCaCert: ParsedCertificate, oldIssuer: Issuer & { notAfter: Date }): Promise<Buffer> {
  if (!newCaCert.isCA) throw invalid('only a CA certificate can be cross-signed');
  const notAfter = new Date(Math.min(newCaCert.notAfter.getTime(), oldIssuer.notAfter.getTime()));
  if (notAfter.getTime() <= newCaCert.notBefore.getTime()) {
    throw invalid(`the old CA expires (${oldIssuer.notAfter.toISOString()}) before the new CA starts (${newCaCert.notBefore.toISOString()})`);
  }
  return buildCertificate(
    {
      subject: newCaCert.subject,
      subjectDer: newCaCert.subjectDer,
      notBefore: newCaCert.notBefore,
      notAfter,
      publicKey: newCaCert.publicKey,
      subjectKeyId: newCaCert.subjectKeyId,
      isCA: true,
      pathLen: newCaCert.pathLen,
      keyUsage: newCaCert.keyUsage,
      extKeyUsage: newCaCert.extKeyUsage.length ? newCaCert.extKeyUsage : undefined,
    },
    oldIssuer,
  );
}
