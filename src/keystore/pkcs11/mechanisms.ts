// What each key algorithm is on a PKCS#11 token: key type, curve parameters, generation and signing mechanisms, templates.
import pkcs11js from 'pkcs11js';
import type { KeyAlgorithm } from '../../pki/types.js';

// PKCS#11 3.0 names that pkcs11js 2.1.7 does not export.
export const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
export const CKM_EDDSA = 0x1057;
export const CKK_EC_EDWARDS = 0x40;

/** DER of the named-curve OIDs carried in CKA_EC_PARAMS. */
export const EC_PARAMS = {
  'P-256': Buffer.from('06082a8648ce3d030107', 'hex'), // 1.2.840.10045.3.1.7
  'P-384': Buffer.from('06052b81040022', 'hex'), // 1.3.132.0.34
  Ed25519: Buffer.from('06032b6570', 'hex'), // 1.3.101.112
  /** PrintableString "edwards25519", which some modules use instead of the OID. */
  Ed25519Name: Buffer.concat([Buffer.from([0x13, 12]), Buffer.from('edwards25519')]),
} as const;

export interface TokenProfile {
  generate: number;
  /** The signing mechanism, and whether node must hash the data first (CKM_ECDSA signs a digest). */
  sign: number;
  prehash: 'sha256' | 'sha384' | null;
  /** Bytes the token's signature takes: raw r||s for ECDSA. */
  signatureBytes: number;
  /** Names for a refusal message when the module lacks a mechanism. */
  mechanismNames: string;
}

export function tokenProfile(a: KeyAlgorithm): TokenProfile {
  switch (a.kind) {
    case 'ec':
      return a.curve === 'P-256'
        ? { generate: pkcs11js.CKM_EC_KEY_PAIR_GEN, sign: pkcs11js.CKM_ECDSA, prehash: 'sha256', signatureBytes: 64, mechanismNames: 'CKM_EC_KEY_PAIR_GEN and CKM_ECDSA' }
        : { generate: pkcs11js.CKM_EC_KEY_PAIR_GEN, sign: pkcs11js.CKM_ECDSA, prehash: 'sha384', signatureBytes: 96, mechanismNames: 'CKM_EC_KEY_PAIR_GEN and CKM_ECDSA' };
    case 'rsa':
      return {
        generate: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN,
        sign: pkcs11js.CKM_SHA256_RSA_PKCS,
        prehash: null,
        signatureBytes: a.bits / 8,
        mechanismNames: 'CKM_RSA_PKCS_KEY_PAIR_GEN and CKM_SHA256_RSA_PKCS',
      };
    case 'ed25519':
      return { generate: CKM_EC_EDWARDS_KEY_PAIR_GEN, sign: CKM_EDDSA, prehash: null, signatureBytes: 64, mechanismNames: 'CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA' };
  }
}

/**
 * Templates for a key pair made on the token: the private half is a token object that is private, sensitive,
 * never extractable, and may only sign.
 */
export function keyPairTemplates(a: KeyAlgorithm, id: Buffer, label: string): { publicKey: pkcs11js.Template; privateKey: pkcs11js.Template } {
  const common: pkcs11js.Template = [
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_ID, value: id },
    { type: pkcs11js.CKA_LABEL, value: label },
  ];
  const publicKey: pkcs11js.Template = [
    ...common,
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
    { type: pkcs11js.CKA_PRIVATE, value: false },
    { type: pkcs11js.CKA_VERIFY, value: true },
  ];
  const privateKey: pkcs11js.Template = [
    ...common,
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_SIGN, value: true },
  ];
  switch (a.kind) {
    case 'ec':
      publicKey.push({ type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC }, { type: pkcs11js.CKA_EC_PARAMS, value: EC_PARAMS[a.curve] });
      privateKey.push({ type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC });
      break;
    case 'rsa':
      publicKey.push(
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA },
        { type: pkcs11js.CKA_MODULUS_BITS, value: a.bits },
        { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
      );
      privateKey.push({ type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA });
      break;
    case 'ed25519':
      publicKey.push({ type: pkcs11js.CKA_KEY_TYPE, value: CKK_EC_EDWARDS }, { type: pkcs11js.CKA_EC_PARAMS, value: EC_PARAMS.Ed25519 });
      privateKey.push({ type: pkcs11js.CKA_KEY_TYPE, value: CKK_EC_EDWARDS });
      break;
  }
  return { publicKey, privateKey };
}

/** Recognises a token key's algorithm from its key type and CKA_EC_PARAMS or modulus; undefined for anything else. */
export function algorithmOf(keyType: number, ecParams: Buffer | undefined, modulus: Buffer | undefined): KeyAlgorithm | undefined {
  if (keyType === pkcs11js.CKK_EC && ecParams) {
    if (ecParams.equals(EC_PARAMS['P-256'])) return { kind: 'ec', curve: 'P-256' };
    if (ecParams.equals(EC_PARAMS['P-384'])) return { kind: 'ec', curve: 'P-384' };
    return undefined;
  }
  if (keyType === CKK_EC_EDWARDS && ecParams && (ecParams.equals(EC_PARAMS.Ed25519) || ecParams.equals(EC_PARAMS.Ed25519Name))) return { kind: 'ed25519' };
  if (keyType === pkcs11js.CKK_RSA && modulus) {
    let bytes = modulus.length;
    for (let i = 0; i < modulus.length && modulus[i] === 0; i++) bytes--;
    return { kind: 'rsa', bits: bytes * 8 };
  }
  return undefined;
}
