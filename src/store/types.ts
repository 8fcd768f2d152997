// The store's values as trustplane sees them: revisions as bigint, lease IDs as decimal strings.
import type { IEvent, IKeyValue } from 'etcd3';

/**
 * Revisions, versions and counts are bigint (int64 on the wire). Lease IDs are opaque decimal strings: they exceed
 * 2^53 and are only ever handed back to the store. "0" means no lease.
 */
export type Revision = bigint;
export type LeaseId = string;
export const NO_LEASE: LeaseId = '0';

export interface KeyValue {
  key: string;
  value: Buffer;
  createRevision: Revision;
  modRevision: Revision;
  /** Number of writes since the key was (re)created; 1 after the first put. */
  version: bigint;
  lease: LeaseId;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  /** The new value; empty for a delete. */
  value: Buffer;
  /** The revision of the change (the event's mod revision). */
  revision: Revision;
  kv: KeyValue;
  /** The key's previous state, when the watch asked for it and one existed. */
  prevKv: KeyValue | null;
}

export function kvFromWire(kv: IKeyValue): KeyValue {
  return {
    key: kv.key.toString('utf8'),
    value: kv.value,
    createRevision: BigInt(kv.create_revision),
    modRevision: BigInt(kv.mod_revision),
    version: BigInt(kv.version),
    lease: String(kv.lease),
  };
}

export function eventFromWire(ev: IEvent): WatchEvent {
  const kv = kvFromWire(ev.kv);
  return {
    type: String(ev.type).toLowerCase() === 'delete' ? 'delete' : 'put',
    key: kv.key,
    value: kv.value,
    revision: kv.modRevision,
    kv,
    prevKv: ev.prev_kv ? kvFromWire(ev.prev_kv) : null,
  };
}
