// etcd's key intervals: an empty range_end means one key, "\0" means every key from `key` on, otherwise [key, range_end).

export type KeyRange =
  | { kind: 'single'; key: Buffer }
  | { kind: 'from'; key: Buffer }
  | { kind: 'between'; key: Buffer; end: Buffer }
  | { kind: 'empty' };

export function keyRange(key: Buffer, rangeEnd: Buffer | undefined | null): KeyRange {
  if (!rangeEnd || rangeEnd.length === 0) return { kind: 'single', key };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { kind: 'from', key };
  // An end at or below the key selects nothing, as etcd's index walk does.
  if (Buffer.compare(rangeEnd, key) <= 0) return { kind: 'empty' };
  return { kind: 'between', key, end: rangeEnd };
}

export function inRange(r: KeyRange, k: Buffer): boolean {
  switch (r.kind) {
    case 'single':
      return r.key.equals(k);
    case 'from':
      return Buffer.compare(k, r.key) >= 0;
    case 'between':
      return Buffer.compare(k, r.key) >= 0 && Buffer.compare(k, r.end) < 0;
    case 'empty':
      return false;
  }
}
