// Plain values shared by the store, the applier, the watch hub and the gRPC services.

/** mvccpb.KeyValue as this server holds it: revisions as numbers (they stay below 2^53), lease IDs as decimal int64 strings. */
export interface KeyValue {
  key: Buffer;
  create_revision: number;
  mod_revision: number;
  version: number;
  value: Buffer;
  lease: string;
}

export type EventType = 'PUT' | 'DELETE';

/** One change in the history. A DELETE carries only the key and the revision of the deletion, as etcd's does. */
export interface StoreEvent {
  type: EventType;
  kv: KeyValue;
}

/** The response header every reply carries. */
export interface ResponseHeader {
  cluster_id: string;
  member_id: string;
  revision: number;
  raft_term: number;
}

export const NO_LEASE = '0';
