// Public keys and signatures: which keys and signature algorithms trustplane accepts, and checking signatures with node:crypto.
import {
  KeyObject,
  createPublicKey,
  generateKeyPair as generateKeyPairCb,
  sign as cryptoSign,
  verify as cryptoVerify,
  webcrypto,
} from 'node:crypto';
import { promisify } from 'node:util';
import { invalid } from '../util/errors.js';
import { DER_NULL, DerReader, Tag, derOid, encode, seq } from './der.js';
import { OID, describeOid } from './oids.js';
import type { KeyAlgorithm, Signer } from './types.js';
import { LruMap } from '../util/lru.js';

export const RSA_MIN_BITS = 2048;
export const RSA_MAX_BITS = 4096;

/** A SubjectPublicKeyInfo taken apart. */
export interface PublicKeyInfo {
  algorithm: KeyAlgorithm;
  /** The whole SPKI, DER. */
  der: Buffer;
  /** The subjectPublicKey BIT STRING's bytes (after the unused-bits octet): what RFC 5280 method 1 hashes for the SKI. */
  keyBits: Buffer;
  /** RSA only: modulus and public exponent, big-endian magnitudes. */
  rsa?: { n: Buffer; e: Buffer };
}

export function describeAlgorithm(alg: KeyAlgorithm): string {
  return alg.kind === 'ec' ? `EC ${alg.curve}` : alg.kind === 'rsa' ? `RSA-${alg.bits}` : 'Ed25519';
}

/** Refuses algorithms outside what trustplane accepts (for keys it generates or is handed). */
export function checkAlgorithm(alg: KeyAlgorithm): KeyAlgorithm {
  if (alg.kind === 'ec' && (alg.curve === 'P-256' || alg.curve === 'P-384')) return alg;
  if (alg.kind === 'ed25519') return alg;
  if (alg.kind === 'rsa') {
    if (Number.isInteger(alg.bits) && alg.bits >= RSA_MIN_BITS && alg.bits <= RSA_MAX_BITS) return alg;
    throw invalid(`RSA key of ${alg.bits} bits is refused`, `use RSA of ${RSA_MIN_BITS} to ${RSA_MAX_BITS} bits, or EC P-256`);
  }
  throw invalid(`key algorithm ${JSON.stringify(alg)} is not supported`, 'use EC P-256, EC P-384, RSA 2048–4096 or Ed25519');
}

function rsaBits(n: Buffer): number {
  let i = 0;
  while (i < n.length && n[i] === 0) i++;
  if (i === n.length) return 0;
  return (n.length - i) * 8 - (Math.clz32(n[i]) - 24);
}

const POINT_BYTES = { 'P-256': 32, 'P-384': 48 } as const;

/** Reads a SubjectPublicKeyInfo as the reader's next element, refusing algorithms, curves and sizes trustplane does not accept. */
export function readPublicKeyInfo(r: DerReader, what: string): PublicKeyInfo {
  const t = r.read(Tag.SEQUENCE, what);
  const spki = r.inside(t);
  const algId = spki.sequence(`${what} algorithm`);
  const oid = algId.oid(`${what} algorithm`);
  const keyBits = spki.octetAlignedBits(`${what} subjectPublicKey`);
  spki.finish(what);
  const der = r.bytes(t);
  if (oid === OID.ecPublicKey) {
    const curveOid = algId.peekTag() === Tag.OID ? algId.oid(`${what} EC curve`) : undefined;
    if (curveOid === undefined) throw r.fail(`${what}: EC key parameters must name a curve (namedCurve)`);
    algId.finish(`${what} algorithm`);
    const curve = curveOid === OID.prime256v1 ? 'P-256' : curveOid === OID.secp384r1 ? 'P-384' : undefined;
    if (!curve) throw r.fail(`${what}: EC curve ${describeOid(curveOid)} is not supported (use P-256 or P-384)`);
    const n = POINT_BYTES[curve];
    const uncompressed = keyBits.length === 1 + 2 * n && keyBits[0] === 0x04;
    const compressed = keyBits.length === 1 + n && (keyBits[0] === 0x02 || keyBits[0] === 0x03);
    if (!uncompressed && !compressed) throw r.fail(`${what}: EC ${curve} public key of ${keyBits.length} bytes is not an encoded point`);
    return { algorithm: { kind: 'ec', curve }, der, keyBits };
  }
  if (oid === OID.rsaEncryption) {
    algId.null(`${what} RSA parameters`);
    algId.finish(`${what} algorithm`);
    const k = new DerReader(keyBits, 0, keyBits.length, `${r.context}: ${what} RSA key`);
    const rsaKey = k.sequence('RSAPublicKey');
    const nBytes = rsaKey.integer('modulus');
    const eBytes = rsaKey.integer('publicExponent');
    rsaKey.finish('RSAPublicKey');
    k.finish('RSAPublicKey');
    if (nBytes[0] & 0x80 || eBytes[0] & 0x80) throw r.fail(`${what}: RSA modulus and exponent must be positive`);
    const bits = rsaBits(nBytes);
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
      throw r.fail(`${what}: RSA key of ${bits} bits is refused (${RSA_MIN_BITS} to ${RSA_MAX_BITS} bits accepted)`);
    }
    const e = eBytes[0] === 0 ? eBytes.subarray(1) : eBytes;
    if (!(e[e.length - 1] & 1) || (e.length === 1 && e[0] < 3)) throw r.fail(`${what}: RSA public exponent must be odd and at least 3`);
    const n = nBytes[0] === 0 ? nBytes.subarray(1) : nBytes;
    return { algorithm: { kind: 'rsa', bits }, der, keyBits, rsa: { n, e } };
  }
  if (oid === OID.ed25519) {
    algId.finish(`${what} Ed25519 algorithm (parameters must be absent)`);
    if (keyBits.length !== 32) throw r.fail(`${what}: Ed25519 public key must be 32 bytes, has ${keyBits.length}`);
    return { algorithm: { kind: 'ed25519' }, der, keyBits };
  }
  throw r.fail(`${what}: key algorithm ${describeOid(oid)} is not supported (use EC P-256/P-384, RSA 2048–4096 or Ed25519)`);
}

/** SPKI DER → its parts; the whole input must be one SubjectPublicKeyInfo. */
export function parsePublicKeyInfo(spkiDer: Buffer): PublicKeyInfo {
  const r = DerReader.over(spkiDer, 'public key');
  const info = readPublicKeyInfo(r, 'SubjectPublicKeyInfo');
  r.finish('SubjectPublicKeyInfo');
  return info;
}

export function keyAlgorithmOf(spkiDer: Buffer): KeyAlgorithm {
  return parsePublicKeyInfo(spkiDer).algorithm;
}

// ---- signature algorithms ----

type Hash = 'sha256' | 'sha384' | 'sha512' | null;

export interface SignatureAlgorithm {
  oid: string;
  name: string;
  /** Which keys may make it. */
  keyKind: KeyAlgorithm['kind'];
  /** node:crypto digest name; null for Ed25519. */
  hash: Hash;
  /** The AlgorithmIdentifier, DER, as certificates and CSRs carry it. */
  der: Buffer;
}

function sigAlg(oid: string, name: string, keyKind: KeyAlgorithm['kind'], hash: Hash): SignatureAlgorithm {
  // RFC 5758 and RFC 8410 leave parameters absent; RFC 4055 makes PKCS#1 v1.5 carry NULL.
  const der = encode(keyKind === 'rsa' ? seq(derOid(oid), DER_NULL) : seq(derOid(oid)));
  return { oid, name, keyKind, hash, der };
}

const SIGNATURE_ALGORITHMS: ReadonlyMap<string, SignatureAlgorithm> = new Map(
  [
    sigAlg(OID.ecdsaWithSHA256, 'ecdsa-with-SHA256', 'ec', 'sha256'),
    sigAlg(OID.ecdsaWithSHA384, 'ecdsa-with-SHA384', 'ec', 'sha384'),
    sigAlg(OID.ecdsaWithSHA512, 'ecdsa-with-SHA512', 'ec', 'sha512'),
    sigAlg(OID.sha256WithRSAEncryption, 'sha256WithRSAEncryption', 'rsa', 'sha256'),
    sigAlg(OID.sha384WithRSAEncryption, 'sha384WithRSAEncryption', 'rsa', 'sha384'),
    sigAlg(OID.sha512WithRSAEncryption, 'sha512WithRSAEncryption', 'rsa', 'sha512'),
    sigAlg(OID.ed25519, 'Ed25519', 'ed25519', null),
  ].map((a) => [a.oid, a]),
);

const REFUSED_SIGNATURES: Record<string, string> = {
  [OID.ecdsaWithSHA1]: 'SHA-1 signatures are refused',
  [OID.sha1WithRSAEncryption]: 'SHA-1 signatures are refused',
  [OID.md5WithRSAEncryption]: 'MD5 signatures are refused',
  [OID.rsassaPss]: 'RSASSA-PSS is not supported',
};

/** Looks up a signature algorithm by OID; unknown and weak ones are refused with their name. */
export function signatureAlgorithmByOid(oid: string): SignatureAlgorithm {
  const a = SIGNATURE_ALGORITHMS.get(oid);
  if (a) return a;
  const why = REFUSED_SIGNATURES[oid];
  throw invalid(`signature algorithm ${describeOid(oid)} is not supported${why ? `: ${why}` : ''}`);
}

/** Reads an AlgorithmIdentifier naming a signature algorithm, with exactly the parameters its RFC prescribes. */
export function readSignatureAlgorithm(r: DerReader, what: string): SignatureAlgorithm {
  const t = r.read(Tag.SEQUENCE, what);
  const body = r.inside(t);
  const oid = body.oid(what);
  const a = SIGNATURE_ALGORITHMS.get(oid);
  if (!a) throw r.fail(`${what}: signature algorithm ${describeOid(oid)} is not supported${REFUSED_SIGNATURES[oid] ? `: ${REFUSED_SIGNATURES[oid]}` : ''}`);
  if (a.keyKind === 'rsa') {
    // RFC 4055 says NULL; some old encoders omit it, which DER-wise is a different AlgorithmIdentifier, so refuse.
    body.null(`${what} parameters`);
  }
  body.finish(`${what} (${a.name} takes ${a.keyKind === 'rsa' ? 'NULL parameters' : 'no parameters'})`);
  return a;
}

/** The signature algorithm trustplane signs with for a key: ecdsa-with-SHA256 for P-256, -SHA384 for P-384, sha256WithRSAEncryption, Ed25519. */
export function signatureAlgorithmFor(alg: KeyAlgorithm): SignatureAlgorithm {
  switch (alg.kind) {
    case 'ec':
      return SIGNATURE_ALGORITHMS.get(alg.curve === 'P-384' ? OID.ecdsaWithSHA384 : OID.ecdsaWithSHA256)!;
    case 'rsa':
      return SIGNATURE_ALGORITHMS.get(OID.sha256WithRSAEncryption)!;
    case 'ed25519':
      return SIGNATURE_ALGORITHMS.get(OID.ed25519)!;
  }
}

// ---- verification ----

function b64u(b: Buffer): string {
  return b.toString('base64url');
}

/**
 * A node KeyObject for a parsed key. Keys go in as JWK: an SPKI import through OpenSSL 3.0's decoder costs about two
 * P-256 verifies here, the JWK path about one (it runs a full key check, a scalar multiplication).
 */
export function importPublicKey(info: PublicKeyInfo): KeyObject {
  // CA keys verify every certificate of their cluster: import each once. A key is immutable, so the object is shared;
  // the least recently used go first, so the few keys in constant use stay while one-off CSR keys pass through.
  const id = info.der.toString('base64');
  const hit = IMPORTED.get(id);
  if (hit) return hit;
  const key = importPublicKeyUncached(info);
  IMPORTED.set(id, key);
  return key;
}

const IMPORTED = new LruMap<string, KeyObject>(256);

function importPublicKeyUncached(info: PublicKeyInfo): KeyObject {
  try {
    const a = info.algorithm;
    if (a.kind === 'ec' && info.keyBits[0] === 0x04) {
      const n = POINT_BYTES[a.curve];
      return createPublicKey({
        key: { kty: 'EC', crv: a.curve, x: b64u(info.keyBits.subarray(1, 1 + n)), y: b64u(info.keyBits.subarray(1 + n)) },
        format: 'jwk',
      });
    }
    if (a.kind === 'rsa' && info.rsa) {
      return createPublicKey({ key: { kty: 'RSA', n: b64u(info.rsa.n), e: b64u(info.rsa.e) }, format: 'jwk' });
    }
    if (a.kind === 'ed25519') {
      return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64u(info.keyBits) }, format: 'jwk' });
    }
    return createPublicKey({ key: info.der, format: 'der', type: 'spki' });
  } catch {
    throw invalid(`${describeAlgorithm(info.algorithm)} public key is not valid (not a point on the curve, or malformed)`);
  }
}

const ECDSA_WEBCRYPTO = { 'P-256': { name: 'ECDSA', namedCurve: 'P-256' }, 'P-384': { name: 'ECDSA', namedCurve: 'P-384' } } as const;

/**
 * Like importPublicKey, faster for EC: WebCrypto's raw point import checks that the point is on the curve (enough for
 * P-256/P-384, whose cofactor is 1) without the JWK path's extra scalar multiplication; Node 20 offers it only async.
 */
export async function importPublicKeyAsync(info: PublicKeyInfo): Promise<KeyObject> {
  const a = info.algorithm;
  if (a.kind !== 'ec') return importPublicKey(info);
  try {
    return KeyObject.from(await webcrypto.subtle.importKey('raw', info.keyBits, ECDSA_WEBCRYPTO[a.curve], true, ['verify']));
  } catch {
    throw invalid(`${describeAlgorithm(a)} public key is not valid (not a point on the curve, or malformed)`);
  }
}

/** Refuses a signature algorithm that the key's kind cannot make (an RSA algorithm with an EC key...). */
export function checkSignatureKeyPair(info: PublicKeyInfo, alg: SignatureAlgorithm): void {
  if (info.algorithm.kind !== alg.keyKind) {
    throw invalid(`signature algorithm ${alg.name} cannot be made by a ${describeAlgorithm(info.algorithm)} key`);
  }
}

/** Verifies with an imported key; false for a wrong signature, never throws for one. */
export function verifyWithKey(key: KeyObject, alg: SignatureAlgorithm, data: Buffer, signature: Buffer): boolean {
  try {
    return cryptoVerify(alg.hash, data, alg.keyKind === 'ec' ? { key, dsaEncoding: 'der' } : key, signature);
  } catch {
    return false;
  }
}

/** Whether `signature` over `data` was made with the key of `spki` under the signature algorithm `sigAlgOid`. */
export function verifySignature(spki: Buffer | PublicKeyInfo, sigAlgOid: string, data: Buffer, signature: Buffer): boolean {
  const info = Buffer.isBuffer(spki) ? parsePublicKeyInfo(spki) : spki;
  const alg = signatureAlgorithmByOid(sigAlgOid);
  checkSignatureKeyPair(info, alg);
  return verifyWithKey(importPublicKey(info), alg, data, signature);
}

export async function verifySignatureAsync(info: PublicKeyInfo, alg: SignatureAlgorithm, data: Buffer, signature: Buffer): Promise<boolean> {
  checkSignatureKeyPair(info, alg);
  return verifyWithKey(await importPublicKeyAsync(info), alg, data, signature);
}


// ---- local keys ----

/** The algorithm of a node KeyObject (private or public), refusing what trustplane does not accept. */
export function algorithmOfKeyObject(key: KeyObject): KeyAlgorithm {
  const d = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      if (d.namedCurve === 'prime256v1') return { kind: 'ec', curve: 'P-256' };
      if (d.namedCurve === 'secp384r1') return { kind: 'ec', curve: 'P-384' };
      throw invalid(`EC curve ${d.namedCurve} is not supported (use P-256 or P-384)`);
    case 'rsa':
      return checkAlgorithm({ kind: 'rsa', bits: d.modulusLength ?? 0 });
    case 'ed25519':
      return { kind: 'ed25519' };
    default:
      throw invalid(`key type ${key.asymmetricKeyType} is not supported (use EC P-256/P-384, RSA 2048–4096 or Ed25519)`);
  }
}

/** A Signer over a private key held in this process (node agents, tests). */
export function softSigner(privateKey: KeyObject): Signer {
  if (privateKey.type !== 'private') throw invalid(`softSigner needs a private key, got a ${privateKey.type} key`);
  const algorithm = algorithmOfKeyObject(privateKey);
  const publicKey = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const { hash } = signatureAlgorithmFor(algorithm);
  const options = algorithm.kind === 'ec' ? { key: privateKey, dsaEncoding: 'der' as const } : privateKey;
  return {
    algorithm,
    publicKey,
    async sign(data: Buffer): Promise<Buffer> {
      return cryptoSign(hash, data, options);
    },
  };
}

const generate = promisify(generateKeyPairCb);

/** A fresh key pair: the private key as PKCS#8 PEM (for a node agent's key file) and a Signer over it. */
export async function generateKeyPair(alg: KeyAlgorithm): Promise<{ privateKeyPem: string; signer: Signer }> {
  const a = checkAlgorithm(alg);
  let privateKey: KeyObject;
  if (a.kind === 'ec') ({ privateKey } = await generate('ec', { namedCurve: a.curve }));
  else if (a.kind === 'rsa') ({ privateKey } = await generate('rsa', { modulusLength: a.bits, publicExponent: 0x10001 }));
  else ({ privateKey } = await generate('ed25519'));
  return { privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, signer: softSigner(privateKey) };
}
