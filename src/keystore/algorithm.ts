// Which key algorithms a key store accepts, and what each one means for hashing and signature size.
// The RSA sizes are pki's (the same ones it accepts in CSRs); a key store adds only "a multiple of 8".
import { RSA_MAX_BITS, RSA_MIN_BITS } from '../pki/keys.js';
import type { KeyAlgorithm } from '../pki/types.js';
import { invalid } from '../util/errors.js';

/** What a store generates when the caller names no algorithm. */
export const DEFAULT_KEY_ALGORITHM: KeyAlgorithm = { kind: 'ec', curve: 'P-256' };


const ACCEPTED = 'EC P-256, EC P-384, RSA 2048–4096 bits (a multiple of 8), Ed25519';

/**
 * Checks a value that claims to be a KeyAlgorithm (it may come from configuration or an API body)
 * and returns a clean copy; anything else is refused with Invalid.
 */
export function checkKeyAlgorithm(value: unknown): KeyAlgorithm {
  const v = value as { kind?: unknown; curve?: unknown; bits?: unknown } | null | undefined;
  if (v && typeof v === 'object') {
    if (v.kind === 'ec' && (v.curve === 'P-256' || v.curve === 'P-384')) return { kind: 'ec', curve: v.curve };
    if (v.kind === 'ed25519') return { kind: 'ed25519' };
    if (v.kind === 'rsa') {
      const bits = v.bits;
      if (typeof bits === 'number' && Number.isInteger(bits) && bits >= RSA_MIN_BITS && bits <= RSA_MAX_BITS && bits % 8 === 0) {
        return { kind: 'rsa', bits };
      }
      throw invalid(`key algorithm RSA with ${String(bits)} bits is refused`, `use RSA of ${RSA_MIN_BITS} to ${RSA_MAX_BITS} bits, or an EC key (P-256)`);
    }
  }
  throw invalid(`key algorithm ${describeUnknown(value)} is not supported`, `use one of: ${ACCEPTED}`);
}

/** "EC P-256", "RSA-3072", "Ed25519": for messages and logs. */
export function describeKeyAlgorithm(a: KeyAlgorithm): string {
  switch (a.kind) {
    case 'ec':
      return `EC ${a.curve}`;
    case 'rsa':
      return `RSA-${a.bits}`;
    case 'ed25519':
      return 'Ed25519';
  }
}

/** The digest the signature hashes with, as node:crypto names it; null for Ed25519 (pure EdDSA). */
export function signatureHash(a: KeyAlgorithm): 'sha256' | 'sha384' | null {
  switch (a.kind) {
    case 'ec':
      return a.curve === 'P-384' ? 'sha384' : 'sha256';
    case 'rsa':
      return 'sha256';
    case 'ed25519':
      return null;
  }
}

export function sameKeyAlgorithm(a: KeyAlgorithm, b: KeyAlgorithm): boolean {
  return describeKeyAlgorithm(a) === describeKeyAlgorithm(b);
}

function describeUnknown(value: unknown): string {
  try {
    const s = JSON.stringify(value);
    return s === undefined ? String(value) : s.length > 80 ? `${s.slice(0, 80)}…` : s;
  } catch {
    return String(value);
  }
}
