// Key identifiers chosen by the stores: 16 bytes, a 48-bit creation time in milliseconds then 80 random bits, written as 32 hex digits.
import { randomBytes } from 'node:crypto';
import { TrustplaneError } from '../util/errors.js';

// The creation time rides in the id because a PKCS#11 token keeps no creation time for a key.
const ID_PATTERN = /^[0-9a-f]{32}$/;

let last: Buffer | undefined;

/** Ids made by one process sort in creation order: within one millisecond the random tail is incremented, as ULIDs do. */
export function newKeyId(now: Date): string {
  const b = randomBytes(16);
  const ms = now.getTime();
  if (last && last.readUIntBE(0, 6) >= ms) {
    last.copy(b);
    for (let i = 15; i >= 6; i--) if (++b[i]! <= 0xff) break; else b[i] = 0;
  } else {
    b.writeUIntBE(ms, 0, 6);
  }
  last = b;
  return b.toString('hex');
}

export function isKeyId(id: unknown): id is string {
  return typeof id === 'string' && ID_PATTERN.test(id);
}

/** A malformed id names no key: NotFound, so callers need one branch. Never echoes more than a short prefix. */
export function checkKeyId(id: unknown): string {
  if (isKeyId(id)) return id;
  const shown = typeof id === 'string' ? JSON.stringify(id.length > 40 ? `${id.slice(0, 40)}…` : id) : typeof id;
  throw new TrustplaneError('NotFound', `no key with id ${shown}: key ids are 32 lower-case hex digits`);
}

export function createdAtOfKeyId(id: string): Date {
  return new Date(Buffer.from(id, 'hex').readUIntBE(0, 6));
}
