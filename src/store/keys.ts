// Key ranges as etcd spells them: a prefix is the range [prefix, prefixEnd(prefix)).
import { TrustplaneError } from '../util/errors.js';

/** The first key after every key that starts with `prefix`; "\0" (every key) for an empty or all-0xff prefix. */
export function prefixEnd(prefix: Buffer): Buffer {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i] < 0xff) {
      const end = Buffer.from(prefix.subarray(0, i + 1));
      end[i]++;
      return end;
    }
  }
  return Buffer.from([0]);
}

/** A key as bytes; the empty key is refused here, with the reason etcd would give, before any round trip. */
export function keyBytes(key: string, what = 'key'): Buffer {
  if (key.length === 0) throw new TrustplaneError('BadRequest', `store: the ${what} is empty`, 'every store key needs at least one byte');
  return Buffer.from(key, 'utf8');
}
