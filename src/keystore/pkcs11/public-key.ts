// A token key's public half as SubjectPublicKeyInfo DER, built from CKA_EC_POINT or CKA_MODULUS + CKA_PUBLIC_EXPONENT.
import { createPublicKey, type JsonWebKey } from 'node:crypto';
import type { KeyAlgorithm } from '../../pki/types.js';

export function spkiFromEcPoint(a: KeyAlgorithm & { kind: 'ec' | 'ed25519' }, ecPoint: Buffer): Buffer {
  if (a.kind === 'ed25519') {
    const x = unwrapOctetString(ecPoint, 32);
    return toSpki({ kty: 'OKP', crv: 'Ed25519', x: x.toString('base64url') });
  }
  const n = a.curve === 'P-256' ? 32 : 48;
  const point = unwrapOctetString(ecPoint, 2 * n + 1);
  if (point[0] !== 0x04) throw new Error(`CKA_EC_POINT is not an uncompressed ${a.curve} point`);
  return toSpki({
    kty: 'EC',
    crv: a.curve,
    x: point.subarray(1, 1 + n).toString('base64url'),
    y: point.subarray(1 + n).toString('base64url'),
  });
}

export function spkiFromRsa(modulus: Buffer, publicExponent: Buffer): Buffer {
  return toSpki({ kty: 'RSA', n: stripZeros(modulus).toString('base64url'), e: stripZeros(publicExponent).toString('base64url') });
}

function toSpki(jwk: JsonWebKey): Buffer {
  return createPublicKey({ key: jwk, format: 'jwk' }).export({ format: 'der', type: 'spki' });
}

/** PKCS#11 says CKA_EC_POINT is a DER OCTET STRING; some modules give the bare point. Accept both. */
function unwrapOctetString(v: Buffer, size: number): Buffer {
  if (v.length === size) return v;
  if (v.length === size + 2 && v[0] === 0x04 && v[1] === size) return v.subarray(2);
  if (v.length === size + 3 && v[0] === 0x04 && v[1] === 0x81 && v[2] === size) return v.subarray(3);
  throw new Error(`CKA_EC_POINT of ${v.length} bytes is not a ${size}-byte point`);
}

function stripZeros(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}
